//! Helpers shared by the integration tests: calling the `plexus` binary as a runtime does.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// Where Debian's `containernetworking-plugins` installs the real plugins.
pub const DEBIAN_PLUGINS: &str = "/usr/lib/cni";

/// What one plexus run printed.
#[derive(Debug)]
pub struct Run {
    /// The exit status; -1 when killed by a signal.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as the one JSON document it must be.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not exactly one JSON document ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs the plexus binary with exactly `env` (nothing inherited but PATH) and `stdin`.
pub fn plexus(env: &[(&str, &str)], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plexus");
    // plexus may exit before reading stdin (env errors): a broken pipe is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait plexus");
    Run {
        code: out.status.code().unwrap_or(-1),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The env of an ADD for `netns`/`ifname`, with the K8S_POD_* args a kubelet runtime sends.
pub fn attach_env<'a>(
    command: &'a str,
    netns: &'a str,
    ifname: &'a str,
    path: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", path),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=u-1",
        ),
    ]
}

pub mod devices;
pub mod node;
