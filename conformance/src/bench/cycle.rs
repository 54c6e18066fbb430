//! ADD+DEL of one pod, repeated: through plexus and directly, interleaved run by run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::pod::{Node, Plugins};
use super::{Stats, header, row};
use crate::netns::Netns;

/// Runs not counted (caches, first connection of the stand-in).
const WARMUP: usize = 3;
/// Separate ADD+DEL runs whose plexus peak RSS is sampled (sampling costs a little CPU, so the
/// timed runs do not sample).
const RSS_RUNS: usize = 5;

/// The figures of one pod size.
#[derive(Debug)]
pub struct Figures {
    /// Networks of the pod.
    pub attachments: usize,
    /// ADD+DEL through plexus.
    pub plexus: Stats,
    /// The same delegates run directly.
    pub direct: Stats,
    /// Median over runs of (plexus − direct) of the same run.
    pub paired_overhead_ms: f64,
    /// KiB, the largest of the sampled runs (ADD and DEL).
    pub peak_rss_kib: u64,
    /// API requests of one pod's ADD+DEL, by kind.
    pub requests: BTreeMap<String, u64>,
}

/// Measures a pod with `n` networks, `runs` times.
pub fn measure(binary: &Path, n: usize, runs: usize, plugins: Plugins) -> Figures {
    let node = Node::new(
        binary,
        n,
        plugins,
        std::env::var_os("BENCH_CNI_DIR").map(PathBuf::from),
    );
    let pod = format!("bench{n}");
    node.add_pod(&pod);
    let mut through = Vec::with_capacity(runs);
    let mut direct = Vec::with_capacity(runs);
    let mut paired = Vec::with_capacity(runs);
    let mut requests = BTreeMap::new();
    let mut peak = 0;
    for i in 0..WARMUP + runs + RSS_RUNS {
        let rss = i >= WARMUP + runs;
        let cid = format!("{pod}-{i}");
        let ns = Netns::new("bench");
        let netns = ns.path().display().to_string();
        node.server.reset_counters();
        let (add, del) = node
            .through_plexus(&pod, &cid, &netns, rss)
            .unwrap_or_else(|e| panic!("{e}"));
        drop(ns);
        if rss {
            peak = peak
                .max(add.peak_rss_kib.unwrap_or(0))
                .max(del.peak_rss_kib.unwrap_or(0));
            continue;
        }
        requests = node.server.counters();

        let ns = Netns::new("direct");
        let netns = ns.path().display().to_string();
        let cid = format!("{pod}-d{i}");
        let (t_add, results) = node
            .direct_add(&pod, &cid, &netns)
            .unwrap_or_else(|e| panic!("{e}"));
        let t_del = node
            .direct_del(&pod, &cid, &netns, results)
            .unwrap_or_else(|e| panic!("{e}"));
        drop(ns);
        if i >= WARMUP {
            let p = (add.wall + del.wall).as_secs_f64() * 1000.0;
            let d = (t_add + t_del).as_secs_f64() * 1000.0;
            if std::env::var_os("BENCH_SPLIT").is_some() {
                eprintln!(
                    "n={n} ADD {:.2} ms DEL {:.2} ms direct {d:.2} ms",
                    add.wall.as_secs_f64() * 1000.0,
                    del.wall.as_secs_f64() * 1000.0
                );
            }
            through.push(p);
            direct.push(d);
            paired.push(p - d);
        }
    }
    Figures {
        attachments: n,
        plexus: Stats::of(through),
        direct: Stats::of(direct),
        paired_overhead_ms: Stats::of(paired).median,
        peak_rss_kib: peak,
        requests,
    }
}

/// Prints the table of several pod sizes, and the per-attachment growth of the overhead.
pub fn report(figures: &[Figures], runs: usize, plugins: Plugins) {
    let what = match plugins {
        Plugins::Real => "real Debian plugins",
        Plugins::Canned => "canned no-op delegates",
    };
    header(&format!("ADD+DEL cycle, {what}, {runs} runs each"));
    for f in figures {
        row(
            &format!("{} attachment(s): through plexus", f.attachments),
            &f.plexus,
        );
        row(
            &format!("{} attachment(s): delegates run directly", f.attachments),
            &f.direct,
        );
    }
    println!();
    println!(
        "| attachments | overhead (medians) | overhead (median of paired runs) | ratio plexus/direct | plexus peak RSS |"
    );
    println!("|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.3} | {:.2} MiB |",
            f.attachments,
            f.plexus.median - f.direct.median,
            f.paired_overhead_ms,
            f.plexus.median / f.direct.median,
            f.peak_rss_kib as f64 / 1024.0
        );
    }
    if let (Some(first), Some(last)) = (figures.first(), figures.last())
        && last.attachments > first.attachments
    {
        let per = (last.paired_overhead_ms - first.paired_overhead_ms)
            / (last.attachments - first.attachments) as f64;
        println!(
            "\nOverhead per extra attachment ({} → {}, paired medians): {per:.2} ms",
            first.attachments, last.attachments
        );
    }
    for f in figures {
        let shown: Vec<String> = f
            .requests
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!(
            "API requests of one {}-attachment pod (ADD+DEL): {}",
            f.attachments,
            if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            }
        );
    }
}
