//! Resolving `clusterNetwork`, `defaultNetworks` and `delegates` to runnable configs.
//!
//! A `clusterNetwork` or `defaultNetworks` entry resolves, in this order (as Multus does):
//! 1. an absolute path: a config file, or a directory whose first config file in lexical order
//!    (`.conf`, `.conflist`, `.json`) is used;
//! 2. a NetworkAttachmentDefinition `[namespace/]name`, the namespace defaulting to
//!    `multusNamespace`, when plexus has an API client;
//! 3. a conflist, else a conf, in `confDir` whose `name` is the entry.
//!
//! **Decision**: when the API is unreachable (a transient failure), step 2 is skipped with a
//! warning and step 3 is tried, so a node whose cluster network is installed on disk keeps
//! working while the API server is away; when step 3 finds nothing either, the API error is
//! returned. A NAD that does not exist simply moves on to step 3.
//!
//! Without `clusterNetwork`, the first entry of `delegates` is the cluster network and the
//! others are networks every pod gets (Multus's thin-plugin layout).

use std::path::{Path, PathBuf};

use super::NodeConfig;
use crate::cni::{Error, NetworkConfig};
use crate::k8s::api::KubeApi;
use crate::k8s::nad::{self, ResolvedNetwork};
use crate::k8s::selection;

/// The networks every pod gets, before its own selections: the cluster network first.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeNetworks {
    pub cluster: ResolvedNetwork,
    /// `defaultNetworks` (or `delegates[1..]`), in order.
    pub defaults: Vec<ResolvedNetwork>,
}

/// Resolves the node's networks. `api` is `None` when plexus has no client.
pub fn node_networks(node: &NodeConfig, api: Option<&dyn KubeApi>) -> Result<NodeNetworks, Error> {
    if let Some(cluster) = &node.cluster_network {
        let cluster = resolve_entry(cluster, node, api)?;
        let defaults = node
            .default_networks
            .iter()
            .map(|d| resolve_entry(d, node, api))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(NodeNetworks { cluster, defaults });
    }
    let mut from_delegates = node.delegates.iter().enumerate().map(|(i, d)| inline(i, d));
    let Some(cluster) = from_delegates.next().transpose()? else {
        return Err(Error::invalid_config(
            format!("node config {:?} has no cluster network", node.name),
            "set \"clusterNetwork\" (a NAD, a config name in confDir, or a path) or \"delegates\"",
        ));
    };
    let mut defaults = from_delegates.collect::<Result<Vec<_>, _>>()?;
    defaults.extend(
        node.default_networks
            .iter()
            .map(|d| resolve_entry(d, node, api))
            .collect::<Result<Vec<_>, _>>()?,
    );
    Ok(NodeNetworks { cluster, defaults })
}

/// One inline `delegates` entry.
fn inline(index: usize, value: &serde_json::Value) -> Result<ResolvedNetwork, Error> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| Error::Internal(format!("serialising delegates[{index}]: {e}")))?;
    let config = NetworkConfig::from_value(value.clone(), bytes)?;
    let name = if config.name().is_empty() {
        format!("delegates[{index}]")
    } else {
        config.name().to_owned()
    };
    Ok(ResolvedNetwork {
        namespace: String::new(),
        name,
        config,
        source: format!("node config delegates[{index}]"),
        resource_name: None,
    })
}

/// Resolves one `clusterNetwork` / `defaultNetworks` entry (see the module docs).
pub fn resolve_entry(
    entry: &str,
    node: &NodeConfig,
    api: Option<&dyn KubeApi>,
) -> Result<ResolvedNetwork, Error> {
    let entry = entry.trim();
    if entry.starts_with('/') {
        return from_path(Path::new(entry));
    }
    let mut api_error = None;
    if let Some(api) = api {
        let (ns, name, _) = selection::parse_reference(entry, &node.multus_namespace)?;
        match nad::resolve(api, &ns, &name, &node.conf_dir) {
            Ok(n) => return Ok(n),
            // The NAD does not exist: go on with confDir.
            Err(Error::InvalidConfig { msg, .. })
                if msg.ends_with("NetworkAttachmentDefinition not found") => {}
            Err(
                e @ Error::Kubernetes {
                    transient: true, ..
                },
            ) => {
                tracing::warn!(network = entry, error = %e, "API unreachable; trying confDir");
                api_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    if let Some((path, config)) = nad::from_conf_dir(&node.conf_dir, entry)? {
        return Ok(ResolvedNetwork {
            namespace: String::new(),
            name: config.name().to_owned(),
            config,
            source: path.display().to_string(),
            resource_name: None,
        });
    }
    Err(api_error.unwrap_or_else(|| {
        Error::invalid_config(
            format!(
                "network {entry:?} of the node config not found: no NetworkAttachmentDefinition {}/{entry} and no conflist or conf named {entry:?} in {}",
                node.multus_namespace,
                node.conf_dir.display()
            ),
            "fix clusterNetwork/defaultNetworks, or install the config",
        )
    }))
}

/// A config file, or the first config file of a directory.
fn from_path(path: &Path) -> Result<ResolvedNetwork, Error> {
    let file = if path.is_dir() {
        first_config_file(path)?.ok_or_else(|| {
            Error::invalid_config(
                format!(
                    "network directory {} holds no .conf, .conflist or .json file",
                    path.display()
                ),
                "",
            )
        })?
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(|e| {
        Error::invalid_config(
            format!("cannot read network config {}", file.display()),
            e.to_string(),
        )
    })?;
    let config = NetworkConfig::parse(&bytes).map_err(|e| {
        Error::invalid_config(
            format!("network config {}: {}", file.display(), e.msg()),
            e.details(),
        )
    })?;
    Ok(ResolvedNetwork {
        namespace: String::new(),
        name: config.name().to_owned(),
        config,
        source: file.display().to_string(),
        resource_name: None,
    })
}

fn first_config_file(dir: &Path) -> Result<Option<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conf" | "conflist" | "json")
                )
        })
        .collect();
    files.sort();
    Ok(files.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::api::Nad;
    use crate::k8s::api::fake::FakeApi;
    use crate::node::decode_stdin;
    use std::collections::BTreeMap;

    fn node(extra: &str, conf_dir: &Path) -> NodeConfig {
        let text = format!(
            r#"{{"name":"plexus","cniVersion":"1.0.0","confDir":{:?}{extra}}}"#,
            conf_dir.display().to_string()
        );
        NodeConfig::from_map(decode_stdin(text.as_bytes()).unwrap()).unwrap()
    }

    fn nad(ns: &str, name: &str) -> Nad {
        Nad {
            namespace: ns.into(),
            name: name.into(),
            config: format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"bridge"}}"#),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn nad_in_multus_namespace_then_conf_dir_then_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("10-calico.conflist"),
            r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"calico"}]}"#,
        )
        .unwrap();
        let api = FakeApi::with(vec![
            nad("kube-system", "cluster-nad"),
            nad("infra", "extra"),
        ]);
        let n = node(
            r#","clusterNetwork":"cluster-nad","defaultNetworks":["infra/extra","k8s-pod-network"]"#,
            d.path(),
        );
        let nets = node_networks(&n, Some(&api)).unwrap();
        assert_eq!(nets.cluster.key(), "kube-system/cluster-nad");
        assert_eq!(nets.defaults[0].key(), "infra/extra");
        assert_eq!(nets.defaults[1].name, "k8s-pod-network");
        assert_eq!(
            nets.defaults[1].source,
            d.path().join("10-calico.conflist").display().to_string()
        );
        let n = node(r#","clusterNetwork":"nowhere""#, d.path());
        let e = node_networks(&n, Some(&api)).unwrap_err();
        assert_eq!(
            e.msg(),
            format!(
                "network \"nowhere\" of the node config not found: no NetworkAttachmentDefinition kube-system/nowhere and no conflist or conf named \"nowhere\" in {}",
                d.path().display()
            )
        );
    }

    #[test]
    fn api_down_falls_back_to_conf_dir_else_reports_the_api() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("10-flannel.conflist"),
            r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]}"#,
        )
        .unwrap();
        let api = FakeApi {
            down: true,
            ..FakeApi::default()
        };
        let n = node(r#","clusterNetwork":"cbr0""#, d.path());
        assert_eq!(node_networks(&n, Some(&api)).unwrap().cluster.name, "cbr0");
        let n = node(r#","clusterNetwork":"other""#, d.path());
        let e = node_networks(&n, Some(&api)).unwrap_err();
        assert_eq!((e.msg().as_str(), e.code().0), ("unreachable", 11));
    }

    #[test]
    fn paths_files_and_directories() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("net.d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("20-b.conf"),
            r#"{"cniVersion":"1.0.0","name":"b","type":"ptp"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("10-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.join("00-readme.txt"), "not a config").unwrap();
        let n = node(
            &format!(r#","clusterNetwork":{:?}"#, dir.display().to_string()),
            d.path(),
        );
        assert_eq!(node_networks(&n, None).unwrap().cluster.name, "a");
        let file = dir.join("20-b.conf");
        let n = node(
            &format!(r#","clusterNetwork":{:?}"#, file.display().to_string()),
            d.path(),
        );
        assert_eq!(node_networks(&n, None).unwrap().cluster.name, "b");
        let n = node(r#","clusterNetwork":"/nonexistent/x.conf""#, d.path());
        assert_eq!(
            node_networks(&n, None).unwrap_err().msg(),
            "cannot read network config /nonexistent/x.conf"
        );
    }

    #[test]
    fn delegates_first_is_cluster_rest_are_defaults() {
        let d = tempfile::tempdir().unwrap();
        let n = node(
            r#","delegates":[{"cniVersion":"1.0.0","name":"weave","type":"weave-net"},{"cniVersion":"1.0.0","type":"bridge"}]"#,
            d.path(),
        );
        let nets = node_networks(&n, None).unwrap();
        assert_eq!(nets.cluster.name, "weave");
        assert_eq!(nets.defaults[0].name, "delegates[1]");
        let n = node("", d.path());
        assert_eq!(
            node_networks(&n, None).unwrap_err().msg(),
            "node config \"plexus\" has no cluster network"
        );
    }
}
