//! The node config: what the runtime hands plexus on stdin (the plexus entry of
//! `/etc/cni/net.d/00-plexus.conflist`, with the list's `name` and `cniVersion`).
//!
//! plexus reads Multus's keys so that an existing Multus config works after changing `type` to
//! `plexus` (docs/configuration.md). This module reads the keys the current build acts
//! on; every other key is kept in [`NodeConfig::raw`] and is not an error.
//!
//! Keys read now:
//! - `name` (required, code 7 when missing), `cniVersion` (missing means 0.1.0);
//! - `binDir` (default `/opt/cni/bin`): delegates are looked up there first, then in the
//!   runtime's `CNI_PATH`, and get `CNI_PATH=<binDir>:<runtime's CNI_PATH>`;
//! - `delegates`: inline configs or conflists; the first is the cluster network;
//! - `logLevel` (`debug`, `verbose`, `error`, `panic` as in Multus, plus `trace`, `info`,
//!   `warn`; default `warn`), `logFile`, `logToStderr` (default true);
//! - `delegateTimeoutSeconds` (plexus's own key, default 120): the deadline of each delegate
//!   plugin process;
//! - `startDelegatesAhead` (plexus's own key): the next delegates' processes are started while
//!   one runs, and given their configs at their turn ([`crate::delegate::ahead`]): `"auto"`
//!   (the default) while the node has a CPU to spare, `true` always, `false` never;
//! - `kubeconfig`: the Kubernetes client's configuration (without it, and outside a cluster,
//!   plexus reads no annotation);
//! - `confDir` (default `/etc/cni/multus/net.d`): where NADs with an empty `spec.config` find
//!   their config;
//! - `namespaceIsolation` (default false), `globalNamespaces` (a comma-separated string as in
//!   Multus, or a list), `systemNamespaces` (default `["kube-system"]`), `multusNamespace`
//!   (default `kube-system`, the namespace of default-network names);
//! - `apiConnectTimeoutSeconds` (default 2) and `apiTimeoutSeconds` (default 5, every attempt
//!   of one API call included): plexus's own bounds on the API;
//! - `clusterNetwork` (a NAD name, `namespace/name`, a config name in `confDir`, or an absolute
//!   path to a config file or directory) and `defaultNetworks` (a list of the same), resolved
//!   by [`resolve`];
//! - `cniDir` (default `/var/lib/cni/plexus`): plexus's journal directory;
//! - `readinessindicatorfile`: ADD waits for this file to exist (`readinessTimeoutSeconds`,
//!   plexus's own key, default 45 as in Multus), see [`readiness`];
//! - `podResourcesSocket` (default `/var/lib/kubelet/pod-resources/kubelet.sock`) and
//!   `podResourcesTimeoutSeconds` (default 5): plexus's own keys for the kubelet's PodResources
//!   API, asked only for networks whose NAD names a `k8s.v1.cni.cncf.io/resourceName` (see
//!   [`crate::devices`]); `deviceInfoDir` (default `/var/run/k8s.cni.cncf.io/devinfo`): the
//!   Device Information Specification's directory, with `dp/` and `cni/` under it (Multus has
//!   no keys for these paths);
//! - `allowedPluginTypes` and `deniedPluginTypes` (plexus's own keys, lists of plugin type
//!   names, both unset by default): the plugin types the networks a pod selects may, and may
//!   not, use; meta-plugins are refused whatever they say (see [`crate::delegate::policy`]);
//! - the runtime's injections: `runtimeConfig`, `prevResult`, `cni.dev/valid-attachments`.
//!
//! Unknown keys are logged at info level and otherwise ignored ([`NodeConfig::unknown_keys`]).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cni::{Error, Version};
use crate::delegate::StartAhead;
use crate::delegate::policy::TypePolicy;
use crate::devices;

pub mod readiness;
pub mod resolve;

/// Default plugin directory, as in Multus.
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
/// Default per-delegate timeout.
pub const DEFAULT_DELEGATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Default confDir, as in Multus.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/multus/net.d";
/// Default journal directory.
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/plexus";
/// Default bound of the readiness wait.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(45);

/// Every key plexus reads; others are reported by [`NodeConfig::unknown_keys`].
pub const KNOWN_KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "kubeconfig",
    "clusterNetwork",
    "defaultNetworks",
    "delegates",
    "confDir",
    "cniDir",
    "binDir",
    "namespaceIsolation",
    "globalNamespaces",
    "systemNamespaces",
    "multusNamespace",
    "readinessindicatorfile",
    "logFile",
    "logLevel",
    "logToStderr",
    "logOptions",
    "capabilities",
    "runtimeConfig",
    "delegateTimeoutSeconds",
    "startDelegatesAhead",
    "apiConnectTimeoutSeconds",
    "apiTimeoutSeconds",
    "readinessTimeoutSeconds",
    "podResourcesSocket",
    "podResourcesTimeoutSeconds",
    "deviceInfoDir",
    "allowedPluginTypes",
    "deniedPluginTypes",
    "prevResult",
    "cni.dev/valid-attachments",
    "args",
    "ipam",
    "dns",
    "auxiliaryCNIChainName",
    "multusConfigFile",
    "socketDir",
];

/// The parsed node config.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub kubeconfig: Option<PathBuf>,
    pub cluster_network: Option<String>,
    pub default_networks: Vec<String>,
    pub cni_dir: PathBuf,
    pub readiness_file: Option<PathBuf>,
    pub readiness_timeout: Duration,
    pub conf_dir: PathBuf,
    pub namespace_isolation: bool,
    pub global_namespaces: Vec<String>,
    pub system_namespaces: Vec<String>,
    pub multus_namespace: String,
    pub api_connect_timeout: Duration,
    pub api_timeout: Duration,
    /// The kubelet's PodResources socket.
    pub pod_resources_socket: PathBuf,
    /// The bound of one PodResources lookup.
    pub pod_resources_timeout: Duration,
    /// The device-information directory (`dp/` and `cni/` under it).
    pub device_info_dir: PathBuf,
    /// `allowedPluginTypes` and `deniedPluginTypes`.
    pub type_policy: TypePolicy,
    pub name: String,
    pub version: Version,
    pub bin_dir: PathBuf,
    pub delegates: Vec<Value>,
    pub log_level: Option<String>,
    pub log_file: Option<PathBuf>,
    pub log_to_stderr: bool,
    pub delegate_timeout: Duration,
    /// When the next delegates are started while one runs (`startDelegatesAhead`; see
    /// [`crate::delegate::ahead`]).
    pub start_delegates_ahead: StartAhead,
    pub runtime_config: Map<String, Value>,
    pub prev_result: Option<Value>,
    pub valid_attachments: Option<Value>,
    /// The whole object as received.
    pub raw: Map<String, Value>,
}

/// Decodes stdin into a JSON object, with libcni's checks and codes: not JSON (or not an
/// object) is code 6, a missing or empty `name` is code 7.
pub fn decode_stdin(bytes: &[u8]) -> Result<Map<String, Value>, Error> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::decode(format!("error unmarshalling network config: {e}"), ""))?;
    let Value::Object(obj) = v else {
        return Err(Error::decode(
            "error unmarshalling network config: not a JSON object",
            "",
        ));
    };
    if obj
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return Err(Error::invalid_config("missing network name", ""));
    }
    Ok(obj)
}

impl NodeConfig {
    /// Reads the node config from a decoded stdin object. Wrongly typed known keys are code 7
    /// naming the key.
    pub fn from_map(raw: Map<String, Value>) -> Result<NodeConfig, Error> {
        let s = |k: &str| -> Result<Option<String>, Error> {
            match raw.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad_key(k, "a string")),
            }
        };
        let version = Version::parse_config(&s("cniVersion")?.unwrap_or_default())?;
        let delegates = match raw.get("delegates") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(bad_key("delegates", "a list of configs")),
        };
        let log_to_stderr = flag(&raw, "logToStderr", true)?;
        let delegate_timeout = seconds(&raw, "delegateTimeoutSeconds", DEFAULT_DELEGATE_TIMEOUT)?;
        let namespace_isolation = flag(&raw, "namespaceIsolation", false)?;
        let runtime_config = match raw.get("runtimeConfig") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(bad_key("runtimeConfig", "an object")),
        };
        Ok(NodeConfig {
            kubeconfig: s("kubeconfig")?
                .filter(|k| !k.is_empty())
                .map(PathBuf::from),
            cluster_network: s("clusterNetwork")?.filter(|c| !c.trim().is_empty()),
            default_networks: names(&raw, "defaultNetworks")?.unwrap_or_default(),
            cni_dir: s("cniDir")?.map_or_else(|| PathBuf::from(DEFAULT_CNI_DIR), PathBuf::from),
            readiness_file: s("readinessindicatorfile")?
                .filter(|f| !f.is_empty())
                .map(PathBuf::from),
            readiness_timeout: seconds(&raw, "readinessTimeoutSeconds", DEFAULT_READINESS_TIMEOUT)?,
            conf_dir: s("confDir")?.map_or_else(|| PathBuf::from(DEFAULT_CONF_DIR), PathBuf::from),
            namespace_isolation,
            global_namespaces: names(&raw, "globalNamespaces")?.unwrap_or_default(),
            system_namespaces: names(&raw, "systemNamespaces")?
                .unwrap_or_else(|| vec!["kube-system".to_owned()]),
            multus_namespace: s("multusNamespace")?
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "kube-system".to_owned()),
            api_connect_timeout: seconds(
                &raw,
                "apiConnectTimeoutSeconds",
                crate::k8s::client::DEFAULT_CONNECT_TIMEOUT,
            )?,
            api_timeout: seconds(
                &raw,
                "apiTimeoutSeconds",
                crate::k8s::client::DEFAULT_CALL_BUDGET,
            )?,
            pod_resources_socket: s("podResourcesSocket")?
                .filter(|p| !p.is_empty())
                .map_or_else(|| PathBuf::from(devices::DEFAULT_SOCKET), PathBuf::from),
            pod_resources_timeout: seconds(
                &raw,
                "podResourcesTimeoutSeconds",
                devices::DEFAULT_TIMEOUT,
            )?,
            device_info_dir: s("deviceInfoDir")?.filter(|p| !p.is_empty()).map_or_else(
                || PathBuf::from(devices::devinfo::DEFAULT_DIR),
                PathBuf::from,
            ),
            type_policy: TypePolicy {
                allowed: type_names(&raw, "allowedPluginTypes")?,
                denied: type_names(&raw, "deniedPluginTypes")?.unwrap_or_default(),
            },
            name: s("name")?.unwrap_or_default(),
            version,
            bin_dir: s("binDir")?.map_or_else(|| PathBuf::from(DEFAULT_BIN_DIR), PathBuf::from),
            delegates,
            log_level: s("logLevel")?,
            log_file: s("logFile")?.map(PathBuf::from),
            log_to_stderr,
            delegate_timeout,
            start_delegates_ahead: start_ahead(&raw)?,
            runtime_config,
            prev_result: raw.get("prevResult").filter(|v| !v.is_null()).cloned(),
            valid_attachments: raw.get("cni.dev/valid-attachments").cloned(),
            raw,
        })
    }
}

/// `startDelegatesAhead`: `true`, `false` or `"auto"` (the default).
fn start_ahead(raw: &Map<String, Value>) -> Result<StartAhead, Error> {
    const KEY: &str = "startDelegatesAhead";
    match raw.get(KEY) {
        None | Some(Value::Null) => Ok(StartAhead::WhenIdle),
        Some(Value::String(s)) if s == "auto" => Ok(StartAhead::WhenIdle),
        Some(Value::Bool(true)) => Ok(StartAhead::Always),
        Some(Value::Bool(false)) => Ok(StartAhead::Never),
        Some(_) => Err(bad_key(KEY, "true, false or \"auto\"")),
    }
}

/// A `true`/`false` key.
fn flag(raw: &Map<String, Value>, key: &str, default: bool) -> Result<bool, Error> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad_key(key, "true or false")),
    }
}

/// A duration key in seconds, in (0, 86400].
fn seconds(raw: &Map<String, Value>, key: &str, default: Duration) -> Result<Duration, Error> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_f64() {
            Some(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
            _ => Err(bad_key(key, "a number of seconds in (0, 86400]")),
        },
    }
}

/// A list of plugin type names (`None` when the key is absent).
fn type_names(raw: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, Error> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().filter(|t| !t.is_empty()).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad_key(key, "a list of plugin type names")),
        Some(_) => Err(bad_key(key, "a list of plugin type names")),
    }
}

/// A list of namespaces: a JSON list of strings, or Multus's comma-separated string.
fn names(raw: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, Error> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(split(s))),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad_key(key, "a list of namespace names or a comma-separated string")),
        Some(_) => Err(bad_key(
            key,
            "a list of namespace names or a comma-separated string",
        )),
    }
}

impl NodeConfig {
    /// Keys of the node config plexus does not read (logged, never fatal).
    pub fn unknown_keys(&self) -> Vec<&str> {
        self.raw
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN_KEYS.contains(k))
            .collect()
    }

    /// The namespace isolation settings.
    pub fn isolation(&self) -> crate::k8s::nad::Isolation {
        crate::k8s::nad::Isolation {
            enabled: self.namespace_isolation,
            global_namespaces: self.global_namespaces.clone(),
        }
    }

    /// Whether pods of `namespace` skip `defaultNetworks` (Multus's `systemNamespaces`).
    pub fn is_system_namespace(&self, namespace: &str) -> bool {
        self.system_namespaces.iter().any(|n| n == namespace)
    }

    /// The kubelet, as the source of pods' devices (connects to nothing until asked).
    pub fn device_source(&self) -> devices::Kubelet {
        devices::Kubelet {
            socket: self.pod_resources_socket.clone(),
            timeout: self.pod_resources_timeout,
        }
    }

    /// How to build the Kubernetes client.
    pub fn client_options(&self) -> crate::k8s::client::ClientOptions {
        crate::k8s::client::ClientOptions {
            kubeconfig: self.kubeconfig.clone(),
            connect_timeout: self.api_connect_timeout,
            call_budget: self.api_timeout,
            ..Default::default()
        }
    }
}

fn bad_key(key: &str, want: &str) -> Error {
    Error::invalid_config(format!("node config: \"{key}\" must be {want}"), "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::Code;

    fn cfg(s: &str) -> Result<NodeConfig, Error> {
        NodeConfig::from_map(decode_stdin(s.as_bytes())?)
    }

    #[test]
    fn stdin_checks() {
        assert_eq!(
            decode_stdin(b"{}").unwrap_err().msg(),
            "missing network name"
        );
        assert_eq!(
            decode_stdin(b"{}").unwrap_err().code(),
            Code::INVALID_CONFIG
        );
        assert_eq!(decode_stdin(b"{oops").unwrap_err().code(), Code::DECODE);
        assert_eq!(decode_stdin(b"[]").unwrap_err().code(), Code::DECODE);
        assert_eq!(
            decode_stdin(br#"{"name":""}"#).unwrap_err().code(),
            Code::INVALID_CONFIG
        );
    }

    #[test]
    fn defaults_and_keys() {
        let c = cfg(r#"{"name":"p","cniVersion":"1.0.0","unknownKey":1}"#).unwrap();
        assert_eq!(c.bin_dir, PathBuf::from("/opt/cni/bin"));
        assert_eq!(c.delegate_timeout, Duration::from_secs(120));
        assert!(c.log_to_stderr);
        assert_eq!(c.start_delegates_ahead, StartAhead::WhenIdle);
        for (value, want) in [
            ("false", StartAhead::Never),
            ("true", StartAhead::Always),
            (r#""auto""#, StartAhead::WhenIdle),
        ] {
            let c = cfg(&format!(r#"{{"name":"p","startDelegatesAhead":{value}}}"#)).unwrap();
            assert_eq!(c.start_delegates_ahead, want, "{value}");
            assert!(c.unknown_keys().is_empty(), "{:?}", c.unknown_keys());
        }
        assert_eq!(
            cfg(r#"{"name":"p","startDelegatesAhead":"no"}"#)
                .unwrap_err()
                .code(),
            Code::INVALID_CONFIG
        );
        let c = cfg(
            r#"{"name":"p","cniVersion":"1.1.0","binDir":"/b","delegateTimeoutSeconds":2.5,
               "delegates":[{"cniVersion":"1.0.0","type":"bridge"}]}"#,
        )
        .unwrap();
        assert_eq!(c.delegate_timeout, Duration::from_millis(2500));
        assert_eq!(
            cfg(r#"{"name":"p","delegateTimeoutSeconds":0}"#)
                .unwrap_err()
                .code(),
            Code::INVALID_CONFIG
        );
        assert_eq!(c.conf_dir, PathBuf::from("/etc/cni/multus/net.d"));
        assert_eq!(
            cfg(r#"{"name":"p","cniVersion":"3.0.0"}"#)
                .unwrap_err()
                .code(),
            Code::INCOMPATIBLE_VERSION
        );
    }
}

#[cfg(test)]
mod k8s_keys {
    use super::*;
    use std::path::Path;

    fn cfg(s: &str) -> Result<NodeConfig, Error> {
        NodeConfig::from_map(decode_stdin(s.as_bytes())?)
    }

    #[test]
    fn multus_kubernetes_keys() {
        let c = cfg(r#"{"name":"p"}"#).unwrap();
        assert_eq!(c.kubeconfig, None);
        assert_eq!(c.system_namespaces, vec!["kube-system"]);
        assert_eq!(c.multus_namespace, "kube-system");
        assert!(!c.isolation().enabled);
        assert!(c.is_system_namespace("kube-system"));
        let c = cfg(
            r#"{"name":"p","kubeconfig":"/etc/cni/net.d/plexus.d/plexus.kubeconfig",
                "namespaceIsolation":true,"globalNamespaces":"default, shared,",
                "systemNamespaces":["kube-system","infra"],"multusNamespace":"plexus",
                "confDir":"/c","apiTimeoutSeconds":1.5}"#,
        )
        .unwrap();
        assert_eq!(
            c.kubeconfig.as_deref(),
            Some(Path::new("/etc/cni/net.d/plexus.d/plexus.kubeconfig"))
        );
        assert_eq!(c.global_namespaces, vec!["default", "shared"]);
        assert!(c.isolation().enabled);
        assert!(c.is_system_namespace("infra"));
        assert_eq!(c.multus_namespace, "plexus");
        assert_eq!(c.client_options().call_budget, Duration::from_millis(1500));
        assert_eq!(c.conf_dir, PathBuf::from("/c"));
        assert_eq!(c.cni_dir, PathBuf::from("/var/lib/cni/plexus"));
        let c = cfg(
            r#"{"name":"p","clusterNetwork":"k8s-pod-network","defaultNetworks":["a","b"],
                "readinessindicatorfile":"/run/ready","cniDir":"/s","extra":1,"capabilities":{}}"#,
        )
        .unwrap();
        assert_eq!(c.cluster_network.as_deref(), Some("k8s-pod-network"));
        assert_eq!(c.default_networks, vec!["a", "b"]);
        assert_eq!(c.readiness_file.as_deref(), Some(Path::new("/run/ready")));
        assert_eq!(c.readiness_timeout, Duration::from_secs(45));
        assert_eq!(c.cni_dir, PathBuf::from("/s"));
        assert_eq!(c.unknown_keys(), vec!["extra"]);
        let c = cfg(r#"{"name":"p"}"#).unwrap();
        assert_eq!(
            c.pod_resources_socket,
            Path::new("/var/lib/kubelet/pod-resources/kubelet.sock")
        );
        assert_eq!(c.pod_resources_timeout, Duration::from_secs(5));
        assert_eq!(
            c.device_info_dir,
            Path::new("/var/run/k8s.cni.cncf.io/devinfo")
        );
        let c = cfg(
            r#"{"name":"p","podResourcesSocket":"/k.sock","podResourcesTimeoutSeconds":0.5,
                "deviceInfoDir":"/d"}"#,
        )
        .unwrap();
        assert_eq!(c.device_source().socket, Path::new("/k.sock"));
        assert_eq!(c.device_source().timeout, Duration::from_millis(500));
        assert_eq!(c.device_info_dir, Path::new("/d"));
        assert!(c.unknown_keys().is_empty());
        assert!(cfg(r#"{"name":"p","podResourcesTimeoutSeconds":-1}"#).is_err());
        let c = cfg(r#"{"name":"p"}"#).unwrap();
        assert_eq!(c.type_policy, TypePolicy::default());
        let c = cfg(
            r#"{"name":"p","allowedPluginTypes":["bridge","macvlan"],"deniedPluginTypes":["host-device"]}"#,
        )
        .unwrap();
        assert_eq!(
            c.type_policy,
            TypePolicy {
                allowed: Some(vec!["bridge".into(), "macvlan".into()]),
                denied: vec!["host-device".into()],
            }
        );
        assert!(c.unknown_keys().is_empty());
        for bad in [r#""bridge""#, "[1]", r#"[""]"#] {
            let e = cfg(&format!(r#"{{"name":"p","allowedPluginTypes":{bad}}}"#)).unwrap_err();
            assert_eq!(
                e.msg(),
                "node config: \"allowedPluginTypes\" must be a list of plugin type names"
            );
        }
        let c = cfg(r#"{"name":"p","globalNamespaces":["a","b"]}"#).unwrap();
        assert_eq!(c.global_namespaces, vec!["a", "b"]);
        assert!(cfg(r#"{"name":"p","globalNamespaces":[1]}"#).is_err());
        assert!(cfg(r#"{"name":"p","namespaceIsolation":"yes"}"#).is_err());
    }
}
