//! The journal directory as the read-only commands see it: every journal with its progress,
//! every rollback marker, and whether a plexus holds each container's lock, read without
//! writing, locking or changing a mode (unlike [`crate::state::StateDir`], which tightens
//! modes and cleans up as it opens).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::state::{self, Journal};

/// One attachment of the runtime (container ID, `CNI_IFNAME`) found in the directory.
#[derive(Debug, Clone)]
pub struct Found {
    pub container_id: String,
    pub ifname: String,
    /// The journal read with its progress; `Err` says why it cannot be read.
    pub journal: Result<Journal, String>,
    /// When the journal (or its progress, if later) was last written.
    pub modified: Option<SystemTime>,
    /// The pid of a process holding the container's lock (a plexus at work on it), from
    /// `/proc/locks`.
    pub lock_holder: Option<u32>,
}

/// A rollback marker: an ADD of (container ID, `CNI_IFNAME`) failed and was undone; the
/// runtime's DEL removes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolledBack {
    pub container_id: String,
    pub ifname: String,
    pub modified: Option<SystemTime>,
}

/// What the directory holds, sorted by key.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub journals: Vec<Found>,
    pub rolled_back: Vec<RolledBack>,
}

/// Reads the journal directory `dir` (see the module docs). A missing directory is an empty
/// listing: no ADD has run on this node.
pub fn read(dir: &Path) -> Result<Listing, String> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let locks = held_locks();
    let mut listing = Listing::default();
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for name in &names {
        if let Some((cid, ifname)) = key_of(name, ".json") {
            let path = dir.join(name);
            let progress_path = dir.join(format!("{cid}:{ifname}.progress"));
            let journal = fs::read(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))
                .and_then(|bytes| {
                    let progress = fs::read(&progress_path).ok();
                    state::parse_journal(&path, &bytes, progress.as_deref()).map_err(|e| e.msg())
                });
            let modified = [&path, &progress_path]
                .iter()
                .filter_map(|p| fs::metadata(p).ok()?.modified().ok())
                .max();
            let lock_holder = lock_id(&dir.join(format!("{cid}.lock")))
                .and_then(|id| locks.iter().find(|(l, _)| *l == id).map(|(_, pid)| *pid));
            listing.journals.push(Found {
                container_id: cid.to_owned(),
                ifname: ifname.to_owned(),
                journal,
                modified,
                lock_holder,
            });
        } else if let Some((cid, ifname)) = key_of(name, ".rolledback") {
            listing.rolled_back.push(RolledBack {
                container_id: cid.to_owned(),
                ifname: ifname.to_owned(),
                modified: fs::metadata(dir.join(name))
                    .ok()
                    .and_then(|m| m.modified().ok()),
            });
        }
    }
    Ok(listing)
}

/// `(container ID, ifname)` of a file name `<cid>:<ifname><suffix>`.
fn key_of<'a>(name: &'a str, suffix: &str) -> Option<(&'a str, &'a str)> {
    let (cid, ifname) = name.strip_suffix(suffix)?.split_once(':')?;
    (!cid.is_empty() && !ifname.is_empty()).then_some((cid, ifname))
}

/// The identity of a file as `/proc/locks` writes it: `major:minor:inode`, the device numbers
/// in hex.
type LockId = (u32, u32, u64);

fn lock_id(path: &PathBuf) -> Option<LockId> {
    let m = fs::metadata(path).ok()?;
    let dev = m.dev();
    Some((libc::major(dev), libc::minor(dev), m.ino()))
}

/// The `flock` locks held now (not waited for), with their holder's pid.
fn held_locks() -> Vec<(LockId, u32)> {
    fs::read_to_string("/proc/locks")
        .map(|t| t.lines().filter_map(parse_lock_line).collect())
        .unwrap_or_default()
}

/// One line of `/proc/locks`: `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF`; lines of
/// waiters (`1: -> FLOCK ...`) and other kinds of lock are skipped.
fn parse_lock_line(line: &str) -> Option<(LockId, u32)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.get(1) != Some(&"FLOCK") {
        return None;
    }
    let pid = f.get(4)?.parse().ok()?;
    let mut id = f.get(5)?.split(':');
    let major = u32::from_str_radix(id.next()?, 16).ok()?;
    let minor = u32::from_str_radix(id.next()?, 16).ok()?;
    let ino = id.next()?.parse().ok()?;
    Some(((major, minor, ino), pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Attachment, StateDir};
    use std::time::Duration;

    #[test]
    fn lock_lines_parse_and_waiters_are_skipped() {
        assert_eq!(
            parse_lock_line("1: FLOCK  ADVISORY  WRITE 4242 08:1f:1234 0 EOF"),
            Some(((8, 31, 1234), 4242))
        );
        assert_eq!(
            parse_lock_line("1: -> FLOCK  ADVISORY  WRITE 4243 08:1f:1234 0 EOF"),
            None
        );
        assert_eq!(
            parse_lock_line("2: POSIX  ADVISORY  WRITE 99 00:19:7 0 EOF"),
            None
        );
    }

    #[test]
    fn journals_markers_and_the_lock_holder_are_read_without_a_write() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let j = Journal::new(
            "c1",
            "eth0",
            Some("/run/netns/x".into()),
            "",
            None,
            vec![Attachment::new(
                "cl",
                "eth0",
                r#"{"cniVersion":"1.0.0","name":"cl","type":"bridge"}"#,
                Default::default(),
                "",
                true,
            )],
        );
        s.save(&j).unwrap();
        s.mark_rolled_back("c2", "eth0").unwrap();
        fs::write(t.path().join("c3:eth0.json"), "{").unwrap();
        let held = s.lock("c1", "eth0", Duration::from_millis(200)).unwrap();
        let before = fs::read_dir(t.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), e.metadata().unwrap().mode())
            })
            .collect::<std::collections::BTreeSet<_>>();
        let l = read(t.path()).unwrap();
        assert_eq!(l.journals.len(), 2);
        assert_eq!(l.journals[0].journal.as_ref().unwrap(), &j);
        assert_eq!(l.journals[0].lock_holder, Some(std::process::id()));
        assert!(
            l.journals[1]
                .journal
                .as_ref()
                .unwrap_err()
                .contains("c3:eth0.json")
        );
        assert_eq!(l.rolled_back.len(), 1);
        assert_eq!(l.rolled_back[0].container_id, "c2");
        drop(held);
        let l = read(t.path()).unwrap();
        assert_eq!(l.journals[0].lock_holder, None);
        let after = fs::read_dir(t.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), e.metadata().unwrap().mode())
            })
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(before, after, "nothing written, nothing's mode changed");
        assert!(read(&t.path().join("absent")).unwrap().journals.is_empty());
    }
}
