//! `VERSION` wall time against `/bin/true` (the floor any exec'd binary pays), and the size of
//! the release binary.

use std::path::Path;

use super::proc::run;
use super::{Stats, header, row};

/// Measures and prints the table.
pub fn report(binary: &Path, runs: usize) {
    let env = [
        ("CNI_COMMAND", "VERSION"),
        ("CNI_NETNS", "dummy"),
        ("CNI_IFNAME", "dummy"),
        ("CNI_PATH", "dummy"),
    ];
    let size = std::fs::metadata(binary)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo build --release` first",
                binary.display()
            )
        })
        .len();
    let measure = |bin: &Path, env: &[(&str, &str)]| {
        for _ in 0..runs / 20 {
            run(bin, env, b"", false);
        }
        Stats::of(
            (0..runs)
                .map(|_| run(bin, env, b"", false).wall.as_secs_f64() * 1000.0)
                .collect(),
        )
    };
    let plexus = measure(binary, &env);
    let floor = measure(Path::new("/bin/true"), &[]);
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
