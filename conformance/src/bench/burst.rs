//! A burst: `pods` pods with `n` networks each, added by `parallel` workers at a time (as a
//! kubelet starting many pods on a node does), then deleted the same way; through plexus and
//! with the same delegates run directly. Reports total wall time, failures, what was left
//! behind, and plexus's peak RSS.
//!
//! Sampling the peak RSS of every plexus process costs CPU that the direct side would not pay,
//! so timed bursts do not sample; a separate burst measures plexus's peak RSS
//! ([`measure`] with `sample_rss`), and its times are not reported.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::pod::{Node, Plugins};
use crate::netns::{Netns, host_links};
use crate::runtime::leftover_leases;

/// The figures of one burst pair.
#[derive(Debug)]
pub struct Figures {
    /// Wall time of the whole burst (ADDs then DELs) through plexus.
    pub plexus: Duration,
    /// The same with the delegates run directly.
    pub direct: Duration,
    /// Calls through plexus that failed, with their error.
    pub failures: Vec<String>,
    /// Files left in plexus's state directory afterwards.
    pub leftover_state: Vec<String>,
    /// host-local leases left afterwards.
    pub leftover_leases: Vec<String>,
    /// Links left in the node's namespace afterwards (new since before the burst, bridges
    /// excepted).
    pub leftover_links: usize,
    /// The largest peak RSS of any plexus process of the burst, KiB.
    pub peak_rss_kib: u64,
    /// Whether this burst sampled RSS (its times are then not comparable).
    pub sampled: bool,
}

/// Runs `work(i)` for i in 0..count on `parallel` threads; collects errors.
fn pool(
    count: usize,
    parallel: usize,
    work: impl Fn(usize) -> Result<(), String> + Sync,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(vec![]);
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    if let Err(e) = work(i) {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                }
            });
        }
    });
    errors.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// One burst through plexus and one direct; `direct_first` runs the direct one first.
///
/// Before either, one pod is attached and detached directly: the bridge plugin creates the
/// node's bridges on first use and keeps them, and host-local its lease directories, so
/// without it the first burst would pay for the node's set-up and the second would not. The
/// caller alternates the order between runs, so that a machine slowing down or speeding up
/// within a run does not favour either side.
pub fn measure(
    binary: &Path,
    pods: usize,
    n: usize,
    parallel: usize,
    plugins: Plugins,
    sample_rss: bool,
    direct_first: bool,
) -> Figures {
    let node = Node::new(binary, n, plugins, None);
    let names: Vec<String> = (0..pods).map(|i| format!("burst{i}")).collect();
    for p in &names {
        node.add_pod(p);
    }
    {
        let ns = Netns::new("warmup");
        let netns = ns.path().display().to_string();
        let (_, r) = node
            .direct_add(&names[0], "warmup", &netns)
            .unwrap_or_else(|e| panic!("warm-up pod: {e}"));
        node.direct_del(&names[0], "warmup", &netns, r)
            .unwrap_or_else(|e| panic!("warm-up pod: {e}"));
    }
    let baseline: Vec<String> = host_links().into_iter().map(|l| l.name).collect();
    let peak = AtomicUsize::new(0);
    let record = |kib: Option<u64>| {
        peak.fetch_max(kib.unwrap_or(0) as usize, Ordering::Relaxed);
    };

    let through_plexus = || -> (Duration, Vec<String>) {
        let sandboxes: Vec<Netns> = (0..pods).map(|_| Netns::new("burst")).collect();
        let results: Vec<Mutex<Option<serde_json::Value>>> =
            (0..pods).map(|_| Mutex::new(None)).collect();
        let call = |i: usize, command: &'static str| -> Result<(), String> {
            let netns = sandboxes[i].path().display().to_string();
            let cid = format!("burst-{i}");
            let prev = results[i].lock().unwrap_or_else(|p| p.into_inner()).take();
            let out = node.plexus(
                &super::pod::Call {
                    command,
                    container_id: &cid,
                    netns: &netns,
                    ifname: "eth0",
                    pod: &names[i],
                },
                prev,
                sample_rss,
            )?;
            record(out.peak_rss_kib);
            if command == "ADD" {
                let v = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
            }
            Ok(())
        };
        let start = Instant::now();
        let mut failures = pool(pods, parallel, |i| call(i, "ADD"));
        failures.extend(pool(pods, parallel, |i| call(i, "DEL")));
        (start.elapsed(), failures)
    };
    let directly = || -> Duration {
        let sandboxes: Vec<Netns> = (0..pods).map(|_| Netns::new("direct")).collect();
        let direct_results: Vec<Mutex<Vec<serde_json::Value>>> =
            (0..pods).map(|_| Mutex::new(vec![])).collect();
        let start = Instant::now();
        let mut direct_failures = pool(pods, parallel, |i| {
            let netns = sandboxes[i].path().display().to_string();
            let (_, r) = node.direct_add(&names[i], &format!("direct-{i}"), &netns)?;
            *direct_results[i].lock().unwrap_or_else(|p| p.into_inner()) = r;
            Ok(())
        });
        direct_failures.extend(pool(pods, parallel, |i| {
            let netns = sandboxes[i].path().display().to_string();
            let r =
                std::mem::take(&mut *direct_results[i].lock().unwrap_or_else(|p| p.into_inner()));
            node.direct_del(&names[i], &format!("direct-{i}"), &netns, r)
                .map(|_| ())
        }));
        let elapsed = start.elapsed();
        assert!(
            direct_failures.is_empty(),
            "the direct burst failed: {direct_failures:?}"
        );
        elapsed
    };

    let direct_before = direct_first.then(directly);
    let (plexus, failures) = through_plexus();
    // What plexus left behind, counted before the direct burst (if second) adds its own.
    let leftover_state = node.leftover_state();
    let leftover_leases = leftover_leases();
    // Links that appeared during the burst, except the bridges the bridge plugin creates on
    // first use and keeps (they belong to the node, not to a pod).
    let leftover_links = host_links()
        .into_iter()
        .filter(|l| !baseline.contains(&l.name) && l.kind.as_deref() != Some("bridge"))
        .count();
    let direct = direct_before.unwrap_or_else(directly);
    Figures {
        plexus,
        direct,
        failures,
        leftover_state,
        leftover_leases,
        leftover_links,
        peak_rss_kib: peak.load(Ordering::Relaxed) as u64,
        sampled: sample_rss,
    }
}

/// Prints one line per burst and the medians.
pub fn report(bursts: &[Figures], pods: usize, n: usize, parallel: usize) {
    println!(
        "| burst of {pods} pods × {n} attachments, {parallel} at a time | through plexus | direct | ratio | failures | leftover state / leases / links | plexus peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, b) in bursts.iter().enumerate() {
        let (times, rss) = if b.sampled {
            (
                "(RSS sampled: times not comparable) | | |".to_string(),
                format!("{:.2} MiB", b.peak_rss_kib as f64 / 1024.0),
            )
        } else {
            (
                format!(
                    "{:.2} s | {:.2} s | {:.3} |",
                    b.plexus.as_secs_f64(),
                    b.direct.as_secs_f64(),
                    b.plexus.as_secs_f64() / b.direct.as_secs_f64()
                ),
                "not sampled".to_string(),
            )
        };
        println!(
            "| run {} | {times} {} | {} / {} / {} | {rss} |",
            i + 1,
            b.failures.len(),
            b.leftover_state.len(),
            b.leftover_leases.len(),
            b.leftover_links,
        );
        for f in &b.failures {
            println!("  failure: {f}");
        }
    }
    let timed: Vec<f64> = bursts
        .iter()
        .filter(|b| !b.sampled)
        .map(|b| b.plexus.as_secs_f64() / b.direct.as_secs_f64())
        .collect();
    if !timed.is_empty() {
        let mut t = timed.clone();
        t.sort_by(f64::total_cmp);
        let median = (t[(t.len() - 1) / 2] + t[t.len() / 2]) / 2.0;
        println!(
            "\nBurst ratio plexus/direct, median of {} bursts: {median:.3}",
            t.len()
        );
    }
}
