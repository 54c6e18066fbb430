//! One process run for a benchmark: exact env and stdin, wall time, and optionally its own
//! peak RSS.
//!
//! The peak RSS is the kernel's high-water mark of the process's own memory (`VmHWM` in
//! `/proc/<pid>/status`), which does not include its children (a delegate runs in a memory of
//! its own once it has exec'd). The mark only grows, so it is sampled every
//! [`RSS_POLL`] while the process runs and the last sample is kept; a peak reached in the
//! last moment before exit could be missed by at most that interval's growth.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Stats;

/// How often the peak RSS is sampled.
pub const RSS_POLL: Duration = Duration::from_micros(200);

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// Exit status 0.
    pub success: bool,
    /// How it ended (exit status or signal).
    pub status: std::process::ExitStatus,
    /// Everything printed on stdout.
    pub stdout: Vec<u8>,
    /// KiB; only when asked for.
    pub peak_rss_kib: Option<u64>,
}

/// Runs `bin` with exactly `env` and `stdin`; stderr is discarded.
pub fn run(bin: &Path, env: &[(&str, &str)], stdin: &[u8], measure_rss: bool) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    let mut peak = None;
    if measure_rss {
        let status = format!("/proc/{}/status", child.id());
        // The kernel's 15-byte command name of the image: a sample of anything else (the
        // process before its exec completed) is not the benchmarked program's.
        let name: String = bin
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(15).collect())
            .unwrap_or_default();
        loop {
            if let Some(kib) = std::fs::read_to_string(&status)
                .ok()
                .filter(|s| proc_name(s) == Some(name.as_str()))
                .and_then(|s| vm_hwm_kib(&s))
            {
                peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(RSS_POLL);
        }
    }
    let mut stdout = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut stdout);
    }
    let status = child.wait().expect("wait");
    Outcome {
        wall: start.elapsed(),
        success: status.success(),
        status,
        stdout,
        peak_rss_kib: peak,
    }
}

/// Wall times in ms of `runs` runs of `bin` without stdin, after `warmup` runs not counted.
pub fn wall_times(bin: &Path, env: &[(&str, &str)], warmup: usize, runs: usize) -> Stats {
    for _ in 0..warmup {
        run(bin, env, b"", false);
    }
    Stats::of(
        (0..runs)
            .map(|_| run(bin, env, b"", false).wall.as_secs_f64() * 1000.0)
            .collect(),
    )
}

/// The environment of a `VERSION` call (libcni's skel wants the attachment variables set).
pub const VERSION_ENV: [(&str, &str); 4] = [
    ("CNI_COMMAND", "VERSION"),
    ("CNI_NETNS", "dummy"),
    ("CNI_IFNAME", "dummy"),
    ("CNI_PATH", "dummy"),
];

/// The value of field `key` of a `/proc/<pid>/status` text, trimmed.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// `Name` of a `/proc/<pid>/status` text.
fn proc_name(status: &str) -> Option<&str> {
    status_field(status, "Name")
}

/// `VmHWM` of a `/proc/<pid>/status` text, in KiB (absent once the process has exited).
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status_field(status, "VmHWM")?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_high_water_mark() {
        let s = "Name:\tplexus\nVmPeak:\t  10000 kB\nVmHWM:\t    4321 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(vm_hwm_kib(s), Some(4321));
        assert_eq!(proc_name(s), Some("plexus"));
        assert_eq!(vm_hwm_kib("Name:\tzombie\nState:\tZ\n"), None);
    }

    #[test]
    fn measures_a_real_process() {
        let out = run(Path::new("/bin/sh"), &[], b"read x; echo $x", true);
        assert!(out.success);
        assert_eq!(out.stdout, b"\n");
        // sh may exit before the first sample; when sampled, the mark is plausible.
        if let Some(kib) = out.peak_rss_kib {
            assert!(kib > 0 && kib < 1 << 20, "{kib}");
        }
    }
}
