//! Benchmarks of plexus on one machine: figures for docs/benchmarks.md, never assertions in
//! tests.
//!
//! The `plexus-bench` binary is the command line; this module is the harness:
//! - [`proc`]: running one process with exact env and stdin, its wall time, and the peak RSS
//!   of that process alone (not of its children);
//! - [`pod`]: a simulated node (API stand-in over HTTPS, NADs, a pod) with `n` networks, and
//!   the two ways of attaching them: through plexus, and the same delegates run directly in
//!   the same order with the same configs (the floor);
//! - [`cycle`]: ADD+DEL of pods with 1, 3 and 8 attachments, repeated, the sizes taking turns;
//! - [`containerd`]: a pod's sandbox through a real containerd, with plexus wrapping the
//!   cluster network and without it;
//! - [`burst`]: many pods added and deleted by a pool of workers, as a kubelet does;
//! - [`version`]: `VERSION` against `/bin/true`, and the binary size;
//! - [`events`]: what the detached Event sender costs the node (off the pod's path);
//! - [`floor`]: what any plugin exec'd per call that reads NADs over HTTPS pays here (two
//!   process starts, a connection, a NAD read, a status write), against which the overhead
//!   is to be read.
//!
//! Figures are medians with min and max, and the paired overheads' medians come with a 95%
//! confidence interval ([`median_ci95_ranks`]). Runs through plexus and direct runs are interleaved
//! run by run, and so are the pod sizes of `cycle`, so that a slow moment of the machine hits
//! both sides and every size alike.

use std::sync::OnceLock;

use crate::apiserver::Latencies;

pub mod burst;
pub mod containerd;
pub mod cycle;
pub mod events;
pub mod floor;
pub mod pod;
pub mod proc;
pub mod version;

/// The API stand-in's latencies for every node and floor of this process (none by default);
/// set once, by the command line, before anything is measured.
static API_LATENCIES: OnceLock<Latencies> = OnceLock::new();

/// Sets the stand-in's latencies for this process's benchmarks; false when already set.
pub fn set_api_latencies(l: Latencies) -> bool {
    API_LATENCIES.set(l).is_ok()
}

/// The stand-in's latencies for this process's benchmarks.
pub fn api_latencies() -> Latencies {
    API_LATENCIES.get().copied().unwrap_or_default()
}

/// Median, p90, min and max of a sample, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// The median.
    pub median: f64,
    /// A 95% confidence interval of the median (see [`median_ci95_ranks`]).
    pub median_ci95: (f64, f64),
    /// The 90th percentile.
    pub p90: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Stats {
    /// The statistics of `ms` (not empty).
    pub fn of(mut ms: Vec<f64>) -> Stats {
        assert!(!ms.is_empty(), "no samples");
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        let (lo, hi) = median_ci95_ranks(ms.len());
        Stats {
            median: at(0.5),
            median_ci95: (ms[lo], ms[hi]),
            p90: at(0.9),
            min: ms[0],
            max: ms[ms.len() - 1],
        }
    }
}

/// The ranks (0-based, in the sorted sample) that bound a 95% confidence interval of the
/// median of `n` samples, whatever their distribution: the number of samples below the true
/// median follows the binomial law B(n, 1/2), and the interval is the narrowest symmetric
/// one with at least 95% coverage, computed exactly (in logarithms, for large `n`). The
/// benchmark's runs are far from normally distributed (a slow minute of the machine gives a
/// long tail), which is why the interval is not the mean's. With fewer than 6 samples no
/// interval reaches 95%: then the whole range.
pub fn median_ci95_ranks(n: usize) -> (usize, usize) {
    if n < 6 {
        return (0, n.saturating_sub(1));
    }
    // P(B <= k) for k = 0, 1, ...: stop at the first k whose tail is over 2.5%.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let (mut ln_choose, mut cdf, mut k) = (0.0f64, 0.0f64, 0usize);
    loop {
        cdf += (ln_choose + ln_half_n).exp();
        if cdf > 0.025 {
            break;
        }
        k += 1;
        ln_choose += ((n - k + 1) as f64 / k as f64).ln();
    }
    // P(B <= k - 1) <= 2.5% < P(B <= k): the k-th smallest (0-based rank k - 1) and,
    // symmetrically, the k-th largest bound the interval (k >= 1: P(B = 0) is 2^-n).
    (k - 1, n - k)
}

/// A markdown table row: name, median, p90, min, max.
pub fn row(name: &str, s: &Stats) {
    println!(
        "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        s.median, s.p90, s.min, s.max
    );
}

/// `median (95% CI lo to hi)`, for a table cell.
pub fn median_with_ci(s: &Stats) -> String {
    format!(
        "{:.2} ms (95% CI {:.2} to {:.2})",
        s.median, s.median_ci95.0, s.median_ci95.1
    )
}

/// The markdown table header matching [`row`].
pub fn header(title: &str) {
    println!("| {title} | median | p90 | min | max |");
    println!("|---|---|---|---|---|");
}

#[cfg(test)]
mod tests {
    use super::{Stats, median_ci95_ranks};

    #[test]
    fn the_median_interval_has_the_binomial_ranks() {
        // The binomial law's ranks, computed apart with exact integers (1-based 40 and 61
        // for 100 samples, the textbook pair; 2 and 9 for 10; 133 and 168 for 300).
        assert_eq!(median_ci95_ranks(100), (39, 60));
        assert_eq!(median_ci95_ranks(10), (1, 8));
        assert_eq!(median_ci95_ranks(300), (132, 167));
        assert_eq!(median_ci95_ranks(5), (0, 4));
        assert_eq!(median_ci95_ranks(0), (0, 0));
        let (lo, hi) = median_ci95_ranks(100_000);
        assert!(lo < 50_000 && hi > 50_000 && hi - lo < 700, "{lo} {hi}");
    }

    #[test]
    fn stats_carry_the_interval_of_their_sample() {
        let s = Stats::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(s.median_ci95, (40.0, 61.0));
        assert_eq!((s.min, s.max), (1.0, 100.0));
    }
}
