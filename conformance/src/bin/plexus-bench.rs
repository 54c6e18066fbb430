//! plexus benchmarks: figures for docs/benchmarks.md, never assertions in tests.
//!
//! ```text
//! cargo build --release                       # plexus as it ships: not with --workspace, which
//!                                             # adds the rig's features to it (docs/install.md)
//! cargo build --release -p plexus-conformance
//! target/release/plexus-bench                 # VERSION, binary size (any user)
//! target/release/plexus-bench floor           # what any exec'd plugin pays here (any user)
//! sudo target/release/plexus-bench cycle      # ADD+DEL of pods with 1, 3, 8 attachments
//! sudo target/release/plexus-bench burst      # 100 pods × 3 attachments, 8 at a time
//! sudo target/release/plexus-bench all        # everything, as in docs/benchmarks.md
//! sudo target/release/plexus-bench containerd # a pod's sandbox through containerd, with and
//!                                             # without plexus (not part of `all`)
//! sudo target/release/plexus-bench compare --baseline OLD --binary NEW   # two builds, ABBA
//! sudo target/release/plexus-bench api        # cycle + floor under a real API server's latencies
//! ```
//!
//! `cycle` and `burst` need root: they run themselves in a private network and mount
//! namespace (nothing on the host changes), start the API stand-in over HTTPS, and compare
//! plexus with the same delegates run directly (see `plexus_conformance::bench`).
//!
//! Options:
//! - `--runs N`: VERSION runs (default 2000), floor runs (default 300) or cycles per pod size
//!   (default 60); for `containerd`, rounds (default 40);
//! - `--binary PATH`: the plexus binary (default `target/release/plexus`);
//! - `--baseline PATH`: for `compare`, the build `--binary` is compared with; `compare`
//!   measures one pod size (`--attachments`, default 3), `--runs` cycles per build (default
//!   300), the two builds taking turns cycle by cycle (see `cycle::compare`);
//! - `--plugins real|canned`: the Debian plugins (default) or `plexus-canned`, a no-op delegate
//!   that leaves plexus's own cost with little noise;
//! - `--attachments 1,3,8`: pod sizes for `cycle` (default 1, 3 and 8); the one pod size for
//!   `compare` (default 3);
//! - `--pods 100 --parallel 8 --bursts 4`: the burst (timed bursts alternate which side goes
//!   first);
//! - `--api-latency none|realistic|read=MS,write=MS,handshake=MS`: the API stand-in's
//!   latencies for every mode (default `none`; `api` defaults to `realistic`: a read 3 ms, a
//!   write 20 ms, a TLS handshake 5 ms, see `Latencies::REALISTIC`). `api` measures the floor
//!   and the cycles of 1- and 3-attachment pods (`--runs`, default 40) under them, and
//!   reports plexus's overhead against the floor of the same run.
//!
//! Environment: `BENCH_CNI_DIR` (plexus's state dir for `cycle`), `BENCH_LOG` (plexus debug
//! log file), `BENCH_SPLIT` (print each run's ADD and DEL times), `BENCH_POD_READ` (the
//! runtime does not pass the pod's annotations, so plexus reads the pod from the API; by
//! default the node config declares `io.kubernetes.cri.pod-annotations` and every call
//! carries them, as containerd and CRI-O do), `BENCH_NO_AHEAD` (the node config sets
//! `startDelegatesAhead: false`: each delegate is started at its turn).

use std::path::PathBuf;

use plexus_conformance::apiserver::Latencies;
use plexus_conformance::bench::pod::Plugins;
use plexus_conformance::bench::{self, burst, cycle, floor, version};
use plexus_conformance::sandbox;

struct Options {
    mode: String,
    runs: Option<usize>,
    binary: PathBuf,
    baseline: Option<PathBuf>,
    plugins: Plugins,
    /// As given; `None` for the default (1, 3 and 8 for `cycle`, 3 for `compare`).
    attachments: Option<Vec<usize>>,
    pods: usize,
    parallel: usize,
    bursts: usize,
    /// As given; `None` for the mode's default.
    api_latency: Option<Latencies>,
}

fn parse() -> Options {
    let mut o = Options {
        mode: "version".into(),
        runs: None,
        binary: PathBuf::from("target/release/plexus"),
        baseline: None,
        plugins: Plugins::Real,
        attachments: None,
        pods: 100,
        parallel: 8,
        bursts: 4,
        api_latency: None,
    };
    let mut args = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> usize {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what} needs a number"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = Some(num(args.next(), "--runs")),
            "--binary" => o.binary = PathBuf::from(args.next().expect("--binary PATH")),
            "--baseline" => o.baseline = Some(PathBuf::from(args.next().expect("--baseline PATH"))),
            "--plugins" => {
                o.plugins = match args.next().as_deref() {
                    Some("real") => Plugins::Real,
                    Some("canned") => Plugins::Canned,
                    other => panic!("--plugins real|canned, not {other:?}"),
                }
            }
            "--attachments" => {
                o.attachments = Some(
                    args.next()
                        .expect("--attachments 1,3,8")
                        .split(',')
                        .map(|n| n.parse().expect("--attachments: numbers"))
                        .collect(),
                )
            }
            "--api-latency" => {
                let spec = args.next().expect("--api-latency SPEC");
                o.api_latency =
                    Some(Latencies::parse(&spec).unwrap_or_else(|e| panic!("--api-latency: {e}")));
            }
            "--pods" => o.pods = num(args.next(), "--pods"),
            "--parallel" => o.parallel = num(args.next(), "--parallel"),
            "--bursts" => o.bursts = num(args.next(), "--bursts"),
            "version" | "floor" | "cycle" | "burst" | "all" | "compare" | "api" | "containerd" => {
                o.mode = a
            }
            "floor-child" => std::process::exit(i32::from(floor::child_main())),
            other => panic!("unknown argument {other:?}; see the doc comment of plexus-bench"),
        }
    }
    o.binary = found(&o.binary);
    o.baseline = o.baseline.as_deref().map(found);
    if o.mode == "compare" && o.baseline.is_none() {
        panic!("compare needs --baseline PATH (the build --binary is compared with)");
    }
    if o.mode == "compare" && o.attachments.as_ref().is_some_and(|a| a.len() != 1) {
        panic!("compare measures one pod size: --attachments N");
    }
    o
}

/// `p` made absolute; a missing binary ends the benchmark with how to build it.
fn found(p: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(p)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo build --release` first", p.display()))
}

fn main() {
    let o = parse();
    if !matches!(o.mode.as_str(), "version" | "floor") {
        sandbox::enter();
    }
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let latencies = o.api_latency.unwrap_or(if o.mode == "api" {
        Latencies::REALISTIC
    } else {
        Latencies::default()
    });
    bench::set_api_latencies(latencies);
    println!(
        "Machine: {machine}, {cores} cores; binary {}\n",
        o.binary.display()
    );
    if latencies != Latencies::default() {
        println!("API stand-in latencies: {latencies}\n");
    }
    if o.mode == "api" {
        let runs = o.runs.unwrap_or(40);
        let sizes = o.attachments.clone().unwrap_or_else(|| vec![1, 3]);
        let floor = floor::measure(&o.binary, 100);
        floor::report(&floor, 100);
        println!();
        let measured = cycle::measure(&o.binary, &sizes, runs, o.plugins);
        cycle::report(&measured, runs, o.plugins);
        println!();
        cycle::report_against_floor(&measured, &floor);
        println!();
        let (wall, cpu) = bench::events::measure_sender(&o.binary, 50);
        bench::events::report(&wall, &cpu, 50);
        return;
    }
    if o.mode == "version" || o.mode == "all" {
        version::report(
            &o.binary,
            o.runs.filter(|_| o.mode == "version").unwrap_or(2000),
        );
        println!();
    }
    if o.mode == "floor" || o.mode == "all" {
        let runs = o.runs.filter(|_| o.mode == "floor").unwrap_or(300);
        floor::report(&floor::measure(&o.binary, runs), runs);
        println!();
    }
    if o.mode == "cycle" || o.mode == "all" {
        let runs = o.runs.filter(|_| o.mode == "cycle").unwrap_or(60);
        let sizes = o.attachments.clone().unwrap_or_else(|| vec![1, 3, 8]);
        let measured = cycle::measure(&o.binary, &sizes, runs, o.plugins);
        cycle::report(&measured, runs, o.plugins);
        println!();
    }
    if let (Some(baseline), "compare") = (&o.baseline, o.mode.as_str()) {
        let attachments = o
            .attachments
            .as_ref()
            .and_then(|a| a.first().copied())
            .unwrap_or(3);
        let compared = cycle::compare(
            baseline,
            &o.binary,
            attachments,
            o.runs.unwrap_or(300),
            o.plugins,
        );
        cycle::report_comparison(&compared, o.plugins);
    }
    if o.mode == "containerd" {
        let m = plexus_conformance::bench::containerd::measure(&o.binary, o.runs.unwrap_or(40));
        plexus_conformance::bench::containerd::report(&m);
    }
    if o.mode == "burst" || o.mode == "all" {
        // Timed bursts, then one that samples plexus's peak RSS.
        let bursts: Vec<_> = (0..=o.bursts)
            .map(|i| {
                let sample_rss = i == o.bursts;
                burst::measure(
                    &o.binary,
                    o.pods,
                    3,
                    o.parallel,
                    o.plugins,
                    sample_rss,
                    i % 2 == 1,
                )
            })
            .collect();
        burst::report(&bursts, o.pods, 3, o.parallel);
    }
}
