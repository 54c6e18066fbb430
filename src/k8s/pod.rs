//! Which pod a CNI call is for, and its lookup with the UID check.
//!
//! The runtime names the pod in CNI_ARGS (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`).
//! A pod of that name may have been deleted and recreated while the runtime worked on the old
//! sandbox; the UID tells them apart:
//! - ADD (and CHECK) for a UID other than the API's fails, so a new pod never gets a network
//!   set up for its predecessor's sandbox;
//! - DEL only warns, because tearing down must always be possible;
//! - static pods are exempt: the API holds their mirror pod, whose UID differs from the one
//!   the kubelet uses. A pod whose `kubernetes.io/config.source` annotation is present and not
//!   `api` is static.
//!
//! # The pod's annotations from the runtime
//!
//! containerd and CRI-O pass the pod's annotations (the kubelet copies all of them into the
//! sandbox config) in `runtimeConfig` under [`RUNTIME_ANNOTATIONS`] to a plugin whose config
//! declares that capability (`"capabilities": {"io.kubernetes.cri.pod-annotations": true}`
//! in the node config; `plexus install` declares it). ADD then takes the pod from the runtime
//! ([`from_runtime`]) instead of reading it from the API: the NADs are read as soon as the
//! connection is up, and a pod on the cluster network alone makes no API call before its
//! delegate runs. The annotations are the ones of the pod this sandbox belongs to, so the UID
//! rule's question (are these the annotations of the runtime's pod?) does not arise; the one
//! write, network-status, carries the runtime's UID (see [`super::api::KubeApi::set_pod_annotation`]),
//! which the API server refuses for a pod of the same name recreated in the meantime (the ADD
//! then rolls back). The API is still read when the runtime sends no UID or the pod is static
//! (its mirror pod in the API has another UID), and when the value is not a map of strings.

use serde_json::{Map, Value};

use crate::cni::{CniArgs, Command, Error};

use super::api::{KubeApi, PodMeta};

/// The annotation the kubelet puts on mirror pods of static pods.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// The pod named by CNI_ARGS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// `K8S_POD_UID`, when the runtime sends it.
    pub uid: Option<String>,
}

impl PodRef {
    /// Reads the pod from CNI_ARGS; `None` when namespace or name is missing (not a
    /// Kubernetes pod, e.g. a runtime used outside Kubernetes).
    pub fn from_args(args: &CniArgs) -> Option<PodRef> {
        let get = |k| args.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
        Some(PodRef {
            namespace: get("K8S_POD_NAMESPACE")?,
            name: get("K8S_POD_NAME")?,
            uid: get("K8S_POD_UID"),
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Whether the pod is a static pod's mirror (see the module docs).
pub fn is_static(pod: &PodMeta) -> bool {
    pod.annotations
        .get(CONFIG_SOURCE_ANNOTATION)
        .is_some_and(|s| s != "api")
}

/// The `runtimeConfig` key of the pod's annotations (containerd and CRI-O).
pub const RUNTIME_ANNOTATIONS: &str = "io.kubernetes.cri.pod-annotations";

/// The pod as the runtime passed it, when that can stand for the API's (see the module docs);
/// `None` means: read the pod from the API.
pub fn from_runtime(pod: &PodRef, runtime_config: &Map<String, Value>) -> Option<PodMeta> {
    let given = runtime_config.get(RUNTIME_ANNOTATIONS)?;
    let uid = pod.uid.clone()?;
    let Some(map) = given.as_object() else {
        tracing::debug!("the runtime's pod annotations are not a map; reading the pod");
        return None;
    };
    let mut annotations = std::collections::BTreeMap::new();
    for (k, v) in map {
        let Some(v) = v.as_str() else {
            tracing::debug!(key = %k, "a runtime pod annotation is not a string; reading the pod");
            return None;
        };
        annotations.insert(k.clone(), v.to_owned());
    }
    let found = PodMeta {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid,
        annotations,
    };
    (!is_static(&found)).then_some(found)
}

/// The pod of a call: as the runtime passed it ([`from_runtime`]), else read from the API with
/// the UID rule for `command` ([`lookup`]).
pub fn find(
    api: &dyn KubeApi,
    pod: &PodRef,
    runtime_config: &Map<String, Value>,
    command: Command,
) -> Result<PodMeta, Error> {
    match from_runtime(pod, runtime_config) {
        Some(given) => Ok(given),
        None => lookup(api, pod, command),
    }
}

/// Reads the pod and applies the UID rule for `command`.
///
/// The first read may come from the API server's cache: when its UID fails the rule, the pod
/// is read again from storage ([`KubeApi::pod_latest`]), so that a pod recreated a moment ago
/// is not refused because the cache still holds its predecessor.
pub fn lookup(api: &dyn KubeApi, pod: &PodRef, command: Command) -> Result<PodMeta, Error> {
    let found = api.pod(&pod.namespace, &pod.name)?;
    if check_uid(pod, &found, command).is_ok() {
        return Ok(found);
    }
    let latest = api.pod_latest(&pod.namespace, &pod.name)?;
    check_uid(pod, &latest, command)?;
    Ok(latest)
}

/// The UID rule alone (see the module docs).
pub fn check_uid(pod: &PodRef, found: &PodMeta, command: Command) -> Result<(), Error> {
    let Some(want) = pod.uid.as_deref() else {
        return Ok(());
    };
    if found.uid == want || is_static(found) {
        return Ok(());
    }
    if command == Command::Del {
        tracing::warn!(
            pod = %pod.key(),
            runtime_uid = want,
            api_uid = %found.uid,
            "pod UID differs from the API's (the pod was recreated); tearing down anyway"
        );
        return Ok(());
    }
    Err(Error::Kubernetes {
        msg: format!(
            "pod {} has UID {} in the Kubernetes API but the runtime asked for UID {want}: the pod was deleted and recreated",
            pod.key(),
            found.uid
        ),
        details: "the runtime will tear this sandbox down and create a new one for the new pod"
            .into(),
        transient: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pod_ref(uid: Option<&str>) -> PodRef {
        PodRef {
            namespace: "ns".into(),
            name: "p".into(),
            uid: uid.map(Into::into),
        }
    }

    fn meta(uid: &str, source: Option<&str>) -> PodMeta {
        PodMeta {
            namespace: "ns".into(),
            name: "p".into(),
            uid: uid.into(),
            annotations: source
                .map(|s| BTreeMap::from([(CONFIG_SOURCE_ANNOTATION.to_owned(), s.to_owned())]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn from_args_needs_namespace_and_name() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u")
            .unwrap();
        assert_eq!(PodRef::from_args(&a), Some(pod_ref(Some("u"))));
        let a = CniArgs::parse("K8S_POD_NAMESPACE=ns").unwrap();
        assert_eq!(PodRef::from_args(&a), None);
        let a = CniArgs::parse("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=").unwrap();
        assert_eq!(PodRef::from_args(&a), None);
    }

    #[test]
    fn pod_from_the_runtime_needs_a_uid_strings_and_a_pod_that_is_not_static() {
        let rc = |v: Value| {
            serde_json::json!({"portMappings": [], RUNTIME_ANNOTATIONS: v})
                .as_object()
                .unwrap()
                .clone()
        };
        let nets = serde_json::json!({"k8s.v1.cni.cncf.io/networks": "a,b", "x": ""});
        let got = from_runtime(&pod_ref(Some("u")), &rc(nets.clone())).unwrap();
        assert_eq!(
            got,
            PodMeta {
                namespace: "ns".into(),
                name: "p".into(),
                uid: "u".into(),
                annotations: BTreeMap::from([
                    ("k8s.v1.cni.cncf.io/networks".into(), "a,b".into()),
                    ("x".into(), String::new()),
                ]),
            }
        );
        // An empty map is a pod without annotations: still the runtime's.
        assert!(from_runtime(&pod_ref(Some("u")), &rc(serde_json::json!({}))).is_some());
        assert_eq!(from_runtime(&pod_ref(None), &rc(nets)), None);
        assert_eq!(from_runtime(&pod_ref(Some("u")), &Map::new()), None);
        for bad in [
            serde_json::json!(["a"]),
            serde_json::json!(null),
            serde_json::json!({"a": 1}),
        ] {
            assert_eq!(from_runtime(&pod_ref(Some("u")), &rc(bad)), None);
        }
        let file = serde_json::json!({CONFIG_SOURCE_ANNOTATION: "file"});
        assert_eq!(from_runtime(&pod_ref(Some("u")), &rc(file)), None);
        let api = serde_json::json!({CONFIG_SOURCE_ANNOTATION: "api"});
        assert!(from_runtime(&pod_ref(Some("u")), &rc(api)).is_some());
    }

    #[test]
    fn uid_mismatch_fails_add_warns_on_del_and_spares_static_pods() {
        let r = pod_ref(Some("old"));
        let e = check_uid(&r, &meta("new", None), Command::Add).unwrap_err();
        assert_eq!(
            e.msg(),
            "pod ns/p has UID new in the Kubernetes API but the runtime asked for UID old: the pod was deleted and recreated"
        );
        assert_eq!(e.code().0, 5);
        assert!(check_uid(&r, &meta("new", None), Command::Check).is_err());
        assert!(check_uid(&r, &meta("new", None), Command::Del).is_ok());
        assert!(check_uid(&r, &meta("new", Some("file")), Command::Add).is_ok());
        assert!(check_uid(&r, &meta("new", Some("api")), Command::Add).is_err());
        assert!(check_uid(&r, &meta("old", None), Command::Add).is_ok());
        assert!(check_uid(&pod_ref(None), &meta("x", None), Command::Add).is_ok());
    }
}
