//! Which plugins a network may make plexus run.
//!
//! plexus runs every delegate as root, and a network's config (a NAD's `spec.config`) names
//! the plugins by their `type`. Two rules, checked before anything of an ADD runs (while the
//! networks are resolved, [`crate::txn::add`]) and again for every plugin process of every
//! command ([`super::find`], [`super::chain`]):
//!
//! 1. **No meta-plugin as a delegate, ever.** A meta-plugin reads its config as a *node*
//!    config: `binDir`, `delegates`, `cniDir`, `logFile`, `kubeconfig`... A NAD naming
//!    `"type": "plexus"` (or `multus`, or naming one of them as its `ipam.type`) would let
//!    its author choose which binary root runs, with which config, and where root writes. So
//!    a `type` equal to one of [`META_PLUGINS`], at any depth of the config (plugins,
//!    `ipam`, the `delegate` of a plugin such as flannel), is refused for every network:
//!    selected by a pod, the cluster network, `defaultNetworks`. Two more guards catch a
//!    copy or link of plexus under another name: the executable found for a type must not be
//!    the running plexus binary itself (same file, [`is_running_binary`]); and every
//!    delegate's environment carries [`NESTED_ENV`], which makes a plexus started anywhere
//!    below it (as a delegate, or as the IPAM plugin a delegate runs) refuse to do anything
//!    ([`crate::plugin`]). Node keys are only ever read from the runtime's stdin.
//! 2. **The operator's policy for the networks pods select** ([`TypePolicy`], node config
//!    keys `allowedPluginTypes` and `deniedPluginTypes`): every `type` in the config of a
//!    network named by a pod's `k8s.v1.cni.cncf.io/networks` or
//!    `v1.multus-cni.io/default-network` annotation must be in `allowedPluginTypes` when
//!    that key is set, and must not be in `deniedPluginTypes`. Those are the networks whose
//!    config a namespace's users may have written; the node config's own networks are the
//!    operator's and are not restricted. Default: both unset, so any plugin but a
//!    meta-plugin (what Multus users expect from a drop-in). `docs/security.md` explains
//!    what the standard plugins let a NAD author do and recommends a list; the example
//!    admission policy (`examples/deploy/nad-policy.yaml`) refuses the same NADs at
//!    `kubectl apply`.
//!
//! "Every `type` at any depth" is deliberately broad: it is what the admission policy can
//! check on the config's text, and it covers plugins that run another plugin named in their
//! config. A config with a `type` key that is not a plugin (Calico's `policy.type`) needs
//! that value in the allowed list too.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

use crate::cni::NetworkConfig;

/// Plugin types that are meta-plugins: never run as a delegate.
pub const META_PLUGINS: &[&str] = &["plexus", "multus", "multus-shim", "multus-daemon"];

/// Set in every delegate's environment (to plexus's pid); a plexus that finds it refuses to
/// run (see the module docs).
pub const NESTED_ENV: &str = "PLEXUS_DELEGATE_OF";

/// The node's policy for the plugin types of networks pods select.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypePolicy {
    /// `allowedPluginTypes`: when set, the only types such networks may use.
    pub allowed: Option<Vec<String>>,
    /// `deniedPluginTypes`: types such networks may not use.
    pub denied: Vec<String>,
}

/// Where a network comes from, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The node config's own networks (cluster network, `defaultNetworks`, `delegates`).
    Node,
    /// A network a pod's annotation selects.
    Pod,
}

/// Every string value of a `type` key in the config, at any depth, in document order.
pub fn types(config: &NetworkConfig) -> Vec<&str> {
    let mut found = Vec::new();
    let mut stack: Vec<&Value> = Vec::new();
    let root = match config {
        NetworkConfig::Plugin { conf, .. } => conf.as_map(),
        NetworkConfig::List { list, .. } => list.as_map(),
    };
    push_object(root, &mut found, &mut stack);
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(o) => push_object(o, &mut found, &mut stack),
            Value::Array(a) => stack.extend(a.iter().rev()),
            _ => {}
        }
    }
    found
}

fn push_object<'a>(
    o: &'a serde_json::Map<String, Value>,
    found: &mut Vec<&'a str>,
    stack: &mut Vec<&'a Value>,
) {
    if let Some(Value::String(t)) = o.get("type") {
        found.push(t);
    }
    // `prevResult` and `runtimeConfig` are not the author's plugins (a runtime injects them).
    stack.extend(
        o.iter()
            .rev()
            .filter(|(k, _)| *k != "prevResult" && *k != "runtimeConfig")
            .map(|(_, v)| v),
    );
}

/// The rules of the module docs for one network; `Err` says why, in words for the operator.
pub fn check(config: &NetworkConfig, source: Source, policy: &TypePolicy) -> Result<(), String> {
    for t in types(config) {
        if is_meta_plugin(t) {
            return Err(meta_plugin_reason(t));
        }
        if source == Source::Node {
            continue;
        }
        if let Some(allowed) = &policy.allowed {
            if !allowed.iter().any(|a| a == t) {
                return Err(format!(
                    "plugin type {t:?} is not in the node's allowedPluginTypes [{}]: networks \
                     a pod selects may only use those (ask the cluster's operator, or use a \
                     NAD with an allowed type)",
                    allowed.join(", ")
                ));
            }
        }
        if policy.denied.iter().any(|d| d == t) {
            return Err(format!(
                "plugin type {t:?} is in the node's deniedPluginTypes: networks a pod selects \
                 may not use it"
            ));
        }
    }
    Ok(())
}

/// Whether `plugin_type` names a meta-plugin.
pub fn is_meta_plugin(plugin_type: &str) -> bool {
    META_PLUGINS.contains(&plugin_type)
}

/// Why a meta-plugin is refused.
pub fn meta_plugin_reason(plugin_type: &str) -> String {
    format!(
        "plugin type {plugin_type:?} is a meta-plugin, and plexus never runs one as a \
         delegate: it would read the network's config as a node config (binDir, delegates, \
         logFile...), which lets whoever wrote the network choose what runs as root on the node"
    )
}

/// Whether `path` is the file of the running plexus binary (same device and inode, so a
/// hard link or a link to it counts).
pub fn is_running_binary(path: &Path) -> bool {
    static SELF: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    let me = SELF.get_or_init(|| {
        std::fs::metadata("/proc/self/exe")
            .ok()
            .map(|m| (m.dev(), m.ino()))
    });
    match (me, std::fs::metadata(path)) {
        (Some(me), Ok(m)) => *me == (m.dev(), m.ino()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(json: &str) -> NetworkConfig {
        NetworkConfig::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn types_are_found_at_any_depth_in_document_order() {
        let n = net(r#"{"cniVersion":"1.0.0","name":"n","plugins":[
                {"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]}},
                {"type":"flannel","delegate":{"type":"bridge","x":[{"type":"deep"}]}},
                {"type":"tuning","prevResult":{"type":"ignored"},"runtimeConfig":{"type":"no"}},
                {"type":7}]}"#);
        assert_eq!(
            types(&n),
            [
                "bridge",
                "host-local",
                "flannel",
                "bridge",
                "deep",
                "tuning"
            ]
        );
    }

    #[test]
    fn meta_plugins_are_refused_for_every_source_and_anywhere() {
        let open = TypePolicy::default();
        for cfg in [
            r#"{"cniVersion":"1.0.0","name":"evil","type":"plexus","binDir":"/bin"}"#,
            r#"{"cniVersion":"1.0.0","name":"m","type":"multus"}"#,
            r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"bridge"},{"type":"multus-shim"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"i","type":"bridge","ipam":{"type":"plexus"}}"#,
        ] {
            for source in [Source::Node, Source::Pod] {
                let e = check(&net(cfg), source, &open).unwrap_err();
                assert!(e.contains("is a meta-plugin"), "{cfg}: {e}");
            }
        }
        // Adding it to the allowed list changes nothing.
        let listed = TypePolicy {
            allowed: Some(vec!["plexus".into()]),
            denied: vec![],
        };
        let e = check(
            &net(r#"{"cniVersion":"1.0.0","name":"e","type":"plexus"}"#),
            Source::Pod,
            &listed,
        );
        assert!(e.is_err());
    }

    #[test]
    fn the_policy_binds_pod_networks_only() {
        let policy = TypePolicy {
            allowed: Some(vec!["bridge".into(), "host-local".into()]),
            denied: vec!["host-local".into()],
        };
        let ok = net(r#"{"cniVersion":"1.0.0","name":"b","type":"bridge"}"#);
        assert_eq!(check(&ok, Source::Pod, &policy), Ok(()));
        let unlisted = net(r#"{"cniVersion":"1.0.0","name":"h","type":"host-device"}"#);
        let e = check(&unlisted, Source::Pod, &policy).unwrap_err();
        assert!(
            e.contains(
                "\"host-device\" is not in the node's allowedPluginTypes [bridge, host-local]"
            ),
            "{e}"
        );
        assert_eq!(check(&unlisted, Source::Node, &policy), Ok(()));
        let denied = net(
            r#"{"cniVersion":"1.0.0","name":"b","type":"bridge","ipam":{"type":"host-local"}}"#,
        );
        let e = check(&denied, Source::Pod, &policy).unwrap_err();
        assert!(e.contains("deniedPluginTypes"), "{e}");
    }

    #[test]
    fn the_running_binary_is_recognised_by_identity() {
        let me = std::fs::read_link("/proc/self/exe").unwrap();
        assert!(is_running_binary(&me));
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("other-name");
        std::os::unix::fs::symlink(&me, &link).unwrap();
        assert!(is_running_binary(&link));
        assert!(!is_running_binary(Path::new("/bin/sh")));
        assert!(!is_running_binary(&d.path().join("absent")));
    }
}
