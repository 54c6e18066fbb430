//! The journal: what plexus did for one attachment of the runtime, kept on disk so that DEL
//! can undo all of it without the API server, even after a crash or a reboot.
//!
//! One journal per attachment of the runtime, keyed by (container ID, `CNI_IFNAME`), in the
//! node's `cniDir` ([`StateDir`]). It holds the exact delegate config bytes, runtime values,
//! CNI_ARGS and results of every attachment ([`Journal`], [`Attachment`]), and the state of each
//! one: the transaction writes `Planned` for all before running any delegate, `Started` just
//! before running one, `Added` with its result after. DEL and rollback walk
//! [`Journal::pending_teardown`] backwards.
//!
//! # Files
//!
//! In the state directory (mode 0700, owned by the user plexus runs as):
//! - `<containerID>:<ifname>.json` (mode 0600): the journal. The separator is `:` rather than
//!   `-` because container IDs may contain `-` (and interface names too), which would let two
//!   attachments share one file; container IDs and interface names can hold no `:`, so a
//!   file name splits back into exactly one key ([`StateDir::list`]).
//! - `<containerID>.lock` (mode 0600): the container's lock ([`StateDir::lock`]), shared by
//!   every attachment of that container.
//! - `<containerID>:<ifname>.progress` (mode 0600): the progress of the ADD that wrote the
//!   journal, one JSON line per step, appended ([`StateDir::save_progress`]).
//! - `.<containerID>:<ifname>.json.<pid>-<n>.tmp`: a journal being written, or the file ADD
//!   made ahead for it (see "The plan's file, made ahead"). Names starting with `.` are never
//!   keys.
//! - `<containerID>:<ifname>.rolledback` (empty): the ADD of that key failed and was rolled
//!   back ([`StateDir::mark_rolled_back`]).
//! - `deleted/<containerID>:<ifname>` (empty): DEL finished that attachment; a repeated DEL
//!   answers from it (see [`deleted`]).
//!
//! A journal or progress file found with a mode wider than 0600 is set to 0600 when read; one
//! owned by another user than plexus's (or root) is refused ([`crate::perms`]): what a
//! journal lists is what DEL runs as root.
//!
//! The crash tests stop plexus with SIGKILL between any two of the writes described here (see
//! [`crate::fault`] for the named points and what each leaves on disk).
//!
//! # Crash safety
//!
//! A journal is never written in place. [`StateDir::save`] writes the whole document to a new
//! temp file in the same directory (`O_EXCL`, mode 0600), fsyncs it, renames it over the
//! journal and fsyncs the directory. `rename(2)` within one file system atomically replaces the
//! name: at every instant the name points either to the old complete file or to the new
//! complete, already durable file. A crash before the rename leaves the old journal and a
//! stray temp file (removed by the next [`StateDir::open`], or made the journal, see below); a
//! crash after it leaves the new journal, whose directory entry the directory fsync makes
//! durable before `save` returns. So
//! the journal of an attachment is never empty or truncated by plexus — the reboot-truncated
//! cache that made Multus report DEL success without calling its delegates cannot happen.
//!
//! Should a journal be damaged anyway (disk error, an operator's editor), [`StateDir::load`]
//! reports a decode error naming the file; it never treats it as absent, because "absent"
//! means "nothing to undo" and DEL would then succeed while delegates still hold IPs and
//! interfaces. An error makes the runtime retry DEL and tells the operator what to fix.
//!
//! Because the state of an attachment is recorded *before* its delegate runs (`Started`), a
//! plexus killed in the middle of a delegate ADD leaves a journal that still lists that
//! delegate, and the next DEL tears it down too (DEL must succeed on partial state, by the CNI
//! spec).
//!
//! # Telling the caller early
//!
//! ADD's first delegate waits for the plan, and the plan's two flushes cost a millisecond or
//! more while plugins run (each flush commits the file system's whole running transaction,
//! the plugins' writes included). [`StateDir::save_notifying`] can let the caller go after the first flush, while
//! the directory's runs on, when two things hold:
//! - The file system keeps a new file's directory entry once the file itself is flushed:
//!   ext4, XFS and btrfs do (POSIX does not promise it), tmpfs keeps nothing across a reboot
//!   anyway; the type is read by each early save (`statfs`), and any other file system gets
//!   the directory's flush first.
//! - The key had no journal before (the caller says so; ADD knows from its leftovers check):
//!   the unflushed removal of an old journal must not come back beside the new plan.
//!
//! Then, after a power loss before the directory's flush, the plan is on disk whole under its
//! final name or under its temp name, never under neither. [`StateDir::open`] turns a stale
//! temp file (its writer gone) that holds a whole journal of its key, while the key has no
//! journal, into that journal; the next DEL or GC tears down what it lists, and if the plan's
//! save was in fact interrupted before the first delegate got its config, that is a DEL of
//! attachments never added, a no-op for a correct plugin (see below). Any other stale temp file
//! (half written, of another key, or beside a journal) is removed.
//!
//! # The plan's file, made ahead
//!
//! A flush of a new file commits the file system's whole running transaction: on a node
//! whose plugins have just written (host-local's leases, say) that takes much longer than on
//! a quiet disk, and the first delegate would wait for it. ADD
//! therefore has [`StateDir::reserve`] make the plan's temp file while the API is read,
//! before the plan is known: 16 KiB of spaces (`RESERVED_LEN`), flushed (the file's
//! creation, length and blocks committed then). [`StateDir::save_notifying`] then writes the
//! plan over the start of that file and flushes only its data (`fdatasync`: nothing of the
//! file's metadata that reading it back needs has changed, so no commit, on ext4 and XFS at
//! least); the rest of the save is as above, the early notice included. The
//! spaces after the journal are JSON whitespace, which reading it skips. A plan longer than
//! the file grows it and is flushed whole; a file that could not be made, or one made for
//! another key, leaves the save to make its own. A file made ahead and not used is removed
//! when its [`Reservation`] is dropped; one left by a plexus that died holds spaces only, or
//! a plan whose flush may not have finished before a power loss: the next
//! [`StateDir::open`] removes it unless it holds a whole journal (see above).
//!
//! # What is fsynced
//!
//! Durability costs a disk flush (milliseconds each on ordinary disks, per pod), so only the
//! write that everything else relies on is durable: [`StateDir::save`] of the plan, before the
//! first delegate is given its config (ADD overlaps the flushes with that delegate's start-up,
//! the directory's with its run when it may, and the file's creation with the API's reads,
//! see above). Progress marks and the end of ADD use [`StateDir::save_progress`],
//! which appends one line (the phase and every attachment's state and result) to the
//! `.progress` file with a single `write(2)`, without a flush, a temp file or a rename (a
//! rename over an existing file makes ext4 start writing the file's data back at once, which
//! costs a quarter of a millisecond per step). [`StateDir::load`] applies the last complete
//! line. A plexus that is killed keeps every line it wrote (they are in the page cache); a
//! power loss may lose or tear the last lines, and a torn line is skipped, so what comes back
//! is an earlier step or the durable plan alone, in phase `Adding`; DEL of such a journal
//! tears down every attachment it names ([`Journal::pending_teardown_after_crash`]), which is
//! always safe because DEL of something never added is a no-op for a correct plugin. Removing
//! a journal is not fsynced either: one that comes back only makes a later DEL or GC repeat a
//! teardown. The progress file is removed before the journal, so a journal never goes with
//! the progress of another ADD.
//!
//! # Concurrency
//!
//! Two plexus processes for the same container must not interleave: a DEL racing an ADD the
//! runtime timed out, but also two calls for one container with different `CNI_IFNAME`s,
//! which plan the same secondary interface names (`net1`...) and whose rollbacks would
//! otherwise tear down each other's interfaces and leases (the delegates key them by
//! container ID and interface name). The transaction holds [`StateDir::lock`] (an `flock(2)`
//! on the container's lock file) from before it reads the pod's interfaces and the journal
//! until after its last write, so a second ADD sees the first one's interfaces and fails its
//! plan before anything runs. The
//! lock is bounded in time and released on drop or when the process dies (the kernel drops
//! `flock` locks with the last descriptor; descriptors are close-on-exec, so delegates do not
//! inherit it). Releasing the lock unlinks the lock file first, still holding it, when no file
//! of the container is left ([`StateLock`]'s drop); a
//! waiter that then gets the lock of the unlinked file notices (the path no longer names the
//! inode it locked) and locks the current file instead, so two holders never coexist.

mod deleted;

pub use deleted::{DELETED_DIR, DELETED_MARKER_TTL};

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cni::Error;
use crate::delegate::orphans::DelegateProc;

/// The journal format version this plexus writes and reads.
pub const VERSION: u32 = 1;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
const JOURNAL_SUFFIX: &str = ".json";
const PROGRESS_SUFFIX: &str = ".progress";
const LOCK_SUFFIX: &str = ".lock";
const ROLLED_BACK_SUFFIX: &str = ".rolledback";
const TMP_SUFFIX: &str = ".tmp";
/// Separates the container ID from the interface name in file names; neither can contain it.
const KEY_SEP: char = ':';
/// Longest key accepted: the temp file name adds about 30 bytes and names stop at 255.
const MAX_KEY_LEN: usize = 200;
/// Sleep between two non-blocking lock attempts.
const LOCK_POLL: Duration = Duration::from_millis(10);

/// Distinguishes the temp files of concurrent saves within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The size of a journal file made ahead ([`StateDir::reserve`]), in spaces: a plan of up to
/// about ten attachments fits (three take about 4 KiB); a longer one grows the file and is
/// flushed whole.
const RESERVED_LEN: usize = 16 * 1024;

/// Where a transaction is for the whole attachment of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// ADD is in progress (or crashed, or is being rolled back).
    Adding,
    /// ADD completed and its result was returned.
    Added,
}

/// Where one delegate attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttachmentState {
    /// Planned; its delegate has not been run.
    Planned,
    /// Its delegate ADD was started and has not reported success (it may have created
    /// resources before failing or being killed).
    Started,
    /// Its delegate ADD succeeded; `result` holds the result.
    Added,
    /// Its delegate DEL succeeded.
    Deleted,
}

/// The pod an attachment belongs to (from CNI_ARGS), for GC, events and operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodKey {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID`, when the runtime sent it.
    pub uid: Option<String>,
}

/// One delegate network attached to the pod: everything its DEL needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// `namespace/name` of the NAD, or the cluster network's name.
    pub network: String,
    /// The interface name the delegate was given.
    pub ifname: String,
    /// The exact delegate config bytes (configs are JSON, hence UTF-8).
    pub config: String,
    /// The runtime values offered to the delegate by capability.
    pub runtime_config: Map<String, Value>,
    /// CNI_ARGS given to the delegate.
    pub cni_args: String,
    /// How far its delegate got.
    pub state: AttachmentState,
    /// The delegate's ADD result (in the config's version), once `Added`; DEL gets it as
    /// `prevResult`.
    pub result: Option<Value>,
    /// Whether this attachment is the pod's default network (its result is plexus's result).
    pub is_default: bool,
    /// The attachment's copy of its device's information file, removed when it is torn down.
    /// Absent from journals without one (and from those of older plexus versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info_file: Option<PathBuf>,
}

impl Attachment {
    /// A `Planned` attachment without a result.
    pub fn new(
        network: impl Into<String>,
        ifname: impl Into<String>,
        config: impl Into<String>,
        runtime_config: Map<String, Value>,
        cni_args: impl Into<String>,
        is_default: bool,
    ) -> Self {
        Attachment {
            network: network.into(),
            ifname: ifname.into(),
            config: config.into(),
            runtime_config,
            cni_args: cni_args.into(),
            state: AttachmentState::Planned,
            result: None,
            is_default,
            device_info_file: None,
        }
    }
}

/// The journal of one attachment of the runtime (container ID, `CNI_IFNAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// Always [`VERSION`]; [`StateDir::load`] refuses others.
    pub version: u32,
    /// `CNI_CONTAINERID` of the runtime's call.
    pub container_id: String,
    /// `CNI_IFNAME` of the runtime's call.
    pub ifname: String,
    /// `CNI_NETNS` of the ADD (DEL may get none).
    pub netns: Option<String>,
    /// `CNI_ARGS` of the runtime's call.
    pub cni_args: String,
    /// The pod, when CNI_ARGS named it.
    pub pod: Option<PodKey>,
    /// Where the transaction is.
    pub phase: Phase,
    /// In the order ADD runs them; teardown runs backwards.
    pub attachments: Vec<Attachment>,
    /// The delegate processes ADD started, as recorded in the progress file before each got
    /// its config ([`StateDir::record_delegate`]); not part of the plan.
    #[serde(skip)]
    pub delegates: Vec<DelegateProc>,
}

impl Journal {
    /// A journal in phase `Adding` with these (normally `Planned`) attachments.
    pub fn new(
        container_id: impl Into<String>,
        ifname: impl Into<String>,
        netns: Option<String>,
        cni_args: impl Into<String>,
        pod: Option<PodKey>,
        attachments: Vec<Attachment>,
    ) -> Self {
        Journal {
            version: VERSION,
            container_id: container_id.into(),
            ifname: ifname.into(),
            netns,
            cni_args: cni_args.into(),
            pod,
            phase: Phase::Adding,
            attachments,
            delegates: Vec::new(),
        }
    }

    /// Sets the state of attachment `index`; a `Some` result replaces the stored one, `None`
    /// keeps it (DEL still needs it as `prevResult` if a retry comes). The caller saves.
    pub fn mark(
        &mut self,
        index: usize,
        state: AttachmentState,
        result: Option<Value>,
    ) -> Result<(), Error> {
        let len = self.attachments.len();
        let a = self.attachments.get_mut(index).ok_or_else(|| {
            Error::Internal(format!(
                "journal of container {} interface {}: no attachment {index} (it has {len})",
                self.container_id, self.ifname
            ))
        })?;
        a.state = state;
        if result.is_some() {
            a.result = result;
        }
        Ok(())
    }

    /// The attachments DEL or rollback must tear down, last first: those `Added`, and those
    /// `Started` (a delegate killed or failing mid-ADD may have left an interface or a lease).
    pub fn pending_teardown(&self) -> impl Iterator<Item = (usize, &Attachment)> {
        self.attachments
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, a)| matches!(a.state, AttachmentState::Started | AttachmentState::Added))
    }

    /// Like [`pending_teardown`](Journal::pending_teardown) for a journal read back after plexus
    /// stopped in the middle of an ADD (phase `Adding`): progress marks are not durable (see
    /// [`StateDir::save_progress`]), so a `Planned` attachment may have been started before a
    /// power loss; it is torn down too (DEL of something never added is a no-op for a correct
    /// plugin, and such attachments are never strict).
    pub fn pending_teardown_after_crash(&self) -> impl Iterator<Item = (usize, &Attachment)> {
        let crashed_add = self.phase == Phase::Adding;
        self.attachments
            .iter()
            .enumerate()
            .rev()
            .filter(move |(_, a)| {
                matches!(a.state, AttachmentState::Started | AttachmentState::Added)
                    || (crashed_add && a.state == AttachmentState::Planned)
            })
    }
}

/// One line of a progress file.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    /// Where the ADD got to.
    Step(Progress),
    /// A delegate process about to be given its config.
    Delegate { delegate: DelegateProc },
}

/// A progress line that records a delegate process.
#[derive(Serialize)]
struct DelegateLine {
    delegate: DelegateProc,
}

/// One line of a progress file: where the ADD got to.
#[derive(Serialize, Deserialize)]
struct Progress {
    phase: Phase,
    attachments: Vec<Mark>,
}

/// One attachment in a [`Progress`] line.
#[derive(Serialize, Deserialize)]
struct Mark {
    state: AttachmentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

/// The journal directory (`cniDir` of the node config), checked and cleaned by [`open`].
///
/// [`open`]: StateDir::open
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

/// The lock of one container, from [`StateDir::lock`]; released on drop.
#[derive(Debug)]
pub struct StateLock {
    // Dropped after `Drop::drop` has run: the lock file is unlinked while it is still held.
    _flock: Flock<File>,
    path: PathBuf,
    /// The directory, the container and the interface the lock was taken for; `None` when
    /// the lock file must stay (a read-only directory).
    unused_check: Option<(PathBuf, String, String)>,
}

impl StateLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    /// Unlinks the lock file, still holding it, when no journal, progress file or rollback
    /// marker of the container is left: a waiter that then gets the unlinked file notices and
    /// locks a new one (see "Concurrency" in the module docs).
    fn drop(&mut self) {
        let Some((dir, cid, ifname)) = &self.unused_check else {
            return;
        };
        match container_has_files(dir, cid, ifname) {
            Ok(false) => {
                if let Err(e) = unlink(&self.path) {
                    tracing::debug!(path = %self.path.display(), error = %e, "lock file kept");
                }
            }
            Ok(true) => {}
            Err(e) => tracing::debug!(error = %e, "cannot list the journals; lock file kept"),
        }
    }
}

/// Whether any journal, progress file or rollback marker of `container_id` is in `dir`; the
/// files of (container ID, `ifname`) are looked up first, the usual case after an ADD.
fn container_has_files(dir: &Path, container_id: &str, ifname: &str) -> io::Result<bool> {
    let key = format!("{container_id}{KEY_SEP}{ifname}");
    for suffix in [JOURNAL_SUFFIX, ROLLED_BACK_SUFFIX] {
        if fs::symlink_metadata(dir.join(format!("{key}{suffix}"))).is_ok() {
            return Ok(true);
        }
    }
    let prefix = format!("{container_id}{KEY_SEP}");
    for entry in fs::read_dir(dir)? {
        if entry?
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

impl StateDir {
    /// Opens the journal directory, creating it (and its parents) with mode 0700 when missing.
    ///
    /// An existing directory owned by the current user but with another mode is set to 0700
    /// (with a warning: journals hold configs and CNI_ARGS). A symlink, a non-directory or a
    /// directory owned by another user is refused. Temp files left by a crashed save are
    /// removed here (those of a writer that is still running are kept, see the module docs).
    pub fn open(path: &Path) -> Result<StateDir, Error> {
        let ctx = || format!("opening the plexus journal directory {}", path.display());
        let mut created = false;
        match fs::symlink_metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(path)
                    .map_err(|e| Error::io(ctx(), format!("cannot create it: {e}")))?;
                created = true;
            }
            Err(e) => return Err(Error::io(ctx(), e)),
        }
        let meta = fs::symlink_metadata(path).map_err(|e| Error::io(ctx(), e))?;
        if meta.file_type().is_symlink() {
            return Err(Error::io(
                ctx(),
                "it is a symlink, which plexus does not follow for its journals: replace it \
                 with a directory (mode 0700, owned by the user plexus runs as) or set cniDir \
                 to the real path",
            ));
        }
        if !meta.is_dir() {
            return Err(Error::io(
                ctx(),
                "it exists and is not a directory: remove it or set cniDir to another path",
            ));
        }
        // From here on, work on the descriptor: what was checked is what is used.
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::io(ctx(), e))?;
        let meta = dir.metadata().map_err(|e| Error::io(ctx(), e))?;
        let euid = current_euid();
        if meta.uid() != euid {
            return Err(Error::io(
                ctx(),
                format!(
                    "it is owned by uid {}, not by uid {euid} that plexus runs as, so others \
                     could change what DEL undoes: `chown {euid} {p} && chmod 0700 {p}`, or set \
                     cniDir to a directory of uid {euid}",
                    meta.uid(),
                    p = path.display()
                ),
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode != DIR_MODE {
            if !created {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:04o}"),
                    "the plexus journal directory had a mode other than 0700; setting it to 0700"
                );
            }
            match dir.set_permissions(Permissions::from_mode(DIR_MODE)) {
                Ok(()) => {}
                // Nobody can write there: DEL can still read what it must undo.
                Err(e) if e.raw_os_error() == Some(libc::EROFS) => tracing::warn!(
                    path = %path.display(),
                    "the plexus journal directory is on a read-only file system; its mode stays"
                ),
                Err(e) => {
                    return Err(Error::io(
                        ctx(),
                        format!("cannot set its mode to 0700: {e}"),
                    ));
                }
            }
        }
        let state = StateDir {
            path: path.to_owned(),
        };
        state.clean_temp_files().map_err(|e| Error::io(ctx(), e))?;
        Ok(state)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the whole journal atomically and durably (see the module docs), replacing any
    /// earlier journal and progress of the key.
    pub fn save(&self, j: &Journal) -> Result<(), Error> {
        self.save_notifying(j, Reservation::none(), false, &mut || {})
    }

    /// Starts making the temp file of the journal of (container ID, ifname) on a thread of
    /// its own: 16 KiB of spaces, flushed, so that a later
    /// [`save_notifying`](StateDir::save_notifying) into it flushes only its data (see "The
    /// plan's file, made ahead" in the module docs). Nothing is reported here: a key that
    /// cannot name a file, or a file that cannot be made, leaves the save to make its own
    /// (and report what goes wrong).
    pub fn reserve(&self, container_id: &str, ifname: &str) -> Reservation {
        let Ok(key) = key(container_id, ifname) else {
            return Reservation::none();
        };
        let path = self.temp_path(&key);
        let thread = std::thread::Builder::new()
            .name("plexus-journal".into())
            .spawn(move || Reserved::make(key, path))
            .inspect_err(
                |e| tracing::debug!(error = %e, "no thread to make the journal's file ahead"),
            )
            .ok();
        Reservation { thread }
    }

    /// A new temp file name for the journal of `key`: `.<key>.json.<pid>-<n>.tmp`.
    fn temp_path(&self, key: &str) -> PathBuf {
        self.path.join(format!(
            ".{key}{JOURNAL_SUFFIX}.{}-{}{TMP_SUFFIX}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// [`save`](StateDir::save), calling `safe` once the journal can no longer be lost, which
    /// may be before `save_notifying` returns: with `early`, and on a file system that keeps a
    /// flushed new file's name, as soon as the temp file is flushed and renamed, while the
    /// directory's flush still runs; otherwise after it. `safe` is not called when the save
    /// fails before that point. `early` is for a journal whose key had none before (see
    /// "Telling the caller early" in the module docs). The journal is written into the file
    /// `into` made ahead when it did make one for this key ([`StateDir::reserve`]; this waits
    /// for it), into a new temp file otherwise.
    pub fn save_notifying(
        &self,
        j: &Journal,
        into: Reservation,
        early: bool,
        safe: &mut dyn FnMut(),
    ) -> Result<(), Error> {
        let key = key(&j.container_id, &j.ifname)?;
        let reserved = into.take().filter(|r| r.key == key);
        let progress = self.path.join(format!("{key}{PROGRESS_SUFFIX}"));
        unlink(&progress).map_err(|e| {
            Error::io(
                format!(
                    "removing the plexus journal progress {}",
                    progress.display()
                ),
                e,
            )
        })?;
        // Only an early save asks the file system's type (one `statfs`, not on every open).
        let early = early
            && nix::sys::statfs::statfs(&self.path)
                .is_ok_and(|fs| flush_keeps_new_names(fs.filesystem_type()));
        self.write(j, reserved, early, safe)
    }

    /// Records the phase and every attachment's state and result of `j` (a journal
    /// [`save`](StateDir::save)d before, with the same attachments) by appending one line to
    /// its progress file, without waiting for the disk: it survives a crash of plexus (the page
    /// cache does), but a power loss may bring back an earlier step. Readers of a journal in
    /// phase `Adding` therefore treat attachments still `Planned` as possibly started (see
    /// [`Journal::pending_teardown_after_crash`]).
    pub fn save_progress(&self, j: &Journal) -> Result<(), Error> {
        let step = Progress {
            phase: j.phase,
            attachments: j
                .attachments
                .iter()
                .map(|a| Mark {
                    state: a.state,
                    result: a.result.clone(),
                })
                .collect(),
        };
        self.append_progress(&j.container_id, &j.ifname, &step)
    }

    /// Records, in the progress file of (container ID, ifname), a delegate process that is
    /// about to be given its config, the same way as [`save_progress`](StateDir::save_progress)
    /// (one appended line, no flush: only a crash of plexus, not a power loss, can leave the
    /// process running). [`StateDir::load`] gives them back in [`Journal::delegates`].
    pub fn record_delegate(
        &self,
        container_id: &str,
        ifname: &str,
        delegate: DelegateProc,
    ) -> Result<(), Error> {
        self.append_progress(container_id, ifname, &DelegateLine { delegate })
    }

    /// Appends `line` as one JSON line to the key's progress file with a single `write(2)`.
    fn append_progress(
        &self,
        container_id: &str,
        ifname: &str,
        line: &impl Serialize,
    ) -> Result<(), Error> {
        let key = key(container_id, ifname)?;
        let path = self.path.join(format!("{key}{PROGRESS_SUFFIX}"));
        let ctx = || format!("writing the plexus journal progress {}", path.display());
        let mut line = serde_json::to_vec(line)
            .map_err(|e| Error::Internal(format!("{}: serialising: {e}", ctx())))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io(ctx(), e))?;
        // One write(2): a killed plexus leaves whole lines; a torn one (power loss) is skipped.
        f.write_all(&line).map_err(|e| Error::io(ctx(), e))
    }

    /// Temp file (`reserved`, or a new one), fsync, rename, fsync of the directory; `safe`
    /// after the rename when `early`, after the directory's fsync otherwise.
    fn write(
        &self,
        j: &Journal,
        mut reserved: Option<Reserved>,
        early: bool,
        safe: &mut dyn FnMut(),
    ) -> Result<(), Error> {
        let key = key(&j.container_id, &j.ifname)?;
        let target = self.path.join(format!("{key}{JOURNAL_SUFFIX}"));
        let ctx = || format!("writing the plexus journal {}", target.display());
        if j.version != VERSION {
            return Err(Error::Internal(format!(
                "{}: journal version {} is not {VERSION}",
                ctx(),
                j.version
            )));
        }
        let mut bytes = serde_json::to_vec_pretty(j)
            .map_err(|e| Error::Internal(format!("{}: serialising: {e}", ctx())))?;
        bytes.push(b'\n');
        let tmp = reserved
            .as_ref()
            .map_or_else(|| self.temp_path(&key), |r| r.path.clone());
        let written = (|| -> Result<(), String> {
            let step = |what: &str, e: io::Error| format!("{what} {}: {e}", tmp.display());
            match &reserved {
                // Over the spaces flushed ahead, with the file's name: its length and blocks
                // are on disk already, so flushing the data is enough (no metadata commit)
                // unless the journal is longer than the file.
                Some(r) => {
                    use std::os::unix::fs::FileExt;
                    r.file
                        .write_all_at(&bytes, 0)
                        .map_err(|e| step("writing", e))?;
                    if bytes.len() <= RESERVED_LEN {
                        r.file.sync_data()
                    } else {
                        r.file.sync_all()
                    }
                    .map_err(|e| step("syncing", e))?;
                }
                None => {
                    let mut f = create_temp(&tmp).map_err(|e| step("creating", e))?;
                    f.write_all(&bytes).map_err(|e| step("writing", e))?;
                    f.sync_all().map_err(|e| step("syncing", e))?;
                }
            }
            crate::fault::stop_at("journal-save:tmp-written");
            fs::rename(&tmp, &target).map_err(|e| step("renaming", e))?;
            if let Some(r) = reserved.as_mut() {
                r.renamed();
            }
            Ok(())
        })();
        if let Err(cause) = written {
            // A file made ahead is removed when `reserved` is dropped.
            if reserved.is_none()
                && let Err(e) = fs::remove_file(&tmp)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %tmp.display(), error = %e, "cannot remove a temp file");
            }
            return Err(Error::io(ctx(), cause));
        }
        if early {
            safe();
        }
        self.sync_dir().map_err(|e| Error::io(ctx(), e))?;
        if !early {
            safe();
        }
        Ok(())
    }

    /// The journal of (container ID, ifname); `None` when there is none. A file that is
    /// empty, truncated, not JSON, of another version or of another key is an
    /// [`Error::Decode`] naming it, never `None`.
    pub fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Journal>, Error> {
        let key = key(container_id, ifname)?;
        let path = self.path.join(format!("{key}{JOURNAL_SUFFIX}"));
        let Some(bytes) = read_private(&path, "the plexus journal")? else {
            return Ok(None);
        };
        let mut j = decode(&path, &bytes)?;
        if j.container_id != container_id || j.ifname != ifname {
            return Err(corrupt(
                &path,
                &format!(
                    "it belongs to container {:?} interface {:?}, not to container {container_id:?} interface {ifname:?}",
                    j.container_id, j.ifname
                ),
            ));
        }
        self.apply_progress(&key, &mut j)?;
        Ok(Some(j))
    }

    /// Applies the last complete line of the key's progress file, if any, to `j`.
    fn apply_progress(&self, key: &str, j: &mut Journal) -> Result<(), Error> {
        let path = self.path.join(format!("{key}{PROGRESS_SUFFIX}"));
        if let Some(bytes) = read_private(&path, "the plexus journal progress")? {
            apply_progress(&path, j, &bytes);
        }
        Ok(())
    }

    /// Removes the journal of (container ID, ifname) and its progress file (call it while
    /// holding [`StateDir::lock`]; the lock file goes when the lock is released and nothing of
    /// the container is left). Absent files are fine; the unlink is not fsynced (see the module
    /// docs).
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<(), Error> {
        let key = key(container_id, ifname)?;
        let journal = self.path.join(format!("{key}{JOURNAL_SUFFIX}"));
        let ctx = || format!("removing the plexus journal {}", journal.display());
        let progress = self.path.join(format!("{key}{PROGRESS_SUFFIX}"));
        unlink(&progress).map_err(|e| Error::io(ctx(), format!("{}: {e}", progress.display())))?;
        crate::fault::stop_at("journal-remove:progress-gone");
        unlink(&journal).map_err(|e| Error::io(ctx(), e))?;
        // Not fsynced: a journal that a power loss brings back only makes a later DEL or GC
        // tear down again what is already gone, which every delegate must accept.
        Ok(())
    }

    /// The interfaces of `container_id` other than `ifname` that have a journal, sorted.
    pub fn other_interfaces(&self, container_id: &str, ifname: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|(c, i)| c == container_id && i != ifname)
            .map(|(_, i)| i)
            .collect())
    }

    /// Every key (container ID, ifname) that has a journal, sorted; temp and lock files are
    /// not keys.
    pub fn list(&self) -> Result<Vec<(String, String)>, Error> {
        self.keys_with(JOURNAL_SUFFIX)
    }

    /// Records that the ADD of (container ID, ifname) failed and was fully rolled back: an empty
    /// `<key>.rolledback` marker (0600, durable) replaces the journal. The runtime's DEL that
    /// follows every failed ADD then knows there is nothing to undo (and does not fail again on
    /// the delegate that broke the ADD); GC removes markers the runtime forgets.
    pub fn mark_rolled_back(&self, container_id: &str, ifname: &str) -> Result<(), Error> {
        let key = key(container_id, ifname)?;
        let marker = self.path.join(format!("{key}{ROLLED_BACK_SUFFIX}"));
        let ctx = || format!("recording the rollback in {}", marker.display());
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&marker)
            .map_err(|e| Error::io(ctx(), e))?;
        f.sync_all().map_err(|e| Error::io(ctx(), e))?;
        let progress = self.path.join(format!("{key}{PROGRESS_SUFFIX}"));
        unlink(&progress).map_err(|e| Error::io(ctx(), e))?;
        let journal = self.path.join(format!("{key}{JOURNAL_SUFFIX}"));
        unlink(&journal).map_err(|e| Error::io(ctx(), e))?;
        self.sync_dir().map_err(|e| Error::io(ctx(), e))
    }

    /// Removes the rollback marker of (container ID, ifname); true when there was one.
    pub fn take_rolled_back(&self, container_id: &str, ifname: &str) -> Result<bool, Error> {
        let key = key(container_id, ifname)?;
        let marker = self.path.join(format!("{key}{ROLLED_BACK_SUFFIX}"));
        // Looked up first: unlink(2) on a read-only file system fails with EROFS even for a
        // name that does not exist, and "no marker" must stay a plain `false` there.
        match fs::symlink_metadata(&marker) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(format!("reading {}", marker.display()), e)),
        }
        match fs::remove_file(&marker) {
            Ok(()) => {
                self.sync_dir()
                    .map_err(|e| Error::io(format!("removing {}", marker.display()), e))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("removing {}", marker.display()), e)),
        }
    }

    /// Renames the stale temp file `name` to its key's journal when the key has none and the
    /// file holds a whole journal of that key; true when it did.
    fn promote(&self, name: &str) -> bool {
        // `.<key>.json.<pid>-<n>.tmp`
        let Some(key) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(TMP_SUFFIX))
            .and_then(|n| n.rsplit_once('.'))
            .and_then(|(n, _)| n.strip_suffix(JOURNAL_SUFFIX))
        else {
            return false;
        };
        let (tmp, target) = (
            self.path.join(name),
            self.path.join(format!("{key}{JOURNAL_SUFFIX}")),
        );
        let whole = || -> Option<()> {
            let (cid, ifname) = key.split_once(KEY_SEP)?;
            let j = decode(&tmp, &read_private(&tmp, "a temp file").ok()??).ok()?;
            (j.container_id == cid && j.ifname == ifname).then_some(())
        };
        if matches!(fs::symlink_metadata(&target), Err(e) if e.kind() == io::ErrorKind::NotFound)
            && whole().is_some()
            && fs::rename(&tmp, &target).is_ok()
        {
            tracing::warn!(
                journal = %target.display(),
                "recovered the journal of an ADD interrupted by a crash from its temp file; \
                 the next DEL or GC undoes what it lists"
            );
            return true;
        }
        false
    }

    /// Every key with a rollback marker, sorted.
    pub fn rolled_back(&self) -> Result<Vec<(String, String)>, Error> {
        self.keys_with(ROLLED_BACK_SUFFIX)
    }

    fn keys_with(&self, suffix: &str) -> Result<Vec<(String, String)>, Error> {
        let ctx = || format!("listing the plexus journals in {}", self.path.display());
        let mut keys = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(|e| Error::io(ctx(), e))? {
            let entry = entry.map_err(|e| Error::io(ctx(), e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let Some(stem) = name.strip_suffix(suffix) else {
                continue;
            };
            match stem.split_once(KEY_SEP) {
                Some((cid, ifname)) if !cid.is_empty() && !ifname.is_empty() => {
                    keys.push((cid.to_owned(), ifname.to_owned()));
                }
                _ => tracing::debug!(name, "not a plexus journal name; ignored"),
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Locks the container of the attachment (container ID, ifname) against other plexus
    /// processes, whichever of its interfaces they work on (see "Concurrency" in the module
    /// docs): an exclusive `flock` on `<containerID>.lock` (created with mode 0600), tried
    /// without blocking every few milliseconds until `timeout`, then an I/O error. Released
    /// when the [`StateLock`] is dropped (or the process dies).
    pub fn lock(
        &self,
        container_id: &str,
        ifname: &str,
        timeout: Duration,
    ) -> Result<StateLock, Error> {
        // Checked as a whole key, so that the lock is only taken for an attachment that can
        // have a journal.
        key(container_id, ifname)?;
        let key = container_id.to_owned();
        let path = self.path.join(format!("{key}{LOCK_SUFFIX}"));
        let ctx = || format!("locking the plexus journal {}", path.display());
        let started = Instant::now();
        let timed_out = || {
            Error::io(
                ctx(),
                format!(
                    "another plexus process holds the lock for container {container_id} \
                     (asked for interface {ifname}; waited {:.1}s); it is probably still \
                     running an ADD or DEL for it, try again later",
                    started.elapsed().as_secs_f64()
                ),
            )
        };
        let mut file = match open_lock_file(&path) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
                return self.lock_read_only(path, timeout);
            }
            Err(e) => return Err(Error::io(ctx(), e)),
        };
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(flock) => {
                    if locks_current_file(&flock, &path).map_err(|e| Error::io(ctx(), e))? {
                        return Ok(StateLock {
                            _flock: flock,
                            path,
                            unused_check: Some((
                                self.path.clone(),
                                container_id.to_owned(),
                                ifname.to_owned(),
                            )),
                        });
                    }
                    // The holder removed the file before releasing it: lock the current one.
                    drop(flock);
                    if started.elapsed() >= timeout {
                        return Err(timed_out());
                    }
                    file = open_lock_file(&path).map_err(|e| Error::io(ctx(), e))?;
                }
                Err((f, Errno::EWOULDBLOCK)) => {
                    let waited = started.elapsed();
                    if waited >= timeout {
                        return Err(timed_out());
                    }
                    std::thread::sleep(LOCK_POLL.min(timeout - waited));
                    file = f;
                }
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(Error::io(ctx(), e)),
            }
        }
    }

    /// [`lock`](StateDir::lock) on a read-only file system, where no lock file can be
    /// created: the existing lock file, or else the directory itself, is locked through a
    /// read-only descriptor (`flock(2)` needs no write access). Nothing can unlink or write
    /// there, so the only work left to serialise is DEL's reading and tearing down.
    fn lock_read_only(&self, path: PathBuf, timeout: Duration) -> Result<StateLock, Error> {
        let ctx = || format!("locking the plexus journal {}", path.display());
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(p)
        };
        let mut file = match open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                open(&self.path).map_err(|e| Error::io(ctx(), e))?
            }
            Err(e) => return Err(Error::io(ctx(), e)),
        };
        tracing::warn!(
            dir = %self.path.display(),
            "the plexus journal directory is read-only: locking through a read-only descriptor"
        );
        let started = Instant::now();
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(flock) => {
                    return Ok(StateLock {
                        _flock: flock,
                        path,
                        unused_check: None,
                    });
                }
                Err((f, Errno::EWOULDBLOCK)) => {
                    let waited = started.elapsed();
                    if waited >= timeout {
                        return Err(Error::io(
                            ctx(),
                            "another plexus process holds the lock; try again later",
                        ));
                    }
                    std::thread::sleep(LOCK_POLL.min(timeout - waited));
                    file = f;
                }
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(Error::io(ctx(), e)),
            }
        }
    }

    /// Whether the directory is on a read-only file system (nothing can be recorded there).
    pub fn read_only(&self) -> bool {
        nix::sys::statvfs::statvfs(&self.path)
            .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|e| io::Error::new(e.kind(), format!("syncing the directory: {e}")))
    }

    /// Deals with the temp files of saves that will never finish (their writer's pid, in the
    /// name, is gone, or the name has none; those of live processes may be in flight): one
    /// that holds a whole journal of its key while the key has no journal becomes that journal
    /// (its save was interrupted between the rename and the directory's flush by a power loss;
    /// its delegates may have run, see "Telling the caller early" in the module docs); any
    /// other is removed.
    fn clean_temp_files(&self) -> io::Result<()> {
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with('.') || !name.ends_with(TMP_SUFFIX) {
                continue;
            }
            if temp_writer(name).is_some_and(is_alive) {
                tracing::debug!(name, "temp file of a running process kept");
                continue;
            }
            if self.promote(name) {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(name, "removed a temp file left by an interrupted save"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(name, error = %e, "cannot remove a stale temp file"),
            }
        }
        Ok(())
    }
}

/// The temp file of a journal being made ahead of its content, on a thread of its own
/// ([`StateDir::reserve`]). Dropped unused, it waits for that thread and removes the file.
pub struct Reservation {
    thread: Option<std::thread::JoinHandle<io::Result<Reserved>>>,
}

impl Reservation {
    /// No file made ahead: the save makes its own.
    pub fn none() -> Self {
        Reservation { thread: None }
    }

    /// The file, once made and flushed; `None` when it could not be (logged).
    fn take(mut self) -> Option<Reserved> {
        let made = self.thread.take()?.join();
        match made {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the journal's file could not be made ahead");
                None
            }
            Err(_) => None,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // The file, if made, is removed by `Reserved`'s drop.
            let _ = thread.join();
        }
    }
}

/// A temp journal file of `RESERVED_LEN` spaces, flushed; removed when dropped before it
/// was renamed to the journal.
struct Reserved {
    key: String,
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl Reserved {
    fn make(key: String, path: PathBuf) -> io::Result<Reserved> {
        let file = create_temp(&path)?;
        // From here on, a failure removes the file (drop).
        let r = Reserved {
            key,
            path,
            file,
            renamed: false,
        };
        (&r.file).write_all(&[b' '; RESERVED_LEN])?;
        r.file.sync_all()?;
        crate::fault::stop_at("journal-reserve:made");
        Ok(r)
    }

    /// Its path is now the journal's: not to be removed.
    fn renamed(&mut self) {
        self.renamed = true;
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if !self.renamed
            && let Err(e) = fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a temp file");
        }
    }
}

/// Creates a temp file for a journal: new (never an existing file or a symlink), mode 0600.
fn create_temp(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Reads a journal from its bytes and those of its progress file, as [`StateDir::load`] does
/// (without the key check): the plan, then the last complete progress line that fits it.
/// `path` names the journal in errors. Never panics, whatever the bytes.
pub fn parse_journal(
    path: &Path,
    journal: &[u8],
    progress: Option<&[u8]>,
) -> Result<Journal, Error> {
    let mut j = decode(path, journal)?;
    if let Some(p) = progress {
        apply_progress(path, &mut j, p);
    }
    Ok(j)
}

/// Applies the last complete step line of a progress file to `j`, and collects every
/// delegate line into [`Journal::delegates`] (torn or foreign lines skipped).
fn apply_progress(path: &Path, j: &mut Journal, bytes: &[u8]) {
    let mut skipped = 0;
    let mut step: Option<Progress> = None;
    let mut delegates = Vec::new();
    for line in bytes.split(|&b| b == b'\n').rev() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Once the last step is known, earlier lines matter only if they record a delegate.
        if step.is_some() && !line.starts_with(b"{\"delegate\"") {
            continue;
        }
        match serde_json::from_slice::<Line>(line) {
            Ok(Line::Step(p)) if p.attachments.len() == j.attachments.len() => {
                step.get_or_insert(p);
            }
            Ok(Line::Delegate { delegate }) => delegates.push(delegate),
            _ => skipped += 1,
        }
    }
    if let Some(p) = step {
        j.phase = p.phase;
        for (a, m) in j.attachments.iter_mut().zip(p.attachments) {
            a.state = m.state;
            a.result = m.result;
        }
    }
    delegates.reverse();
    j.delegates = delegates;
    if skipped > 0 {
        tracing::warn!(
            path = %path.display(),
            skipped,
            "journal progress lines skipped (torn by a crash?); using the last complete one"
        );
    }
}

/// The content of a journal file (`None` when absent), opened without following a symlink and
/// checked first: another owner is refused, a mode wider than 0600 is set to 0600
/// ([`crate::perms::private_file`]).
fn read_private(path: &Path, what: &str) -> Result<Option<Vec<u8>>, Error> {
    let ctx = || format!("reading {what} {}", path.display());
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(ctx(), e)),
    };
    crate::perms::private_file(&f, path, what, crate::perms::Writable::Fix)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| Error::io(ctx(), e))?;
    Ok(Some(bytes))
}

/// The file name stem of a key, refusing what cannot name a journal unambiguously.
fn key(container_id: &str, ifname: &str) -> Result<String, Error> {
    let bad = |part: &str| {
        part.is_empty() || part.contains(['/', KEY_SEP, '\0']) || part == "." || part == ".."
    };
    if bad(container_id)
        || bad(ifname)
        || container_id.starts_with('.')
        || container_id.len() + ifname.len() + 1 > MAX_KEY_LEN
    {
        return Err(Error::invalid_env(
            format!(
                "container ID {container_id:?} and interface {ifname:?} cannot name a plexus journal"
            ),
            format!(
                "both must be non-empty, without '/', ':' or NUL, the container ID must not \
                 start with '.', and together they must be at most {MAX_KEY_LEN} bytes"
            ),
        ));
    }
    Ok(format!("{container_id}{KEY_SEP}{ifname}"))
}

/// Whether a file system of this type keeps a new file's directory entry once the file is
/// flushed, without a flush of the directory: ext4 (with a journal, the flush commits the
/// transaction that created the entry; without one, it flushes the parent directory of a new
/// file), XFS (the log is forced up to the file's last change, its creation included) and
/// btrfs (the log tree records a new file's name with it). tmpfs keeps nothing across a
/// reboot, nor need it. Anything else gets the directory's flush first.
fn flush_keeps_new_names(fs: nix::sys::statfs::FsType) -> bool {
    use nix::sys::statfs::{BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC};
    [
        EXT4_SUPER_MAGIC,
        XFS_SUPER_MAGIC,
        BTRFS_SUPER_MAGIC,
        TMPFS_MAGIC,
    ]
    .contains(&fs)
}

/// The pid in a temp file name `.<key>.json.<pid>-<n>.tmp`.
fn temp_writer(name: &str) -> Option<i32> {
    let (_, tail) = name.strip_suffix(TMP_SUFFIX)?.rsplit_once('.')?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse::<i32>().ok().filter(|p| *p > 0)
}

fn is_alive(pid: i32) -> bool {
    // EPERM: it exists but is not ours. Only ESRCH says it is gone.
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

/// The effective uid (nix's `geteuid` needs its `user` feature, not enabled here).
fn current_euid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

fn unlink(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Whether the locked descriptor is still the file the path names.
fn locks_current_file(locked: &File, path: &Path) -> io::Result<bool> {
    let ours = locked.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == ours.dev() && now.ino() == ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn corrupt(path: &Path, what: &str) -> Error {
    Error::decode(
        format!("corrupt plexus journal {}: {what}", path.display()),
        "DEL cannot tell from it which delegates to undo, so it fails rather than report \
         success and leak their interfaces and IP leases. Restore the file, or release what it \
         lists by hand and delete it; the runtime retries DEL.",
    )
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Journal, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt(path, "the file is empty"));
    }
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(path, &format!("not complete JSON (truncated?): {e}")))?;
    match doc.get("version") {
        Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
        Some(v) => {
            return Err(corrupt(
                path,
                &format!("journal version {v}, this plexus reads version {VERSION}"),
            ));
        }
        None => return Err(corrupt(path, "no journal version")),
    }
    serde_json::from_value(doc).map_err(|e| corrupt(path, &format!("not a plexus journal: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    fn journal(cid: &str, ifname: &str) -> Journal {
        let rc = json!({"mac": "aa:bb:cc:dd:ee:ff", "ips": ["10.0.0.5/24"]})
            .as_object()
            .unwrap()
            .clone();
        Journal::new(
            cid,
            ifname,
            Some("/var/run/netns/p1".into()),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
            Some(PodKey {
                namespace: "ns".into(),
                name: "p".into(),
                uid: Some("u-1".into()),
            }),
            vec![
                Attachment::new(
                    "kube-system/cluster",
                    "eth0",
                    r#"{"cniVersion":"1.0.0","name":"cluster","type":"bridge"}"#,
                    Map::new(),
                    "IgnoreUnknown=true",
                    true,
                ),
                Attachment::new(
                    "ns/macvlan-a",
                    "net1",
                    // Odd spacing, key order, unicode and an escape: kept byte for byte.
                    "{ \"type\" : \"macvlan\",\n \"zz\": 1, \"a\": \"é\\u0041\" }",
                    rc,
                    "IgnoreUnknown=true",
                    false,
                ),
            ],
        )
    }

    fn assert_decode_naming(e: Error, path: &Path) {
        assert!(matches!(e, Error::Decode { .. }), "{e:?}");
        assert!(e.msg().contains(&path.display().to_string()), "{}", e.msg());
    }

    #[test]
    fn open_creates_dir_and_parents_0700_and_files_are_0600() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a/b/plexus");
        let s = StateDir::open(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
        s.save(&journal("c1", "eth0")).unwrap();
        assert_eq!(mode(&p.join("c1:eth0.json")), 0o600);
        let l = s.lock("c1", "eth0", Duration::from_millis(200)).unwrap();
        assert_eq!(mode(l.path()), 0o600);
        assert_eq!(l.path(), p.join("c1.lock"));
        // Opening again is fine and changes nothing.
        StateDir::open(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
    }

    #[test]
    fn wider_mode_is_tightened() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s");
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, Permissions::from_mode(0o755)).unwrap();
        StateDir::open(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
    }

    #[test]
    fn dir_of_another_user_symlink_and_file_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("f");
        fs::write(&file, "").unwrap();
        let e = StateDir::open(&file).unwrap_err();
        assert!(e.msg().contains(&file.display().to_string()), "{e}");
        assert!(e.msg().contains("not a directory"), "{e}");

        let real = t.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = StateDir::open(&link).unwrap_err();
        assert!(e.msg().contains(&link.display().to_string()), "{e}");
        assert!(e.msg().contains("symlink"), "{e}");

        if current_euid() != 0 {
            eprintln!("SKIPPED: the other-owner part of this test needs root (chown to 65534)");
            return;
        }
        let other = t.path().join("other");
        fs::create_dir(&other).unwrap();
        std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
        let e = StateDir::open(&other).unwrap_err();
        assert_eq!(e.code().0, 5);
        assert!(e.msg().contains(&other.display().to_string()), "{e}");
        assert!(
            e.msg().contains("owned by uid 65534") && e.msg().contains("chown"),
            "{e}"
        );
    }

    #[test]
    fn save_load_round_trip_keeps_config_bytes() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap(), None);
        let mut j = journal("c1", "eth0");
        s.save(&j).unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap().as_ref(), Some(&j));
        j.mark(
            0,
            AttachmentState::Added,
            Some(json!({"cniVersion": "1.0.0"})),
        )
        .unwrap();
        j.phase = Phase::Added;
        s.save(&j).unwrap();
        let back = s.load("c1", "eth0").unwrap().unwrap();
        assert_eq!(back, j);
        assert_eq!(back.attachments[1].config, j.attachments[1].config);
        assert_eq!(
            back.attachments[1]
                .runtime_config
                .keys()
                .collect::<Vec<_>>(),
            vec!["mac", "ips"]
        );
        let raw: Value =
            serde_json::from_slice(&fs::read(t.path().join("c1:eth0.json")).unwrap()).unwrap();
        assert_eq!(raw["version"], 1);
        assert_eq!(raw["containerId"], "c1");
        assert_eq!(raw["phase"], "added");
        assert_eq!(raw["attachments"][0]["state"], "added");
        assert_eq!(raw["attachments"][1]["isDefault"], false);
        // Nothing but the journal is left behind.
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["c1:eth0.json"]);
    }

    #[test]
    fn delegate_lines_come_back_in_order_beside_the_last_step() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let mut j = journal("c1", "eth0");
        s.save(&j).unwrap();
        let d = |pgid, start| DelegateProc { pgid, start };
        s.record_delegate("c1", "eth0", d(100, 7)).unwrap();
        j.mark(
            0,
            AttachmentState::Added,
            Some(json!({"cniVersion": "1.0.0"})),
        )
        .unwrap();
        s.save_progress(&j).unwrap();
        s.record_delegate("c1", "eth0", d(200, 9)).unwrap();
        let back = s.load("c1", "eth0").unwrap().unwrap();
        assert_eq!(back.delegates, [d(100, 7), d(200, 9)]);
        assert_eq!(back.attachments[0].state, AttachmentState::Added);
        assert_eq!(back.attachments[1].state, AttachmentState::Planned);
        // Not part of the plan: the journal file never holds them.
        let plan = fs::read_to_string(t.path().join("c1:eth0.json")).unwrap();
        assert!(!plan.contains("delegate"), "{plan}");
        // A torn delegate line (power loss) is skipped like a torn step.
        let mut progress = fs::read_to_string(t.path().join("c1:eth0.progress")).unwrap();
        progress.push_str("{\"delegate\":{\"pgid\":3");
        fs::write(t.path().join("c1:eth0.progress"), progress).unwrap();
        assert_eq!(
            s.load("c1", "eth0").unwrap().unwrap().delegates,
            [d(100, 7), d(200, 9)]
        );
    }

    #[test]
    fn progress_is_appended_and_the_last_complete_line_wins() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let mut j = journal("c1", "eth0");
        s.save(&j).unwrap();
        j.mark(
            0,
            AttachmentState::Added,
            Some(json!({"cniVersion": "1.0.0", "ips": []})),
        )
        .unwrap();
        s.save_progress(&j).unwrap();
        j.mark(
            1,
            AttachmentState::Added,
            Some(json!({"cniVersion": "0.4.0"})),
        )
        .unwrap();
        j.phase = Phase::Added;
        s.save_progress(&j).unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap().as_ref(), Some(&j));
        // The plan file itself is untouched; the steps are lines of the progress file.
        let plan: Value =
            serde_json::from_slice(&fs::read(t.path().join("c1:eth0.json")).unwrap()).unwrap();
        assert_eq!(plan["phase"], "adding");
        assert_eq!(plan["attachments"][0]["state"], "planned");
        let progress = fs::read_to_string(t.path().join("c1:eth0.progress")).unwrap();
        assert_eq!(progress.lines().count(), 2, "{progress}");
        assert_eq!(mode(&t.path().join("c1:eth0.progress")), 0o600);

        // A line torn by a power loss is skipped: the step before it counts.
        let mut torn = progress.lines().next().unwrap().to_owned();
        torn.push('\n');
        let last = progress.lines().nth(1).unwrap();
        torn.push_str(&last[..last.len() / 2]);
        fs::write(t.path().join("c1:eth0.progress"), torn).unwrap();
        let back = s.load("c1", "eth0").unwrap().unwrap();
        assert_eq!(back.phase, Phase::Adding);
        assert_eq!(back.attachments[0].state, AttachmentState::Added);
        assert_eq!(back.attachments[1].state, AttachmentState::Planned);
        assert_eq!(back.attachments[1].result, None);

        // A new plan starts without the old progress; remove takes both files.
        let fresh = journal("c1", "eth0");
        s.save(&fresh).unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap(), Some(fresh));
        s.save_progress(&j).unwrap();
        s.remove("c1", "eth0").unwrap();
        assert!(!t.path().join("c1:eth0.progress").exists());
        assert_eq!(s.load("c1", "eth0").unwrap(), None);
    }

    #[test]
    fn device_info_file_is_optional_on_disk_both_ways() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let mut j = journal("c1", "eth0");
        s.save(&j).unwrap();
        let raw = fs::read_to_string(t.path().join("c1:eth0.json")).unwrap();
        assert!(
            !raw.contains("deviceInfoFile"),
            "no key without a file: journals stay as older plexus versions wrote them"
        );
        j.attachments[1].device_info_file = Some("/devinfo/cni/ns-sv-c1_net1-device.json".into());
        s.save(&j).unwrap();
        let raw: Value =
            serde_json::from_slice(&fs::read(t.path().join("c1:eth0.json")).unwrap()).unwrap();
        assert_eq!(
            raw["attachments"][1]["deviceInfoFile"],
            "/devinfo/cni/ns-sv-c1_net1-device.json"
        );
        assert_eq!(s.load("c1", "eth0").unwrap(), Some(j));
    }

    #[test]
    fn damaged_journals_are_decode_errors_naming_the_file() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let good = serde_json::to_string(&journal("c1", "eth0")).unwrap();
        let other_version = good.replacen("\"version\":1", "\"version\":2", 1);
        assert_ne!(good, other_version);
        let other_key = serde_json::to_string(&journal("c2", "eth0")).unwrap();
        let cases = [
            ("empty", String::new()),
            ("truncated", good[..good.len() / 2].to_owned()),
            ("not JSON", "hello".to_owned()),
            ("other version", other_version),
            ("no version", "{}".to_owned()),
            (
                "wrong shape",
                r#"{"version":1,"containerId":"c1"}"#.to_owned(),
            ),
            ("other key", other_key),
        ];
        let path = t.path().join("c1:eth0.json");
        for (what, content) in cases {
            fs::write(&path, &content).unwrap();
            let e = s.load("c1", "eth0").unwrap_err();
            eprintln!("{what}: {e}");
            assert_decode_naming(e, &path);
        }
    }

    #[test]
    fn journals_readable_by_others_are_tightened_and_foreign_ones_refused() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let mut j = journal("c1", "eth0");
        s.save(&j).unwrap();
        j.phase = Phase::Added;
        s.save_progress(&j).unwrap();
        let path = t.path().join("c1:eth0.json");
        let progress = t.path().join("c1:eth0.progress");
        for p in [&path, &progress] {
            fs::set_permissions(p, Permissions::from_mode(0o666)).unwrap();
        }
        assert_eq!(s.load("c1", "eth0").unwrap(), Some(j));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&progress), 0o600);
        if current_euid() != 0 {
            eprintln!("SKIPPED: the other-owner part of this test needs root (chown to 65534)");
            return;
        }
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let e = s.load("c1", "eth0").unwrap_err();
        assert_eq!(e.code().0, 5);
        assert!(
            e.msg().contains("owned by uid 65534") && e.msg().contains("c1:eth0.json"),
            "{e}"
        );
    }

    #[test]
    fn crash_leftovers_keep_the_old_journal_and_are_cleaned_by_open() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let old = journal("c1", "eth0");
        s.save(&old).unwrap();
        // A crash mid-save: a half-written temp file next to the old complete journal.
        let mut new = old.clone();
        new.phase = Phase::Added;
        let half = serde_json::to_vec(&new).unwrap();
        let half = &half[..half.len() / 2];
        let dead = dead_pid();
        let dead_tmp = t.path().join(format!(".c1:eth0.json.{dead}-0.tmp"));
        let bare_tmp = t.path().join(".c1:eth0.json.tmp");
        let live_tmp = t.path().join(".c2:eth0.json.1-0.tmp");
        for p in [&dead_tmp, &bare_tmp, &live_tmp] {
            fs::write(p, half).unwrap();
        }
        let s = StateDir::open(t.path()).unwrap();
        assert!(!dead_tmp.exists() && !bare_tmp.exists());
        // pid 1 is alive: its save may be in flight.
        assert!(live_tmp.exists());
        assert_eq!(s.load("c1", "eth0").unwrap(), Some(old));
    }

    /// A pid that no process has any more.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_whole_stale_temp_file_becomes_the_journal_its_key_lacks() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let j = journal("c1", "eth0");
        s.save(&j).unwrap();
        let whole = fs::read(t.path().join("c1:eth0.json")).unwrap();
        // A power loss between the rename and the directory's flush: the temp name is back.
        fs::remove_file(t.path().join("c1:eth0.json")).unwrap();
        let dead = dead_pid();
        let stale = t.path().join(format!(".c1:eth0.json.{dead}-3.tmp"));
        // Whole, but not of its key's name: removed.
        let misnamed = t.path().join(format!(".c2:eth0.json.{dead}-4.tmp"));
        // Whole, but its key has a journal (an older save's temp file): removed.
        let c3 = journal("c3", "eth0");
        s.save(&c3).unwrap();
        let mut newer = c3.clone();
        newer.phase = Phase::Added;
        let older = t.path().join(format!(".c3:eth0.json.{dead}-5.tmp"));
        for (p, bytes) in [
            (&stale, whole.clone()),
            (&misnamed, whole),
            (&older, serde_json::to_vec(&newer).unwrap()),
        ] {
            fs::write(p, bytes).unwrap();
        }
        let s = StateDir::open(t.path()).unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap(), Some(j));
        assert_eq!(s.load("c2", "eth0").unwrap(), None);
        assert_eq!(s.load("c3", "eth0").unwrap(), Some(c3));
        for p in [&stale, &misnamed, &older] {
            assert!(!p.exists(), "{}", p.display());
        }
        assert_eq!(mode(&t.path().join("c1:eth0.json")), 0o600);
    }

    /// The temp files in `dir`.
    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(TMP_SUFFIX))
            .collect()
    }

    fn save_into(s: &StateDir, j: &Journal, into: Reservation) {
        let mut told = 0;
        s.save_notifying(j, into, true, &mut || told += 1).unwrap();
        assert_eq!(told, 1);
    }

    #[test]
    fn a_plan_is_written_into_the_file_made_ahead_for_its_key() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let path = t.path().join("c1:eth0.json");
        let into = s.reserve("c1", "eth0");
        let j = journal("c1", "eth0");
        save_into(&s, &j, into);
        assert_eq!(s.load("c1", "eth0").unwrap(), Some(j.clone()));
        // The reserved file itself, its spaces after the journal: padded to its length.
        assert_eq!(fs::metadata(&path).unwrap().len(), RESERVED_LEN as u64);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(temp_files(t.path()), Vec::<String>::new());

        // A plan longer than the file grows it, whole.
        let mut big = journal("c2", "eth0");
        big.attachments[0]
            .runtime_config
            .insert("padding".into(), Value::String("x".repeat(RESERVED_LEN)));
        save_into(&s, &big, s.reserve("c2", "eth0"));
        assert_eq!(s.load("c2", "eth0").unwrap(), Some(big));
        assert!(fs::metadata(t.path().join("c2:eth0.json")).unwrap().len() > RESERVED_LEN as u64);

        // Made for another key: not used, and removed.
        let j3 = journal("c3", "eth0");
        save_into(&s, &j3, s.reserve("c4", "eth0"));
        assert_eq!(s.load("c3", "eth0").unwrap(), Some(j3));
        assert!(fs::metadata(t.path().join("c3:eth0.json")).unwrap().len() < RESERVED_LEN as u64);
        assert_eq!(temp_files(t.path()), Vec::<String>::new());
    }

    #[test]
    fn a_file_made_ahead_and_never_used_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        // Dropped (ADD failed before its plan): waited for and removed.
        drop(s.reserve("c1", "eth0"));
        assert_eq!(temp_files(t.path()), Vec::<String>::new());
        // Left by a plexus that died before writing its plan: spaces only, never a journal.
        let stale = t.path().join(format!(".c1:eth0.json.{}-0.tmp", dead_pid()));
        fs::write(&stale, [b' '; RESERVED_LEN]).unwrap();
        let s = StateDir::open(t.path()).unwrap();
        assert!(!stale.exists());
        assert_eq!(s.load("c1", "eth0").unwrap(), None);
        // A key that cannot name a file makes none; the save reports it.
        let bad = journal("c/1", "eth0");
        let into = s.reserve("c/1", "eth0");
        assert!(
            s.save_notifying(&bad, into, true, &mut || panic!("told"))
                .is_err()
        );
        assert_eq!(temp_files(t.path()), Vec::<String>::new());
    }

    #[test]
    fn save_notifying_tells_once_with_the_journal_in_place_and_never_on_failure() {
        for early in [false, true] {
            let t = tempfile::tempdir().unwrap();
            let s = StateDir::open(t.path()).unwrap();
            let path = t.path().join("c1:eth0.json");
            let mut told = vec![];
            s.save_notifying(
                &journal("c1", "eth0"),
                Reservation::none(),
                early,
                &mut || told.push(path.exists()),
            )
            .unwrap();
            assert_eq!(told, [true], "early: {early}");
            let mut bad = journal("c2", "eth0");
            bad.version = VERSION + 1;
            let mut told = 0;
            assert!(
                s.save_notifying(&bad, Reservation::none(), early, &mut || told += 1)
                    .is_err(),
                "early: {early}"
            );
            assert_eq!(told, 0, "early: {early}");
        }
    }

    #[test]
    fn only_file_systems_known_to_keep_a_flushed_new_name_are_trusted_with_it() {
        use nix::sys::statfs::{
            BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, FUSE_SUPER_MAGIC, NFS_SUPER_MAGIC,
            OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
        };
        for fs in [
            EXT4_SUPER_MAGIC,
            XFS_SUPER_MAGIC,
            BTRFS_SUPER_MAGIC,
            TMPFS_MAGIC,
        ] {
            assert!(flush_keeps_new_names(fs), "{fs:?}");
        }
        for fs in [NFS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, FUSE_SUPER_MAGIC] {
            assert!(!flush_keeps_new_names(fs), "{fs:?}");
        }
    }

    #[test]
    fn list_ignores_temp_and_lock_files_and_splits_keys_exactly() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        for (c, i) in [("b-1", "net-2"), ("a", "eth0"), ("b", "1-net-2")] {
            s.save(&journal(c, i)).unwrap();
        }
        let _l = s.lock("z", "eth0", Duration::from_millis(200)).unwrap();
        fs::write(t.path().join(".a:eth0.json.1-0.tmp"), "{").unwrap();
        fs::create_dir(t.path().join("lost+found")).unwrap();
        assert_eq!(
            s.list().unwrap(),
            vec![
                ("a".to_owned(), "eth0".to_owned()),
                ("b".to_owned(), "1-net-2".to_owned()),
                ("b-1".to_owned(), "net-2".to_owned()),
            ]
        );
        for (c, i) in s.list().unwrap() {
            assert_eq!(s.load(&c, &i).unwrap().unwrap().container_id, c);
        }
    }

    #[test]
    fn keys_that_cannot_name_a_file_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let long = "x".repeat(MAX_KEY_LEN);
        for (c, i) in [
            ("../x", "eth0"),
            (".hidden", "eth0"),
            ("", "eth0"),
            ("c1", ""),
            ("c1", "a/b"),
            ("c:1", "eth0"),
            ("c1", ".."),
            (long.as_str(), "eth0"),
        ] {
            let e = s.load(c, i).unwrap_err();
            assert_eq!(e.code().0, 4, "{c:?} {i:?}: {e}");
            assert!(s.lock(c, i, Duration::ZERO).is_err());
            let mut j = journal("c1", "eth0");
            j.container_id = c.into();
            j.ifname = i.into();
            assert!(s.save(&j).is_err());
        }
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }

    #[test]
    fn remove_is_idempotent_and_removes_the_lock_file_under_the_lock() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        s.remove("c1", "eth0").unwrap();
        s.save(&journal("c1", "eth0")).unwrap();
        s.save(&journal("c1", "net9")).unwrap();
        let l = s.lock("c1", "eth0", Duration::from_millis(200)).unwrap();
        assert_eq!(l.path(), t.path().join("c1.lock"));
        s.remove("c1", "eth0").unwrap();
        assert!(!t.path().join("c1:eth0.json").exists());
        s.remove("c1", "eth0").unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap(), None);
        // Another interface of the container still has a journal: the lock file stays.
        drop(l);
        assert!(t.path().join("c1.lock").exists());
        let l = s.lock("c1", "net9", Duration::from_millis(200)).unwrap();
        s.remove("c1", "net9").unwrap();
        // Still held: the file is there until the lock is released.
        assert!(l.path().exists());
        drop(l);
        assert!(!t.path().join("c1.lock").exists());
        // A rollback marker keeps it too; a lock taken and released with nothing recorded
        // leaves nothing.
        let l = s.lock("c1", "eth0", Duration::from_millis(200)).unwrap();
        s.mark_rolled_back("c1", "eth0").unwrap();
        drop(l);
        assert!(t.path().join("c1.lock").exists());
        let l = s.lock("c1", "eth0", Duration::from_millis(200)).unwrap();
        assert!(s.take_rolled_back("c1", "eth0").unwrap());
        drop(l);
        drop(s.lock("c2", "eth0", Duration::from_millis(200)).unwrap());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }

    #[test]
    fn second_lock_times_out_within_its_bound_and_succeeds_after_release() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let first = s.lock("c1", "eth0", Duration::from_millis(200)).unwrap();
        // Another container is independent.
        drop(s.lock("c2", "eth0", Duration::ZERO).unwrap());
        let s2 = StateDir::open(t.path()).unwrap();
        let (elapsed, err) = std::thread::spawn(move || {
            let start = Instant::now();
            // Another interface of the same container waits too.
            let r = s2.lock("c1", "net1", Duration::from_millis(200));
            (start.elapsed(), r.unwrap_err())
        })
        .join()
        .unwrap();
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
        assert_eq!(err.code().0, 5);
        assert!(
            err.msg().contains("another plexus process holds the lock"),
            "{err}"
        );
        assert!(
            err.msg().contains("container c1 (asked for interface net1"),
            "{err}"
        );
        drop(first);
        let s3 = s.clone();
        std::thread::spawn(move || s3.lock("c1", "eth0", Duration::from_millis(200)).unwrap())
            .join()
            .unwrap();
    }

    #[test]
    fn waiter_gets_the_lock_when_released_even_after_the_file_was_removed() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(t.path()).unwrap();
        let first = s.lock("c1", "eth0", Duration::from_millis(200)).unwrap();
        let s2 = StateDir::open(t.path()).unwrap();
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            let l = s2.lock("c1", "eth0", Duration::from_secs(2)).unwrap();
            // The waiter holds the file the path names, not the unlinked one.
            assert!(l.path().exists());
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        s.remove("c1", "eth0").unwrap();
        drop(first);
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_millis(1500), "{waited:?}");
    }

    #[test]
    fn pending_teardown_is_started_and_added_last_first() {
        let mut j = journal("c1", "eth0");
        let a = j.attachments[0].clone();
        j.attachments.extend([a.clone(), a.clone(), a]);
        j.mark(0, AttachmentState::Added, Some(json!({"r": 0})))
            .unwrap();
        j.mark(2, AttachmentState::Started, None).unwrap();
        j.mark(3, AttachmentState::Deleted, None).unwrap();
        j.mark(4, AttachmentState::Added, None).unwrap();
        let order: Vec<usize> = j.pending_teardown().map(|(i, _)| i).collect();
        assert_eq!(order, vec![4, 2, 0]);
        // A None result keeps the stored one; out of range is an error, not a panic.
        j.mark(0, AttachmentState::Deleted, None).unwrap();
        assert_eq!(j.attachments[0].result, Some(json!({"r": 0})));
        assert!(j.mark(9, AttachmentState::Added, None).is_err());
    }
}
