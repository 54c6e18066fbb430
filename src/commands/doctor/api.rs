//! Check 5, `API` and `permissions`: one cheap authenticated request (`GET /version`,
//! [`connect`], made before any check that needs the API), then a SelfSubjectAccessReview for
//! each permission of plexus's ClusterRole ([`NEEDED`]), a FAIL for each denied, and a warning
//! for each of a few broader ones ([`BROADER`]) that is allowed.

use super::{Api, Findings};
use crate::k8s::api::{Access, KubeApi};
use crate::k8s::client::Client;
use crate::node::NodeConfig;

/// The permissions plexus uses: exactly the rules of `examples/deploy/rbac.yaml`'s ClusterRole.
pub const NEEDED: &[Access<'static>] = &[
    access("get", "", "pods", ""),
    access("get", "", "pods", "status"),
    access("update", "", "pods", "status"),
    access("patch", "", "pods", "status"),
    access(
        "get",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "",
    ),
    access(
        "list",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "",
    ),
    access(
        "watch",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "",
    ),
    access("create", "", "events", ""),
];

/// Broader permissions plexus never needs; each one granted is flagged.
pub const BROADER: &[Access<'static>] = &[
    access("delete", "", "pods", ""),
    access("create", "", "pods", ""),
    access("get", "", "secrets", ""),
    access("patch", "", "nodes", ""),
    access("*", "*", "*", ""),
];

const fn access<'a>(verb: &'a str, group: &'a str, resource: &'a str, sub: &'a str) -> Access<'a> {
    Access {
        verb,
        group,
        resource,
        subresource: sub,
    }
}

/// Builds the client (without changing a file's mode) and asks `GET /version`.
pub(super) fn connect(node: &NodeConfig) -> Api {
    match Client::new_read_only(&node.client_options()) {
        Ok(Some(client)) => match client.server_version() {
            Ok(version) => Api::Reachable {
                client: Box::new(client),
                version,
            },
            Err(e) => Api::Unreachable(e),
        },
        Ok(None) => Api::None,
        Err(e) => Api::Unusable(e),
    }
}

/// Check 5: the API and plexus's permissions.
pub(super) fn api_checks(f: &mut Findings, node: &NodeConfig, api: &Api) {
    let client = match api {
        Api::Reachable { client, version } => {
            f.ok(
                "API",
                format!("the API server answers (Kubernetes {version})"),
            );
            client
        }
        Api::Unreachable(e) => {
            f.fail(
                "API",
                if e.details().is_empty() {
                    e.msg()
                } else {
                    format!("{} ({})", e.msg(), e.details())
                },
                format!(
                    "check the server in {} and that this node reaches it (routes, firewall, \
                     proxy); a 401 means the token is wrong or expired",
                    node.kubeconfig
                        .as_ref()
                        .map_or_else(|| "the kubeconfig".into(), |k| k.display().to_string())
                ),
            );
            f.skipped("permissions", api.why_not());
            return;
        }
        Api::Unusable(e) => {
            f.fail(
                "API",
                format!("plexus cannot use its API credentials: {}", e.msg()),
                if e.details().is_empty() {
                    "see the kubeconfig and token checks".to_owned()
                } else {
                    e.details().to_owned()
                },
            );
            f.skipped("permissions", api.why_not());
            return;
        }
        Api::None => {
            f.warn("API", "no client: see kubeconfig", None);
            f.skipped("permissions", api.why_not());
            return;
        }
    };
    const CHECK: &str = "permissions";
    let mut denied = 0;
    for a in NEEDED {
        match client.access_review(a) {
            Ok(d) if d.allowed => {}
            Ok(_) => {
                denied += 1;
                f.fail(
                    CHECK,
                    format!("plexus may not {} (SelfSubjectAccessReview)", a.describe()),
                    "grant it to plexus's service account: apply examples/deploy/rbac.yaml's \
                     ClusterRole and ClusterRoleBinding",
                );
            }
            Err(e) => {
                f.warn(
                    CHECK,
                    format!("cannot ask the API server: {}", e.msg()),
                    None,
                );
                return;
            }
        }
    }
    if denied == 0 {
        f.ok(CHECK, format!("plexus may {}", describe_all(NEEDED)));
    }
    let mut broader = 0;
    for a in BROADER {
        match client.access_review(a) {
            Ok(d) if d.allowed => {
                broader += 1;
                f.warn(
                    CHECK,
                    format!(
                        "plexus may also {}, which it never needs{}",
                        a.describe(),
                        if d.reason.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", d.reason)
                        }
                    ),
                    Some("remove the grant from the role bound to plexus's service account".into()),
                );
            }
            Ok(_) => {}
            Err(e) => {
                f.warn(
                    CHECK,
                    format!("cannot ask the API server: {}", e.msg()),
                    None,
                );
                return;
            }
        }
    }
    if broader == 0 {
        f.ok(
            CHECK,
            format!(
                "nothing broader than needed: plexus may not {}",
                describe_all(BROADER)
            ),
        );
    }
}

/// `get pods, patch pods/status, ...`.
fn describe_all(accesses: &[Access<'_>]) -> String {
    accesses
        .iter()
        .map(Access::describe)
        .collect::<Vec<_>>()
        .join(", ")
}
