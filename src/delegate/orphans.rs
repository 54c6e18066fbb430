//! Delegates that outlived the plexus that started them, and stopping them.
//!
//! A plexus killed by SIGKILL (the runtime's timeout, the OOM killer) in the middle of a
//! delegate's ADD leaves that delegate running: nothing ties a child to its parent's life. If
//! the runtime's DEL then tears the journal down and the orphan finishes its ADD afterwards,
//! an interface and an IP lease exist that no journal records. So ADD records each delegate's
//! process group before giving it its config ([`DelegateProc`], kept in the journal's progress
//! file by [`crate::state`]), and teardown of an ADD that did not finish ([`stop`], from
//! [`crate::txn::teardown`]) kills whatever is left of those groups, and waits until it is
//! gone, before it runs a single DEL. A delegate's group holds the delegate and what it runs
//! (its IPAM plugin), which keeps the group unless it asks for one of its own.
//!
//! Identity: a process group is named by its leader's pid, and pids are reused. The record
//! therefore keeps the leader's start time (`/proc/<pid>/stat`, clock ticks since boot), and a
//! process counts as part of the recorded group only if it is in a group of that number, is
//! not a zombie, and started no earlier than the leader; while the leader itself lives, its
//! start time must match exactly, otherwise the number belongs to another group now and
//! nothing is touched. (The kernel keeps a group's number from being reused while any member
//! lives, so after the leader exited the number still names the same group.) Each process is
//! signalled through a pidfd opened before its identity is checked again, so a pid reused in
//! between is never hit.
//!
//! Why not `PR_SET_PDEATHSIG`: it fires when the *thread* that forked the child exits, reaches
//! only the direct child (not the IPAM plugin it runs), and setting it means forking without
//! `posix_spawn`'s fast path for every delegate of every pod.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::killpg;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A delegate's process group, as ADD recorded it before giving the delegate its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegateProc {
    /// The process group (the delegate's pid).
    pub pgid: u32,
    /// The delegate's start time, in clock ticks since boot (`/proc/<pid>/stat`).
    pub start: u64,
}

/// How long [`stop`] waits for the killed processes to be gone; those still there after it
/// (stuck in the kernel) make teardown fail, to be retried.
pub const STOP_BOUND: Duration = Duration::from_secs(5);

/// Between two looks at whether the killed processes are gone.
const POLL: Duration = Duration::from_millis(5);

/// The record of the running process `pid`.
pub fn identify(pid: u32) -> Result<DelegateProc, String> {
    let stat = read_stat(pid).ok_or_else(|| format!("cannot read /proc/{pid}/stat"))?;
    Ok(DelegateProc {
        pgid: pid,
        start: stat.start,
    })
}

/// Kills every process left of the recorded groups and waits (at most `bound`) until they
/// are gone. `Err` names what is still there.
pub fn stop(procs: &[DelegateProc], bound: Duration) -> Result<(), String> {
    // The usual case, after a crash long ago or an ADD that ended well: every group is empty.
    let maybe: Vec<DelegateProc> = procs
        .iter()
        .copied()
        .filter(|p| group_exists(p.pgid))
        .collect();
    if maybe.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + bound;
    loop {
        let left = members(&maybe);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "delegate processes of an earlier ADD are still running after SIGKILL and \
                 {:.1}s (pids {left:?}); tearing down now could race them",
                bound.as_secs_f64()
            ));
        }
        for (pid, rec) in &left {
            tracing::warn!(
                pid,
                pgid = rec.pgid,
                "killing a delegate process left running by an ADD that did not finish"
            );
            kill_if_member(*pid, rec);
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Whether a process group of that number exists (zombies included).
fn group_exists(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    pgid > 1 && !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}

/// What plexus reads of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    pgrp: u32,
    start: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a `/proc/<pid>/stat` line; the command name may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(line: &str) -> Option<Stat> {
    let (_, rest) = line.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Whether the process `pid` with `stat` belongs to the recorded group (see the module docs).
fn belongs(pid: u32, stat: &Stat, rec: &DelegateProc) -> bool {
    stat.pgrp == rec.pgid
        && stat.state != 'Z'
        && stat.start >= rec.start
        && (pid != rec.pgid || stat.start == rec.start)
}

/// The live processes of the recorded groups, with the record each belongs to. A group whose
/// number now has another leader is not ours: none of its processes is listed.
fn members(recs: &[DelegateProc]) -> Vec<(u32, DelegateProc)> {
    let reused: Vec<u32> = recs
        .iter()
        .filter(|r| read_stat(r.pgid).is_some_and(|s| s.start != r.start))
        .map(|r| r.pgid)
        .collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(stat) = read_stat(pid) else { continue };
        if let Some(rec) = recs
            .iter()
            .find(|r| !reused.contains(&r.pgid) && belongs(pid, &stat, r))
        {
            found.push((pid, *rec));
        }
    }
    found
}

/// SIGKILL to `pid` through a pidfd, once its identity is checked again through that pidfd's
/// process.
fn kill_if_member(pid: u32, rec: &DelegateProc) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return; // gone already
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !read_stat(pid).is_some_and(|s| belongs(pid, &s, rec)) {
        return;
    }
    // SAFETY: pidfd_send_signal takes the pidfd, a signal number, a null siginfo and flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    #[test]
    fn stat_lines_parse_from_the_last_parenthesis() {
        let line = "4242 (a) b) (c) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 50 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                pgrp: 4240,
                start: 987654
            })
        );
        assert_eq!(parse_stat("4242 (x"), None);
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }

    #[test]
    fn membership_needs_the_group_a_later_start_and_the_leaders_own_start() {
        let rec = DelegateProc {
            pgid: 100,
            start: 5000,
        };
        let st = |state, pgrp, start| Stat { state, pgrp, start };
        assert!(belongs(100, &st('S', 100, 5000), &rec));
        assert!(belongs(101, &st('R', 100, 5001), &rec));
        assert!(!belongs(100, &st('S', 100, 5001), &rec), "a new leader");
        assert!(
            !belongs(101, &st('S', 100, 4999), &rec),
            "older than the record"
        );
        assert!(!belongs(101, &st('Z', 100, 5001), &rec), "a zombie");
        assert!(!belongs(101, &st('S', 101, 5001), &rec), "another group");
    }

    /// A shell in its own group that starts a `sleep` child: the delegate and its IPAM plugin.
    fn orphan_pair() -> (std::process::Child, u32) {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("child");
        let sh = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("sleep 600 & echo $! > {}; wait", pidfile.display()))
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = 0;
        plexus_conformance::wait_until("the child to start", Duration::from_secs(5), || {
            child = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            child > 0
        });
        (sh, child)
    }

    #[test]
    fn stop_kills_the_recorded_group_and_waits_for_it() {
        let (mut sh, child) = orphan_pair();
        let rec = identify(sh.id()).unwrap();
        assert_eq!(rec.pgid, sh.id());
        stop(&[rec], STOP_BOUND).unwrap();
        // The leader is our child here: reaped now, after it was killed.
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&sh.wait().unwrap()),
            Some(9)
        );
        assert!(!plexus_conformance::plugins::process_alive(child as i32));
        // Nothing left: the second call finds no group.
        stop(&[rec], STOP_BOUND).unwrap();
    }

    #[test]
    fn a_group_whose_number_has_another_leader_is_left_alone() {
        let (mut sh, child) = orphan_pair();
        let mut rec = identify(sh.id()).unwrap();
        rec.start -= 1; // the recorded leader started earlier: this is another process
        stop(&[rec], STOP_BOUND).unwrap();
        assert!(plexus_conformance::plugins::process_alive(child as i32));
        assert_eq!(sh.try_wait().unwrap(), None);
        killpg(Pid::from_raw(sh.id() as i32), Signal::SIGKILL).unwrap();
        sh.wait().unwrap();
    }
}
