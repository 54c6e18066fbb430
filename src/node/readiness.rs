//! `readinessindicatorfile`: ADD waits, bounded, until the cluster network says it is ready.
//!
//! Cluster network plugins (Calico, Cilium, OVN-Kubernetes…) write their own config or a marker
//! file once their node agent runs. Multus users point `readinessindicatorfile` at it so that
//! pods are not wired before the default network can serve them. plexus waits for the file to
//! exist, polling every 50 ms, for at most `readinessTimeoutSeconds` (default 45 s, Multus's
//! bound); then ADD fails with code 11 (try again later) naming the file. STATUS reports the same
//! condition as code 50 without waiting.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cni::Error;

const POLL: Duration = Duration::from_millis(50);

/// Waits until `file` exists, at most `timeout`.
pub fn wait(file: &Path, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if file.exists() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(not_ready(file, Some(timeout)));
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// The error for a missing indicator file; `waited` is how long ADD waited (None for STATUS).
pub fn not_ready(file: &Path, waited: Option<Duration>) -> Error {
    let msg = match waited {
        Some(w) => format!(
            "the cluster network is not ready: {} did not appear within {:.1}s",
            file.display(),
            w.as_secs_f64()
        ),
        None => format!(
            "the cluster network is not ready: {} does not exist",
            file.display()
        ),
    };
    Error::Kubernetes {
        msg,
        details: "readinessindicatorfile in the node config names the file the cluster network's agent writes when it runs; check that agent".into(),
        transient: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_file_passes_at_once_missing_one_fails_after_the_bound() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("ready");
        std::fs::write(&f, "").unwrap();
        assert!(wait(&f, Duration::from_millis(10)).is_ok());
        let missing = d.path().join("missing");
        let started = Instant::now();
        let e = wait(&missing, Duration::from_millis(120)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(120));
        assert_eq!(e.code().0, 11);
        assert_eq!(
            e.msg(),
            format!(
                "the cluster network is not ready: {} did not appear within 0.1s",
                missing.display()
            )
        );
    }
}
