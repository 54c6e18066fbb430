//! plexus benchmarks: figures for the README, never assertions in tests.
//!
//! ```text
//! cargo build --release && cargo run --release -p plexus-conformance --bin plexus-bench
//! ```
//!
//! Measures, on this machine:
//! - wall time of `plexus` answering VERSION as runtimes probe it (dummy env, stdout read to
//!   the end), over many runs: median, p90, min, max;
//! - the same for `/bin/true`, the floor any exec'd binary pays;
//! - the size of the release binary.
//!
//! Options: `--runs N` (default 2000), `--binary PATH` (default `target/release/plexus`).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn time_exec(bin: &str, env: &[(&str, &str)]) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let mut out = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out);
    }
    let status = child.wait().expect("wait");
    let took = start.elapsed();
    assert!(status.success(), "{bin} failed: {status}");
    took
}

struct Stats {
    median: f64,
    p90: f64,
    min: f64,
    max: f64,
}

fn measure(bin: &str, env: &[(&str, &str)], runs: usize) -> Stats {
    for _ in 0..runs / 20 {
        time_exec(bin, env);
    }
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| time_exec(bin, env).as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p90: at(0.9),
        min: ms[0],
        max: ms[ms.len() - 1],
    }
}

fn main() {
    let mut runs = 2000usize;
    let mut binary = String::from("target/release/plexus");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--binary" => binary = args.next().expect("--binary PATH"),
            other => panic!("unknown argument {other:?}; see the doc comment of plexus-bench"),
        }
    }
    let version_env = [
        ("CNI_COMMAND", "VERSION"),
        ("CNI_NETNS", "dummy"),
        ("CNI_IFNAME", "dummy"),
        ("CNI_PATH", "dummy"),
    ];
    let size = std::fs::metadata(&binary)
        .unwrap_or_else(|e| panic!("{binary}: {e}; run `cargo build --release` first"))
        .len();
    let plexus = measure(&binary, &version_env, runs);
    let floor = measure("/bin/true", &[], runs);
    println!("| measurement | median | p90 | min | max |");
    println!("|---|---|---|---|---|");
    for (name, s) in [
        ("plexus VERSION", &plexus),
        ("/bin/true (exec floor)", &floor),
    ] {
        println!(
            "| {name} ({runs} runs) | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            s.median, s.p90, s.min, s.max
        );
    }
    println!(
        "| release binary size | {:.2} MB ({size} bytes) | | | |",
        size as f64 / 1e6
    );
}
