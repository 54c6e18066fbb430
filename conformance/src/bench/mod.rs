//! Benchmarks of plexus on one machine: figures for the README, never assertions in tests.
//!
//! The `plexus-bench` binary is the command line; this module is the harness:
//! - [`proc`]: running one process with exact env and stdin, its wall time, and the peak RSS
//!   of that process alone (not of its children);
//! - [`pod`]: a simulated node (API stand-in over HTTPS, NADs, a pod) with `n` networks, and
//!   the two ways of attaching them: through plexus, and the same delegates run directly in
//!   the same order with the same configs (the floor);
//! - [`cycle`]: ADD+DEL of pods with 1, 3 and 8 attachments, repeated, the sizes taking turns;
//! - [`burst`]: many pods added and deleted by a pool of workers, as a kubelet does;
//! - [`version`]: `VERSION` against `/bin/true`, and the binary size;
//! - [`floor`]: what any plugin exec'd per call that reads NADs over HTTPS pays here (two
//!   process starts, a connection, a NAD read, a status write), against which the overhead
//!   is to be read.
//!
//! Figures are medians with min and max. Runs through plexus and direct runs are interleaved
//! run by run, and so are the pod sizes of `cycle`, so that a slow moment of the machine hits
//! both sides and every size alike.

pub mod burst;
pub mod cycle;
pub mod floor;
pub mod pod;
pub mod proc;
pub mod version;

/// Median, p90, min and max of a sample, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// The median.
    pub median: f64,
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
        Stats {
            median: at(0.5),
            p90: at(0.9),
            min: ms[0],
            max: ms[ms.len() - 1],
        }
    }
}

/// A markdown table row: name, median, p90, min, max.
pub fn row(name: &str, s: &Stats) {
    println!(
        "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        s.median, s.p90, s.min, s.max
    );
}

/// The markdown table header matching [`row`].
pub fn header(title: &str) {
    println!("| {title} | median | p90 | min | max |");
    println!("|---|---|---|---|---|");
}
