//! Device-information files (Device Information Specification v1.1): the device plugin's
//! file, read and checked in the plan stage, and the attachment's copy, written before its
//! delegate runs and removed when it is torn down.
//!
//! Paths, under `deviceInfoDir` (default [`DEFAULT_DIR`]):
//! - the device plugin's: `dp/<resource>-<device ID>-device.json`, with every `/` of the
//!   resource and the ID replaced by `-` (the specification's naming, so device plugins and
//!   meta-plugins agree without talking);
//! - the attachment's copy: `cni/<network>-<container ID>_<ifname>-device.json`, the `/` of
//!   `namespace/name` replaced by `-`. Container IDs and interface names hold no `/` (CNI
//!   validates them), and one container never has two attachments with one interface name,
//!   so two attachments never share a copy.
//!
//! A device plugin's file is usable when it is at most [`MAX_SIZE`] bytes of JSON holding an
//! object whose `type` is a non-empty string (the specification's one field every kind of
//! device has; `version` and the rest are the plugin's business and go through unchanged).
//! The copy holds the file's exact bytes.
//!
//! Copies are written atomically (a temp file in the same directory, then `rename(2)`), mode
//! 0444 like the specification's reference library writes them; the `cni` directory is
//! created (0755) when missing.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cni::Error;

/// Default `deviceInfoDir`.
pub const DEFAULT_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo";
/// Largest device-information file accepted.
pub const MAX_SIZE: u64 = 64 * 1024;

const COPY_MODE: u32 = 0o444;
const DIR_MODE: u32 = 0o755;

/// A device plugin's device-information file and the attachment's copy of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// The device plugin's file.
    pub source: PathBuf,
    /// The attachment's copy (what `CNIDeviceInfoFile` names).
    pub copy: PathBuf,
    /// The file's exact bytes.
    pub bytes: Vec<u8>,
    /// The parsed content, for network-status `device-info`.
    pub content: Value,
}

/// The device plugin's file for device `id` of `resource`.
pub fn dp_path(dir: &Path, resource: &str, id: &str) -> PathBuf {
    dir.join("dp").join(format!(
        "{}-{}-device.json",
        resource.replace('/', "-"),
        id.replace('/', "-")
    ))
}

/// The attachment's copy.
pub fn copy_path(dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    dir.join("cni").join(format!(
        "{}-{container_id}_{ifname}-device.json",
        network.replace('/', "-")
    ))
}

/// Reads the device plugin's file of device `id` of `resource`: `None` when there is none,
/// the cause when it is not usable (see the module docs).
pub fn read(
    dir: &Path,
    resource: &str,
    id: &str,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<Option<DeviceInfo>, String> {
    let source = dp_path(dir, resource, id);
    let file = match OpenOptions::new().read(true).open(&source) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", source.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading {}: {e}", source.display()))?;
    let content = check(&bytes).map_err(|cause| format!("{}: {cause}", source.display()))?;
    Ok(Some(DeviceInfo {
        copy: copy_path(dir, network, container_id, ifname),
        source,
        bytes,
        content,
    }))
}

/// The parsed content of usable device information.
fn check(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() as u64 > MAX_SIZE {
        return Err(format!("larger than {MAX_SIZE} bytes"));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("not a JSON object".into());
    };
    match obj.get("type") {
        Some(Value::String(t)) if !t.is_empty() => Ok(v),
        Some(_) => Err("\"type\" is not a non-empty string".into()),
        None => Err("no \"type\"".into()),
    }
}

/// Writes the attachment's copy (see the module docs).
pub fn write_copy(info: &DeviceInfo) -> Result<(), Error> {
    let ctx = || {
        format!(
            "writing the device-information file {}",
            info.copy.display()
        )
    };
    let dir = info
        .copy
        .parent()
        .ok_or_else(|| Error::io(ctx(), "it has no directory"))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| Error::io(ctx(), e))?;
    let name = info
        .copy
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(COPY_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(&info.bytes)?;
        drop(f);
        fs::rename(&tmp, &info.copy)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(ctx(), e));
    }
    Ok(())
}

/// Removes an attachment's copy; an absent file is fine. Failures are logged (see the
/// decision in [`super`]).
pub fn remove_copy(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => tracing::debug!(file = %path.display(), "device-information copy removed"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!(
            file = %path.display(),
            error = %e,
            "cannot remove the device-information copy; remove it by hand"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn paths_follow_the_specification() {
        let d = Path::new("/devinfo");
        assert_eq!(
            dp_path(d, "intel.com/sriov_a", "0000:af:00.1"),
            Path::new("/devinfo/dp/intel.com-sriov_a-0000:af:00.1-device.json")
        );
        assert_eq!(
            dp_path(d, "r", "a/../b"),
            Path::new("/devinfo/dp/r-a-..-b-device.json")
        );
        assert_eq!(
            copy_path(d, "default/sriov-a", "c0ffee", "net1"),
            Path::new("/devinfo/cni/default-sriov-a-c0ffee_net1-device.json")
        );
    }

    #[test]
    fn usable_and_unusable_files() {
        let dir = tempfile::tempdir().unwrap();
        let dp = dir.path().join("dp");
        fs::create_dir_all(&dp).unwrap();
        let read = |id: &str| read(dir.path(), "r/x", id, "ns/n", "c", "net1");
        assert_eq!(read("absent"), Ok(None));
        let cases: [(&str, &[u8], &str); 5] = [
            ("a", b"not json", "not JSON: "),
            ("b", b"[1]", "not a JSON object"),
            ("c", br#"{"version":"1.1.0"}"#, "no \"type\""),
            ("d", br#"{"type":7}"#, "\"type\" is not a non-empty string"),
            ("e", br#"{"type":""}"#, "\"type\" is not a non-empty string"),
        ];
        for (id, body, cause) in cases {
            let path = dp_path(dir.path(), "r/x", id);
            fs::write(&path, body).unwrap();
            let e = read(id).unwrap_err();
            assert!(
                e.starts_with(&format!("{}: {cause}", path.display())),
                "{id}: {e}"
            );
        }
        let big = format!(r#"{{"type":"pci","pad":"{}"}}"#, "x".repeat(70_000));
        fs::write(dp_path(dir.path(), "r/x", "big"), big).unwrap();
        assert!(
            read("big")
                .unwrap_err()
                .ends_with("larger than 65536 bytes")
        );
        let ok = br#"{"type":"vhost-user","version":"1.1.0","vhost-user":{"mode":"server"}}"#;
        fs::write(dp_path(dir.path(), "r/x", "ok"), ok).unwrap();
        let info = read("ok").unwrap().unwrap();
        assert_eq!(info.bytes, ok);
        assert_eq!(info.content["vhost-user"]["mode"], "server");
    }

    #[test]
    fn copy_is_exact_read_only_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let info = DeviceInfo {
            source: dir.path().join("dp/x"),
            copy: copy_path(dir.path(), "ns/n", "c", "net1"),
            bytes: b"{\"type\": \"pci\"}\n".to_vec(),
            content: serde_json::json!({"type":"pci"}),
        };
        write_copy(&info).unwrap();
        assert_eq!(fs::read(&info.copy).unwrap(), info.bytes);
        let mode = fs::metadata(&info.copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444);
        // Again (a retried ADD): replaced, not refused.
        write_copy(&info).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path().join("cni"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["ns-n-c_net1-device.json"], "no temp file left");
        remove_copy(&info.copy);
        assert!(!info.copy.exists());
        remove_copy(&info.copy);
    }
}
