//! The plexus node config, generated from the host's default CNI config.
//!
//! **Which file is the default.** The runtime (containerd, CRI-O through libcni) uses the
//! lexically first `*.conf`, `*.conflist` or `*.json` file of the CNI config directory. The
//! installer picks the default the same way, leaving out:
//! - its own output, [`OUTPUT_NAME`] (`00-plexus.conflist`, named so that the runtime picks
//!   it first, before `05-cilium.conflist`, `10-calico.conflist`, `10-flannel.conflist`…);
//! - any file whose `type`, or the `type` of one of whose plugins, is `plexus` (an older or
//!   hand-written plexus config must never become plexus's own cluster network);
//! - hidden files (a leading `.`: editors' and installers' temp files), names without one of
//!   the three extensions (`calico-kubeconfig`, `README`, `*.bak`, `*.tmp`), directories
//!   (such as `plexus.d/`), and anything that is not a regular file after following
//!   symlinks.
//!
//! Ordering is by bytes, as Go's `sort.Strings` orders libcni's list.
//!
//! **The default must be usable.** The chosen file must be JSON naming a network (`name`), in
//! a `cniVersion` plexus speaks, with at least one plugin and a `type` in each plugin. A file
//! that fails any of this is refused with an error naming the file and the problem
//! ([`super::Error::DefaultConfig`]); the installer then leaves the existing plexus config as
//! it was. It does not skip to the next file: the runtime would not either, and silently
//! running pods on the wrong network is worse than a clear error.
//!
//! **What is generated** ([`generate`]):
//!
//! ```json
//! {
//!   "cniVersion": "<the default's cniVersion>",
//!   "name": "plexus-cni-network",
//!   "plugins": [
//!     {
//!       "type": "plexus",
//!       "kubeconfig": "/etc/cni/net.d/plexus.d/plexus.kubeconfig",
//!       "clusterNetwork": "/etc/cni/net.d/10-calico.conflist",
//!       "capabilities": {"portMappings": true, "bandwidth": true,
//!                        "io.kubernetes.cri.pod-annotations": true},
//!       "...": "the node config keys given by flags"
//!     }
//!   ]
//! }
//! ```
//!
//! **Decision: `clusterNetwork` is the default config's path as the host sees it**, not its
//! network name. A path resolves first, without the API and without `confDir`, so it works
//! while the API server is away and cannot collide with a NAD of the same name in
//! `multusNamespace`; and it keeps naming the exact file the runtime would have used. When
//! that file changes the installer regenerates (see [`super::watch`]), so the path never goes
//! stale for long.
//!
//! `capabilities` is the union of the capabilities the default's plugins declare `true`, in
//! order of first appearance: the runtime passes plexus only the runtime values (port
//! mappings, bandwidth…) that plexus's own plugin entry declares, and plexus hands them to the
//! cluster network. With a kubeconfig, `io.kubernetes.cri.pod-annotations` follows: containerd
//! and CRI-O then pass the pod's annotations, and ADD does not read the pod from the API
//! ([`crate::k8s::pod`]); a runtime that does not know the capability passes nothing and
//! plexus reads the pod as before. The version is the default's, so results reach the runtime in the version
//! it already speaks for this network.
//!
//! **Validation before writing** ([`validate_generated`]): the output must parse as a
//! conflist through [`crate::cni::NetworkConfig`] and its plugin entry, with `name` and
//! `cniVersion` injected as the runtime does, through plexus's own node config parser
//! [`crate::node::NodeConfig`]. Only then is it written, atomically ([`super::atomic`]).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::Error;
use crate::cni::NetworkConfig;
use crate::node::NodeConfig;

/// The generated file's name in the CNI config directory.
pub const OUTPUT_NAME: &str = "00-plexus.conflist";
/// The generated conflist's network name.
pub const NETWORK_NAME: &str = "plexus-cni-network";
/// The plugin type plexus is installed as.
pub const PLUGIN_TYPE: &str = "plexus";
/// Mode of the generated file (it holds no secret; runtimes read it as root anyway).
pub const MODE: u32 = 0o644;
/// Config files larger than this are refused rather than read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The host's default CNI config, parsed and validated.
#[derive(Debug, Clone)]
pub struct DefaultConfig {
    /// Its file name in the CNI config directory.
    pub file_name: String,
    /// Its path as the installer sees it.
    pub path: PathBuf,
    /// Its content.
    pub config: NetworkConfig,
}

/// Whether a file name can be a CNI config for the runtime (extension, not hidden).
pub fn is_config_name(name: &str) -> bool {
    !name.starts_with('.')
        && [".conf", ".conflist", ".json"]
            .iter()
            .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// The names of `dir`'s candidate config files, lexically ordered, without plexus's own
/// output and without what is not a regular file.
pub fn candidates(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = config_files(dir)?;
    names.retain(|n| n != OUTPUT_NAME);
    Ok(names)
}

/// The names of every config file of `dir` a runtime would consider, in the order it loads
/// them (byte order), plexus's own included; what is not a regular file is left out.
pub fn config_files(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_config_name(&name) {
            continue;
        }
        // Follows symlinks: a link to a regular file is a config, as for the runtime.
        match fs::metadata(entry.path()) {
            Ok(m) if m.is_file() => names.push(name),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // dangling link, or gone
            Err(e) => return Err(e),
        }
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Whether a parsed config is a plexus config (its type or a plugin's type is plexus).
fn names_plexus(config: &NetworkConfig) -> bool {
    config
        .plugins()
        .iter()
        .any(|p| p.plugin_type() == PLUGIN_TYPE)
}

/// Finds and validates the default config in `dir` (see the module docs); `None` when
/// there is no candidate.
pub fn find_default(dir: &Path) -> Result<Option<DefaultConfig>, Error> {
    let names = candidates(dir).map_err(|e| Error::Io {
        what: format!("listing {}", dir.display()),
        source: e,
    })?;
    for name in names {
        let path = dir.join(&name);
        let refuse = |problem: String| Error::DefaultConfig {
            path: path.clone(),
            problem,
        };
        let bytes = read_bounded(&path).map_err(|e| refuse(format!("cannot read it: {e}")))?;
        let config = NetworkConfig::parse(&bytes).map_err(|e| refuse(describe(&e)))?;
        if names_plexus(&config) {
            tracing::debug!(file = %path.display(), "a plexus config, not a default network");
            continue;
        }
        check(&config).map_err(refuse)?;
        return Ok(Some(DefaultConfig {
            file_name: name,
            path,
            config,
        }));
    }
    Ok(None)
}

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io::Error::other(format!(
            "larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// A CNI error as one line: its message and, when there are any, its details.
fn describe(e: &crate::cni::Error) -> String {
    let details = e.details();
    if details.is_empty() {
        e.msg()
    } else {
        format!("{}: {details}", e.msg())
    }
}

/// What the runtime and plexus need of a default config: a name, a supported version, at
/// least one plugin, a type in each.
fn check(config: &NetworkConfig) -> Result<(), String> {
    if config.name().is_empty() {
        return Err("it has no \"name\"".into());
    }
    config.validate(config.name()).map_err(|e| describe(&e))?;
    Ok(())
}

/// Node config keys the installer can add to the generated plugin entry, from flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// Key → value, in flag order; written after the generated keys.
    pub keys: Map<String, Value>,
}

/// The generated conflist's bytes for `default` (see the module docs).
/// `default_host_path` is the default's path as the host sees it; `kubeconfig` the host path
/// of the kubeconfig, if plexus gets one.
pub fn generate(
    default: &DefaultConfig,
    default_host_path: &Path,
    kubeconfig: Option<&Path>,
    extras: &Extras,
) -> Result<Vec<u8>, Error> {
    let version = default.config.version().map_err(|e| Error::DefaultConfig {
        path: default.path.clone(),
        problem: describe(&e),
    })?;
    let mut capabilities = Map::new();
    for p in default.config.plugins() {
        for cap in p.capabilities() {
            capabilities.insert(cap.to_owned(), Value::Bool(true));
        }
    }
    if kubeconfig.is_some() {
        // The runtime then passes the pod's annotations: no pod read (see crate::k8s::pod).
        capabilities.insert(
            crate::k8s::pod::RUNTIME_ANNOTATIONS.to_owned(),
            Value::Bool(true),
        );
    }
    let mut plugin = Map::new();
    plugin.insert("type".into(), PLUGIN_TYPE.into());
    if let Some(k) = kubeconfig {
        plugin.insert("kubeconfig".into(), path_value(k)?);
    }
    plugin.insert("clusterNetwork".into(), path_value(default_host_path)?);
    plugin.insert("capabilities".into(), Value::Object(capabilities));
    for (k, v) in &extras.keys {
        plugin.insert(k.clone(), v.clone());
    }
    let mut list = Map::new();
    list.insert("cniVersion".into(), version.as_str().into());
    list.insert("name".into(), NETWORK_NAME.into());
    list.insert("plugins".into(), Value::Array(vec![Value::Object(plugin)]));
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(list))
        .map_err(|e| Error::Generated(format!("serialising: {e}")))?;
    bytes.push(b'\n');
    validate_generated(&bytes)?;
    Ok(bytes)
}

fn path_value(p: &Path) -> Result<Value, Error> {
    p.to_str()
        .map(Value::from)
        .ok_or_else(|| Error::Generated(format!("{} is not UTF-8", p.display())))
}

/// Parses a generated conflist as the runtime and plexus will: a conflist with one plexus
/// plugin whose entry (with `name` and `cniVersion` injected) is a valid node config with a
/// cluster network. Returns the parsed node config.
pub fn validate_generated(bytes: &[u8]) -> Result<NodeConfig, Error> {
    let bad = |what: String| Error::Generated(what);
    let list = NetworkConfig::parse(bytes).map_err(|e| bad(describe(&e)))?;
    if list.name() != NETWORK_NAME {
        return Err(bad(format!("its name is {:?}", list.name())));
    }
    let version = list.validate(NETWORK_NAME).map_err(|e| bad(describe(&e)))?;
    let [plugin] = list.plugins() else {
        return Err(bad("it must hold exactly one plugin".into()));
    };
    if plugin.plugin_type() != PLUGIN_TYPE {
        return Err(bad(format!(
            "its plugin type is {:?}",
            plugin.plugin_type()
        )));
    }
    let mut entry = plugin.as_map().clone();
    entry.insert("name".into(), NETWORK_NAME.into());
    entry.insert("cniVersion".into(), version.as_str().into());
    let node = NodeConfig::from_map(entry).map_err(|e| bad(describe(&e)))?;
    if node.cluster_network.is_none() {
        return Err(bad("it has no clusterNetwork".into()));
    }
    if let Some(unknown) = node.unknown_keys().first() {
        return Err(bad(format!("plexus does not read the key {unknown:?}")));
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, content) in files {
            fs::write(d.path().join(name), content).unwrap();
        }
        d
    }

    const FLANNEL: &str = r#"{"name":"cbr0","cniVersion":"0.3.1","plugins":[
        {"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},
        {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    #[test]
    fn config_names() {
        for ok in [
            "10-a.conf",
            "a.conflist",
            "x.json",
            "00-plexus.conflist.conf",
        ] {
            assert!(is_config_name(ok), "{ok}");
        }
        for no in [
            ".10-a.conf",
            "README",
            "calico-kubeconfig",
            "a.conf.bak",
            "a.conflist.tmp",
            ".conf",
            "conf",
        ] {
            assert!(!is_config_name(no), "{no}");
        }
    }

    #[test]
    fn picks_the_lexically_first_real_config() {
        let d = dir_with(&[
            ("README", "not a config"),
            ("calico-kubeconfig", "apiVersion: v1"),
            (".00-hidden.conflist", "{"),
            ("00-plexus.conflist", "{\"garbage"),
            (
                "01-old-plexus.conf",
                r#"{"cniVersion":"1.0.0","name":"p","type":"plexus"}"#,
            ),
            (
                "02-plexus-list.conflist",
                r#"{"cniVersion":"1.0.0","name":"p","plugins":[{"type":"tuning"},{"type":"plexus"}]}"#,
            ),
            ("10-flannel.conflist", FLANNEL),
            (
                "99-loopback.conf",
                r#"{"cniVersion":"0.3.1","name":"lo","type":"loopback"}"#,
            ),
        ]);
        fs::create_dir(d.path().join("05-dir.conf")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", d.path().join("06-dangling.conf")).unwrap();
        let def = find_default(d.path()).unwrap().unwrap();
        assert_eq!(def.file_name, "10-flannel.conflist");
        assert_eq!(def.config.name(), "cbr0");
    }

    #[test]
    fn byte_order_not_locale_order() {
        let a = r#"{"cniVersion":"1.0.0","name":"upper","type":"bridge"}"#;
        let b = r#"{"cniVersion":"1.0.0","name":"lower","type":"bridge"}"#;
        let d = dir_with(&[("b.conf", b), ("Z.conf", a)]);
        assert_eq!(find_default(d.path()).unwrap().unwrap().file_name, "Z.conf");
    }

    #[test]
    fn no_candidate_is_none() {
        let d = dir_with(&[("README", "x"), ("00-plexus.conflist", "{}")]);
        assert!(find_default(d.path()).unwrap().is_none());
    }

    #[test]
    fn malformed_defaults_are_refused_naming_file_and_problem() {
        for (content, problem) in [
            ("{\"name\": ", "error decoding network config"),
            ("[]", "not a JSON object"),
            (r#"{"cniVersion":"0.3.1","type":"bridge"}"#, "no \"name\""),
            (
                r#"{"cniVersion":"7.0.0","name":"n","type":"bridge"}"#,
                "incompatible CNI versions",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
                "conflist has no plugins",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{"mtu":1}]}"#,
                "plugins[1] has no \"type\"",
            ),
            (r#"{"cniVersion":"1.0.0","name":"n"}"#, "has no \"type\""),
        ] {
            let d = dir_with(&[("10-bad.conflist", content), ("20-good.conflist", FLANNEL)]);
            let e = find_default(d.path()).unwrap_err().to_string();
            assert!(e.contains("10-bad.conflist"), "{e}");
            assert!(e.contains(problem), "{content}: {e}");
        }
    }

    #[test]
    fn generated_config_for_flannel() {
        let d = dir_with(&[("10-flannel.conflist", FLANNEL)]);
        let def = find_default(d.path()).unwrap().unwrap();
        let mut extras = Extras::default();
        extras.keys.insert("logLevel".into(), "debug".into());
        let bytes = generate(
            &def,
            Path::new("/etc/cni/net.d/10-flannel.conflist"),
            Some(Path::new("/etc/cni/net.d/plexus.d/plexus.kubeconfig")),
            &extras,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({
                "cniVersion": "0.3.1",
                "name": "plexus-cni-network",
                "plugins": [{
                    "type": "plexus",
                    "kubeconfig": "/etc/cni/net.d/plexus.d/plexus.kubeconfig",
                    "clusterNetwork": "/etc/cni/net.d/10-flannel.conflist",
                    "capabilities": {"portMappings": true, "io.kubernetes.cri.pod-annotations": true},
                    "logLevel": "debug"
                }]
            })
        );
        assert!(bytes.ends_with(b"}\n"));
        let node = validate_generated(&bytes).unwrap();
        assert_eq!(
            node.cluster_network.as_deref(),
            Some("/etc/cni/net.d/10-flannel.conflist")
        );
    }

    #[test]
    fn capabilities_union_only_true_in_first_appearance_order() {
        let d = dir_with(&[(
            "10-x.conflist",
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[
                {"type":"a","capabilities":{"ips":false,"bandwidth":true}},
                {"type":"b","capabilities":{"portMappings":true,"bandwidth":true,"mac":"yes"}}]}"#,
        )]);
        let def = find_default(d.path()).unwrap().unwrap();
        let caps = |kubeconfig: Option<&Path>| -> Vec<String> {
            let bytes = generate(&def, Path::new("/x"), kubeconfig, &Extras::default()).unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                v["plugins"][0].get("kubeconfig").is_some(),
                kubeconfig.is_some()
            );
            v["plugins"][0]["capabilities"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(caps(None), ["bandwidth", "portMappings"]);
        // With a kubeconfig, the pod's annotations from the runtime too.
        assert_eq!(
            caps(Some(Path::new("/k"))),
            [
                "bandwidth",
                "portMappings",
                crate::k8s::pod::RUNTIME_ANNOTATIONS
            ]
        );
    }

    #[test]
    fn a_single_conf_without_version_becomes_0_1_0() {
        let d = dir_with(&[("10-br.conf", r#"{"name":"br","type":"bridge"}"#)]);
        let def = find_default(d.path()).unwrap().unwrap();
        let bytes = generate(&def, Path::new("/x"), None, &Extras::default()).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["cniVersion"], "0.1.0");
    }

    #[test]
    fn generated_configs_plexus_cannot_read_are_refused() {
        let def = DefaultConfig {
            file_name: "a.conf".into(),
            path: "/a.conf".into(),
            config: NetworkConfig::parse(br#"{"cniVersion":"1.0.0","name":"a","type":"b"}"#)
                .unwrap(),
        };
        let mut extras = Extras::default();
        extras
            .keys
            .insert("namespaceIsolation".into(), "yes".into());
        let e = generate(&def, Path::new("/a.conf"), None, &extras).unwrap_err();
        assert!(e.to_string().contains("namespaceIsolation"), "{e}");
        let mut extras = Extras::default();
        extras.keys.insert("noSuchKey".into(), 1.into());
        let e = generate(&def, Path::new("/a.conf"), None, &extras).unwrap_err();
        assert!(e.to_string().contains("noSuchKey"), "{e}");
        assert!(validate_generated(br#"{"cniVersion":"1.0.0","name":"plexus-cni-network","plugins":[{"type":"plexus"}]}"#).is_err());
    }
}
