//! The conformance scenarios (`conformance/scenarios/*.yaml`, see
//! `plexus_conformance::scenario`): each one is a simulated node with pods, NADs and what every
//! pod must end up with, run against this build's `plexus` exactly as a container runtime calls
//! it. Adding a scenario file adds it here; the demo (`conformance/demo.sh`) is `demo.yaml`.

use std::path::Path;

use plexus_conformance::sandbox;
use plexus_conformance::scenario::{self, Mode};

#[test]
fn every_scenario() {
    sandbox::run("every_scenario", || {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = scenario::files(&repo.join("conformance/scenarios"));
        assert!(files.len() >= 2, "scenarios: {files:?}");
        let mut failed = vec![];
        for f in &files {
            if let Err(failures) = scenario::run(
                f,
                repo,
                Path::new(env!("CARGO_BIN_EXE_plexus")),
                Mode::Quiet,
            ) {
                failed.push(format!("{}:\n  - {}", f.display(), failures.join("\n  - ")));
            }
        }
        assert!(
            failed.is_empty(),
            "scenarios failed:\n{}",
            failed.join("\n")
        );
    });
}
