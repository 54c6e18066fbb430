//! DEL markers: a repeated DEL of an attachment plexus already tore down costs nothing.
//!
//! The runtime sends DEL more than once for one sandbox: containerd's `StopPodSandbox` and
//! `RemovePodSandbox` each tear the network down, the kubelet's sandbox clean-up stops every
//! dead sandbox again about a minute after the pod is gone, and each retry after a timeout is
//! another DEL. Once the journal is gone, such a DEL has nothing to go on, and without a
//! marker it would rebuild the attachment from the node config and the API (a pod read and a
//! NAD read per network) and run every delegate's DEL again, best-effort.
//!
//! So a DEL that finished an attachment plexus knew (its journal was torn down, or its failed
//! ADD's rollback marker was taken, or a corrupt journal's strict rebuild succeeded) leaves
//! an empty file `deleted/<containerID>:<ifname>` in the state directory. A later DEL of the
//! same attachment that finds no journal but this marker answers success at once: no API
//! client is built, no delegate runs. A DEL of an attachment plexus never saw (no journal,
//! no marker) keeps its best-effort rebuild.
//!
//! # Lifetime
//!
//! - An ADD of the same attachment removes the marker (the container ID is reused): its DEL
//!   must undo that ADD. The journal always wins anyway: DEL reads it before the marker.
//! - GC removes the markers of every attachment not in `cni.dev/valid-attachments`.
//! - A runtime that never sends GC (containerd 1.6 does not) must not make markers pile up:
//!   a marker answers for [`DELETED_MARKER_TTL`] after its DEL; after that it counts as
//!   absent (the DEL is best-effort again, which is always safe), and the DEL that writes a
//!   marker removes expired ones, at most once every [`PRUNE_INTERVAL`] (a `.pruned` file's
//!   modification time says when it last did, so the usual DEL pays one `stat`).
//!
//! # Durability
//!
//! Markers are not flushed: one lost in a power loss only makes the next DEL of that
//! attachment best-effort, as before markers existed. They live in a subdirectory so that
//! the journal's own listing, lock-file clean-up and temp-file rules never see them.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{DIR_MODE, FILE_MODE, KEY_SEP, StateDir, key, unlink};
use crate::cni::Error;

/// The subdirectory of the state directory holding the markers.
pub const DELETED_DIR: &str = "deleted";
/// How long after its DEL a marker answers repeated DELs: well past the kubelet's sandbox
/// clean-up (about a minute) and a runtime's retries.
pub const DELETED_MARKER_TTL: Duration = Duration::from_secs(60 * 60);
/// How often a DEL that writes a marker looks for expired ones.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// The file whose modification time records the last prune.
const PRUNED_STAMP: &str = ".pruned";

impl StateDir {
    fn deleted_dir(&self) -> PathBuf {
        self.path.join(DELETED_DIR)
    }

    fn deleted_marker(&self, container_id: &str, ifname: &str) -> Result<PathBuf, Error> {
        Ok(self.deleted_dir().join(key(container_id, ifname)?))
    }

    /// Records that DEL finished (container ID, ifname), then removes expired markers when a
    /// prune is due (see the module docs). Not flushed.
    pub fn mark_deleted(&self, container_id: &str, ifname: &str) -> Result<(), Error> {
        let marker = self.deleted_marker(container_id, ifname)?;
        let ctx = || format!("recording the finished DEL in {}", marker.display());
        DirBuilder::new()
            .mode(DIR_MODE)
            .create(self.deleted_dir())
            .or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| Error::io(ctx(), e))?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&marker)
            .map_err(|e| Error::io(ctx(), e))?;
        if let Err(e) = self.prune_deleted(SystemTime::now()) {
            tracing::debug!(error = %e, "expired DEL markers not pruned");
        }
        Ok(())
    }

    /// Whether DEL already finished (container ID, ifname) less than [`DELETED_MARKER_TTL`]
    /// ago. Anything unreadable counts as "no": the caller then does what it did without
    /// markers.
    pub fn was_deleted(&self, container_id: &str, ifname: &str) -> bool {
        let Ok(marker) = self.deleted_marker(container_id, ifname) else {
            return false;
        };
        fs::symlink_metadata(marker).is_ok_and(|m| {
            m.file_type().is_file() && !expired(m.modified().ok(), SystemTime::now())
        })
    }

    /// Removes the marker of (container ID, ifname); true when there was one.
    pub fn take_deleted(&self, container_id: &str, ifname: &str) -> Result<bool, Error> {
        let marker = self.deleted_marker(container_id, ifname)?;
        // Looked up first: unlink(2) on a read-only file system fails with EROFS even for a
        // name that does not exist.
        if fs::symlink_metadata(&marker).is_err() {
            return Ok(false);
        }
        unlink(&marker)
            .map(|()| true)
            .map_err(|e| Error::io(format!("removing {}", marker.display()), e))
    }

    /// Every key with a marker, sorted (expired ones included).
    pub fn deleted(&self) -> Result<Vec<(String, String)>, Error> {
        let dir = self.deleted_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        let mut keys: Vec<(String, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (cid, ifname) = name.split_once(KEY_SEP)?;
                (!cid.is_empty() && !ifname.is_empty() && !cid.starts_with('.'))
                    .then(|| (cid.to_owned(), ifname.to_owned()))
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Removes the markers older than [`DELETED_MARKER_TTL`] when the last prune is more than
    /// [`PRUNE_INTERVAL`] before `now`; returns how many went.
    pub fn prune_deleted(&self, now: SystemTime) -> io::Result<usize> {
        let dir = self.deleted_dir();
        let stamp = dir.join(PRUNED_STAMP);
        let last = fs::symlink_metadata(&stamp)
            .ok()
            .and_then(|m| m.modified().ok());
        if last.is_some_and(|t| now.duration_since(t).is_ok_and(|d| d < PRUNE_INTERVAL)) {
            return Ok(0);
        }
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&stamp)?;
        f.set_modified(now)?;
        let mut removed = 0;
        for entry in fs::read_dir(&dir)?.filter_map(Result::ok) {
            let name = entry.file_name();
            if name.to_str().is_none_or(|n| n.starts_with('.')) {
                continue;
            }
            let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
            if expired(modified, now) && unlink(&entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::debug!(removed, "expired DEL markers removed");
        }
        Ok(removed)
    }
}

/// Whether a marker written at `written` has expired at `now` (an unknown time has).
fn expired(written: Option<SystemTime>, now: SystemTime) -> bool {
    written.is_none_or(|t| {
        now.duration_since(t)
            .is_ok_and(|age| age >= DELETED_MARKER_TTL)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn dir() -> (tempfile::TempDir, StateDir) {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(&t.path().join("state")).unwrap();
        (t, s)
    }

    fn age(s: &StateDir, cid: &str, ifname: &str, by: Duration) {
        let p = s.deleted_marker(cid, ifname).unwrap();
        let f = File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn a_marker_answers_until_taken() {
        let (_t, s) = dir();
        assert!(!s.was_deleted("c1", "eth0"));
        s.mark_deleted("c1", "eth0").unwrap();
        assert!(s.was_deleted("c1", "eth0"));
        assert!(!s.was_deleted("c1", "net1"));
        assert!(!s.was_deleted("c2", "eth0"));
        assert_eq!(s.deleted().unwrap(), [("c1".into(), "eth0".into())]);
        // The journal's own listing and the lock clean-up never see it.
        assert!(s.list().unwrap().is_empty());
        assert!(!super::super::container_has_files(s.path(), "c1", "eth0").unwrap());
        assert!(s.take_deleted("c1", "eth0").unwrap());
        assert!(!s.take_deleted("c1", "eth0").unwrap());
        assert!(!s.was_deleted("c1", "eth0"));
        assert!(s.deleted().unwrap().is_empty());
    }

    #[test]
    fn an_expired_marker_counts_as_absent_and_a_due_prune_removes_it() {
        let (_t, s) = dir();
        s.mark_deleted("old", "eth0").unwrap();
        s.mark_deleted("new", "eth0").unwrap();
        age(
            &s,
            "old",
            "eth0",
            DELETED_MARKER_TTL + Duration::from_secs(1),
        );
        assert!(!s.was_deleted("old", "eth0"));
        assert!(s.was_deleted("new", "eth0"));
        // The marks above pruned just now: not due again yet.
        assert_eq!(s.prune_deleted(SystemTime::now()).unwrap(), 0);
        assert_eq!(s.deleted().unwrap().len(), 2);
        let later = SystemTime::now() + PRUNE_INTERVAL + Duration::from_secs(1);
        assert_eq!(s.prune_deleted(later).unwrap(), 1);
        assert_eq!(s.deleted().unwrap(), [("new".into(), "eth0".into())]);
    }

    #[test]
    fn a_bad_key_is_refused_and_never_a_marker() {
        let (_t, s) = dir();
        assert!(s.mark_deleted("../x", "eth0").is_err());
        assert!(!s.was_deleted("../x", "eth0"));
        assert!(s.take_deleted("c1", "a/b").is_err());
    }
}
