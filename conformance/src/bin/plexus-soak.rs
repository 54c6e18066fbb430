//! The soak as a command: many pod ADD/DEL cycles through plexus with random faults, then a
//! count of everything left behind (see `plexus_conformance::soak`).
//!
//! ```text
//! cargo build --workspace                      # a debug plexus: the SIGKILL faults need it
//! sudo target/debug/plexus-soak --cycles 1000  # about ten minutes on 2 cores
//! ```
//!
//! Options: `--cycles N` (default 1000), `--seed N` (default 1; the same seed gives the same
//! faults), `--binary PATH` (default: `plexus` next to this program), `--verbose` (one line
//! per cycle). Runs itself in a private network and mount namespace (root needed; nothing on
//! the host changes). Exits 0 when nothing leaked and every outcome kept the contract.

use std::path::PathBuf;

use plexus_conformance::sandbox;
use plexus_conformance::soak::{Options, run};

fn main() {
    let mut opts = Options {
        cycles: 1000,
        seed: 1,
        plexus: std::env::current_exe()
            .map(|p| p.with_file_name("plexus"))
            .unwrap_or_else(|_| PathBuf::from("target/debug/plexus")),
        verbose: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--cycles" => opts.cycles = value().parse().unwrap_or_else(|_| usage("--cycles N")),
            "--seed" => opts.seed = value().parse().unwrap_or_else(|_| usage("--seed N")),
            "--binary" => opts.plexus = PathBuf::from(value()),
            "--verbose" => opts.verbose = true,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !opts.plexus.is_file() {
        usage(&format!(
            "{} is missing: `cargo build --workspace` (a debug build) or --binary PATH",
            opts.plexus.display()
        ));
    }
    sandbox::enter();
    let report = run(&opts);
    println!("{}", report.text());
    std::process::exit(if report.clean() { 0 } else { 1 });
}

fn usage(why: &str) -> ! {
    eprintln!(
        "plexus-soak: {why}\nusage: plexus-soak [--cycles N] [--seed N] [--binary PATH] [--verbose]"
    );
    std::process::exit(2);
}
