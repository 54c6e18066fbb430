//! Check 8, `PodResources`: when a NAD or a node network names a
//! `k8s.v1.cni.cncf.io/resourceName`, the kubelet's PodResources socket answers `List` within
//! `podResourcesTimeoutSeconds` (a build without feature `sriov` cannot ask it); and then,
//! with the API reachable, whether plexus may read what DRA needs ([`DRA_NEEDED`],
//! `examples/deploy/rbac-dra.yaml`): a warning when not, since only clusters that allocate
//! network devices through ResourceClaims need it (docs/dra.md).

use std::path::Path;
use std::time::Duration;

use super::{Api, Findings};
use crate::k8s::api::{Access, KubeApi};
use crate::k8s::nad::RESOURCE_NAME_ANNOTATION;
use crate::node::NodeConfig;

/// Check 8.
pub(super) fn pod_resources(
    f: &mut Findings,
    node: &NodeConfig,
    api: &Api,
    resources: &[(String, String)],
) {
    const CHECK: &str = "PodResources";
    if resources.is_empty() {
        if api.client().is_some() {
            f.ok(
                CHECK,
                format!(
                    "no network names a {RESOURCE_NAME_ANNOTATION}: the kubelet is never asked"
                ),
            );
        } else {
            f.skipped(CHECK, api.why_not());
        }
        return;
    }
    let mut names: Vec<&str> = resources.iter().map(|(r, _)| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let who = resources
        .iter()
        .map(|(r, n)| format!("{n}: {r}"))
        .collect::<Vec<_>>()
        .join("; ");
    let socket = &node.pod_resources_socket;
    let fix = "start the kubelet's PodResources API (it serves it by default), or set \
               podResourcesSocket in the node config to its socket";
    match list(socket, node.pod_resources_timeout) {
        Ok(n) => f.ok(
            CHECK,
            format!(
                "{} answers List ({n} pod(s)) for {}",
                socket.display(),
                names.join(", ")
            ),
        ),
        Err(cause) => f.fail(
            CHECK,
            format!(
                "networks name a device resource ({who}), but the kubelet's PodResources \
                 socket {} {cause}",
                socket.display()
            ),
            fix,
        ),
    }
    dra_permissions(f, api, &who);
}

/// The permissions of `examples/deploy/rbac-dra.yaml`'s ClusterRole: what a pod whose devices
/// come from ResourceClaims needs (docs/dra.md).
pub const DRA_NEEDED: &[Access<'static>] = &[
    Access {
        verb: "get",
        group: "resource.k8s.io",
        resource: "resourceclaims",
        subresource: "",
    },
    Access {
        verb: "list",
        group: "resource.k8s.io",
        resource: "resourceslices",
        subresource: "",
    },
];

/// Part of check 8 when networks name a resource: may plexus read DRA's objects?
fn dra_permissions(f: &mut Findings, api: &Api, who: &str) {
    const CHECK: &str = "PodResources";
    let Some(client) = api.client() else {
        return;
    };
    let mut denied = Vec::new();
    for a in DRA_NEEDED {
        match client.access_review(a) {
            Ok(d) if d.allowed => {}
            Ok(_) => denied.push(a.describe()),
            Err(_) => return, // the permissions check already says why the API cannot tell
        }
    }
    let all = DRA_NEEDED
        .iter()
        .map(Access::describe)
        .collect::<Vec<_>>()
        .join(", ");
    if denied.is_empty() {
        f.ok(
            CHECK,
            format!("plexus may {all}: devices from DRA ResourceClaims can be served too"),
        );
    } else {
        f.warn(
            CHECK,
            format!(
                "networks name a device resource ({who}), but plexus may not {}: a pod whose \
                 devices of it come from DRA ResourceClaims fails ADD",
                denied.join(", ")
            ),
            Some(
                "if the cluster allocates these devices through Dynamic Resource Allocation, \
                 apply examples/deploy/rbac-dra.yaml (docs/dra.md); otherwise nothing to do"
                    .into(),
            ),
        );
    }
}

#[cfg(feature = "sriov")]
fn list(socket: &Path, timeout: Duration) -> Result<usize, String> {
    use crate::devices::LookupFailure;
    crate::devices::podresources::list_pods(socket, timeout).map_err(|e| match e {
        LookupFailure::Unreachable { cause, .. } => format!("cannot be reached: {cause}"),
        LookupFailure::Timeout { after, .. } => {
            format!("did not answer List within {:.1}s", after.as_secs_f64())
        }
        LookupFailure::Failed { cause, .. } => format!("answered, but not List: {cause}"),
        LookupFailure::Unsupported => "is not supported by this build".into(),
    })
}

#[cfg(not(feature = "sriov"))]
fn list(_socket: &Path, _timeout: Duration) -> Result<usize, String> {
    Err("is not asked: this plexus is built without the PodResources client (feature sriov)".into())
}
