//! `VERSION` wall time against `/bin/true` (the floor any exec'd binary pays), and the size of
//! the release binary.

use std::path::Path;

use super::proc::{VERSION_ENV, run, wall_times};
use super::{header, row};

/// Measures and prints the table.
pub fn report(binary: &Path, runs: usize) {
    let env = VERSION_ENV;
    let size = std::fs::metadata(binary)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo build --release` first",
                binary.display()
            )
        })
        .len();
    let plexus = wall_times(binary, &env, runs / 20, runs);
    let floor = wall_times(Path::new("/bin/true"), &[], runs / 20, runs);
    let rss = (0..20)
        .filter_map(|_| run(binary, &env, b"", true).peak_rss_kib)
        .max()
        .unwrap_or(0);
    header(&format!("VERSION, {runs} runs"));
    row("plexus VERSION", &plexus);
    row("/bin/true, the exec floor", &floor);
    println!(
        "| release binary size | {:.2} MB ({size} bytes) | | | |",
        size as f64 / 1e6
    );
    println!(
        "| plexus peak RSS during VERSION | {:.2} MiB | | | |",
        rss as f64 / 1024.0
    );
}
