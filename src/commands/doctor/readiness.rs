//! Check 6, `readiness indicator`: the node config's `readinessindicatorfile`, when set,
//! exists (ADD waits for it, then fails).

use super::Findings;
use crate::node::NodeConfig;

/// Check 6.
pub(super) fn readiness(f: &mut Findings, node: &NodeConfig) {
    const CHECK: &str = "readiness indicator";
    match &node.readiness_file {
        None => f.ok(CHECK, "readinessindicatorfile is not set"),
        Some(p) if p.exists() => f.ok(CHECK, format!("{} exists", p.display())),
        Some(p) => f.warn(
            CHECK,
            format!(
                "{} does not exist: ADD waits for it (up to {}s), then fails",
                p.display(),
                node.readiness_timeout.as_secs()
            ),
            Some(
                "the cluster network writes it when it is ready: check its pod on this node \
                 (or unset readinessindicatorfile)"
                    .into(),
            ),
        ),
    }
}
