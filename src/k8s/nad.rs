//! From a network reference to a delegate config: NAD lookup, config resolution, isolation.
//!
//! Resolution of `namespace/name` (NPWG v1.3, section 4):
//! 1. the NetworkAttachmentDefinition's `spec.config`, a conf or a conflist;
//! 2. when `spec.config` is empty: a conflist in `confDir` whose `name` is the NAD's name, else
//!    a conf (`.conf`, `.json`) with that name; files are tried in lexical order and files that
//!    are not valid JSON are skipped with a warning;
//! 3. else the network cannot be resolved, and the error names the network and the directory.
//!
//! A config without a `name` (or with an empty one) gets the NAD's `metadata.name` injected;
//! otherwise its bytes are kept exactly. The NAD's `k8s.v1.cni.cncf.io/resourceName`
//! annotation is kept for device lookup.
//!
//! Namespace isolation (`namespaceIsolation`, `globalNamespaces`): when on, a pod may only use
//! networks of its own namespace or of a global namespace. **Decision**: the rule is checked by
//! [`check_isolation`] for every reference, the `v1.multus-cni.io/default-network` annotation
//! included, before anything is looked up.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::api::KubeApi;
use crate::cni::{Error, NetworkConfig};

/// The NAD annotation naming a device-plugin resource (SR-IOV).
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

/// A network ready to be run.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedNetwork {
    pub namespace: String,
    pub name: String,
    pub config: NetworkConfig,
    /// Where the config came from: `NetworkAttachmentDefinition ns/name` or a file path.
    pub source: String,
    /// The NAD's `k8s.v1.cni.cncf.io/resourceName`, when set.
    pub resource_name: Option<String>,
}

impl ResolvedNetwork {
    /// `namespace/name`, the network's name in network-status.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The isolation settings of the node config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Isolation {
    pub enabled: bool,
    pub global_namespaces: Vec<String>,
}

/// Refuses a reference from a pod in `pod_namespace` to `net_namespace/net_name` when
/// isolation forbids it. The error names both namespaces.
pub fn check_isolation(
    iso: &Isolation,
    pod: &str,
    pod_namespace: &str,
    net_namespace: &str,
    net_name: &str,
) -> Result<(), Error> {
    if !iso.enabled
        || net_namespace == pod_namespace
        || iso.global_namespaces.iter().any(|g| g == net_namespace)
    {
        return Ok(());
    }
    Err(Error::invalid_config(
        format!(
            "pod {pod_namespace}/{pod} may not use network {net_namespace}/{net_name}: namespaceIsolation allows only the pod's namespace {pod_namespace:?} and the global namespaces"
        ),
        format!(
            "globalNamespaces: [{}]; create the NetworkAttachmentDefinition in {pod_namespace:?} or add {net_namespace:?} to globalNamespaces",
            iso.global_namespaces.join(", ")
        ),
    ))
}

fn net_err(ns: &str, name: &str, what: String, details: impl Into<String>) -> Error {
    Error::invalid_config(format!("network {ns}/{name}: {what}"), details)
}

/// Looks up and resolves `namespace/name`.
pub fn resolve(
    api: &dyn KubeApi,
    namespace: &str,
    name: &str,
    conf_dir: &Path,
) -> Result<ResolvedNetwork, Error> {
    let Some(nad) = api.nad(namespace, name)? else {
        return Err(net_err(
            namespace,
            name,
            "NetworkAttachmentDefinition not found".into(),
            format!(
                "check `kubectl get network-attachment-definitions -n {namespace}` and the pod's k8s.v1.cni.cncf.io/networks annotation"
            ),
        ));
    };
    let resource_name = nad
        .annotations
        .get(RESOURCE_NAME_ANNOTATION)
        .filter(|r| !r.is_empty())
        .cloned();
    let (config, source) = if nad.config.trim().is_empty() {
        match from_conf_dir(conf_dir, name)? {
            Some((path, config)) => (config, path.display().to_string()),
            None => {
                return Err(net_err(
                    namespace,
                    name,
                    format!(
                        "the NetworkAttachmentDefinition has no spec.config and {} holds no conflist or conf named {name:?}",
                        conf_dir.display()
                    ),
                    "set spec.config, or install a config with that name in the confDir of the node config",
                ));
            }
        }
    } else {
        let config = with_name(nad.config.as_bytes(), name).map_err(|e| {
            net_err(
                namespace,
                name,
                format!("spec.config is not a usable CNI config: {}", e.msg()),
                e.details(),
            )
        })?;
        (
            config,
            format!("NetworkAttachmentDefinition {namespace}/{name}"),
        )
    };
    Ok(ResolvedNetwork {
        namespace: namespace.into(),
        name: name.into(),
        config,
        source,
        resource_name,
    })
}

/// Parses `bytes` as a config, injecting `name` when it has none (or an empty one). The bytes
/// are kept exactly when no injection is needed.
pub fn with_name(bytes: &[u8], name: &str) -> Result<NetworkConfig, Error> {
    let parsed = NetworkConfig::parse(bytes)?;
    if !parsed.name().is_empty() {
        return Ok(parsed);
    }
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::decode("error decoding network config", e.to_string()))?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("name".into(), Value::String(name.into()));
    }
    let injected = serde_json::to_vec(&v)
        .map_err(|e| Error::Internal(format!("serialising a network config: {e}")))?;
    NetworkConfig::from_value(v, injected)
}

/// Finds the conflist, else the conf, named `name` in `dir` (lexical order within each kind).
pub fn from_conf_dir(dir: &Path, name: &str) -> Result<Option<(PathBuf, NetworkConfig)>, Error> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading confDir {}", dir.display()), e)),
    };
    files.sort();
    let ext = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_owned()
    };
    for wanted in [&["conflist"][..], &["conf", "json"][..]] {
        for path in files.iter().filter(|p| wanted.contains(&ext(p).as_str())) {
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "skipping unreadable config");
                    continue;
                }
            };
            match NetworkConfig::parse(&bytes) {
                Ok(c) if c.name() == name => {
                    let is_list = matches!(c, NetworkConfig::List { .. });
                    if is_list == (wanted[0] == "conflist") {
                        return Ok(Some((path.clone(), c)));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "skipping invalid config")
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::api::Nad;
    use crate::k8s::api::fake::FakeApi;
    use std::collections::BTreeMap;

    fn nad(name: &str, config: &str) -> Nad {
        Nad {
            namespace: "ns".into(),
            name: name.into(),
            config: config.into(),
            annotations: BTreeMap::new(),
        }
    }

    const NOWHERE: &str = "/nonexistent/confdir";

    #[test]
    fn inline_conf_keeps_bytes() {
        let raw = r#"{"cniVersion":"1.0.0", "name":"mine","type":"macvlan"}"#;
        let api = FakeApi::with(vec![nad("a", raw)]);
        let r = resolve(&api, "ns", "a", Path::new(NOWHERE)).unwrap();
        assert_eq!(r.config.bytes(), raw.as_bytes());
        assert_eq!(r.config.name(), "mine");
        assert_eq!(r.key(), "ns/a");
        assert_eq!(r.source, "NetworkAttachmentDefinition ns/a");
    }

    #[test]
    fn inline_conflist_and_name_injection() {
        let api = FakeApi::with(vec![
            nad(
                "l",
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
            ),
            nad(
                "c",
                r#"{"cniVersion":"1.0.0","name":"","type":"bridge","z":1}"#,
            ),
        ]);
        let r = resolve(&api, "ns", "l", Path::new(NOWHERE)).unwrap();
        assert!(matches!(r.config, NetworkConfig::List { .. }));
        assert_eq!(r.config.name(), "l");
        let r = resolve(&api, "ns", "c", Path::new(NOWHERE)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(r.config.bytes()),
            r#"{"cniVersion":"1.0.0","name":"c","type":"bridge","z":1}"#
        );
    }

    #[test]
    fn empty_config_found_on_disk_conflist_preferred() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("10-a.conf"),
            r#"{"cniVersion":"1.0.0","name":"disk","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"disk","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        std::fs::write(d.path().join("05-bad.conflist"), "not json").unwrap();
        std::fs::write(
            d.path().join("30-other.conflist"),
            r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        let api = FakeApi::with(vec![nad("disk", ""), nad("conf-only", "  ")]);
        let r = resolve(&api, "ns", "disk", d.path()).unwrap();
        assert_eq!(
            r.source,
            d.path().join("20-b.conflist").display().to_string()
        );
        assert!(matches!(r.config, NetworkConfig::List { .. }));
        std::fs::remove_file(d.path().join("20-b.conflist")).unwrap();
        let r = resolve(&api, "ns", "disk", d.path()).unwrap();
        assert_eq!(r.source, d.path().join("10-a.conf").display().to_string());
        let e = resolve(&api, "ns", "conf-only", d.path()).unwrap_err();
        assert_eq!(
            e.msg(),
            format!(
                "network ns/conf-only: the NetworkAttachmentDefinition has no spec.config and {} holds no conflist or conf named \"conf-only\"",
                d.path().display()
            )
        );
        assert_eq!(e.code().0, 7);
    }

    #[test]
    fn not_found_and_invalid_json() {
        let api = FakeApi::with(vec![nad("bad", "{not json")]);
        let e = resolve(&api, "ns", "missing", Path::new(NOWHERE)).unwrap_err();
        assert_eq!(
            e.msg(),
            "network ns/missing: NetworkAttachmentDefinition not found"
        );
        assert_eq!(e.code().0, 7);
        let e = resolve(&api, "ns", "bad", Path::new(NOWHERE)).unwrap_err();
        assert_eq!(
            e.msg(),
            "network ns/bad: spec.config is not a usable CNI config: error decoding network config"
        );
        assert_eq!(e.code().0, 7);
    }

    #[test]
    fn resource_name_is_kept() {
        let mut n = nad(
            "sriov",
            r#"{"cniVersion":"1.0.0","name":"sriov","type":"host-device"}"#,
        );
        n.annotations
            .insert(RESOURCE_NAME_ANNOTATION.into(), "intel.com/sriov_a".into());
        let r = resolve(&FakeApi::with(vec![n]), "ns", "sriov", Path::new(NOWHERE)).unwrap();
        assert_eq!(r.resource_name.as_deref(), Some("intel.com/sriov_a"));
    }

    #[test]
    fn isolation_names_both_namespaces() {
        let iso = Isolation {
            enabled: true,
            global_namespaces: vec!["shared".into()],
        };
        assert!(check_isolation(&iso, "p", "a", "a", "n").is_ok());
        assert!(check_isolation(&iso, "p", "a", "shared", "n").is_ok());
        let e = check_isolation(&iso, "p", "a", "b", "n").unwrap_err();
        assert_eq!(
            e.msg(),
            "pod a/p may not use network b/n: namespaceIsolation allows only the pod's namespace \"a\" and the global namespaces"
        );
        assert!(e.details().starts_with("globalNamespaces: [shared]"));
        assert!(check_isolation(&Isolation::default(), "p", "a", "b", "n").is_ok());
    }
}
