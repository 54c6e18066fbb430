//! A pod's selected networks: the annotation parsed, isolation checked, every NAD resolved.
//!
//! Order of work, so that a bad request costs no API call and a good one costs the minimum:
//! refuse an annotation over [`MAX_ANNOTATION_BYTES`], parse it, refuse more than
//! [`MAX_ATTACHMENTS`] elements; check namespace isolation for every element; then read each
//! distinct NAD once (a network selected twice is read once and gives
//! two attachments).

use std::collections::HashMap;
use std::path::Path;

use super::api::{KubeApi, PodMeta};
use super::nad::{self, Isolation, ResolvedNetwork};
use super::selection::{self, NetworkSelection};
use crate::cni::Error;

/// The pod annotation that replaces the cluster default network for one pod.
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";

/// The most attachments one pod may have, the cluster network and the node's
/// `defaultNetworks` included. **Decision**: 32. Each attachment is a delegate run of up to
/// `delegateTimeoutSeconds`, an interface and usually an IP lease; a pod asking for more is
/// a mistake or an attempt to exhaust the node, and the kernel's own default limits (e.g. 64
/// MACVLANs per lower device in practice) are reached soon after.
pub const MAX_ATTACHMENTS: usize = 32;

/// The largest `k8s.v1.cni.cncf.io/networks` annotation plexus reads, in bytes. **Decision**:
/// 64 KiB: 32 elements of the JSON form with every key set take about 16 KiB, and a bound
/// keeps a tenant from making plexus parse megabytes (the API allows 256 KiB of annotations).
pub const MAX_ANNOTATION_BYTES: usize = 64 * 1024;

/// The error for a pod over one of the limits above (code 7).
pub fn over_limit(pod: &PodMeta, what: String, limit: &str) -> Error {
    Error::invalid_config(
        format!(
            "pod {}: {what}, more than plexus's limit of {limit}",
            pod.key()
        ),
        "split the pod's networks or remove some: the limits (64 KiB of \
         k8s.v1.cni.cncf.io/networks, 32 attachments per pod including the cluster network \
         and the node's defaultNetworks) keep one pod from exhausting the node",
    )
}

/// Refuses a pod whose cluster network, `defaults` node networks and `selected` networks make
/// more than [`MAX_ATTACHMENTS`] attachments.
pub fn check_total(pod: &PodMeta, defaults: usize, selected: usize) -> Result<(), Error> {
    let total = 1 + defaults + selected;
    if total <= MAX_ATTACHMENTS {
        return Ok(());
    }
    Err(over_limit(
        pod,
        format!(
            "the cluster network, {defaults} defaultNetworks and {selected} selected networks \
             make {total} attachments"
        ),
        &format!("{MAX_ATTACHMENTS} attachments"),
    ))
}

/// The pod's own default network, when it sets `v1.multus-cni.io/default-network`:
/// `[namespace/]name` (a trailing `@ifname` is refused: the default network always gets the
/// runtime's CNI_IFNAME). The namespace defaults to `multus_namespace` (the node config's
/// `multusNamespace`), as in Multus. **Decision**: namespace isolation applies here too, like
/// for every other reference, and no namespace is exempt: operators who want pods to pick a
/// default network from `multusNamespace` list it in `globalNamespaces`.
pub fn default_network(
    api: &dyn KubeApi,
    pod: &PodMeta,
    isolation: &Isolation,
    multus_namespace: &str,
    conf_dir: &Path,
) -> Result<Option<ResolvedNetwork>, Error> {
    let Some(text) = pod
        .annotations
        .get(DEFAULT_NETWORK_ANNOTATION)
        .filter(|t| !t.trim().is_empty())
    else {
        return Ok(None);
    };
    let (ns, name, ifname) =
        selection::parse_reference(text.trim(), multus_namespace).map_err(|e| in_annotation(&e))?;
    if let Some(ifname) = ifname {
        return Err(Error::invalid_config(
            format!("{DEFAULT_NETWORK_ANNOTATION}: \"@{ifname}\" is not allowed"),
            "the default network always gets the interface name the runtime asks for (CNI_IFNAME)",
        ));
    }
    nad::check_isolation(isolation, &pod.name, &pod.namespace, &ns, &name)?;
    nad::resolve(api, &ns, &name, conf_dir).map(Some)
}

fn in_annotation(e: &Error) -> Error {
    Error::invalid_config(
        format!("{DEFAULT_NETWORK_ANNOTATION}: {}", e.msg()),
        e.details(),
    )
}

/// One selected network: what the pod asked for and the config that serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    pub selection: NetworkSelection,
    pub network: ResolvedNetwork,
}

/// The pod's selected networks in annotation order (empty without the annotation); the first
/// problem is the error.
pub fn selected(
    api: &dyn KubeApi,
    pod: &PodMeta,
    isolation: &Isolation,
    conf_dir: &Path,
) -> Result<Vec<Selected>, Error> {
    let (out, mut problems) = select(api, pod, isolation, conf_dir, false);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.remove(0))
    }
}

/// [`selected`] going on past problems: every element that resolves, and every problem in the
/// order [`selected`] meets them (what `plexus explain` shows).
pub fn selected_all(
    api: &dyn KubeApi,
    pod: &PodMeta,
    isolation: &Isolation,
    conf_dir: &Path,
) -> (Vec<Selected>, Vec<Error>) {
    select(api, pod, isolation, conf_dir, true)
}

/// The work of [`selected`] (`all`: false, stopping at the first problem, so that a refused
/// reference costs no API call) and [`selected_all`].
fn select(
    api: &dyn KubeApi,
    pod: &PodMeta,
    isolation: &Isolation,
    conf_dir: &Path,
    all: bool,
) -> (Vec<Selected>, Vec<Error>) {
    let text = pod
        .annotations
        .get(selection::ANNOTATION)
        .map(String::as_str)
        .unwrap_or("");
    if text.len() > MAX_ANNOTATION_BYTES {
        let e = over_limit(
            pod,
            format!("{} is {} bytes", selection::ANNOTATION, text.len()),
            &format!("{MAX_ANNOTATION_BYTES} bytes"),
        );
        return (vec![], vec![e]);
    }
    let elements = match selection::parse(text, &pod.namespace) {
        Ok(e) => e,
        Err(e) => return (vec![], vec![e]),
    };
    // Checked before anything is read: a long list costs no API call.
    if elements.len() > MAX_ATTACHMENTS {
        let e = over_limit(
            pod,
            format!(
                "{} selects {} networks",
                selection::ANNOTATION,
                elements.len()
            ),
            &format!("{MAX_ATTACHMENTS} attachments"),
        );
        return (vec![], vec![e]);
    }
    let mut problems = Vec::new();
    let mut allowed = Vec::with_capacity(elements.len());
    for el in elements {
        match nad::check_isolation(
            isolation,
            &pod.name,
            &pod.namespace,
            &el.namespace,
            &el.name,
        ) {
            Ok(()) => allowed.push(el),
            Err(e) => problems.push(e),
        }
    }
    if !all && !problems.is_empty() {
        return (vec![], problems);
    }
    let mut distinct: Vec<(String, String)> = Vec::new();
    for el in &allowed {
        let key = (el.namespace.clone(), el.name.clone());
        if !distinct.contains(&key) {
            distinct.push(key);
        }
    }
    if distinct.len() > 1 {
        // All at once: on HTTP/2 they are read concurrently (one round trip, not one each).
        api.prefetch_nads(&distinct);
    }
    let mut cache: HashMap<(String, String), Result<ResolvedNetwork, Error>> = HashMap::new();
    let mut out = Vec::with_capacity(allowed.len());
    for el in allowed {
        let key = (el.namespace.clone(), el.name.clone());
        let network = match cache.get(&key) {
            Some(n) => n.clone(),
            None => {
                let n = nad::resolve(api, &el.namespace, &el.name, conf_dir);
                if let Err(e) = &n {
                    problems.push(e.clone());
                    if !all {
                        return (vec![], problems);
                    }
                }
                cache.insert(key, n.clone());
                n
            }
        };
        if let Ok(network) = network {
            out.push(Selected {
                selection: el,
                network,
            });
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::api::Nad;
    use crate::k8s::api::fake::FakeApi;
    use std::collections::BTreeMap;

    fn nad(ns: &str, name: &str) -> Nad {
        Nad {
            namespace: ns.into(),
            name: name.into(),
            config: format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"macvlan"}}"#),
            annotations: BTreeMap::new(),
        }
    }

    fn pod(annotation: &str) -> PodMeta {
        PodMeta {
            namespace: "ns1".into(),
            name: "p".into(),
            uid: "u".into(),
            annotations: BTreeMap::from([(selection::ANNOTATION.into(), annotation.into())]),
        }
    }

    #[test]
    fn each_distinct_nad_is_read_once_and_order_is_kept() {
        let api = FakeApi::with(vec![nad("ns1", "a"), nad("other", "b")]);
        let got = selected(
            &api,
            &pod("a,other/b,a@net9"),
            &Isolation::default(),
            Path::new("/x"),
        )
        .unwrap();
        let names: Vec<String> = got.iter().map(|s| s.network.key()).collect();
        assert_eq!(names, vec!["ns1/a", "other/b", "ns1/a"]);
        assert_eq!(got[2].selection.interface.as_deref(), Some("net9"));
        assert_eq!(*api.reads.borrow(), vec!["ns1/a", "other/b"]);
    }

    #[test]
    fn isolation_is_checked_before_any_read() {
        let api = FakeApi::with(vec![nad("ns1", "a"), nad("other", "b")]);
        let iso = Isolation {
            enabled: true,
            global_namespaces: vec![],
        };
        let e = selected(&api, &pod("a,other/b"), &iso, Path::new("/x")).unwrap_err();
        assert!(
            e.msg().starts_with("pod ns1/p may not use network other/b"),
            "{}",
            e.msg()
        );
        assert!(api.reads.borrow().is_empty());
    }

    #[test]
    fn selected_all_goes_on_past_every_problem_in_the_same_order() {
        let api = FakeApi::with(vec![nad("ns1", "a")]);
        let iso = Isolation {
            enabled: true,
            global_namespaces: vec![],
        };
        let p = pod("other/b,missing,a,missing");
        let (found, problems) = selected_all(&api, &p, &iso, Path::new("/x"));
        let names: Vec<String> = found.iter().map(|s| s.network.key()).collect();
        assert_eq!(names, ["ns1/a"]);
        let msgs: Vec<String> = problems.iter().map(Error::msg).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("pod ns1/p may not use network other/b"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("ns1/missing"), "{msgs:?}");
        // The missing NAD is read once and reported once; the refused one is never read.
        assert_eq!(*api.reads.borrow(), vec!["ns1/missing", "ns1/a"]);
        // `selected` stops at the first of them.
        assert_eq!(
            selected(&api, &p, &iso, Path::new("/x")).unwrap_err(),
            problems[0]
        );
    }

    fn pod_with(key: &str, value: &str) -> PodMeta {
        let mut p = pod("");
        p.annotations = BTreeMap::from([(key.into(), value.into())]);
        p
    }

    #[test]
    fn default_network_annotation_namespace_isolation_and_ifname() {
        let api = FakeApi::with(vec![nad("kube-system", "calico"), nad("ns1", "mine")]);
        let none = Isolation::default();
        let p = pod_with(DEFAULT_NETWORK_ANNOTATION, "calico");
        let n = default_network(&api, &p, &none, "kube-system", Path::new("/x")).unwrap();
        assert_eq!(n.map(|n| n.key()).as_deref(), Some("kube-system/calico"));
        let strict = Isolation {
            enabled: true,
            global_namespaces: vec![],
        };
        let e = default_network(&api, &p, &strict, "kube-system", Path::new("/x")).unwrap_err();
        assert!(
            e.msg()
                .starts_with("pod ns1/p may not use network kube-system/calico"),
            "{}",
            e.msg()
        );
        let p = pod_with(DEFAULT_NETWORK_ANNOTATION, " ns1/mine ");
        let n = default_network(&api, &p, &strict, "kube-system", Path::new("/x")).unwrap();
        assert_eq!(n.map(|n| n.key()).as_deref(), Some("ns1/mine"));
        let p = pod_with(DEFAULT_NETWORK_ANNOTATION, "ns1/mine@eth5");
        let e = default_network(&api, &p, &none, "kube-system", Path::new("/x")).unwrap_err();
        assert_eq!(
            e.msg(),
            "v1.multus-cni.io/default-network: \"@eth5\" is not allowed"
        );
        let p = pod_with(DEFAULT_NETWORK_ANNOTATION, "Bad_Name");
        let e = default_network(&api, &p, &none, "kube-system", Path::new("/x")).unwrap_err();
        assert!(
            e.msg().starts_with("v1.multus-cni.io/default-network: "),
            "{}",
            e.msg()
        );
        assert_eq!(e.code().0, 7);
        assert!(
            default_network(&api, &pod(""), &none, "kube-system", Path::new("/x"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn annotation_size_and_attachment_count_are_capped_before_any_read() {
        let api = FakeApi::with(vec![nad("ns1", "a")]);
        let iso = Isolation::default();
        let many = vec!["a"; MAX_ATTACHMENTS + 1].join(",");
        let e = selected(&api, &pod(&many), &iso, Path::new("/x")).unwrap_err();
        assert_eq!(e.code().0, 7);
        assert_eq!(
            e.msg(),
            "pod ns1/p: k8s.v1.cni.cncf.io/networks selects 33 networks, more than plexus's \
             limit of 32 attachments"
        );
        let big = format!("a,{}", " ".repeat(MAX_ANNOTATION_BYTES));
        let e = selected(&api, &pod(&big), &iso, Path::new("/x")).unwrap_err();
        assert_eq!(
            e.msg(),
            "pod ns1/p: k8s.v1.cni.cncf.io/networks is 65538 bytes, more than plexus's limit \
             of 65536 bytes"
        );
        assert!(api.reads.borrow().is_empty());
        // At the limit: fine, and the NAD is read once.
        let at_limit = vec!["a"; MAX_ATTACHMENTS].join(",");
        let got = selected(&api, &pod(&at_limit), &iso, Path::new("/x")).unwrap();
        assert_eq!(got.len(), MAX_ATTACHMENTS);
        assert_eq!(*api.reads.borrow(), vec!["ns1/a"]);
    }

    #[test]
    fn no_annotation_no_networks_no_reads() {
        let api = FakeApi::with(vec![]);
        let mut p = pod("");
        p.annotations.clear();
        assert!(
            selected(&api, &p, &Isolation::default(), Path::new("/x"))
                .unwrap()
                .is_empty()
        );
        assert!(api.reads.borrow().is_empty());
    }
}
