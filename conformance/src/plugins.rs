//! Fake delegate plugins and what they recorded.
//!
//! The fakes are POSIX `sh` scripts in `fixtures/plugins/` (see the README
//! there); put [`fixtures_dir`] on `CNI_PATH` to let plexus find them. Each
//! fake records every invocation into `$FAKE_RECORD_DIR` (when set) as
//! `N-<CNI_COMMAND>.env` (the sorted environment) and
//! `N-<CNI_COMMAND>.stdin` (the exact stdin), N counting from 0;
//! [`recorded`] reads them back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::Duration;

use crate::{COMMAND_TIMEOUT, output_with_timeout, wait_until};

/// Where Debian's real CNI plugins (bridge, host-local, macvlan, ...) live.
pub const SYSTEM_PLUGINS_DIR: &str = "/usr/lib/cni";

/// Environment variable naming the directory the fakes record into.
pub const RECORD_DIR_ENV: &str = "FAKE_RECORD_DIR";

/// Records, succeeds; ADD prints a result in the config's `cniVersion`.
pub const FAKE_RECORD: &str = "fake-record";
/// Records; ADD prints a CNI error (code `$FAKE_CODE`, default 11), exits 1.
pub const FAKE_FAIL_ADD: &str = "fake-fail-add";
/// Records; ADD succeeds; DEL prints a CNI error with code 5, exits 1.
pub const FAKE_FAIL_DEL: &str = "fake-fail-del";
/// Records, writes `hang.pid` and `hang-child.pid`, then never exits.
pub const FAKE_HANG: &str = "fake-hang";
/// Records, prints `this is not JSON`, exits 0.
pub const FAKE_GARBAGE: &str = "fake-garbage";
/// Records, prints nothing, exits 3.
pub const FAKE_SILENT: &str = "fake-silent";
/// Writes two lines to stderr, then behaves like `fake-record`.
pub const FAKE_STDERR: &str = "fake-stderr";
/// Records, then kills itself with SIGKILL.
pub const FAKE_SIGNAL: &str = "fake-signal";
/// Records; moves the host netdev `vf<deviceID without : and .>` into the pod through
/// host-device, like sriov-cni with a VF (and back on DEL).
pub const FAKE_SRIOV: &str = "fake-sriov";

/// Records; ADD prints a result in an older version (config key `fakeResultVersion`, default
/// 0.2.0) than the config's.
pub const FAKE_OLD_RESULT: &str = "fake-old-result";
/// Records; ADD prints a result with an address and no `interfaces`.
pub const FAKE_NO_INTERFACES: &str = "fake-no-interfaces";

/// Records; ADD waits `$FAKE_SLOW_SECONDS` (default 1.5) for a `sleep` child, writing
/// `slow.pid` and `slow-child.pid`; then every command goes to a real plugin (`bridge`).
pub const FAKE_SLOW: &str = "fake-slow";
/// Records; ADD succeeds with a result breaking the rule `$FAKE_BAD` names (`name`, `mac`,
/// `ips`, `ifname`).
pub const FAKE_BAD_RESULT: &str = "fake-bad-result";

/// Every fake plugin's file name.
pub const ALL_FAKES: [&str; 13] = [
    FAKE_RECORD,
    FAKE_FAIL_ADD,
    FAKE_FAIL_DEL,
    FAKE_HANG,
    FAKE_GARBAGE,
    FAKE_SILENT,
    FAKE_STDERR,
    FAKE_SIGNAL,
    FAKE_SRIOV,
    FAKE_OLD_RESULT,
    FAKE_NO_INTERFACES,
    FAKE_SLOW,
    FAKE_BAD_RESULT,
];

/// Absolute path of `conformance/fixtures/plugins`, the fakes' directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("plugins")
}

/// Absolute path of the fake plugin `name`; panics if there is no such file.
pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures_dir().join(name);
    assert!(path.is_file(), "no fake plugin {}", path.display());
    path
}

/// One recorded invocation of a fake plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// N: the invocation's number in the record directory, from 0.
    pub index: usize,
    /// `CNI_COMMAND` (`ADD`, `DEL`, ...; `UNSET` if it was not set).
    pub command: String,
    /// The plugin's environment, `KEY` -> `VALUE` (lines of a multi-line
    /// value after the first are appended to the previous key, in sorted
    /// order, so such values are not reliable).
    pub env: BTreeMap<String, String>,
    /// The exact bytes the plugin read on stdin.
    pub stdin: Vec<u8>,
}

impl Invocation {
    /// The value of environment variable `key`, if it was set.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// The stdin parsed as JSON; panics if it is not JSON.
    pub fn stdin_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdin).unwrap_or_else(|e| {
            panic!(
                "invocation {} ({}) got non-JSON stdin ({e}): {}",
                self.index,
                self.command,
                String::from_utf8_lossy(&self.stdin)
            )
        })
    }
}

/// Reads back the invocations recorded in `dir`, ordered by N. A missing
/// directory reads as no invocations. Only complete recordings are seen:
/// the fakes write `.stdin` first and move `.env` into place last.
pub fn recorded(dir: &Path) -> Vec<Invocation> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Invocation> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let stem = file.strip_suffix(".env")?;
            let (n, command) = stem.split_once('-')?;
            let index = n.parse().ok()?;
            let env_text = fs::read_to_string(e.path()).ok()?;
            let stdin = fs::read(dir.join(format!("{stem}.stdin"))).unwrap_or_default();
            Some(Invocation {
                index,
                command: command.to_owned(),
                env: parse_env(&env_text),
                stdin,
            })
        })
        .collect();
    found.sort_by_key(|i| i.index);
    found
}

/// Runs a CNI plugin binary (a fake, one of [`SYSTEM_PLUGINS_DIR`], or
/// plexus itself) with `env` added to this process's environment and
/// `stdin` as its input, and returns its output.
///
/// Panics if it cannot be run, is still running after
/// [`crate::COMMAND_TIMEOUT`], or leaves a process behind that keeps its
/// stdout open (don't use it for `fake-hang`).
pub fn run_plugin(path: &Path, env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(path);
    cmd.envs(env.iter().copied());
    output_with_timeout(&mut cmd, stdin, COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// Waits (at most `timeout`) until `fake-hang` has written both
/// `hang.pid` and `hang-child.pid` into `dir`, and returns
/// `(script_pid, sleep_child_pid)`. Panics on timeout.
pub fn wait_for_hang_pids(dir: &Path, timeout: Duration) -> (i32, i32) {
    let read =
        |f: &str| -> Option<i32> { fs::read_to_string(dir.join(f)).ok()?.trim().parse().ok() };
    let mut pids = None;
    wait_until("fake-hang's hang.pid and hang-child.pid", timeout, || {
        pids = read("hang.pid").zip(read("hang-child.pid"));
        pids.is_some()
    });
    pids.expect("checked by wait_until")
}

/// Whether process `pid` exists and is not a zombie (a killed process
/// whose parent has not reaped it yet counts as gone).
pub fn process_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": the state follows the last ')', comm may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains(' ') => {
                env.insert(k.to_owned(), v.to_owned());
                last = Some(k.to_owned());
            }
            _ => {
                if let Some(v) = last.as_ref().and_then(|k| env.get_mut(k)) {
                    v.push('\n');
                    v.push_str(line);
                }
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_dir_is_absolute_and_complete() {
        assert!(fixtures_dir().is_absolute());
        for name in ALL_FAKES {
            fixture(name);
        }
    }

    #[test]
    fn parses_sorted_env() {
        let env = parse_env("A=1\nB=x=y\nC=\n");
        assert_eq!(env.get("A").map(String::as_str), Some("1"));
        assert_eq!(env.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(env.get("C").map(String::as_str), Some(""));
    }
}
