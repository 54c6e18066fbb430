//! `plexus-demo`: plexus on a simulated node, in one command (`conformance/demo.sh` builds and
//! runs it as root).
//!
//! ```text
//! sudo target/release/plexus-demo [SCENARIO.yaml] [--binary PATH] [--containerd]
//! ```
//!
//! With `--containerd` the pods are made through a real containerd's CRI, as a kubelet makes
//! them (`plexus_conformance::cri_demo`; needs containerd, runc and buildah).
//!
//! Runs the scenario (default `conformance/scenarios/demo.yaml`) with a progress line per
//! step, every pod's interfaces and network-status, and the final empty-state check, in its
//! own network and mount namespace: the host's network is not touched. Exits non-zero, naming
//! the step and why, when anything fails. See `plexus_conformance::scenario`.

use std::path::PathBuf;

use plexus_conformance::sandbox;
use plexus_conformance::scenario::{self, Mode};

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut file = repo.join("conformance/scenarios/demo.yaml");
    let mut binary = repo.join("target/release/plexus");
    let mut with_containerd = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--binary" => match args.next() {
                Some(b) => binary = PathBuf::from(b),
                None => usage("--binary needs a path"),
            },
            "--containerd" => with_containerd = true,
            "-h" | "--help" => usage(""),
            other if !other.starts_with('-') => file = PathBuf::from(other),
            other => usage(&format!("unknown option {other}")),
        }
    }
    let binary = match std::fs::canonicalize(&binary) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "plexus-demo: {}: {e}; build it first (cargo build --release)",
                binary.display()
            );
            std::process::exit(2);
        }
    };
    sandbox::enter();
    println!(
        "plexus demo: a simulated Kubernetes node in its own network and mount namespace\nplexus binary: {}\n",
        binary.display()
    );
    let outcome = if with_containerd {
        plexus_conformance::cri_demo::run(&file, &repo, &binary)
    } else {
        scenario::run(&file, &repo, &binary, Mode::Demo)
    };
    match outcome {
        Ok(()) => {}
        Err(failures) => {
            eprintln!("\nplexus-demo: {} check(s) failed:", failures.len());
            for f in failures {
                eprintln!("  - {f}");
            }
            std::process::exit(1);
        }
    }
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("plexus-demo: {err}");
    }
    eprintln!("usage: plexus-demo [SCENARIO.yaml] [--binary PATH] [--containerd]   (as root)");
    std::process::exit(if err.is_empty() { 0 } else { 2 });
}
