//! The Events plexus records on a pod, as Multus does: best-effort, bounded, never failing.
//!
//! - `AddedInterface` (Normal), one per network-status entry after a successful ADD:
//!   `Add net1 [10.71.0.2] from default/macvlan-a`;
//! - `NoNetworkFound` (Warning) when a selected network cannot be resolved, with the error.
//!
//! Whether Events are sent at all is the caller's choice; [`super::api::KubeApi::event`] bounds
//! each one in time and logs, never returns, its failures.

use serde_json::Value;

use super::api::{EventType, KubeApi, PodMeta};
use crate::cni::Error;

/// The message of an `AddedInterface` event for one network-status entry.
pub fn added_interface_message(entry: &Value) -> String {
    let ips: Vec<&str> = entry["ips"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!(
        "Add {} [{}] from {}",
        entry["interface"].as_str().unwrap_or(""),
        ips.join(","),
        entry["name"].as_str().unwrap_or("")
    )
}

/// One `AddedInterface` event per entry.
pub fn added_interfaces(api: &dyn KubeApi, pod: &PodMeta, entries: &[Value]) {
    for e in entries {
        api.event(
            pod,
            EventType::Normal,
            "AddedInterface",
            &added_interface_message(e),
        );
    }
}

/// A `NoNetworkFound` warning carrying the resolution error.
pub fn no_network_found(api: &dyn KubeApi, pod: &PodMeta, err: &Error) {
    api.event(pod, EventType::Warning, "NoNetworkFound", &err.msg());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_like_multus() {
        let e =
            json!({"name":"default/macvlan-a","interface":"net1","ips":["10.71.0.2","fd00::2"]});
        assert_eq!(
            added_interface_message(&e),
            "Add net1 [10.71.0.2,fd00::2] from default/macvlan-a"
        );
        assert_eq!(
            added_interface_message(&json!({"name":"x"})),
            "Add  [] from x"
        );
    }
}
