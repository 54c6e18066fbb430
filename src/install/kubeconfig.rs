//! The plexus CNI plugin's API access on the host: a kubeconfig and a copy of the token.
//!
//! plexus runs on the host as a child of the container runtime, so it cannot read the
//! service-account volume mounted into the installer's pod. The installer therefore copies
//! what plexus needs into a directory of its own in the CNI config directory:
//!
//! ```text
//! <cni-conf-dir>/plexus.d/            0700
//! <cni-conf-dir>/plexus.d/token       0600  copy of <service-account-dir>/token
//! <cni-conf-dir>/plexus.d/plexus.kubeconfig
//!                                     0600  server, certificate-authority-data, tokenFile
//! ```
//!
//! The kubeconfig names the token by the path **the host** sees
//! (`<host-cni-conf-dir>/plexus.d/token`, by default `/etc/cni/net.d/plexus.d/token`), not the
//! path inside the installer's container. plexus reads the token file on every run, and the
//! kubelet rotates the projected service-account token, so the installer keeps the copy
//! fresh: every reconcile step compares it with the mounted token and replaces it when it
//! changed. The cluster CA (`ca.crt`) is embedded as `certificate-authority-data`, so there is
//! one file fewer to keep in step; the kubeconfig is rewritten when the CA or the server
//! changes. Both files are written through [`super::atomic`] (mode 0600, in a 0700
//! directory): plexus never reads a half-written token.
//!
//! The server is `--kubernetes-server`, else `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`
//! (an IPv6 address in brackets), i.e. the `kubernetes` Service as the installer's pod sees
//! it. The DaemonSet runs on the host network, so the same address works for plexus on the
//! host.
//!
//! The token's bytes never reach a log, an error message or a `Debug` output.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::{Error, atomic};

/// plexus's own directory inside the CNI config directory.
pub const DIR_NAME: &str = "plexus.d";
/// The kubeconfig's file name in [`DIR_NAME`].
pub const KUBECONFIG_NAME: &str = "plexus.kubeconfig";
/// The token copy's file name in [`DIR_NAME`].
pub const TOKEN_NAME: &str = "token";
/// Mode of [`DIR_NAME`].
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files in [`DIR_NAME`].
pub const FILE_MODE: u32 = 0o600;

/// The mounted service account: its token and the cluster CA (PEM).
pub struct ServiceAccount {
    token: Vec<u8>,
    ca_pem: Vec<u8>,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("token", &"<redacted>")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .finish()
    }
}

impl ServiceAccount {
    /// Reads `dir/token` and `dir/ca.crt`; an empty token or a CA file without a PEM
    /// certificate is an error naming the file.
    pub fn read(dir: &Path) -> Result<ServiceAccount, Error> {
        let read = |name: &str| -> Result<Vec<u8>, Error> {
            let path = dir.join(name);
            fs::read(&path).map_err(|e| Error::ServiceAccount {
                path: path.clone(),
                problem: format!("cannot read it: {e}"),
            })
        };
        let token = read(TOKEN_NAME)?;
        if token.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::ServiceAccount {
                path: dir.join(TOKEN_NAME),
                problem: "the token is empty".into(),
            });
        }
        let ca_pem = read("ca.crt")?;
        if !ca_pem
            .windows(CERT_MARK.len())
            .any(|w| w == CERT_MARK.as_bytes())
        {
            return Err(Error::ServiceAccount {
                path: dir.join("ca.crt"),
                problem: "holds no PEM certificate".into(),
            });
        }
        Ok(ServiceAccount { token, ca_pem })
    }

    /// The token's bytes, for the copy.
    pub fn token(&self) -> &[u8] {
        &self.token
    }

    /// The CA, PEM.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }
}

const CERT_MARK: &str = "-----BEGIN CERTIFICATE-----";

/// The API server URL from the in-cluster environment, as the installer's pod sees it.
pub fn server_from_env(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let host = get("KUBERNETES_SERVICE_HOST")?.trim().to_owned();
    if host.is_empty() {
        return None;
    }
    let port = get("KUBERNETES_SERVICE_PORT")
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "443".to_owned());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Some(format!("https://{host}:{port}"))
}

/// Where the files live: `dir` as the installer sees it, `host_dir` as plexus on the host
/// sees the same directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub dir: PathBuf,
    pub host_dir: PathBuf,
}

impl Layout {
    /// The layout under a CNI config directory (installer's and host's view).
    pub fn under(conf_dir: &Path, host_conf_dir: &Path) -> Layout {
        Layout {
            dir: conf_dir.join(DIR_NAME),
            host_dir: host_conf_dir.join(DIR_NAME),
        }
    }

    /// The kubeconfig path for the node config (host view).
    pub fn host_kubeconfig(&self) -> PathBuf {
        self.host_dir.join(KUBECONFIG_NAME)
    }

    /// The token path the kubeconfig names (host view).
    pub fn host_token(&self) -> PathBuf {
        self.host_dir.join(TOKEN_NAME)
    }
}

/// What [`sync`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub token_written: bool,
    pub kubeconfig_written: bool,
}

/// Brings the token copy and the kubeconfig in `layout` up to date; writes only what
/// differs. The token first: a new kubeconfig never names a token that is not there yet.
pub fn sync(sa: &ServiceAccount, server: &str, layout: &Layout) -> Result<Outcome, Error> {
    let io = |what: String| move |e| Error::Io { what, source: e };
    atomic::ensure_dir(&layout.dir, DIR_MODE)
        .map_err(io(format!("preparing {}", layout.dir.display())))?;
    let mut out = Outcome::default();
    let write = |name: &str, bytes: &[u8]| -> Result<bool, Error> {
        let path = layout.dir.join(name);
        if atomic::same(&path, bytes, FILE_MODE)
            .map_err(io(format!("reading {}", path.display())))?
        {
            return Ok(false);
        }
        atomic::replace(&layout.dir, name, bytes, FILE_MODE)
            .map_err(io(format!("writing {}", path.display())))?;
        Ok(true)
    };
    out.token_written = write(TOKEN_NAME, sa.token())?;
    let text = render(server, sa.ca_pem(), &layout.host_token());
    out.kubeconfig_written = write(KUBECONFIG_NAME, text.as_bytes())?;
    Ok(out)
}

/// The kubeconfig text: one cluster, one user with `tokenFile`, one context, as JSON. A
/// kubeconfig is YAML and JSON is YAML (kubectl and every client read it), but plexus reads
/// this file on every ADD and parses JSON several times faster than YAML (see
/// `k8s::client::read_kubeconfig`). JSON has no comments: docs/install.md says who writes the file
/// (`plexus install`, which rewrites it; not to be edited).
pub fn render(server: &str, ca_pem: &[u8], token_file: &Path) -> String {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "plexus", "cluster": {
            "server": server,
            "certificate-authority-data": base64(ca_pem),
        }}],
        "users": [{"name": "plexus", "user": {"tokenFile": token_file.to_string_lossy()}}],
        "contexts": [{"name": "plexus", "context": {"cluster": "plexus", "user": "plexus"}}],
        "current-context": "plexus",
    });
    format!("{doc:#}\n")
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n";

    fn sa_dir(token: &str, ca: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("token"), token).unwrap();
        fs::write(d.path().join("ca.crt"), ca).unwrap();
        d
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn server_from_the_service_environment() {
        let env = |h: Option<&'static str>, p: Option<&'static str>| {
            move |k: &str| match k {
                "KUBERNETES_SERVICE_HOST" => h.map(str::to_owned),
                "KUBERNETES_SERVICE_PORT" => p.map(str::to_owned),
                _ => None,
            }
        };
        assert_eq!(
            server_from_env(env(Some("10.96.0.1"), Some("443"))).as_deref(),
            Some("https://10.96.0.1:443")
        );
        assert_eq!(
            server_from_env(env(Some("fd00:10:96::1"), Some("6443"))).as_deref(),
            Some("https://[fd00:10:96::1]:6443")
        );
        assert_eq!(
            server_from_env(env(Some("[fd00::1]"), None)).as_deref(),
            Some("https://[fd00::1]:443")
        );
        assert_eq!(server_from_env(env(None, Some("443"))), None);
        assert_eq!(server_from_env(env(Some(" "), Some("443"))), None);
    }

    #[test]
    fn rendered_kubeconfig_is_what_kube_reads() {
        let text = render(
            "https://[fd00::1]:6443",
            CA.as_bytes(),
            Path::new("/etc/cni/net.d/plexus.d/token"),
        );
        assert!(
            text.starts_with('{'),
            "JSON, for plexus's fast path: {text}"
        );
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("plexus"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://[fd00::1]:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(base64(CA.as_bytes()).as_str())
        );
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file.as_deref(),
            Some("/etc/cni/net.d/plexus.d/token")
        );
        assert!(!text.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn sync_writes_0600_in_0700_with_host_paths_and_only_what_changed() {
        let sa = sa_dir("tok-1", CA);
        let conf = tempfile::tempdir().unwrap();
        let layout = Layout::under(conf.path(), Path::new("/etc/cni/net.d"));
        let acct = ServiceAccount::read(sa.path()).unwrap();
        let out = sync(&acct, "https://10.96.0.1:443", &layout).unwrap();
        assert!(out.token_written && out.kubeconfig_written);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&layout.dir), 0o700);
        assert_eq!(mode(&layout.dir.join("token")), 0o600);
        assert_eq!(mode(&layout.dir.join("plexus.kubeconfig")), 0o600);
        assert_eq!(fs::read(layout.dir.join("token")).unwrap(), b"tok-1");
        let kc = fs::read_to_string(layout.dir.join("plexus.kubeconfig")).unwrap();
        assert!(kc.contains("\"tokenFile\": \"/etc/cni/net.d/plexus.d/token\""));
        assert!(!kc.contains("tok-1"));
        assert_eq!(
            layout.host_kubeconfig(),
            Path::new("/etc/cni/net.d/plexus.d/plexus.kubeconfig")
        );

        let out = sync(&acct, "https://10.96.0.1:443", &layout).unwrap();
        assert_eq!(out, Outcome::default());
        // A rotated token: only the token is rewritten.
        fs::write(sa.path().join("token"), "tok-2").unwrap();
        let acct = ServiceAccount::read(sa.path()).unwrap();
        let out = sync(&acct, "https://10.96.0.1:443", &layout).unwrap();
        assert!(out.token_written && !out.kubeconfig_written);
        // A new server: only the kubeconfig.
        let out = sync(&acct, "https://10.96.0.2:443", &layout).unwrap();
        assert!(!out.token_written && out.kubeconfig_written);
    }

    #[test]
    fn bad_service_accounts_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let e = ServiceAccount::read(d.path()).unwrap_err().to_string();
        assert!(
            e.contains(&d.path().join("token").display().to_string()),
            "{e}"
        );
        let d = sa_dir("\n", CA);
        let e = ServiceAccount::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("the token is empty"), "{e}");
        let d = sa_dir("tok", "not a cert");
        let e = ServiceAccount::read(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("ca.crt") && e.contains("no PEM certificate"),
            "{e}"
        );
        let d = sa_dir("secret-token", CA);
        let dbg = format!("{:?}", ServiceAccount::read(d.path()).unwrap());
        assert!(!dbg.contains("secret-token"), "{dbg}");
    }
}
