//! Running one plugin process: environment, stdin, stdout, stderr, timeout, process group.
//!
//! This is the seam between plexus and the processes it runs: [`Exec`] is a trait, the real
//! implementation is [`Ahead`](super::ahead::Ahead) over the process mechanics of
//! [`ProcessExec`] here, and unit tests of the chain logic use a fake.
//!
//! How a run goes (`ProcessExec::spawn`, then `ProcessExec::finish`):
//! - The plugin is spawned directly (never through a shell) in a new process group of its own,
//!   with plexus's environment plus the CNI variables of the request, the config bytes on
//!   stdin, and stdout/stderr piped.
//! - A spawn failing with "text file busy" (ETXTBSY: the binary is being written, e.g. by an
//!   installer) is retried a bounded number of times with a short backoff.
//! - One poll loop writes stdin, reads stdout and stderr to the end and watches the process
//!   (through a pidfd), all against one deadline. At the deadline the whole process group is
//!   killed with SIGKILL and the child reaped: nothing the plugin started in its group
//!   survives. If the plugin exits while something it started still holds its stdout or
//!   stderr open, plexus waits a short grace period for those pipes, then kills the group.
//! - [`interpret`] turns exit status + stdout into a result, nothing, or a
//!   [`DelegateFailure`].
//! - [`Exec::run_gated`] puts a step of plexus's own between the spawn and the config: the
//!   plugin starts up (exec, dynamic loading, its runtime) while plexus finishes that step,
//!   and is given its config, the only input that tells it what to do, once the step
//!   succeeded. A plugin whose gate fails has read nothing; it is killed with its group and
//!   reaped. ADD uses this to fsync its plan while the first delegate starts
//!   ([`FirstGated`], `txn::add`).
//! - [`Exec::expect`] tells the seam which processes the coming runs start ([`Launch`]), so
//!   that [`Ahead`](super::ahead::Ahead) can start the next plugin while the current one runs.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;

use crate::cni::{Code, DelegateFailure};

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    /// The process to start.
    pub launch: Launch,
    /// The config bytes for stdin.
    pub stdin: &'a [u8],
    /// The deadline for the whole run.
    pub timeout: Duration,
}

/// The process a run starts: everything about it but the config and the deadline.
///
/// A plugin started from a launch does nothing until it is given its config (its stdin), the
/// only input that tells it what to do: until then it is in the same state as a plugin just
/// started for any request with this launch, which is what lets one be started ahead of its
/// run ([`Exec::expect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The plugin binary (already found by [`super::find`]).
    pub path: PathBuf,
    /// Variables set for the plugin on top of plexus's own environment.
    pub env: Vec<(&'static str, String)>,
    /// Variables removed from the inherited environment (e.g. `CNI_NETNS` on a DEL without one).
    pub env_remove: Vec<&'static str>,
}

/// When expected plugins are started ahead of their runs (node config `startDelegatesAhead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAhead {
    /// Each plugin is started at its turn (`false`).
    Never,
    /// Only while the node has a CPU to spare (the default, `"auto"`): a start-up overlapped
    /// with the current plugin's work is time saved when a CPU would otherwise idle, but on a
    /// node busy starting many pods it only adds runnable processes that compete with the
    /// plugins doing work (bursts of pods got slower: docs/benchmarks.md).
    WhenIdle,
    /// Always (`true`).
    Always,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (not by plexus).
    Signaled(i32),
    /// Killed by plexus at the deadline.
    TimedOut,
}

/// What a plugin run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub termination: Termination,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The seam: runs one plugin process.
pub trait Exec {
    /// Runs the request to completion (or to its deadline). Errors are failures to start or
    /// to talk to the process; how it ended is in [`Output::termination`].
    fn run(&self, req: &ExecRequest<'_>) -> Result<Output, DelegateFailure>;

    /// [`run`](Exec::run) with `gate` called after the plugin is started and before it is
    /// given its config (see the module docs), with the plugin's process group (its pid).
    /// When the gate fails, the plugin has been given nothing and is gone when this returns
    /// the gate's failure. The default, for seams that do not start processes, runs the gate
    /// first, with 0 for "no process".
    fn run_gated(
        &self,
        req: &ExecRequest<'_>,
        gate: &mut Gate<'_>,
    ) -> Result<Output, DelegateFailure> {
        gate(0)?;
        self.run(req)
    }

    /// Tells the seam which processes the coming runs start, in order, replacing what it was
    /// told before. A seam that starts processes may start the next ones while the current
    /// one runs, as `when` allows ([`Ahead`](super::ahead::Ahead)); a run that is not the next
    /// expected one runs as usual. The default ignores it.
    fn expect(&self, upcoming: Vec<Launch>, when: StartAhead) {
        let _ = (upcoming, when);
    }
}

/// A step run between a plugin's start and its config ([`Exec::run_gated`]), given the
/// plugin's process group.
pub type Gate<'a> = dyn FnMut(u32) -> Result<(), DelegateFailure> + 'a;

/// An [`Exec`] whose first run goes through [`Exec::run_gated`] with a gate, and every later
/// run through `inner` as is.
pub struct FirstGated<'a, G> {
    inner: &'a dyn Exec,
    gate: RefCell<Option<G>>,
}

impl<'a, G: FnMut(u32) -> Result<(), DelegateFailure>> FirstGated<'a, G> {
    pub fn new(inner: &'a dyn Exec, gate: G) -> Self {
        FirstGated {
            inner,
            gate: RefCell::new(Some(gate)),
        }
    }
}

impl<G: FnMut(u32) -> Result<(), DelegateFailure>> Exec for FirstGated<'_, G> {
    fn run(&self, req: &ExecRequest<'_>) -> Result<Output, DelegateFailure> {
        self.run_gated(req, &mut |_| Ok(()))
    }

    fn run_gated(
        &self,
        req: &ExecRequest<'_>,
        gate: &mut Gate<'_>,
    ) -> Result<Output, DelegateFailure> {
        let first = self.gate.borrow_mut().take();
        match first {
            Some(mut first) => self.inner.run_gated(req, &mut |pid| {
                first(pid)?;
                gate(pid)
            }),
            None => self.inner.run_gated(req, gate),
        }
    }

    fn expect(&self, upcoming: Vec<Launch>, when: StartAhead) {
        self.inner.expect(upcoming, when);
    }
}

/// An [`Exec`] that calls `on_start` with every plugin's process group after the plugin is
/// started (and after any gate) and before it is given its config; a failure there ends the
/// plugin before it read anything, like a failed gate. ADD records its delegates this way, so
/// that the DEL after a crash can stop the ones still running ([`super::orphans`]).
pub struct OnStart<'a, F> {
    inner: &'a dyn Exec,
    on_start: F,
}

impl<'a, F: Fn(u32) -> Result<(), DelegateFailure>> OnStart<'a, F> {
    pub fn new(inner: &'a dyn Exec, on_start: F) -> Self {
        OnStart { inner, on_start }
    }
}

impl<F: Fn(u32) -> Result<(), DelegateFailure>> Exec for OnStart<'_, F> {
    fn run(&self, req: &ExecRequest<'_>) -> Result<Output, DelegateFailure> {
        self.inner.run_gated(req, &mut |pid| (self.on_start)(pid))
    }

    fn run_gated(
        &self,
        req: &ExecRequest<'_>,
        gate: &mut Gate<'_>,
    ) -> Result<Output, DelegateFailure> {
        self.inner.run_gated(req, &mut |pid| {
            gate(pid)?;
            (self.on_start)(pid)
        })
    }

    fn expect(&self, upcoming: Vec<Launch>, when: StartAhead) {
        self.inner.expect(upcoming, when);
    }
}

/// Runs real processes: how a plugin is started and supervised, with its settings. The [`Exec`]
/// running them is [`Ahead`](super::ahead::Ahead).
#[derive(Debug, Clone)]
pub struct ProcessExec {
    /// How many times a spawn failing with ETXTBSY is retried.
    pub etxtbsy_retries: u32,
    /// How long to keep reading pipes after the plugin exited, before killing its group.
    pub exit_grace: Duration,
}

impl Default for ProcessExec {
    fn default() -> Self {
        ProcessExec {
            etxtbsy_retries: 10,
            exit_grace: Duration::from_millis(500),
        }
    }
}

/// stdout beyond this is refused as garbage (a CNI result is a few KiB).
const MAX_STDOUT: usize = 16 << 20;
/// Only the last this-many bytes of stderr are kept.
const MAX_STDERR: usize = 256 << 10;

impl ProcessExec {
    /// Starts the plugin of `req`, retrying "text file busy".
    pub(crate) fn spawn(&self, req: &ExecRequest<'_>) -> Result<Child, DelegateFailure> {
        self.spawn_launch(&req.launch, self.etxtbsy_retries)
    }

    /// Starts `launch` once, without retries (a start ahead of its run: if it fails, the run
    /// starts the plugin itself and reports what goes wrong).
    pub(crate) fn spawn_ahead(&self, launch: &Launch) -> Result<Child, DelegateFailure> {
        self.spawn_launch(launch, 0)
    }

    fn spawn_launch(&self, launch: &Launch, retries: u32) -> Result<Child, DelegateFailure> {
        let path = &launch.path;
        let mut cmd = Command::new(path);
        for k in &launch.env_remove {
            cmd.env_remove(k);
        }
        cmd.envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut attempt = 0;
        loop {
            match cmd.spawn() {
                Ok(child) => return Ok(child),
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < retries => {
                    attempt += 1;
                    tracing::debug!(plugin = %path.display(), attempt, "text file busy, retrying");
                    std::thread::sleep(Duration::from_millis(10 * u64::from(attempt)));
                }
                Err(e) => {
                    let busy = if e.raw_os_error() == Some(libc::ETXTBSY) {
                        format!(" (still busy after {retries} retries)")
                    } else {
                        String::new()
                    };
                    return Err(DelegateFailure::Spawn {
                        cause: format!("{}: {e}{busy}", path.display()),
                    });
                }
            }
        }
    }
}

fn io_fail(what: &str, e: impl std::fmt::Display) -> DelegateFailure {
    DelegateFailure::Io {
        cause: format!("{what}: {e}"),
    }
}

fn set_nonblocking(fd: &impl AsFd) -> Result<(), DelegateFailure> {
    fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map(drop)
        .map_err(|e| io_fail("setting a pipe non-blocking", e))
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Reads what is available; returns false at EOF.
fn drain(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    cap: Option<usize>,
) -> Result<bool, DelegateFailure> {
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(cap) = cap {
                    if buf.len() > 2 * cap {
                        buf.drain(..buf.len() - cap);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fail("reading plugin output", e)),
        }
    }
}

fn kill_group(pgid: u32) {
    // ESRCH (group already gone) is fine.
    let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
}

/// Ends a plugin that was never given its config: kills its group and reaps it.
pub(crate) fn discard(mut child: Child) {
    kill_group(child.id());
    let _ = child.wait();
}

impl ProcessExec {
    /// The run of `req` from its started plugin `child` on: `gate`, then the config, then
    /// the output and the exit (see [`Exec::run_gated`]). `on_config` is called once, when
    /// the plugin has its whole config (or is gone without reading it).
    pub(crate) fn finish(
        &self,
        mut child: Child,
        req: &ExecRequest<'_>,
        gate: &mut Gate<'_>,
        on_config: &mut dyn FnMut(),
    ) -> Result<Output, DelegateFailure> {
        let pgid = child.id();
        if let Err(f) = gate(pgid) {
            // It is blocked reading its config, or still starting: it has done nothing.
            discard(child);
            return Err(f);
        }
        // The deadline is the plugin's own time: it starts when the plugin gets its config.
        let deadline = Instant::now() + req.timeout;
        let result = self.supervise(&mut child, req, deadline, on_config);
        if result.is_err() || matches!(result, Ok(ref o) if o.termination == Termination::TimedOut)
        {
            kill_group(pgid);
        }
        // Always reap: a killed or finished child must not stay a zombie.
        let status = child
            .wait()
            .map_err(|e| io_fail("waiting for the plugin", e));
        let mut out = result?;
        if out.termination != Termination::TimedOut {
            let status = status?;
            out.termination = match (status.code(), status.signal()) {
                (Some(c), _) => Termination::Exited(c),
                (None, Some(s)) => Termination::Signaled(s),
                (None, None) => Termination::Signaled(0),
            };
        }
        if out.stderr.len() > MAX_STDERR {
            out.stderr.drain(..out.stderr.len() - MAX_STDERR);
        }
        Ok(out)
    }

    /// The poll loop. Returns the output with `termination` set to `TimedOut` when the
    /// deadline passed, otherwise a placeholder the caller replaces with the real status.
    fn supervise(
        &self,
        child: &mut Child,
        req: &ExecRequest<'_>,
        deadline: Instant,
        on_config: &mut dyn FnMut(),
    ) -> Result<Output, DelegateFailure> {
        let mut on_config = Some(on_config);
        let mut configured = move || {
            if let Some(f) = on_config.take() {
                f();
            }
        };
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        for fd in [
            stdout.as_ref().map(|f| f.as_fd()),
            stderr.as_ref().map(|f| f.as_fd()),
        ]
        .into_iter()
        .flatten()
        {
            set_nonblocking(&fd)?;
        }
        if let Some(s) = &stdin {
            set_nonblocking(s)?;
        }
        let pidfd = pidfd_open(child.id());
        let mut out = Output {
            termination: Termination::Exited(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let mut written = 0usize;
        let mut exited_at: Option<Instant> = None;
        if req.stdin.is_empty() {
            stdin = None;
        }
        if stdin.is_none() {
            configured();
        }
        loop {
            if stdout.is_none() && stderr.is_none() && (exited_at.is_some() || pidfd.is_none()) {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                out.termination = Termination::TimedOut;
                return Ok(out);
            }
            let mut wait = deadline - now;
            if let Some(t) = exited_at {
                let grace_end = t + self.exit_grace;
                if now >= grace_end {
                    // The plugin is gone but something it started holds its pipes: end it.
                    tracing::warn!(plugin = %req.launch.path.display(), "plugin exited but left processes holding its output; killing its process group");
                    kill_group(child.id());
                    return Ok(out);
                }
                wait = wait.min(grace_end - now);
            }
            // Without a pidfd, poll in short slices so the fallback try_wait sees the exit.
            if pidfd.is_none() && stdout.is_none() && stderr.is_none() {
                wait = wait.min(Duration::from_millis(2));
            }
            let ms =
                u16::try_from(wait.as_millis().clamp(1, u128::from(u16::MAX))).unwrap_or(u16::MAX);
            let mut fds = Vec::with_capacity(4);
            let mut slots = [usize::MAX; 4];
            if let Some(s) = &stdin {
                slots[0] = fds.len();
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
            }
            if let Some(s) = &stdout {
                slots[1] = fds.len();
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some(s) = &stderr {
                slots[2] = fds.len();
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let (Some(p), None) = (&pidfd, exited_at) {
                slots[3] = fds.len();
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io_fail("polling plugin pipes", e)),
            }
            let ready = |slot: usize| -> bool {
                slot != usize::MAX && fds[slot].revents().is_some_and(|r| !r.is_empty())
            };
            let (r_in, r_out, r_err, r_pid) = (
                ready(slots[0]),
                ready(slots[1]),
                ready(slots[2]),
                ready(slots[3]),
            );
            drop(fds);
            if r_in {
                if let Some(s) = stdin.as_mut() {
                    match s.write(&req.stdin[written..]) {
                        Ok(n) => written += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        // The plugin closed stdin without reading it all: its business.
                        Err(e) if e.kind() == ErrorKind::BrokenPipe => written = req.stdin.len(),
                        Err(e) => return Err(io_fail("writing the config to the plugin", e)),
                    }
                    if written >= req.stdin.len() {
                        stdin = None; // closes the pipe: EOF for the plugin
                        configured();
                    }
                }
            }
            if r_out {
                if let Some(s) = stdout.as_mut() {
                    if !drain(s, &mut out.stdout, None)? {
                        stdout = None;
                    }
                    if out.stdout.len() > MAX_STDOUT {
                        return Err(io_fail(
                            "reading plugin output",
                            format!("more than {MAX_STDOUT} bytes on stdout"),
                        ));
                    }
                }
            }
            if r_err {
                if let Some(s) = stderr.as_mut() {
                    if !drain(s, &mut out.stderr, Some(MAX_STDERR))? {
                        stderr = None;
                    }
                }
            }
            if r_pid {
                exited_at = Some(Instant::now());
                stdin = None;
                configured();
            }
            if pidfd.is_none() && stdout.is_none() && stderr.is_none() {
                if let Ok(Some(_)) = child.try_wait() {
                    return Ok(out);
                }
            }
        }
    }
}

/// What a plugin's run means: `Ok(Some(doc))` for a JSON document on success, `Ok(None)` for
/// success without output (DEL, CHECK), or the failure.
///
/// - Killed at the deadline: [`DelegateFailure::Timeout`].
/// - Killed by a signal: [`DelegateFailure::Signaled`] (whatever it printed).
/// - Exit 0: stdout empty (whitespace) is no result; a JSON object is the result; anything
///   else is [`DelegateFailure::Garbage`].
/// - Exit non-zero: a CNI error object (numeric `code`) is [`DelegateFailure::Reported`];
///   no output is [`DelegateFailure::SilentExit`]; anything else is garbage.
pub fn interpret(out: &Output, timeout: Duration) -> Result<Option<Value>, DelegateFailure> {
    let stderr = || String::from_utf8_lossy(&out.stderr).into_owned();
    let text = String::from_utf8_lossy(&out.stdout);
    let trimmed = text.trim();
    match out.termination {
        Termination::TimedOut => Err(DelegateFailure::Timeout { after: timeout }),
        Termination::Signaled(signal) => Err(DelegateFailure::Signaled {
            signal,
            stderr: stderr(),
        }),
        Termination::Exited(0) => {
            if trimmed.is_empty() {
                return Ok(None);
            }
            match serde_json::from_str::<Value>(trimmed) {
                Ok(v @ Value::Object(_)) => Ok(Some(v)),
                Ok(_) => Err(garbage(
                    Some(0),
                    trimmed,
                    "stdout is JSON but not an object",
                )),
                Err(e) => Err(garbage(
                    Some(0),
                    trimmed,
                    &format!("stdout is not JSON: {e}"),
                )),
            }
        }
        Termination::Exited(status) => {
            if trimmed.is_empty() {
                return Err(DelegateFailure::SilentExit {
                    status,
                    stderr: stderr(),
                });
            }
            let v: Value = match serde_json::from_str(trimmed) {
                Ok(v) => v,
                Err(e) => {
                    return Err(garbage(
                        Some(status),
                        trimmed,
                        &format!("stdout is not JSON: {e}"),
                    ));
                }
            };
            let code = v.get("code").and_then(Value::as_u64);
            match code {
                Some(code) => Err(DelegateFailure::Reported {
                    code: Code(u32::try_from(code).unwrap_or(u32::MAX)),
                    msg: v
                        .get("msg")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    details: v
                        .get("details")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                }),
                None => Err(garbage(
                    Some(status),
                    trimmed,
                    "non-zero exit and stdout is not a CNI error (no numeric \"code\")",
                )),
            }
        }
    }
}

fn garbage(exit: Option<i32>, output: &str, cause: &str) -> DelegateFailure {
    DelegateFailure::Garbage {
        exit,
        output: output.to_owned(),
        cause: cause.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::delegate::Ahead;

    /// The real runner, starting nothing ahead unless told to.
    fn process_exec() -> Ahead {
        Ahead::new(ProcessExec::default())
    }

    fn out(t: Termination, stdout: &str) -> Output {
        Output {
            termination: t,
            stdout: stdout.as_bytes().to_vec(),
            stderr: b"some log\n".to_vec(),
        }
    }
    const T: Duration = Duration::from_secs(3);

    #[test]
    fn interpret_success_forms() {
        assert_eq!(interpret(&out(Termination::Exited(0), " \n"), T), Ok(None));
        assert_eq!(
            interpret(&out(Termination::Exited(0), r#"{"cniVersion":"1.0.0"}"#), T),
            Ok(Some(serde_json::json!({"cniVersion":"1.0.0"})))
        );
        assert!(matches!(
            interpret(&out(Termination::Exited(0), "hello"), T),
            Err(DelegateFailure::Garbage { exit: Some(0), .. })
        ));
        assert!(matches!(
            interpret(&out(Termination::Exited(0), "[1]"), T),
            Err(DelegateFailure::Garbage { .. })
        ));
    }

    #[test]
    fn interpret_failure_forms() {
        assert_eq!(
            interpret(
                &out(
                    Termination::Exited(1),
                    r#"{"code":11,"msg":"m","details":"d"}"#
                ),
                T
            ),
            Err(DelegateFailure::Reported {
                code: Code(11),
                msg: "m".into(),
                details: "d".into()
            })
        );
        assert_eq!(
            interpret(&out(Termination::Exited(3), ""), T),
            Err(DelegateFailure::SilentExit {
                status: 3,
                stderr: "some log\n".into()
            })
        );
        assert!(matches!(
            interpret(&out(Termination::Exited(2), r#"{"msg":"x"}"#), T),
            Err(DelegateFailure::Garbage { exit: Some(2), .. })
        ));
        assert!(matches!(
            interpret(&out(Termination::Signaled(9), "{}"), T),
            Err(DelegateFailure::Signaled { signal: 9, .. })
        ));
        assert_eq!(
            interpret(&out(Termination::TimedOut, ""), T),
            Err(DelegateFailure::Timeout { after: T })
        );
    }

    fn script(body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("plug");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        (d, p)
    }

    fn run(body: &str, stdin: &[u8], timeout: Duration) -> Output {
        let (_d, p) = script(body);
        process_exec()
            .run(&ExecRequest {
                launch: Launch {
                    path: p.clone(),
                    env: vec![("PLEXUS_T", "v".into())],
                    env_remove: vec!["HOME"],
                },
                stdin,
                timeout,
            })
            .unwrap()
    }

    #[test]
    fn stdin_env_stdout_stderr_and_status_round_trip() {
        // Bigger than a pipe buffer in both directions.
        let big = vec![b'x'; 300_000];
        let o = run(
            r#"cat; echo "env=$PLEXUS_T home=${HOME:-unset}" >&2; exit 4"#,
            &big,
            Duration::from_secs(20),
        );
        assert_eq!(o.termination, Termination::Exited(4));
        assert_eq!(o.stdout, big);
        assert_eq!(String::from_utf8_lossy(&o.stderr), "env=v home=unset\n");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("child.pid");
        let body = format!("sleep 600 & echo $! > {}; wait", pidfile.display());
        let o = run(&body, b"", Duration::from_millis(300));
        assert_eq!(o.termination, Termination::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_gone(pid, "the grandchild to die with its group at the timeout");
    }

    #[test]
    fn leftover_holder_of_stdout_is_killed_after_exit_grace() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("child.pid");
        // The plugin prints its result and exits, but a background child keeps stdout open.
        let body = format!("sleep 600 & echo $! > {}; echo '{{}}'", pidfile.display());
        let o = run(&body, b"", Duration::from_secs(30));
        assert_eq!(o.termination, Termination::Exited(0));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "{}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_gone(pid, "the leftover holder of stdout to be killed");
    }

    #[test]
    fn signal_death_is_reported() {
        let o = run("kill -KILL $$", b"", Duration::from_secs(10));
        assert_eq!(o.termination, Termination::Signaled(9));
    }

    #[test]
    fn missing_binary_is_a_spawn_failure() {
        let e = process_exec()
            .run(&request(Path::new("/nonexistent/plug"), b""))
            .unwrap_err();
        assert!(matches!(e, DelegateFailure::Spawn { .. }), "{e:?}");
    }

    /// A request for `p` with `stdin`, no extra environment and the default deadline.
    fn request<'a>(p: &'a Path, stdin: &'a [u8]) -> ExecRequest<'a> {
        ExecRequest {
            launch: Launch {
                path: p.to_path_buf(),
                env: vec![],
                env_remove: vec![],
            },
            stdin,
            timeout: T,
        }
    }

    /// The pid a plugin wrote to `file` when it started, once it is there.
    fn started_pid(file: &Path) -> i32 {
        let mut pid = 0;
        plexus_conformance::wait_until(
            "the plugin to start while its gate runs",
            Duration::from_secs(5),
            || {
                pid = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                pid > 0
            },
        );
        pid
    }

    #[test]
    fn gate_runs_after_the_start_and_before_the_config() {
        let d = tempfile::tempdir().unwrap();
        let started = d.path().join("started");
        let (_s, p) = script(&format!("echo $$ > {}; cat", started.display()));
        let mut pid = 0;
        let o = process_exec()
            .run_gated(&request(&p, b"{\"cfg\":1}"), &mut |gated| {
                // Only returns once the plugin is running: the gate overlaps its start-up.
                pid = started_pid(&started);
                // It is given the plugin's process group: the plugin's own pid.
                assert_eq!(gated, pid as u32);
                Ok(())
            })
            .unwrap();
        assert!(pid > 0);
        assert_eq!(o.termination, Termination::Exited(0));
        assert_eq!(o.stdout, b"{\"cfg\":1}", "the config, given after the gate");
    }

    #[test]
    fn failed_gate_kills_the_plugin_before_it_reads_anything() {
        let d = tempfile::tempdir().unwrap();
        let (started, seen) = (d.path().join("started"), d.path().join("seen"));
        // `exec`: the shell becomes the reader, with the pid it recorded.
        let (_s, p) = script(&format!(
            "echo $$ > {}; exec cat > {}",
            started.display(),
            seen.display()
        ));
        let mut pid = 0;
        let failure = DelegateFailure::Spawn {
            cause: "the plan could not be saved".into(),
        };
        let r = process_exec().run_gated(&request(&p, b"{\"cfg\":1}"), &mut |_| {
            pid = started_pid(&started);
            Err(failure.clone())
        });
        assert_eq!(r, Err(failure));
        assert!(
            !plexus_conformance::plugins::process_alive(pid),
            "killed and reaped when run_gated returns"
        );
        assert_eq!(
            std::fs::read(&seen).unwrap_or_default(),
            b"",
            "the plugin never got its config"
        );
    }

    #[test]
    fn first_gated_gates_the_first_run_only() {
        let (_s, p) = script("cat");
        let gates = std::cell::Cell::new(0);
        let exec = process_exec();
        let gated = FirstGated::new(&exec, |_| {
            gates.set(gates.get() + 1);
            Ok(())
        });
        for config in [&b"{\"n\":1}"[..], b"{\"n\":2}"] {
            assert_eq!(gated.run(&request(&p, config)).unwrap().stdout, config);
        }
        assert_eq!(gates.get(), 1);
    }

    /// Bounded wait (5 s) for a killed process to be gone (a zombie counts as gone).
    fn assert_gone(pid: i32, what: &str) {
        plexus_conformance::wait_until(what, Duration::from_secs(5), || {
            !plexus_conformance::plugins::process_alive(pid)
        });
    }
}
