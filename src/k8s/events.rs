//! The Events plexus records on a pod, as Multus does: best-effort, bounded, never failing.
//!
//! - `AddedInterface` (Normal), one per network-status entry once an ADD committed (its
//!   status written and its journal marked added): `Add net1 [10.71.0.2] from
//!   default/macvlan-a`;
//! - `AddFailed` (Warning), one per failed ADD: the error (naming the network, the delegate
//!   and the cause) and what became of the pod's attachments.
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

/// The message of an `AddFailed` event: the error, then what became of the attachments
/// (`undone`: `None` when nothing had been attached, else the rollback's outcome).
pub fn add_failed_message(err: &Error, undone: Option<&Result<(), Error>>) -> String {
    let outcome = match undone {
        None => "nothing was attached".to_owned(),
        Some(Ok(())) => "every attachment was rolled back".to_owned(),
        Some(Err(e)) => format!(
            "the rollback left attachments for the runtime's DEL to undo: {}",
            e.msg()
        ),
    };
    let msg = err.msg();
    // The API refuses an Event whose message is over 1 KiB: the cause is cut, the outcome kept.
    let room = NOTE_LIMIT.saturating_sub(outcome.len() + 5);
    let mut cut = msg.len().min(room);
    while !msg.is_char_boundary(cut) {
        cut -= 1;
    }
    let ellipsis = if cut < msg.len() { "..." } else { "" };
    format!("{}{ellipsis}; {outcome}", &msg[..cut])
}

/// The longest Event message the API server accepts, in bytes.
const NOTE_LIMIT: usize = 1024;

/// The `AddFailed` warning of a failed ADD.
pub fn add_failed(
    api: &dyn KubeApi,
    pod: &PodMeta,
    err: &Error,
    undone: Option<&Result<(), Error>>,
) {
    api.event(
        pod,
        EventType::Warning,
        "AddFailed",
        &add_failed_message(err, undone),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failure_says_what_became_of_the_attachments() {
        let e = Error::invalid_config("network default/x: no such NAD", "");
        assert_eq!(
            add_failed_message(&e, None),
            "network default/x: no such NAD; nothing was attached"
        );
        assert_eq!(
            add_failed_message(&e, Some(&Ok(()))),
            "network default/x: no such NAD; every attachment was rolled back"
        );
        assert_eq!(
            add_failed_message(&e, Some(&Err(Error::Internal("DEL of y failed".into())))),
            "network default/x: no such NAD; the rollback left attachments for the runtime's \
             DEL to undo: DEL of y failed"
        );
        let long = Error::invalid_config(format!("network x: {}", "é".repeat(2000)), "");
        let m = add_failed_message(&long, Some(&Ok(())));
        assert!(m.len() <= NOTE_LIMIT, "{}", m.len());
        assert!(m.ends_with("...; every attachment was rolled back"), "{m}");
    }

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
