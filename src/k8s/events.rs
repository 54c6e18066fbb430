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
//!
//! # Sent after plexus has answered
//!
//! An Event is a write, and a write to a real API server waits for etcd's fsync (15 to 60 ms).
//! The runtime waits for the plugin process to exit, so `AddedInterface` Events sent by ADD
//! itself would add one write's round trip to every pod's start, for a message nobody waits
//! for. ADD therefore hands them, once it has committed, to a **detached sender**: the same
//! binary started as `plexus __send-events`, in a process group of its own, stdin a pipe
//! carrying the Events and how to reach the API (`kubeconfig`, timeouts, the node's log
//! settings), stdout and stderr on `/dev/null`. ADD writes them, closes the pipe and exits
//! without waiting; the sender builds its own client, records the Events with a longer budget
//! ([`DETACHED_EVENT_BUDGET`]: nothing waits for it) and exits within that budget. They are
//! still only sent after the commit, so they never tell of an interface the pod did not keep.
//! If the sender cannot be started, ADD sends them itself as before. Decision: `AddFailed`
//! warnings stay in the failing process (a failed ADD is not the path to make fast, and its
//! warning then lands before the runtime's DEL).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{EventType, KubeApi, PodMeta};
use super::client::{Client, ClientOptions};
use crate::cni::Error;

/// The hidden first argument that makes the binary the detached Event sender.
pub const SEND_EVENTS_ARG: &str = "__send-events";
/// The budget of each Event in the detached sender.
pub const DETACHED_EVENT_BUDGET: Duration = Duration::from_secs(5);
/// The largest document the sender reads from its stdin.
const MAX_DOCUMENT: u64 = 1 << 20;

/// What ADD hands the detached sender.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detached {
    kubeconfig: Option<PathBuf>,
    connect_timeout_ms: u64,
    log_level: Option<String>,
    log_file: Option<PathBuf>,
    namespace: String,
    name: String,
    uid: String,
    /// (type, reason, message).
    events: Vec<(String, String, String)>,
}

/// A detached sender started ahead ([`Pending::start`]), waiting on its stdin: ADD starts it
/// before its status write, so that starting a process is not on its path once committed.
/// Dropped unused, its stdin closes and it exits without connecting anywhere.
#[derive(Debug)]
pub struct Pending(std::process::Child);

impl Pending {
    /// Starts the sender (see the module docs).
    pub fn start() -> std::io::Result<Pending> {
        Command::new("/proc/self/exe")
            .arg(SEND_EVENTS_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map(Pending)
    }

    /// Hands `events` of `pod`, and how to reach the API, to the sender and returns without
    /// waiting for it: it ends within its budget, and init (or the runtime's subreaper) reaps
    /// it once this process has exited.
    pub fn send(
        mut self,
        opts: &ClientOptions,
        pod: &PodMeta,
        events: &[(EventType, String, String)],
    ) -> std::io::Result<()> {
        let (log_level, log_file) = crate::log::settings();
        let doc = Detached {
            kubeconfig: opts.kubeconfig.clone(),
            connect_timeout_ms: opts.connect_timeout.as_millis() as u64,
            log_level,
            log_file,
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            events: events
                .iter()
                .map(|(k, r, m)| (k.as_str().to_owned(), r.clone(), m.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
        let written = self
            .0
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin pipe"))
            .and_then(|mut stdin| stdin.write_all(&bytes));
        if let Err(e) = written {
            let _ = self.0.kill();
            let _ = self.0.wait();
            return Err(e);
        }
        tracing::debug!(
            pid = self.0.id(),
            events = events.len(),
            "Events handed to the detached sender"
        );
        Ok(())
    }
}

/// `plexus __send-events`: reads the document [`send_detached`] wrote and records its Events.
/// Exit status 0 when they were queued and the client's end waited for them (their own
/// failures are logged), 1 when the document or the client was unusable.
pub fn sender_main() -> u8 {
    let mut bytes = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_DOCUMENT)
        .read_to_end(&mut bytes);
    let doc: Detached = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("plexus {SEND_EVENTS_ARG}: unusable input: {e}");
            return 1;
        }
    };
    crate::log::init(doc.log_level.as_deref(), doc.log_file.as_deref(), false);
    let opts = ClientOptions {
        kubeconfig: doc.kubeconfig.clone(),
        connect_timeout: Duration::from_millis(doc.connect_timeout_ms),
        event_budget: DETACHED_EVENT_BUDGET,
        ..ClientOptions::default()
    };
    let client = match Client::new(&opts) {
        Ok(Some(c)) => c,
        Ok(None) => return 1,
        Err(e) => {
            tracing::warn!(error = %e, "Events not recorded: no Kubernetes client");
            return 1;
        }
    };
    let pod = PodMeta {
        namespace: doc.namespace,
        name: doc.name,
        uid: doc.uid,
        annotations: Default::default(),
    };
    for (kind, reason, message) in &doc.events {
        let kind = if kind == EventType::Warning.as_str() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        client.event(&pod, kind, reason, message);
    }
    // Dropping the client waits for the queued Events, within their budget.
    drop(client);
    0
}

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

/// One `AddedInterface` event per entry, sent after this process has answered (see "Sent
/// after plexus has answered").
pub fn added_interfaces(api: &dyn KubeApi, pod: &PodMeta, entries: &[Value]) {
    let events: Vec<(EventType, String, String)> = entries
        .iter()
        .map(|e| {
            (
                EventType::Normal,
                "AddedInterface".to_owned(),
                added_interface_message(e),
            )
        })
        .collect();
    api.events_after_exit(pod, &events);
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
