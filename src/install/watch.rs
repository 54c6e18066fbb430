//! Waking the installer when something it depends on may have changed.
//!
//! The installer's state is a pure function of a few files (the CNI config directory, the
//! service-account volume), and a reconcile step is cheap and idempotent, so the watcher does
//! not need to say *what* changed, only *that* something may have: [`Watcher::wait`] returns
//! after an inotify event in a watched directory, after the poll interval at the latest, or
//! when SIGTERM/SIGINT arrives.
//!
//! - **inotify** (through `nix`) watches each directory for entries created, deleted,
//!   renamed, written or changed in mode. The kubelet replaces a projected service-account
//!   token by renaming a `..data` symlink in the volume's directory, which is such an event.
//! - **The poll interval** (`--poll-interval`, default 10 s) bounds what inotify cannot see:
//!   a default config that is a symlink to a file elsewhere, an event queue overflow, a
//!   directory that was replaced, or inotify being unavailable (the watcher then only polls,
//!   with a warning).
//! - **Bursts**: after the first event the watcher keeps draining events until the
//!   directories have been quiet for [`SETTLE`] (at most [`SETTLE_MAX`]), so a tool that
//!   writes a file in several steps is read once, after its last step. A file read in the
//!   middle of a non-atomic write is refused like any malformed config, the old plexus config
//!   stays, and the write's last event triggers another step.
//! - **Signals** arrive through a `signalfd`: the caller blocks SIGTERM and SIGINT before
//!   creating the watcher ([`Signals::block`]), so a signal can only end a wait, never
//!   interrupt a write half-way. The container runtime's SIGTERM therefore ends the
//!   installer between two steps, and it exits 0.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Quiet time that ends a burst of events.
pub const SETTLE: Duration = Duration::from_millis(100);
/// Longest a burst may delay a reconcile step.
pub const SETTLE_MAX: Duration = Duration::from_secs(2);

/// Why [`Watcher::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A watched directory changed.
    Changed,
    /// The poll interval passed.
    Timeout,
    /// SIGTERM or SIGINT arrived: stop.
    Signal(Signal),
}

/// SIGTERM and SIGINT, blocked and readable as a file descriptor.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks SIGTERM and SIGINT for the calling thread (call it before starting any other
    /// thread, so that they inherit the mask) and opens a signalfd for them.
    pub fn block() -> nix::Result<Signals> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        set.thread_block()?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Signals { fd })
    }

    fn take(&self) -> Option<Signal> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }
}

/// Waits for changes in a few directories (see the module docs).
pub struct Watcher {
    dirs: Vec<PathBuf>,
    inotify: Option<Inotify>,
    interval: Duration,
    signals: Option<Signals>,
    /// Set when the watches may be stale (overflow, a watched directory went away).
    rewatch: bool,
}

fn watch_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

impl Watcher {
    /// Watches `dirs` (missing ones are polled until they exist), polls at least every
    /// `interval`, and ends waits on the `signals` if given.
    pub fn new(dirs: &[&Path], interval: Duration, signals: Option<Signals>) -> Watcher {
        let mut w = Watcher {
            dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
            inotify: None,
            interval,
            signals,
            rewatch: false,
        };
        w.setup();
        w
    }

    /// (Re)creates the inotify instance and its watches; on failure the watcher polls.
    fn setup(&mut self) {
        self.rewatch = false;
        self.inotify = None;
        let inotify = match Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, interval = ?self.interval, "inotify unavailable; polling only");
                return;
            }
        };
        for dir in &self.dirs {
            if let Err(e) = inotify.add_watch(dir.as_path(), watch_flags()) {
                // A directory that does not exist yet is found by polling; watch it later.
                tracing::debug!(dir = %dir.display(), error = %e, "not watched; polling it");
                self.rewatch = true;
            }
        }
        self.inotify = Some(inotify);
    }

    /// Whether inotify is in use (else the watcher only polls).
    pub fn uses_inotify(&self) -> bool {
        self.inotify.is_some()
    }

    /// Waits for a change, the poll interval, or a signal (see [`Wake`]).
    pub fn wait(&mut self) -> Wake {
        if self.rewatch {
            self.setup();
        }
        let deadline = Instant::now() + self.interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::Timeout;
            }
            match self.poll_once(left) {
                Polled::Signal(s) => return Wake::Signal(s),
                Polled::Events => return self.settle(),
                Polled::Nothing => {}
            }
        }
    }

    /// Drains events until the directories are quiet for [`SETTLE`] (or [`SETTLE_MAX`]).
    fn settle(&mut self) -> Wake {
        let until = Instant::now() + SETTLE_MAX;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::Changed;
            }
            match self.poll_once(SETTLE.min(left)) {
                Polled::Signal(s) => return Wake::Signal(s),
                Polled::Events => {}
                Polled::Nothing => return Wake::Changed,
            }
        }
    }

    /// One `poll(2)` on the inotify fd and the signalfd.
    fn poll_once(&mut self, timeout: Duration) -> Polled {
        let ms = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = Vec::with_capacity(2);
        if let Some(s) = &self.signals {
            fds.push(PollFd::new(s.fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(i) = &self.inotify {
            fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
        }
        let ready = match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => n > 0,
            Err(nix::errno::Errno::EINTR) => false,
            Err(e) => {
                tracing::warn!(error = %e, "poll failed; polling only");
                drop(fds);
                self.inotify = None;
                return Polled::Nothing;
            }
        };
        drop(fds);
        if !ready {
            return Polled::Nothing;
        }
        if let Some(s) = self.signals.as_ref().and_then(Signals::take) {
            return Polled::Signal(s);
        }
        let Some(inotify) = &self.inotify else {
            return Polled::Nothing;
        };
        match inotify.read_events() {
            Ok(events) if events.is_empty() => Polled::Nothing,
            Ok(events) => {
                if events.iter().any(|e| {
                    e.mask.intersects(
                        AddWatchFlags::IN_Q_OVERFLOW
                            | AddWatchFlags::IN_IGNORED
                            | AddWatchFlags::IN_DELETE_SELF
                            | AddWatchFlags::IN_MOVE_SELF,
                    )
                }) {
                    self.rewatch = true;
                }
                Polled::Events
            }
            Err(nix::errno::Errno::EAGAIN) => Polled::Nothing,
            Err(e) => {
                tracing::warn!(error = %e, "reading inotify events failed; watching again");
                self.rewatch = true;
                Polled::Events
            }
        }
    }
}

enum Polled {
    Nothing,
    Events,
    Signal(Signal),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_change_wakes_and_quiet_times_out() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Watcher::new(&[d.path()], Duration::from_millis(50), None);
        assert!(w.uses_inotify());
        assert_eq!(w.wait(), Wake::Timeout);
        // The events are queued before the wait starts: no race, no sleep.
        fs::write(d.path().join("10-a.conf"), "{}").unwrap();
        fs::write(d.path().join("10-b.conf"), "{}").unwrap();
        assert_eq!(w.wait(), Wake::Changed);
        // The burst was drained in one wake.
        assert_eq!(w.wait(), Wake::Timeout);
    }

    #[test]
    fn renames_and_removals_wake() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(".tmp"), "{}").unwrap();
        let mut w = Watcher::new(&[d.path()], Duration::from_secs(30), None);
        fs::rename(d.path().join(".tmp"), d.path().join("10-a.conf")).unwrap();
        assert_eq!(w.wait(), Wake::Changed);
        fs::remove_file(d.path().join("10-a.conf")).unwrap();
        assert_eq!(w.wait(), Wake::Changed);
    }

    #[test]
    fn a_missing_directory_is_polled_then_watched() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("later");
        let mut w = Watcher::new(&[sub.as_path()], Duration::from_millis(20), None);
        assert_eq!(w.wait(), Wake::Timeout);
        fs::create_dir(&sub).unwrap();
        assert_eq!(w.wait(), Wake::Timeout); // re-watched now
        fs::write(sub.join("x.conf"), "{}").unwrap();
        assert_eq!(w.wait(), Wake::Changed);
    }
}
