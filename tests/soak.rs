//! The soak in CI: 100 pod ADD/DEL cycles through plexus with a fault injected at a random
//! position in most of them (failing delegate, SIGKILL of ADD or DEL at a stop point, API
//! failures, a failing status write), and zero leaks of interfaces, leases, state files,
//! processes or descriptors; plexus's peak RSS flat. See `plexus_conformance::soak`; the long
//! run is the `plexus-soak` command (docs/reliability.md, "Soak"). Needs root.
//!
//! `PLEXUS_SOAK_CYCLES` changes the number of cycles, `PLEXUS_SOAK_SEED` the faults.

use std::path::PathBuf;

use plexus_conformance::sandbox;
use plexus_conformance::soak::{Options, run};

#[test]
fn soak_100_cycles_with_random_faults() {
    sandbox::run("soak_100_cycles_with_random_faults", || {
        let var = |k: &str, default: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let opts = Options {
            cycles: var("PLEXUS_SOAK_CYCLES", 100) as usize,
            seed: var("PLEXUS_SOAK_SEED", 7),
            plexus: PathBuf::from(env!("CARGO_BIN_EXE_plexus")),
            verbose: false,
        };
        let report = run(&opts);
        eprintln!("{}", report.text());
        assert_eq!(report.cycles, opts.cycles);
        assert!(
            report.clean(),
            "the soak left something behind:\n{}",
            report.text()
        );
        // Every kind of outcome happened: the faults were real.
        assert!(report.adds_ok > 0 && report.adds_failed > 0 && report.adds_killed > 0);
        let (first, last, _) = report.rss_first_last_max();
        assert!(
            last <= first + first / 5,
            "plexus's peak RSS grew: {first} KiB at the start, {last} KiB at the end"
        );
    });
}
