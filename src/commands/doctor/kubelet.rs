//! Check 8, `PodResources`: when a NAD or a node network names a
//! `k8s.v1.cni.cncf.io/resourceName`, the kubelet's PodResources socket answers `List` within
//! `podResourcesTimeoutSeconds` (a build without feature `sriov` cannot ask it).

use std::path::Path;
use std::time::Duration;

use super::{Api, Findings};
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
