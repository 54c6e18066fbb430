//! Check 7, `journal directory`, `journal space` and `journals`: `cniDir` is a directory of
//! mode 0700 owned by plexus's user (or does not exist yet) and holds no journal file of
//! another owner; its file system has [`MIN_FREE`] free; no journal is left for a pod that no
//! longer exists or was recreated (a FAIL with the runtime-style DEL that cleans it up,
//! [`del_command`]); no ADD was left unfinished with nobody holding its lock (a warning).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Api, Findings, join_dirs};
use crate::cni::Error;
use crate::commands::Common;
use crate::commands::journals::{self, Found};
use crate::k8s::api::KubeApi;
use crate::k8s::client::Client;
use crate::k8s::pod;
use crate::node::NodeConfig;
use crate::perms;
use crate::state::{Journal, Phase};

/// Free space under which the journal directory's file system is flagged.
pub const MIN_FREE: u64 = 64 * 1024 * 1024;

/// Check 7, the directory and its space.
pub(super) fn journal_dir(f: &mut Findings, node: &NodeConfig) {
    const CHECK: &str = "journal directory";
    let dir = &node.cni_dir;
    let euid = perms::euid();
    let fix_owner = format!(
        "chown {euid} {p} && chmod 0700 {p}, or set cniDir to a directory of uid {euid}",
        p = dir.display()
    );
    let mut exists = false;
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => f.ok(
            CHECK,
            format!(
                "{} does not exist yet: the first ADD creates it (mode 0700)",
                dir.display()
            ),
        ),
        Err(e) => f.fail(
            CHECK,
            format!("{} cannot be read: {e}", dir.display()),
            fix_owner.clone(),
        ),
        Ok(m) if m.file_type().is_symlink() => f.fail(
            CHECK,
            format!(
                "{} is a symlink, which plexus does not follow for its journals",
                dir.display()
            ),
            format!(
                "replace it with a directory (mode 0700, owned by uid {euid}) or set cniDir to \
                 the real path"
            ),
        ),
        Ok(m) if !m.is_dir() => f.fail(
            CHECK,
            format!("{} is not a directory", dir.display()),
            "remove it or set cniDir to another path",
        ),
        Ok(m) if m.uid() != euid => f.fail(
            CHECK,
            format!(
                "{} is owned by uid {}, not by uid {euid} that plexus runs as: others could \
                 change what DEL undoes",
                dir.display(),
                m.uid()
            ),
            fix_owner.clone(),
        ),
        Ok(m) if m.mode() & 0o7777 != 0o700 => f.fail(
            CHECK,
            format!(
                "{} has mode {:04o}, not 0700: journals hold delegate configs and CNI_ARGS",
                dir.display(),
                m.mode() & 0o7777
            ),
            format!("chmod 0700 {}", dir.display()),
        ),
        Ok(_) => {
            exists = true;
            f.ok(
                CHECK,
                format!("{}: mode 0700, owner uid {euid}", dir.display()),
            );
        }
    }
    if exists {
        // What DEL refuses to read: a journal file of another owner.
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_file()
                && let perms::Verdict::Refuse(why) =
                    perms::file_verdict(&meta, &path, perms::Writable::Fix)
            {
                let (detail, fix) = why
                    .split_once(" Fix: ")
                    .map_or((why.clone(), fix_owner.clone()), |(d, x)| {
                        (d.to_owned(), x.replace('`', ""))
                    });
                f.fail(CHECK, format!("{}: {detail}", path.display()), fix);
            }
        }
    }
    // The nearest existing directory: where the journals would go.
    let mut at = dir.as_path();
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    match nix::sys::statvfs::statvfs(at) {
        Ok(s) => {
            // `fsblkcnt_t` and `c_ulong` are u64 here, not on every target.
            #[allow(clippy::useless_conversion)]
            let free = u64::from(s.blocks_available()) * u64::from(s.fragment_size());
            let text = format!("{} free on the file system of {}", mib(free), dir.display());
            if free < MIN_FREE {
                f.warn(
                    "journal space",
                    format!("only {text}: an ADD that cannot write its journal fails"),
                    Some("free some space on it".into()),
                );
            } else {
                f.ok("journal space", text);
            }
        }
        Err(e) => f.warn(
            "journal space",
            format!("cannot read the free space of {}: {e}", at.display()),
            None,
        ),
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 10 * 1024 * 1024 * 1024 {
        format!("{} GiB", bytes / (1024 * 1024 * 1024))
    } else {
        format!("{} MiB", bytes / (1024 * 1024))
    }
}

/// Quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+-,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command that runs the runtime's DEL for a journal, as the runtime would: the node config
/// on stdin (a conflist's first plugin with the list's `name` and `cniVersion`, as libcni
/// gives it), the journal's container ID, interface, network namespace (when it still
/// exists) and CNI_ARGS, the runtime's CNI_PATH.
fn del_command(conf: &Path, plexus: &Path, cni_path: &str, j: &Journal) -> String {
    let conflist = fs::read(conf)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|d| d.get("plugins").is_some());
    let sudo = if perms::euid() == 0 { "" } else { "sudo " };
    let mut env = format!(
        "{sudo}env CNI_COMMAND=DEL CNI_CONTAINERID={} CNI_IFNAME={}",
        sh_quote(&j.container_id),
        sh_quote(&j.ifname)
    );
    // The runtime gives the sandbox's namespace while it exists (the delegates then remove
    // what they put in it); once it is gone, none.
    if let Some(netns) = j.netns.as_deref().filter(|n| Path::new(n).exists()) {
        env.push_str(&format!(" CNI_NETNS={}", sh_quote(netns)));
    }
    if !j.cni_args.is_empty() {
        env.push_str(&format!(" CNI_ARGS={}", sh_quote(&j.cni_args)));
    }
    env.push_str(&format!(
        " CNI_PATH={} {}",
        sh_quote(cni_path),
        sh_quote(&plexus.display().to_string())
    ));
    let file = sh_quote(&conf.display().to_string());
    if conflist {
        format!("jq '.plugins[0] + {{name: .name, cniVersion: .cniVersion}}' {file} | {env}")
    } else {
        format!("{env} < {file}")
    }
}

/// What the API says about a journal's pod.
enum PodState {
    /// The pod exists (with the journal's UID, or the journal has none, or it is static).
    Here,
    /// Gone, or recreated: why.
    Gone(String),
    /// The journal names no pod.
    Unknown,
}

fn pod_state(client: &Client, j: &Journal) -> Result<PodState, Error> {
    let Some(key) = &j.pod else {
        return Ok(PodState::Unknown);
    };
    let who = format!("{}/{}", key.namespace, key.name);
    Ok(match client.find_pod(&key.namespace, &key.name)? {
        None => PodState::Gone(format!("pod {who} no longer exists")),
        Some(p) => match &key.uid {
            Some(uid) if *uid != p.uid && !pod::is_static(&p) => PodState::Gone(format!(
                "pod {who} was recreated: its UID is {}, the journal's {uid}",
                p.uid
            )),
            _ => PodState::Here,
        },
    })
}

/// Check 7, the journals.
pub(super) fn journal_entries(
    f: &mut Findings,
    common: &Common,
    node: &NodeConfig,
    conf: &Path,
    plexus: Option<&Path>,
    api: &Api,
) {
    const CHECK: &str = "journals";
    let listing = match journals::read(&node.cni_dir) {
        Ok(l) => l,
        Err(e) => {
            f.fail(
                CHECK,
                e,
                format!("make {} readable by plexus's user", node.cni_dir.display()),
            );
            return;
        }
    };
    let plexus = plexus.map_or_else(
        || std::env::current_exe().unwrap_or_else(|_| PathBuf::from("plexus")),
        Path::to_path_buf,
    );
    let cni_path = join_dirs(&common.cni_path);
    let mut fine = 0;
    let mut in_progress = 0;
    let mut no_pod = 0;
    let mut unchecked = 0;
    let mut bad = 0;
    let mut api_error = None;
    for found in &listing.journals {
        let Found {
            container_id,
            ifname,
            journal,
            lock_holder,
            ..
        } = found;
        let key = format!("{container_id}:{ifname}");
        let j = match journal {
            Ok(j) => j,
            Err(e) => {
                bad += 1;
                f.fail(
                    CHECK,
                    format!(
                        "{key}: {e}: the runtime's DEL of this container fails until it is fixed"
                    ),
                    format!(
                        "look at {p}.json; once what it lists is gone (interfaces, IP \
                         leases), remove {p}.json and {p}.progress",
                        p = node.cni_dir.join(&key).display()
                    ),
                );
                continue;
            }
        };
        if let Some(pid) = lock_holder {
            in_progress += 1;
            f.ok(
                CHECK,
                format!("{key}: a plexus (pid {pid}) is working on it now"),
            );
            continue;
        }
        let pod_name = j.pod.as_ref().map_or_else(
            || "pod unknown".into(),
            |p| format!("pod {}/{}", p.namespace, p.name),
        );
        let state = match api.client() {
            Some(c) if api_error.is_none() => match pod_state(c, j) {
                Ok(s) => Some(s),
                Err(e) => {
                    api_error = Some(e.msg());
                    None
                }
            },
            _ => None,
        };
        let command = del_command(conf, &plexus, &cni_path, j);
        match state {
            Some(PodState::Gone(why)) => {
                bad += 1;
                f.fail(
                    CHECK,
                    format!(
                        "{key} is left over: {why}, but the journal still holds what it \
                         attached ({} attachment(s){})",
                        j.attachments.len(),
                        if j.phase == Phase::Adding {
                            ", ADD unfinished"
                        } else {
                            ""
                        }
                    ),
                    command,
                );
            }
            _ if j.phase == Phase::Adding => {
                bad += 1;
                f.warn(
                    CHECK,
                    format!(
                        "{key} ({pod_name}): an ADD that did not finish, and nobody holds its \
                         lock: the runtime's DEL or GC will undo it"
                    ),
                    Some(command),
                );
            }
            Some(PodState::Unknown) => no_pod += 1,
            Some(PodState::Here) => fine += 1,
            None => unchecked += 1,
        }
    }
    match (api.client(), api_error) {
        (_, Some(e)) => f.warn(
            CHECK,
            format!("cannot tell which pods still exist: {e}"),
            None,
        ),
        (None, _) if !listing.journals.is_empty() => f.skipped(
            CHECK,
            &format!("{}: whether the journals' pods still exist", api.why_not()),
        ),
        _ => {}
    }
    if bad == 0 {
        f.ok(
            CHECK,
            format!(
                "{} journal(s) in {}: {fine} of existing pods{}{}{}, {} rolled-back ADD \
                 marker(s)",
                listing.journals.len(),
                node.cni_dir.display(),
                if in_progress > 0 {
                    format!(", {in_progress} in progress")
                } else {
                    String::new()
                },
                if no_pod > 0 {
                    format!(", {no_pod} naming no pod")
                } else {
                    String::new()
                },
                if unchecked > 0 {
                    format!(", {unchecked} not checked")
                } else {
                    String::new()
                },
                listing.rolled_back.len()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::state::{Attachment, PodKey};

    #[test]
    fn the_del_command_quotes_what_needs_it() {
        let d = tempfile::tempdir().unwrap();
        let list = d.path().join("00-plexus.conflist");
        fs::write(&list, r#"{"name":"n","plugins":[{"type":"plexus"}]}"#).unwrap();
        let conf = d.path().join("00 plexus.conf");
        fs::write(&conf, r#"{"name":"n","type":"plexus"}"#).unwrap();
        let mut j = Journal::new(
            "c1",
            "eth0",
            None,
            "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
            Some(PodKey {
                namespace: "ns".into(),
                name: "p".into(),
                uid: None,
            }),
            vec![Attachment::new("n", "eth0", "{}", Map::new(), "", true)],
        );
        let sudo = if perms::euid() == 0 { "" } else { "sudo " };
        assert_eq!(
            del_command(&list, Path::new("/opt/cni/bin/plexus"), "/opt/cni/bin", &j),
            format!(
                "jq '.plugins[0] + {{name: .name, cniVersion: .cniVersion}}' {} | {sudo}env \
                 CNI_COMMAND=DEL CNI_CONTAINERID=c1 CNI_IFNAME=eth0 \
                 CNI_ARGS='K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p' CNI_PATH=/opt/cni/bin \
                 /opt/cni/bin/plexus",
                list.display()
            )
        );
        j.cni_args.clear();
        assert_eq!(
            del_command(&conf, Path::new("/x/plexus"), "/a:/b", &j),
            format!(
                "{sudo}env CNI_COMMAND=DEL CNI_CONTAINERID=c1 CNI_IFNAME=eth0 CNI_PATH=/a:/b \
                 /x/plexus < '{}'",
                conf.display()
            )
        );
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
