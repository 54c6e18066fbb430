//! Run a test body isolated from the host's network.
//!
//! [`run`] re-executes the current test binary, restricted to the one test,
//! under `unshare --net --mount --propagation private`, with
//! `PLEXUS_SANDBOXED=1` in its environment. In that child, [`run`] sees the
//! variable, prepares the namespaces and calls the body:
//!
//! * `ip link set lo up` in the (fresh, empty) root network namespace of the
//!   sandbox;
//! * a fresh tmpfs on `/run/netns` (so `ip netns add` works and its bind
//!   mounts stay in the sandbox), on `/var/lib/cni` (host-local keeps its
//!   leases in `/var/lib/cni/networks`) and on `/run/cni`; each directory is
//!   created first if missing (an empty directory on the host's disk is the
//!   only trace the sandbox can leave);
//! * a fresh sysfs on `/sys`, so `/sys/class/net` shows the sandbox's
//!   interfaces rather than the host's, as plugins reading sysfs expect.
//!
//! # Cleanup guarantee
//!
//! Everything a test creates in the sandbox (network namespaces, veths,
//! bridges, routes, IPAM leases, files in the tmpfs mounts) lives in
//! namespaces owned by the child process. When the child exits, whether
//! the test passed, panicked, or was killed, the kernel tears the mount
//! namespace down (dropping the tmpfs contents and the `/run/netns` bind
//! mounts) and with it the last references to the network namespaces,
//! whose interfaces are then destroyed. Nothing needs to be deleted by
//! hand and a failing test cannot leak into the next one. (Processes a
//! test leaves running are *not* covered: there is no PID namespace; kill
//! them in the test.)
//!
//! # Environment
//!
//! * `PLEXUS_SANDBOXED=1`: set by [`run`] for the child; never set it by hand.
//! * `PLEXUS_SKIP_PRIVILEGED=1`: when not root, skip sandboxed tests with a
//!   visible `SKIPPED` line instead of failing them.
//! * `PLEXUS_SANDBOX_TIMEOUT=<seconds>`: kill the child after this long
//!   (default [`DEFAULT_TIMEOUT`]).

use std::env;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable marking a process as already inside the sandbox.
pub const SANDBOXED_ENV: &str = "PLEXUS_SANDBOXED";

/// Environment variable that, set to `1`, skips sandboxed tests when not root.
pub const SKIP_PRIVILEGED_ENV: &str = "PLEXUS_SKIP_PRIVILEGED";

/// Environment variable overriding the child's time limit, in seconds.
pub const TIMEOUT_ENV: &str = "PLEXUS_SANDBOX_TIMEOUT";

/// How long a sandboxed test may run before it is killed and fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Directories that get a fresh tmpfs inside the sandbox.
pub const TMPFS_DIRS: [&str; 3] = ["/run/netns", "/var/lib/cni", "/run/cni"];

/// How many trailing lines of the child's output a failure message quotes.
const TAIL_LINES: usize = 40;

/// Whether this process runs inside the sandbox (`PLEXUS_SANDBOXED=1`).
pub fn inside() -> bool {
    env::var_os(SANDBOXED_ENV).is_some_and(|v| v == "1")
}

/// Runs `body` isolated from the host's network and panics if it fails.
///
/// `test_path` must be the libtest path of the calling test function: for
/// a top-level `#[test] fn foo` in `tests/x.rs` it is `"foo"`, for one in
/// `mod m` it is `"m::foo"`. Outside the sandbox, `body` is not called
/// here: the test binary is re-executed for that one test in new
/// namespaces (see the module docs), and this panics unless the child
/// exits successfully after running exactly one test. Inside, the
/// namespaces are set up and `body` runs.
///
/// When not root: with `PLEXUS_SKIP_PRIVILEGED=1`, prints
/// `SKIPPED <test_path>: needs root (network namespaces)` to stderr and
/// returns; otherwise panics.
pub fn run(test_path: &str, body: impl FnOnce()) {
    if inside() {
        setup_inside();
        body();
        return;
    }
    if !is_root() {
        if env::var_os(SKIP_PRIVILEGED_ENV).is_some_and(|v| v == "1") {
            eprintln!("SKIPPED {test_path}: needs root (network namespaces)");
            return;
        }
        panic!(
            "test `{test_path}` needs root: it runs in its own network and mount namespaces \
             (unshare --net --mount). Run the tests as root, or set {SKIP_PRIVILEGED_ENV}=1 \
             to skip such tests explicitly."
        );
    }
    if let Err(e) = run_named_in_child(test_path) {
        panic!("{e}");
    }
}

/// Re-executes the current test binary for the single test `test_path`
/// inside new network and mount namespaces and reports how it went.
///
/// Runs `unshare --net --mount --propagation private -- <exe> <test_path>
/// --exact --nocapture --test-threads=1 --include-ignored` with
/// `PLEXUS_SANDBOXED=1`, stdout and stderr going to one anonymous temp
/// file, and prints that output to stderr (the harness shows it when the
/// test fails). `Ok(())` only if the child exited successfully **and**
/// libtest's summary says exactly one test passed, so a `test_path` that
/// names no test is an error, not a silent pass. The child is killed if it
/// outlives `PLEXUS_SANDBOX_TIMEOUT` (or [`DEFAULT_TIMEOUT`]) or this
/// process's calling thread.
///
/// Needs root (it does not check: `unshare` fails and that is reported).
pub fn run_named_in_child(test_path: &str) -> Result<(), String> {
    let exe = env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut log = tempfile::tempfile().map_err(|e| format!("cannot create a temp file: {e}"))?;
    let out = log.try_clone().map_err(|e| format!("dup temp file: {e}"))?;
    let err = log.try_clone().map_err(|e| format!("dup temp file: {e}"))?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(&exe)
        .args([
            test_path,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(SANDBOXED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // If the test thread waiting for us dies (harness timeout, ^C),
            // take the child with it. Survives unshare's exec of the test binary.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let timeout = timeout();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `unshare` (util-linux) for `{test_path}`: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status, false),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                match child.wait() {
                    Ok(status) => break (status, true),
                    Err(e) => return Err(format!("waiting for the sandbox child: {e}")),
                }
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("waiting for the sandbox child: {e}")),
        }
    };
    let mut bytes = Vec::new();
    log.seek(SeekFrom::Start(0))
        .and_then(|_| log.read_to_end(&mut bytes))
        .map_err(|e| format!("reading the sandbox child's output: {e}"))?;
    let output = String::from_utf8_lossy(&bytes);
    eprintln!("----- sandboxed `{test_path}` (exit: {status}) -----");
    eprint!("{output}");
    if !output.ends_with('\n') && !output.is_empty() {
        eprintln!();
    }
    eprintln!("----- end of sandboxed `{test_path}` -----");
    verdict(test_path, status, timed_out.then_some(timeout), &output)
}

/// Judges the child from its exit status and libtest's summary line.
fn verdict(
    test_path: &str,
    status: ExitStatus,
    timed_out: Option<Duration>,
    output: &str,
) -> Result<(), String> {
    let tail = tail(output, TAIL_LINES);
    if let Some(t) = timed_out {
        return Err(format!(
            "sandboxed test `{test_path}` was killed after running for {t:?} \
             (raise {TIMEOUT_ENV}=<seconds> if that is too short); last output:\n{tail}"
        ));
    }
    if !status.success() {
        return Err(format!(
            "sandboxed test `{test_path}` failed: child exited with {status}; last output:\n{tail}"
        ));
    }
    let summary = output.lines().rev().find(|l| l.starts_with("test result:"));
    let counts = summary.map(|l| (count(l, "passed"), count(l, "failed")));
    match counts {
        Some((Some(1), Some(0))) if output.lines().any(|l| l == "running 1 test") => Ok(()),
        _ => Err(format!(
            "sandboxed child for `{test_path}` exited with {status} but did not run exactly one \
             test (summary: {summary:?}). `test_path` must be the libtest path of the test \
             function, e.g. `foo` for a top-level `fn foo` in tests/x.rs or `m::foo` inside \
             `mod m`; last output:\n{tail}"
        )),
    }
}

/// Extracts N from "... N <word>; ..." in a libtest summary line.
fn count(summary: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = summary.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        (w[1].trim_end_matches([';', ',', '.']) == word)
            .then(|| w[0].parse().ok())
            .flatten()
    })
}

fn tail(output: &str, n: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn timeout() -> Duration {
    env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For programs rather than tests (benchmarks, demos): makes the rest of this program run in a
/// sandbox. Outside one, it re-executes the current program with the same arguments under
/// `unshare --net --mount --propagation private` and exits with that run's status (so it never
/// returns there); inside, it prepares the namespaces (as for tests) and returns. Needs root.
pub fn enter() {
    if inside() {
        setup_inside();
        return;
    }
    if !is_root() {
        eprintln!("this program needs root (it creates network namespaces)");
        std::process::exit(2);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("sandbox: current_exe: {e}"));
    let status = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(SANDBOXED_ENV, "1")
        .status()
        .unwrap_or_else(|e| panic!("sandbox: cannot run unshare: {e}"));
    std::process::exit(status.code().unwrap_or(1));
}

/// Prepares the sandbox's namespaces, once per process.
fn setup_inside() {
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        refuse_host_namespaces();
        crate::netns::ip(&["link", "set", "dev", "lo", "up"]);
        for dir in TMPFS_DIRS {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("sandbox: mkdir -p {dir}: {e}"));
            mount(
                "tmpfs",
                dir,
                "tmpfs",
                libc::MS_NOSUID | libc::MS_NODEV,
                Some("mode=0755"),
            );
        }
        let sys = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        mount("sysfs", "/sys", "sysfs", sys, None);
    });
}

/// Panics if `PLEXUS_SANDBOXED=1` was set but the namespaces were not
/// actually unshared: never mount over or reconfigure the host.
///
/// Compares with the parent process (the outer test process for a real
/// sandbox child; cargo or a shell when the variable was set by hand) and
/// with PID 1 when its namespace links are readable (in some containers
/// they are not, even to root).
fn refuse_host_namespaces() {
    let parent = std::os::unix::process::parent_id();
    for ns in ["net", "mnt"] {
        let Ok(ours) = fs::read_link(format!("/proc/self/ns/{ns}")) else {
            continue;
        };
        for other in [parent, 1] {
            if let Ok(theirs) = fs::read_link(format!("/proc/{other}/ns/{ns}")) {
                assert_ne!(
                    ours, theirs,
                    "{SANDBOXED_ENV}=1 is set but this process shares its {ns} namespace with \
                     process {other}: refusing to touch the host. Do not set {SANDBOXED_ENV} by \
                     hand; sandbox::run sets it for its unshared child."
                );
            }
        }
    }
}

fn mount(source: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: Option<&str>) {
    let c = |s: &str| CString::new(s).expect("no NUL in mount arguments");
    let (source_c, target_c, fstype_c) = (c(source), c(target), c(fstype));
    let data_c = data.map(c);
    let data_ptr = data_c
        .as_ref()
        .map_or(std::ptr::null(), |d| d.as_ptr().cast::<libc::c_void>());
    assert!(
        Path::new(target).is_dir(),
        "sandbox: mount target {target} is not a directory"
    );
    // SAFETY: all pointers are valid NUL-terminated strings (or null data)
    // that outlive the call.
    let rc = unsafe {
        libc::mount(
            source_c.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ptr(),
            flags,
            data_ptr,
        )
    };
    if rc != 0 {
        panic!(
            "sandbox: mount -t {fstype} {source} {target}: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn counts_from_libtest_summary() {
        let l = "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 5 filtered out; finished in 0.01s";
        assert_eq!(count(l, "passed"), Some(1));
        assert_eq!(count(l, "failed"), Some(0));
        assert_eq!(count(l, "filtered"), Some(5));
    }

    #[test]
    fn verdict_requires_exactly_one_passed_test() {
        let ok = ExitStatus::from_raw(0);
        let one = "\nrunning 1 test\ntest foo ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out; finished in 0.00s\n";
        assert!(verdict("foo", ok, None, one).is_ok());
        let none = "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 4 filtered out; finished in 0.00s\n";
        let e = verdict("nope", ok, None, none).unwrap_err();
        assert!(e.contains("did not run exactly one test"), "{e}");
        assert!(verdict("x", ok, None, "").is_err());
        let failed = ExitStatus::from_raw(101 << 8);
        assert!(
            verdict("foo", failed, None, one)
                .unwrap_err()
                .contains("exit status: 101")
        );
        let e = verdict("foo", ok, Some(Duration::from_secs(1)), one).unwrap_err();
        assert!(e.contains("killed after"), "{e}");
    }
}
