//! `plexus ls`: the attachments this node's journal holds.
//!
//! One row per delegate attachment of every journal in `cniDir`: the pod, the container ID,
//! the runtime's interface (`CNI_IFNAME`, the journal's key), the network and the interface
//! it gave the pod, its IPs (from the delegate's result), the journal's age and its state:
//!
//! | state | meaning |
//! |---|---|
//! | `added` | ADD completed; DEL will undo it |
//! | `adding (pid N)` | an ADD is at work on it now (pid N holds the container's lock) |
//! | `interrupted` | an ADD that did not finish (plexus was killed, or the node lost power): the runtime's DEL or GC undoes it; listed as a problem |
//! | `rolled back` | an ADD failed and was undone; the runtime's DEL removes the marker |
//! | `unreadable` | the journal cannot be read (the error says why); listed as a problem |
//!
//! Within a journal, each attachment's own progress is shown as well (`planned`, `started`,
//! `added`, `deleted`). Nothing is written or locked (see [`super::journals`]).

use std::time::SystemTime;

use serde_json::{Value, json};

use super::journals::{self, Found};
use super::{Common, Report, Usage};
use crate::state::{AttachmentState, Phase};

/// Runs `plexus ls`.
pub fn run(common: &Common) -> Result<Report, Usage> {
    if let Some(extra) = common.rest.first() {
        return Err(Usage(format!("unexpected argument {extra:?}")));
    }
    let (conf, node) = match common.node_config() {
        Ok(found) => found,
        Err(e) => {
            return Ok(Report {
                doc: json!({"attachments": []}),
                text: String::new(),
                problems: vec![e],
            });
        }
    };
    let listing = match journals::read(&node.cni_dir) {
        Ok(l) => l,
        Err(e) => {
            return Ok(Report {
                doc: json!({"attachments": []}),
                text: String::new(),
                problems: vec![e],
            });
        }
    };
    let now = SystemTime::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut problems = Vec::new();
    for found in &listing.journals {
        rows.extend(rows_of(found, now, &mut problems));
    }
    for m in &listing.rolled_back {
        rows.push(Row {
            pod: String::new(),
            container_id: m.container_id.clone(),
            runtime_ifname: m.ifname.clone(),
            network: String::new(),
            interface: String::new(),
            ips: vec![],
            age: age(m.modified, now),
            state: "rolled back".into(),
            progress: String::new(),
        });
    }
    let mut text = format!(
        "{} attachment(s) in {} (node config {})\n",
        rows.len(),
        node.cni_dir.display(),
        conf.display()
    );
    if !rows.is_empty() {
        text.push_str(&table(&rows));
    }
    let doc = json!({
        "cniDir": node.cni_dir,
        "attachments": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    Ok(Report {
        doc,
        text,
        problems,
    })
}

/// One line of the listing.
struct Row {
    pod: String,
    container_id: String,
    runtime_ifname: String,
    network: String,
    interface: String,
    ips: Vec<String>,
    age: Option<u64>,
    state: String,
    /// The attachment's own state within the journal.
    progress: String,
}

impl Row {
    fn json(&self) -> Value {
        json!({
            "pod": self.pod,
            "containerID": self.container_id,
            "runtimeIfname": self.runtime_ifname,
            "network": self.network,
            "interface": self.interface,
            "ips": self.ips,
            "ageSeconds": self.age,
            "state": self.state,
            "attachmentState": self.progress,
        })
    }
}

fn rows_of(found: &Found, now: SystemTime, problems: &mut Vec<String>) -> Vec<Row> {
    let key = format!("{}:{}", found.container_id, found.ifname);
    let age = age(found.modified, now);
    let j = match &found.journal {
        Ok(j) => j,
        Err(e) => {
            problems.push(format!("journal {key}: {e}"));
            return vec![Row {
                pod: String::new(),
                container_id: found.container_id.clone(),
                runtime_ifname: found.ifname.clone(),
                network: String::new(),
                interface: String::new(),
                ips: vec![],
                age,
                state: "unreadable".into(),
                progress: String::new(),
            }];
        }
    };
    let state = match (j.phase, found.lock_holder) {
        (Phase::Added, _) => "added".to_owned(),
        (Phase::Adding, Some(pid)) => format!("adding (pid {pid})"),
        (Phase::Adding, None) => {
            problems.push(format!(
                "journal {key}: an ADD that did not finish (plexus was killed or the node lost \
                 power); the runtime's DEL or GC undoes it"
            ));
            "interrupted".to_owned()
        }
    };
    let pod = j
        .pod
        .as_ref()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .unwrap_or_default();
    j.attachments
        .iter()
        .map(|a| Row {
            pod: pod.clone(),
            container_id: found.container_id.clone(),
            runtime_ifname: found.ifname.clone(),
            network: a.network.clone(),
            interface: a.ifname.clone(),
            ips: a.result.as_ref().map(result_ips).unwrap_or_default(),
            age,
            state: state.clone(),
            progress: progress(a.state).into(),
        })
        .collect()
}

fn progress(s: AttachmentState) -> &'static str {
    match s {
        AttachmentState::Planned => "planned",
        AttachmentState::Started => "started",
        AttachmentState::Added => "added",
        AttachmentState::Deleted => "deleted",
    }
}

/// The addresses of a result of any version (with their prefix).
fn result_ips(result: &Value) -> Vec<String> {
    match crate::cni::result::CniResult::from_value(result) {
        Ok((_, r)) => r.ips.iter().map(|ip| ip.address.clone()).collect(),
        Err(_) => vec![],
    }
}

fn age(modified: Option<SystemTime>, now: SystemTime) -> Option<u64> {
    modified
        .and_then(|m| now.duration_since(m).ok())
        .map(|d| d.as_secs())
}

/// `90` → `1m30s`, `7300` → `2h1m`, `200000` → `2d7h`.
fn human_age(secs: Option<u64>) -> String {
    let Some(s) = secs else {
        return "?".into();
    };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// Aligned columns; the container ID shortened to 13 characters, as `crictl` does.
fn table(rows: &[Row]) -> String {
    let header = [
        "POD",
        "CONTAINER",
        "IFNAME",
        "NETWORK",
        "INTERFACE",
        "IPS",
        "AGE",
        "STATE",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let state = if r.progress.is_empty() || r.progress == "added" {
                r.state.clone()
            } else {
                format!("{} ({})", r.state, r.progress)
            };
            [
                or_dash(&r.pod),
                r.container_id.chars().take(13).collect(),
                r.runtime_ifname.clone(),
                or_dash(&r.network),
                or_dash(&r.interface),
                if r.ips.is_empty() {
                    "-".into()
                } else {
                    r.ips.join(",")
                },
                human_age(r.age),
                state,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&header.map(str::to_owned));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_age(Some(5)), "5s");
        assert_eq!(human_age(Some(90)), "1m30s");
        assert_eq!(human_age(Some(7300)), "2h1m");
        assert_eq!(human_age(Some(200_000)), "2d7h");
        assert_eq!(human_age(None), "?");
    }

    #[test]
    fn ips_come_from_results_of_any_version() {
        assert_eq!(
            result_ips(&json!({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]})),
            ["10.1.0.2/24"]
        );
        assert_eq!(
            result_ips(&json!({"cniVersion":"0.2.0","ip4":{"ip":"10.2.0.2/24"}})),
            ["10.2.0.2/24"]
        );
        assert!(result_ips(&json!({"cniVersion":"9"})).is_empty());
    }
}
