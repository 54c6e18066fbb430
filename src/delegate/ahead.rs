//! Starting the next plugin while the current one runs.
//!
//! Most of what a short plugin run costs is the start of its process: exec, dynamic loading,
//! a Go runtime's start-up. Plugins run one after the other, but their processes need not be
//! *started* one after the other: [`Ahead`] starts the first expected plugins as soon as it is
//! told them ([`Exec::expect`]), and the next one each time a plugin has its config, so that
//! their start-ups overlap plexus's own work and the current plugin's, and hands each its own
//! config when its turn comes.
//!
//! Why this is safe: a CNI plugin does nothing before it has read its config from stdin (the
//! config is the only input that says what to do; the environment only says where). A plugin
//! started ahead sits blocked on that read. Its run is the same as if it had been started at
//! its turn; the order of everything the plugins do is unchanged. One that is not run after
//! all (an earlier plugin failed, ADD rolls back, a run asks for another process) is killed
//! with its process group and reaped before anything else happens, having read nothing; if
//! plexus itself dies, the plugin reads an empty config when the pipe closes and fails
//! without doing anything. At most two plugins (`DEPTH`) are started ahead.
//!
//! The match is exact: the run's [`Launch`] (binary and environment) must equal the expected
//! one; anything else is run with a process of its own.
//!
//! When: [`StartAhead`], from the node config. By default only while the node has a CPU to
//! spare ([`StartAhead::WhenIdle`]: few runnable tasks, see `cpu_to_spare`). A start-up
//! overlapped with the current plugin's work is time a pod saves when a CPU would otherwise
//! idle; on a node busy with a burst of pods it saves nothing, and the extra runnable
//! processes slow the plugins doing work (bursts were slower with it always on:
//! docs/benchmarks.md).

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::process::Child;

use super::exec::{Exec, ExecRequest, Gate, Launch, Output, ProcessExec, StartAhead, discard};
use crate::cni::DelegateFailure;

/// How many plugins are started ahead at most. Two: on ADD the first two plugins start up while
/// the plan is fsynced; machines with more cores than two gain from the second.
const DEPTH: usize = 2;

/// An [`Exec`] that runs real processes ([`ProcessExec`]) and starts the next expected one
/// ahead of its run (see the module docs).
pub struct Ahead {
    inner: ProcessExec,
    state: RefCell<State>,
    /// As the last [`Exec::expect`] asked.
    when: Cell<StartAhead>,
    /// The CPUs plexus may run on, read on first use.
    cpus: OnceCell<usize>,
}

#[derive(Default)]
struct State {
    /// The launches of the coming runs, the next first.
    upcoming: VecDeque<Launch>,
    /// The plugins started ahead: those of `upcoming`'s first runs, in the same order.
    started: VecDeque<Child>,
}

impl Ahead {
    pub fn new(inner: ProcessExec) -> Self {
        Ahead {
            inner,
            state: RefCell::new(State::default()),
            when: Cell::new(StartAhead::Never),
            cpus: OnceCell::new(),
        }
    }

    /// Starts the next expected plugins, up to `DEPTH` started ahead, as `when` allows.
    fn start_next(&self) {
        let allowed = match self.when.get() {
            StartAhead::Never => false,
            StartAhead::Always => true,
            StartAhead::WhenIdle => {
                let cpus = *self.cpus.get_or_init(cpus);
                let spare = cpu_to_spare(runnable_now(), cpus);
                if !spare {
                    tracing::debug!(cpus, "no CPU to spare: not starting plugins ahead");
                }
                spare
            }
        };
        if !allowed {
            return;
        }
        let mut s = self.state.borrow_mut();
        while s.started.len() < DEPTH.min(s.upcoming.len()) {
            let next = &s.upcoming[s.started.len()];
            match self.inner.spawn_ahead(next) {
                Ok(child) => s.started.push_back(child),
                // Its run starts it again and reports what goes wrong.
                Err(f) => {
                    tracing::debug!(error = ?f, "starting the next plugin ahead failed");
                    return;
                }
            }
        }
    }

    /// The plugin started ahead for `req`, if it is the one; the expected runs up to and
    /// including `req` are dropped, and the plugins started for those before it discarded.
    fn take_for(&self, req: &ExecRequest<'_>) -> Option<Child> {
        let mut s = self.state.borrow_mut();
        let Some(at) = s.upcoming.iter().position(|l| *l == req.launch) else {
            s.upcoming.clear();
            s.started.drain(..).for_each(discard);
            return None;
        };
        s.upcoming.drain(..at);
        s.upcoming.pop_front();
        let skipped = at.min(s.started.len());
        s.started.drain(..skipped).for_each(discard);
        if skipped == at {
            s.started.pop_front()
        } else {
            None
        }
    }
}

impl Exec for Ahead {
    fn run(&self, req: &ExecRequest<'_>) -> Result<Output, DelegateFailure> {
        self.run_gated(req, &mut |_| Ok(()))
    }

    fn run_gated(
        &self,
        req: &ExecRequest<'_>,
        gate: &mut Gate<'_>,
    ) -> Result<Output, DelegateFailure> {
        let child = match self.take_for(req) {
            Some(child) => child,
            None => self.inner.spawn(req)?,
        };
        self.inner
            .finish(child, req, gate, &mut || self.start_next())
    }

    /// Replaces the expected runs and starts the first of them now, so that a caller can
    /// give it a head start over work of its own.
    fn expect(&self, upcoming: Vec<Launch>, when: StartAhead) {
        self.when.set(when);
        {
            let mut s = self.state.borrow_mut();
            let same = s
                .upcoming
                .iter()
                .zip(&upcoming)
                .take_while(|(a, b)| a == b)
                .count();
            if s.started.len() > same {
                s.started.drain(same..).for_each(discard);
            }
            s.upcoming = upcoming.into();
        }
        self.start_next();
    }
}

/// The CPUs this process may run on (its affinity mask), at least 1.
fn cpus() -> usize {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).map_or(1, |set| {
        (0..nix::sched::CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .count()
            .max(1)
    })
}

/// Whether a CPU is free for a start-up ahead: the kernel's count of runnable tasks right now
/// (plexus's own thread included, which is about to wait for the current plugin) is at most
/// `cpus` + 1. When it cannot be read, yes.
fn cpu_to_spare(runnable: Option<usize>, cpus: usize) -> bool {
    runnable.is_none_or(|r| r <= cpus + 1)
}

/// The runnable tasks right now, from `/proc/loadavg`.
fn runnable_now() -> Option<usize> {
    runnable(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// The runnable tasks of a `/proc/loadavg` line (`0.50 0.40 0.30 3/812 4242` → 3).
fn runnable(loadavg: &str) -> Option<usize> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.state.get_mut().started.drain(..).for_each(discard);
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::*;
    use crate::delegate::Termination;

    const T: Duration = Duration::from_secs(10);

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn request<'a>(p: &'a Path, tag: &str, stdin: &'a [u8]) -> ExecRequest<'a> {
        ExecRequest {
            launch: Launch {
                path: p.to_path_buf(),
                env: vec![("PLEXUS_T", tag.into())],
                env_remove: vec![],
            },
            stdin,
            timeout: T,
        }
    }

    /// A plugin that records its pid when it starts and copies its config to `<name>.seen`.
    fn recorder(dir: &Path, name: &str) -> PathBuf {
        let (started, seen) = (
            dir.join(format!("{name}.pid")),
            dir.join(format!("{name}.seen")),
        );
        // `exec`: the shell becomes the reader, with the pid it recorded.
        script(
            dir,
            name,
            &format!(
                "echo $$ > {}.tmp && mv {0}.tmp {0}; exec cat > {}",
                started.display(),
                seen.display()
            ),
        )
    }

    /// A directory with the [`recorder`] `b` in it, and a runner.
    fn recorder_and_runner() -> (tempfile::TempDir, PathBuf, Ahead) {
        let d = tempfile::tempdir().unwrap();
        let b = recorder(d.path(), "b");
        (d, b, Ahead::new(ProcessExec::default()))
    }

    fn pid_of(dir: &Path, name: &str) -> Option<i32> {
        std::fs::read_to_string(dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    #[test]
    fn the_next_plugin_starts_while_the_current_one_runs_and_gets_its_own_config() {
        let d = tempfile::tempdir().unwrap();
        let b = recorder(d.path(), "b");
        // `a` only finishes once `b` has started: bounded at 5 s, then it says it did not see it.
        let a = script(
            d.path(),
            "a",
            &format!(
                "cat >/dev/null; i=0; while [ ! -s {} ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; \
                 if [ -s {0} ]; then echo saw-b; else echo no-b; fi",
                d.path().join("b.pid").display()
            ),
        );
        let ahead = Ahead::new(ProcessExec::default());
        let (ra, rb) = (
            request(&a, "1", b"{\"a\":1}"),
            request(&b, "2", b"{\"b\":2}"),
        );
        ahead.expect(
            vec![ra.launch.clone(), rb.launch.clone()],
            StartAhead::Always,
        );
        let out = ahead.run(&ra).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "saw-b");
        let early = pid_of(d.path(), "b").expect("b started during a's run");
        assert_eq!(seen(d.path(), "b"), b"", "b has no config before its run");
        let out = ahead.run(&rb).unwrap();
        assert_eq!(out.termination, Termination::Exited(0));
        assert_eq!(
            pid_of(d.path(), "b"),
            Some(early),
            "b's run used that process"
        );
        assert_eq!(seen(d.path(), "b"), b"{\"b\":2}");
    }

    #[test]
    fn a_plugin_started_ahead_and_not_run_is_killed_without_its_config() {
        let d = tempfile::tempdir().unwrap();
        let a = script(d.path(), "a", "cat");
        let b = recorder(d.path(), "b");
        let ahead = Ahead::new(ProcessExec::default());
        let (ra, rb) = (request(&a, "1", b"{}"), request(&b, "2", b"{\"b\":2}"));
        ahead.expect(
            vec![ra.launch.clone(), rb.launch.clone()],
            StartAhead::Always,
        );
        ahead.run(&ra).unwrap();
        let pid = wait_for_pid(d.path(), "b");
        // A rollback expects other runs: b is not one of them.
        ahead.expect(vec![], StartAhead::Always);
        assert!(!plexus_conformance::plugins::process_alive(pid));
        assert_eq!(seen(d.path(), "b"), b"");
    }

    #[test]
    fn a_run_unlike_the_expected_one_gets_a_process_of_its_own() {
        let (d, b, ahead) = recorder_and_runner();
        ahead.expect(
            vec![request(&b, "expected", b"").launch],
            StartAhead::Always,
        );
        let first = wait_for_pid(d.path(), "b");
        // Same binary, another environment: not the process started ahead.
        let out = ahead.run(&request(&b, "other", b"{\"x\":1}")).unwrap();
        assert_eq!(out.termination, Termination::Exited(0));
        assert!(!plexus_conformance::plugins::process_alive(first));
        assert_ne!(pid_of(d.path(), "b"), Some(first));
        assert_eq!(seen(d.path(), "b"), b"{\"x\":1}");
    }

    #[test]
    fn at_most_depth_plugins_are_started_ahead() {
        let (_d, b, ahead) = recorder_and_runner();
        let launches: Vec<Launch> = (0..DEPTH + 2)
            .map(|i| request(&b, &i.to_string(), b"").launch)
            .collect();
        ahead.expect(launches.clone(), StartAhead::Always);
        assert_eq!(ahead.state.borrow().started.len(), DEPTH);
        // Expecting the same runs again keeps them; a shorter list keeps its share.
        ahead.expect(launches[..1].to_vec(), StartAhead::Always);
        assert_eq!(ahead.state.borrow().started.len(), 1);
    }

    #[test]
    fn never_starts_nothing_ahead_and_the_runs_still_run() {
        let (d, b, ahead) = recorder_and_runner();
        let rb = request(&b, "1", b"{\"b\":1}");
        ahead.expect(vec![rb.launch.clone()], StartAhead::Never);
        assert!(ahead.state.borrow().started.is_empty());
        assert_eq!(ahead.run(&rb).unwrap().termination, Termination::Exited(0));
        assert_eq!(seen(d.path(), "b"), b"{\"b\":1}");
    }

    #[test]
    fn runnable_tasks_are_read_from_loadavg_and_decide_when_idle() {
        assert_eq!(runnable("0.50 0.40 0.30 3/812 4242\n"), Some(3));
        assert_eq!(runnable("11.95 7.54 5.15 12/82 21841"), Some(12));
        assert_eq!(runnable("garbage"), None);
        assert!(cpus() >= 1);
        assert!(cpu_to_spare(Some(3), 2));
        assert!(!cpu_to_spare(Some(4), 2));
        assert!(cpu_to_spare(None, 2));
    }

    #[test]
    fn dropping_it_kills_the_plugin_started_ahead() {
        let (d, b, ahead) = recorder_and_runner();
        ahead.expect(vec![request(&b, "1", b"").launch], StartAhead::Always);
        let pid = wait_for_pid(d.path(), "b");
        drop(ahead);
        assert!(!plexus_conformance::plugins::process_alive(pid));
        assert_eq!(seen(d.path(), "b"), b"");
    }

    /// The config plugin `name` read (nothing when it did not get to open its file).
    fn seen(dir: &Path, name: &str) -> Vec<u8> {
        std::fs::read(dir.join(format!("{name}.seen"))).unwrap_or_default()
    }

    /// The pid plugin `name` recorded at its start, once it is there (bounded: 5 s).
    fn wait_for_pid(dir: &Path, name: &str) -> i32 {
        let mut pid = None;
        plexus_conformance::wait_until("the plugin started ahead", Duration::from_secs(5), || {
            pid = pid_of(dir, name);
            pid.is_some()
        });
        pid.unwrap_or_default()
    }
}
