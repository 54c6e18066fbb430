//! The `plexus-podresources` binary: serves the kubelet PodResources stand-in on a socket until
//! signalled, for demos and manual testing (the stand-in's answers are tested with plexus's own
//! client in plexus's unit and SR-IOV tests).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use plexus_conformance::wait_until;

#[test]
fn binary_serves_until_sigterm_then_removes_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("kubelet.sock");
    let pods = dir.path().join("pods.json");
    std::fs::write(
        &pods,
        r#"{"pods":[{"namespace":"default","name":"web","containers":[{"name":"app","devices":{"example.com/sriov_vf":["0000:af:00.1"]}}]}]}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_plexus-podresources"))
        .arg("--socket")
        .arg(&sock)
        .arg("--load")
        .arg(&pods)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim_end(), sock.display().to_string());
    std::os::unix::net::UnixStream::connect(&sock).expect("it accepts connections");
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let mut status = None;
    wait_until(
        "plexus-podresources to exit",
        Duration::from_secs(10),
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    assert!(status.unwrap().success());
    assert!(!sock.exists(), "the socket is removed on exit");

    let bad = Command::new(env!("CARGO_BIN_EXE_plexus-podresources"))
        .args(["--socket", "/nonexistent-dir/k.sock"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("binding"),
        "{bad:?}"
    );
}
