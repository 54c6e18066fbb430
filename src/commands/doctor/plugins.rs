//! Check 3, `plugins`: binDir then `CNI_PATH` hold, by ADD's lookup rules
//! ([`find::find`]), every plugin `type` and `ipam.type` of the node's networks (the cluster
//! network and the default networks) and of every NAD of the cluster (when the API is
//! reachable); a nested `type` ([`policy::types`]) that is not found is a warning, a
//! meta-plugin at any depth a FAIL. It also gathers the device resources the networks name,
//! for check 8 ([`super::kubelet`]).

use std::path::PathBuf;

use serde_json::Value;

use super::{Api, Findings, join_dirs};
use crate::cni::{DelegateFailure, Error, NetworkConfig};
use crate::commands::Common;
use crate::delegate::{find, policy};
use crate::k8s::api::{EventType, KubeApi, Nad, PodMeta};
use crate::k8s::nad;
use crate::node::{NodeConfig, resolve};

/// NADs served from a list already read, for [`nad::resolve`].
struct Listed<'a>(&'a [Nad]);

impl KubeApi for Listed<'_> {
    fn pod(&self, namespace: &str, name: &str) -> Result<PodMeta, Error> {
        Err(Error::Internal(format!(
            "doctor reads no pod here ({namespace}/{name})"
        )))
    }
    fn nad(&self, namespace: &str, name: &str) -> Result<Option<Nad>, Error> {
        Ok(self
            .0
            .iter()
            .find(|n| n.namespace == namespace && n.name == name)
            .cloned())
    }
    fn set_pod_annotation(&self, _: &PodMeta, _: &str, _: &str) -> Result<(), Error> {
        Err(Error::Internal("doctor writes nothing".into()))
    }
    fn event(&self, _: &PodMeta, _: EventType, _: &str, _: &str) {}
}

/// The plugin types ADD runs for a config: each plugin's `type` and its `ipam.type`, in order,
/// without repeats.
fn plugin_types(config: &NetworkConfig) -> Vec<&str> {
    let mut types: Vec<&str> = Vec::new();
    for p in config.plugins() {
        let ipam = p
            .as_map()
            .get("ipam")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str);
        for t in std::iter::once(p.plugin_type()).chain(ipam) {
            if !types.contains(&t) {
                types.push(t);
            }
        }
    }
    types
}

/// Why a plugin lookup failed, after "plugin type X".
fn lookup_failure(f: &DelegateFailure, dirs: &[PathBuf]) -> String {
    match f {
        DelegateFailure::NotFound { .. } => {
            format!("is not found in {}", join_dirs(dirs))
        }
        DelegateFailure::UnsafeType => {
            "is not a bare file name (no '/', not empty, not '.' or '..')".into()
        }
        DelegateFailure::Untrusted { path, reason } => format!("is refused: {path} {reason}"),
        DelegateFailure::Refused { reason } => format!("is refused: {reason}"),
        other => format!("cannot be used: {other:?}"),
    }
}

/// A network whose plugins are checked, and whether it names a device resource.
struct Network {
    label: String,
    config: NetworkConfig,
    resource: Option<String>,
}

/// Check 3; returns the device resources named, with the network naming each.
pub(super) fn plugins(
    f: &mut Findings,
    common: &Common,
    node: &NodeConfig,
    api: &Api,
    nads: Option<&Result<Vec<Nad>, Error>>,
) -> Vec<(String, String)> {
    const CHECK: &str = "plugins";
    let dirs = common.plugin_dirs(node);
    let mut networks = Vec::new();
    let client = api.client().map(|c| c as &dyn KubeApi);
    match resolve::node_networks(node, client) {
        Ok(n) => {
            networks.push(Network {
                label: format!(
                    "cluster network {:?} ({})",
                    n.cluster.name, n.cluster.source
                ),
                config: n.cluster.config,
                resource: n.cluster.resource_name,
            });
            for d in n.defaults {
                networks.push(Network {
                    label: format!("default network {:?} ({})", d.name, d.source),
                    config: d.config,
                    resource: d.resource_name,
                });
            }
        }
        Err(e) if client.is_none() && node_names_nads(node) => f.skipped(
            CHECK,
            &format!(
                "{}; the node's networks cannot be resolved without it: {}",
                api.why_not(),
                e.msg()
            ),
        ),
        Err(e) => f.fail(
            CHECK,
            format!("the node's networks cannot be resolved: {}", e.msg()),
            if e.details().is_empty() {
                "fix clusterNetwork, defaultNetworks or delegates in the node config".to_owned()
            } else {
                e.details().to_owned()
            },
        ),
    }
    let node_count = networks.len();
    match nads {
        None => f.skipped(CHECK, &format!("{}: the cluster's NADs", api.why_not())),
        Some(Err(e)) => f.fail(
            CHECK,
            format!("cannot list the cluster's NADs: {}", e.msg()),
            "grant plexus list on network-attachment-definitions (examples/deploy/rbac.yaml)",
        ),
        Some(Ok(nads)) => {
            let listed = Listed(nads);
            for n in nads {
                match nad::resolve(&listed, &n.namespace, &n.name, &node.conf_dir) {
                    Ok(r) => networks.push(Network {
                        label: format!("NAD {}/{}", n.namespace, n.name),
                        config: r.config,
                        resource: r.resource_name,
                    }),
                    Err(e) => f.warn(
                        CHECK,
                        format!(
                            "NAD {}/{} cannot be used: {} (ADD fails for pods selecting it)",
                            n.namespace,
                            n.name,
                            e.msg()
                        ),
                        None,
                    ),
                }
            }
        }
    }
    let mut all_types: Vec<&str> = Vec::new();
    let mut failed = false;
    for n in &networks {
        let required = plugin_types(&n.config);
        for t in &required {
            if let Err(e) = find::find(t, &dirs) {
                failed = true;
                f.fail(
                    CHECK,
                    format!(
                        "{}: plugin type {t:?} {}",
                        n.label,
                        lookup_failure(&e, &dirs)
                    ),
                    format!(
                        "install the {t:?} plugin in binDir ({}) or the runtime's CNI_PATH, or \
                         change the network",
                        node.bin_dir.display()
                    ),
                );
            }
        }
        for t in policy::types(&n.config) {
            if required.contains(&t) || all_types.contains(&t) {
                continue;
            }
            if policy::is_meta_plugin(t) {
                // ADD refuses a meta-plugin at any depth of a config.
                failed = true;
                f.fail(
                    CHECK,
                    format!("{}: {}", n.label, policy::meta_plugin_reason(t)),
                    "remove it from the network's config",
                );
            } else if find::find(t, &dirs).is_err() {
                f.warn(
                    CHECK,
                    format!(
                        "{}: a nested \"type\": {t:?} names no plugin in {} (fine if it is not a \
                         plugin, e.g. Calico's policy type; a plugin run by another one, e.g. \
                         flannel's delegate, must be installed)",
                        n.label,
                        join_dirs(&dirs)
                    ),
                    None,
                );
            }
        }
        for t in required {
            if !all_types.contains(&t) {
                all_types.push(t);
            }
        }
    }
    if !failed && !networks.is_empty() {
        all_types.sort_unstable();
        f.ok(
            CHECK,
            format!(
                "{} network(s) ({} of the node, {} NAD(s)) find every plugin in {}: {}",
                networks.len(),
                node_count,
                networks.len() - node_count,
                join_dirs(&dirs),
                all_types.join(", ")
            ),
        );
    }
    networks
        .into_iter()
        .filter_map(|n| Some((n.resource?, n.label)))
        .collect()
}

/// Whether a node network entry may name a NAD (not an absolute path).
fn node_names_nads(node: &NodeConfig) -> bool {
    node.cluster_network
        .iter()
        .chain(&node.default_networks)
        .any(|e| !e.trim().starts_with('/'))
}
