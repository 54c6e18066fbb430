//! ADD+DEL of pods of several sizes, repeated: through plexus and directly, interleaved run by
//! run and size by size; and [`compare`], two plexus builds on the same pod, interleaved cycle
//! by cycle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::pod::{Node, Plugins};
use super::proc::Outcome;
use super::{Stats, header, median_with_ci, row};
use crate::netns::Netns;

/// Rounds not counted (caches, first connection of the stand-in).
const WARMUP: usize = 3;
/// Separate ADD+DEL runs (per size) whose plexus peak RSS is sampled (sampling costs a little CPU, so the
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
    /// Over runs, (plexus − direct) of the same run; its median is "the paired overhead".
    pub paired: Stats,
    /// KiB, the largest of the sampled runs (ADD and DEL).
    pub peak_rss_kib: u64,
    /// API requests of one pod's ADD+DEL, by kind.
    pub requests: BTreeMap<String, u64>,
}

/// One node per pod size, and what has been measured on it so far.
struct Size {
    node: Node,
    pod: String,
    through: Vec<f64>,
    /// The ADD and the DEL of each timed run through plexus.
    adds: Vec<f64>,
    dels: Vec<f64>,
    direct: Vec<f64>,
    paired: Vec<f64>,
    requests: BTreeMap<String, u64>,
    peak: u64,
}

impl Size {
    fn new(binary: &Path, n: usize, plugins: Plugins, pod: String) -> Size {
        let node = Node::new(
            binary,
            n,
            plugins,
            std::env::var_os("BENCH_CNI_DIR").map(PathBuf::from),
        );
        node.add_pod(&pod);
        Size {
            node,
            pod,
            through: Vec::new(),
            adds: Vec::new(),
            dels: Vec::new(),
            direct: Vec::new(),
            paired: Vec::new(),
            requests: BTreeMap::new(),
            peak: 0,
        }
    }

    /// ADD+DEL through plexus and the same delegates run directly, in turn (plexus first in
    /// even cycles, the direct runs first in odd ones: see [`turn`]); the overheads (plexus −
    /// direct) when `timed`. With `rss`, only the run through plexus, sampling its peak RSS.
    fn cycle(&mut self, i: usize, timed: bool, rss: bool) -> Option<Paired> {
        let n = self.node.nets.len();
        if rss {
            let (add, del) = self.through(i, true);
            self.peak = self
                .peak
                .max(add.peak_rss_kib.unwrap_or(0))
                .max(del.peak_rss_kib.unwrap_or(0));
            return None;
        }
        let ((add, del), (t_add, t_del)) = if turn(i)[0] == 0 {
            let p = self.through(i, false);
            (p, self.direct(i))
        } else {
            let d = self.direct(i);
            (self.through(i, false), d)
        };
        if !timed {
            return None;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (a, r) = (ms(add.wall), ms(del.wall));
        let (da, dr) = (ms(t_add), ms(t_del));
        let (p, d) = (a + r, da + dr);
        if std::env::var_os("BENCH_SPLIT").is_some() {
            eprintln!(
                "n={n} ADD {a:.2} ms DEL {r:.2} ms direct {d:.2} ms (ADD {da:.2}, DEL {dr:.2})"
            );
        }
        self.adds.push(a);
        self.dels.push(r);
        self.through.push(p);
        self.direct.push(d);
        self.paired.push(p - d);
        Some(Paired {
            both: p - d,
            add: a - da,
            del: r - dr,
        })
    }

    /// ADD then DEL of the pod through plexus, in a network namespace of its own.
    fn through(&mut self, i: usize, rss: bool) -> (Outcome, Outcome) {
        let cid = format!("{}-{i}", self.pod);
        let ns = Netns::new("bench");
        let netns = ns.path().display().to_string();
        self.node.server.reset_counters();
        let outcomes = self
            .node
            .through_plexus(&self.pod, &cid, &netns, rss)
            .unwrap_or_else(|e| panic!("{e}"));
        if !rss {
            self.requests = self.node.server.counters();
        }
        outcomes
    }

    /// The same delegates' ADDs, then their DELs, run directly: the two wall times.
    fn direct(&mut self, i: usize) -> (Duration, Duration) {
        let ns = Netns::new("direct");
        let netns = ns.path().display().to_string();
        let cid = format!("{}-d{i}", self.pod);
        let (t_add, results) = self
            .node
            .direct_add(&self.pod, &cid, &netns)
            .unwrap_or_else(|e| panic!("{e}"));
        let t_del = self
            .node
            .direct_del(&self.pod, &cid, &netns, results)
            .unwrap_or_else(|e| panic!("{e}"));
        (t_add, t_del)
    }
}

/// One cycle's overheads in ms: plexus's time minus the direct runs' of the same cycle, for
/// ADD and DEL together and for each alone.
#[derive(Debug, Clone, Copy)]
struct Paired {
    both: f64,
    add: f64,
    del: f64,
}

/// The figures of every pod size, and the growth of the overhead per extra attachment.
#[derive(Debug)]
pub struct Measured {
    /// One per pod size, in the order asked.
    pub sizes: Vec<Figures>,
    /// Per round, (paired overhead of the largest pod − of the smallest) / (difference in
    /// attachments); `None` with a single pod size.
    pub per_attachment: Option<Stats>,
}

/// Measures pods with each of `sizes` networks, `runs` rounds.
///
/// A round is one ADD+DEL of every pod size in turn, each followed by the same delegates run
/// directly: the sizes are interleaved as well as the two sides, so a slow minute of the
/// machine (this VM's neighbours move whole minutes by 2 ms and more) hits every size alike
/// instead of tilting the growth from one size to the next. The growth per extra attachment is
/// taken within each round (see [`per_round_slopes`]), and its median reported.
pub fn measure(binary: &Path, sizes: &[usize], runs: usize, plugins: Plugins) -> Measured {
    let mut nodes: Vec<Size> = sizes
        .iter()
        .map(|&n| Size::new(binary, n, plugins, format!("bench{n}")))
        .collect();
    let mut rounds = Vec::with_capacity(runs);
    for i in 0..WARMUP + runs {
        let round: Vec<f64> = nodes
            .iter_mut()
            .filter_map(|s| s.cycle(i, i >= WARMUP, false).map(|p| p.both))
            .collect();
        if i >= WARMUP {
            rounds.push(round);
        }
    }
    for i in WARMUP + runs..WARMUP + runs + RSS_RUNS {
        for s in &mut nodes {
            s.cycle(i, false, true);
        }
    }
    let per_attachment = per_round_slopes(sizes, &rounds).map(Stats::of);
    Measured {
        sizes: nodes
            .into_iter()
            .map(|s| Figures {
                attachments: s.node.nets.len(),
                plexus: Stats::of(s.through),
                direct: Stats::of(s.direct),
                paired: Stats::of(s.paired),
                peak_rss_kib: s.peak,
                requests: s.requests,
            })
            .collect(),
        per_attachment,
    }
}

/// One side of a [`compare`]: medians over its timed cycles, in ms.
#[derive(Debug)]
pub struct Side {
    /// The plexus binary.
    pub binary: PathBuf,
    /// ADD through plexus.
    pub add: f64,
    /// DEL through plexus.
    pub del: f64,
    /// The same delegates run directly (ADD+DEL).
    pub direct: f64,
    /// Median over cycles of (ADD+DEL through plexus − direct) of the same cycle.
    pub paired: f64,
}

/// Two plexus builds measured on the same pod size, cycle by cycle.
#[derive(Debug)]
pub struct Compared {
    /// Networks of the pod.
    pub attachments: usize,
    /// The build compared with.
    pub baseline: Side,
    /// The build measured.
    pub candidate: Side,
    /// Per cycle: the candidate's paired overhead minus the baseline's of the same cycle.
    pub difference: Stats,
    /// The same for ADD's overhead alone (plexus's ADD minus the direct ADD runs of its
    /// cycle), and for DEL's. With the real plugins, DEL (their teardown, tens of ms) carries
    /// most of the noise, so a change to ADD shows in its own difference first.
    pub add_difference: Stats,
    /// The same for DEL's own overhead.
    pub del_difference: Stats,
    /// Cycles in which the candidate's paired overhead was the lower one.
    pub candidate_lower: usize,
    /// Timed cycles per side.
    pub cycles: usize,
}

/// Measures two plexus builds (`baseline`, `candidate`) on a pod with `attachments` networks,
/// `cycles` ADD+DEL cycles each, each followed by the same delegates run directly.
///
/// The builds take turns cycle by cycle, in the order A B, B A, A B... (ABBA), each on a node
/// of its own (own API stand-in and journal, same networks). Comparing two whole runs one
/// after the other, or even alternating runs of 75 cycles, was not good enough on the
/// development VM: its speed drifts by whole milliseconds from one minute to the next, and the
/// second of two runs came out systematically different from the first (four comparisons of
/// one pair of builds, 4 x 75 cycles each: the side that went second had its direct runs 3 to
/// 8 ms slower, and the verdict followed the order). Adjacent cycles see the same machine; the
/// ABBA order cancels what going first or second does. Reported: each side's medians, and the
/// median of the per-cycle differences of the paired overheads with the count of cycles in
/// which the candidate was lower.
pub fn compare(
    baseline: &Path,
    candidate: &Path,
    attachments: usize,
    cycles: usize,
    plugins: Plugins,
) -> Compared {
    let mut sides = [
        Size::new(baseline, attachments, plugins, format!("base{attachments}")),
        Size::new(
            candidate,
            attachments,
            plugins,
            format!("cand{attachments}"),
        ),
    ];
    let (mut diffs, mut add_diffs, mut del_diffs) = (
        Vec::with_capacity(cycles),
        Vec::with_capacity(cycles),
        Vec::with_capacity(cycles),
    );
    for i in 0..WARMUP + cycles {
        let timed = i >= WARMUP;
        let mut paired = [None, None];
        for s in turn(i) {
            paired[s] = sides[s].cycle(i, timed, false);
        }
        if let [Some(b), Some(c)] = paired {
            diffs.push(c.both - b.both);
            add_diffs.push(c.add - b.add);
            del_diffs.push(c.del - b.del);
        }
    }
    let candidate_lower = diffs.iter().filter(|d| **d < 0.0).count();
    let side = |s: Size, binary: &Path| Side {
        binary: binary.to_path_buf(),
        add: Stats::of(s.adds).median,
        del: Stats::of(s.dels).median,
        direct: Stats::of(s.direct).median,
        paired: Stats::of(s.paired).median,
    };
    let [b, c] = sides;
    Compared {
        attachments,
        baseline: side(b, baseline),
        candidate: side(c, candidate),
        difference: Stats::of(diffs),
        add_difference: Stats::of(add_diffs),
        del_difference: Stats::of(del_diffs),
        candidate_lower,
        cycles,
    }
}

/// Which side goes first in cycle `i` of a [`compare`]: A B, then B A, and so on.
pub fn turn(i: usize) -> [usize; 2] {
    if i % 2 == 0 { [0, 1] } else { [1, 0] }
}

/// Prints a [`compare`].
pub fn report_comparison(c: &Compared, plugins: Plugins) {
    let what = plugins.label();
    println!(
        "| {} attachment(s), {what}, {} cycles each, ABBA | ADD | DEL | directly | overhead (median of paired runs) |",
        c.attachments, c.cycles
    );
    println!("|---|---|---|---|---|");
    for (name, s) in [("baseline", &c.baseline), ("candidate", &c.candidate)] {
        println!(
            "| {name}: {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            s.binary.display(),
            s.add,
            s.del,
            s.direct,
            s.paired
        );
    }
    let d = &c.difference;
    println!(
        "\nCandidate − baseline, paired overhead, cycle by cycle: median {:+.2} ms (95% CI {:+.2} to {:+.2}; p90 {:+.2}, min {:+.2}, max {:+.2}); the candidate was lower in {} of {} cycles.",
        d.median,
        d.median_ci95.0,
        d.median_ci95.1,
        d.p90,
        d.min,
        d.max,
        c.candidate_lower,
        c.cycles
    );
    for (what, d) in [("ADD", &c.add_difference), ("DEL", &c.del_difference)] {
        println!(
            "Of that, {what}'s own overhead: median {:+.2} ms (95% CI {:+.2} to {:+.2}).",
            d.median, d.median_ci95.0, d.median_ci95.1
        );
    }
}

/// For each round (the paired overheads of every pod size, in the order of `sizes`), the
/// overhead's growth per extra attachment from the smallest pod to the largest. `None` when
/// there is no growth to measure (one size, or all sizes equal) or no round.
pub fn per_round_slopes(sizes: &[usize], rounds: &[Vec<f64>]) -> Option<Vec<f64>> {
    let (lo, hi) = (
        sizes.iter().enumerate().min_by_key(|(_, n)| **n)?,
        sizes.iter().enumerate().max_by_key(|(_, n)| **n)?,
    );
    if hi.1 == lo.1 || rounds.is_empty() {
        return None;
    }
    let span = (hi.1 - lo.1) as f64;
    Some(rounds.iter().map(|r| (r[hi.0] - r[lo.0]) / span).collect())
}

/// Prints the table of several pod sizes, and the per-attachment growth of the overhead.
pub fn report(measured: &Measured, runs: usize, plugins: Plugins) {
    let figures = &measured.sizes;
    let what = plugins.label();
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
            "| {} | {:.2} ms | {} | {:.3} | {:.2} MiB |",
            f.attachments,
            f.plexus.median - f.direct.median,
            median_with_ci(&f.paired),
            f.plexus.median / f.direct.median,
            f.peak_rss_kib as f64 / 1024.0
        );
    }
    if let Some(per) = &measured.per_attachment {
        let (lo, hi) = (
            figures.iter().map(|f| f.attachments).min().unwrap_or(0),
            figures.iter().map(|f| f.attachments).max().unwrap_or(0),
        );
        println!(
            "\nOverhead per extra attachment ({lo} → {hi}, paired, within each round): median {:.2} ms (p90 {:.2}, min {:.2}, max {:.2})",
            per.median, per.p90, per.min, per.max
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

/// plexus's overhead per pod (the paired median, with its interval) against the cold floor
/// of the same run ([`super::floor`]): how much more than any exec'd
/// meta-plugin reading its NADs and writing network-status against this API plexus pays.
pub fn report_against_floor(measured: &Measured, floor: &super::floor::Floor) {
    let sum = floor.cold.median;
    println!("| attachments | plexus's overhead per pod | cold floor | overhead − floor |");
    println!("|---|---|---|---|");
    for f in &measured.sizes {
        println!(
            "| {} | {} | {sum:.2} ms | {:.2} ms (95% CI {:.2} to {:.2}) |",
            f.attachments,
            median_with_ci(&f.paired),
            f.paired.median - sum,
            f.paired.median_ci95.0 - sum,
            f.paired.median_ci95.1 - sum
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{per_round_slopes, turn};

    #[test]
    fn each_build_goes_first_in_every_other_cycle() {
        let firsts: Vec<usize> = (0..6).map(|i| turn(i)[0]).collect();
        assert_eq!(firsts, [0, 1, 0, 1, 0, 1]);
        for i in 0..6 {
            let mut sides = turn(i);
            sides.sort_unstable();
            assert_eq!(sides, [0, 1], "cycle {i} runs both builds once");
        }
    }

    #[test]
    fn slopes_are_taken_within_each_round_between_the_smallest_and_largest_pod() {
        // Sizes in any order; the middle size does not enter the slope.
        let sizes = [3, 1, 8];
        let rounds = vec![vec![12.0, 10.0, 17.0], vec![30.0, 24.0, 38.0]];
        // A drift of 14 ms between the rounds leaves the growth per attachment alone.
        assert_eq!(per_round_slopes(&sizes, &rounds), Some(vec![1.0, 2.0]));
        assert_eq!(per_round_slopes(&[3], &[vec![1.0]]), None);
        assert_eq!(per_round_slopes(&[3, 3], &[vec![1.0, 2.0]]), None);
        assert_eq!(per_round_slopes(&[1, 8], &[]), None);
    }
}
