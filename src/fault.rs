//! Named stop points for the crash tests: debug builds only.
//!
//! The fault-matrix tests need plexus to die at an exact place of a transaction, the way a
//! node losing power or an OOM kill would stop it, to prove that the next DEL still undoes
//! everything. [`stop_at`] marks such a place. In a debug build (the binary the integration
//! tests run), when the environment variable [`STOP_ENV`] (`PLEXUS_DEBUG_STOP_AT`) names the
//! point, plexus sends itself SIGKILL there: no destructor, no flush, no rollback runs, exactly
//! as when the kernel kills it. In a release build [`stop_at`] is an empty function and the
//! variable is never read, so a production node cannot be made to stop this way.
//!
//! # The points
//!
//! `<i>` is the attachment's index in the journal (0 is the cluster network, then the node's
//! `defaultNetworks`, then the pod's networks in annotation order); `<cmd>` is the runtime's
//! command in lower case (`add` for ADD's rollback, `del`, `gc`).
//!
//! | point | where | what is on disk then |
//! |---|---|---|
//! | `journal-reserve:made` | [`crate::state::StateDir::reserve`], on its own thread: ADD's journal file made ahead and flushed, while ADD reads the API (before its plan) | a stray temp file of spaces, no journal (the next open removes it) |
//! | `journal-save:tmp-written` | [`crate::state::StateDir::save`], temp file written and fsynced (its data only when ADD made it ahead), before the rename | a stray temp file, no journal (the next open makes the temp file the journal) |
//! | `add:planned` | ADD, once the plan can no longer be lost (renamed, and the directory flushed unless the flush may overlap the first delegate: [`crate::state::StateDir::save_notifying`]), before the first delegate is given its config (it may be started: it then reads an empty config and fails) | the plan, every attachment `planned` |
//! | `add:<i>:delegate-done` | ADD, delegate `i` succeeded, before its progress line | the previous step: `i` still `planned` |
//! | `add:<i>:recorded` | ADD, after the progress line recording `i` as `added` | `0..=i` `added` |
//! | `add:route-moved` | ADD, after the default route moved (only with `default-route`) | every attachment `added` |
//! | `add:status-written` | ADD, after the network-status patch | every attachment `added`, phase `adding` |
//! | `add:done` | ADD, after the last progress line (phase `added`), before the result is printed | the complete journal |
//! | `<cmd>:teardown:<i>` | any teardown (ADD's rollback, DEL, GC), after attachment `i`'s DEL succeeded | the journal as before the teardown |
//! | `add:rolled-back` | ADD's rollback, everything undone, before the rollback marker | the journal as before the rollback |
//! | `add:marked` | ADD's rollback, after the marker replaced the journal | only `<key>.rolledback` |
//! | `del:marker-taken` | DEL of a rolled-back ADD, marker removed, before the lock file goes | the lock file |
//! | `del:torn-down` | DEL, every attachment torn down, before the journal is removed | the journal as before the DEL |
//! | `journal-remove:progress-gone` | [`crate::state::StateDir::remove`], progress file removed, journal not yet | the plan alone (phase `adding`, all `planned`) |

/// The environment variable naming the point at which a debug build kills itself.
pub const STOP_ENV: &str = "PLEXUS_DEBUG_STOP_AT";

/// Kills this process with SIGKILL when [`STOP_ENV`] names `point` (debug builds only; a
/// no-op in release builds).
#[inline]
pub fn stop_at(point: &str) {
    #[cfg(debug_assertions)]
    imp::stop_at(point);
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// [`stop_at`] for an indexed point `<prefix>:<index><suffix>` (e.g. `add:1:recorded`); the
/// name is only built when a stop point is set.
#[inline]
pub fn stop_at_indexed(prefix: &str, index: usize, suffix: &str) {
    #[cfg(debug_assertions)]
    if imp::armed() {
        imp::stop_at(&format!("{prefix}:{index}{suffix}"));
    }
    #[cfg(not(debug_assertions))]
    let _ = (prefix, index, suffix);
}

#[cfg(debug_assertions)]
mod imp {
    use std::sync::OnceLock;

    fn wanted() -> Option<&'static str> {
        static WANTED: OnceLock<Option<String>> = OnceLock::new();
        WANTED
            .get_or_init(|| {
                std::env::var(super::STOP_ENV)
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .as_deref()
    }

    pub(super) fn armed() -> bool {
        wanted().is_some()
    }

    pub(super) fn stop_at(point: &str) {
        if wanted() == Some(point) {
            tracing::warn!(point, "{} reached: SIGKILL", super::STOP_ENV);
            // SAFETY: kill(2) on our own pid with a valid signal; no memory is involved.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
