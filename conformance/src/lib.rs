//! plexus's test rig: a simulated node for integration tests.
//!
//! * [`sandbox`] runs a test body in fresh network + mount namespaces
//!   (`unshare --net --mount --propagation private`), so nothing a test does
//!   to interfaces, network namespaces or CNI state ever reaches the host.
//! * [`netns`] creates pod network namespaces inside the sandbox and inspects
//!   them through `ip -j`.
//! * [`plugins`] locates the fake delegate plugins (POSIX `sh` scripts in
//!   `fixtures/plugins/`) and reads back what they recorded.
//! * [`soak`] runs many ADD/DEL cycles through plexus with random faults and counts leaks.
//! * [`apiserver`] is a stand-in for the Kubernetes API server (pods, NADs, events over real
//!   HTTPS) with fault injection and request counters.
//! * [`podresources`] is a stand-in for the kubelet's PodResources gRPC API (device IDs per
//!   pod, for SR-IOV) on a unix socket, with a slow mode and a call log.
//! * [`containerd`] runs a real containerd (CRI plugin, runc, a local pause image) inside the
//!   sandbox, calling plexus as a kubelet's runtime does; [`cri`] is the CRI client that
//!   plays the kubelet.
//!
//! Every wait in this crate is bounded: commands run with a deadline and
//! conditions are polled with [`wait_until`], never slept on blindly.
//!
//! # Example
//!
//! ```no_run
//! use plexus_conformance::netns::{Netns, ip, veth_pair};
//! use plexus_conformance::sandbox;
//!
//! #[test]
//! fn pod_gets_a_veth() {
//!     // The path is the test's libtest path: `pod_gets_a_veth` in tests/x.rs.
//!     sandbox::run("pod_gets_a_veth", || {
//!         let pod = Netns::new("pod"); // /run/netns/pod-<pid>-<n>, deleted on drop
//!         veth_pair("host0", "pod0");
//!         ip(&["link", "set", "dev", "pod0", "netns", pod.name()]);
//!         assert!(pod.link("pod0").is_some());
//!     });
//! }
//! ```

#![warn(missing_docs)]

pub mod apiserver;
pub mod bench;
pub mod containerd;
pub mod cri;
pub mod cri_demo;
pub mod flags;
pub mod netns;
pub mod plugins;
pub mod podresources;
pub mod runtime;
pub mod sandbox;
pub mod scenario;
pub mod signals;
pub mod soak;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Deadline for one helper command (`ip`, `mount`, a fixture script...).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `cond` until it returns `true`, panicking with `what` once
/// `timeout` has passed.
///
/// Polling starts at 1 ms and backs off to 50 ms between checks, so a
/// condition that becomes true quickly is noticed quickly. Use it for
/// things the kernel does asynchronously, e.g. a veth peer disappearing
/// after its network namespace was deleted.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Runs `cmd` to completion with `stdin` fed to it (closed right after)
/// and stdout/stderr captured, killing it if it is still running after
/// `timeout`.
///
/// Returns an error if it could not be spawned, was killed for running too
/// long, or exited while a descendant it left behind still held its
/// stdout/stderr open past the deadline.
pub fn output_with_timeout(
    cmd: &mut Command,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let deadline = Instant::now() + timeout;
    if let Some(mut pipe) = child.stdin.take() {
        let data = stdin.to_vec();
        // A child that never reads its stdin must not block us: write from
        // a thread and ignore EPIPE.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel();
    for (i, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send((i, buf));
        });
    }
    drop(tx);
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} still running after {timeout:?}; killed it"));
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let mut streams = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(100))) {
            Ok((i, buf)) => streams[i] = buf,
            Err(_) => {
                return Err(format!(
                    "{what} exited ({status}) but its stdout/stderr stayed open: \
                     a process it left behind still holds them"
                ));
            }
        }
    }
    let [stdout, stderr] = streams;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}
