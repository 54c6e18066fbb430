//! Undoing a journal: DEL of every attachment that was started, last first.
//!
//! Used by DEL, by ADD's rollback and by GC. Each attachment gets DEL with its own cached ADD
//! result as `prevResult`, its own interface name, CNI_ARGS and runtime values, all from the
//! journal (so GC, which has no container env, can tear down too). Once an attachment is torn
//! down, its device-information copy (its path is in the journal) is removed; the kubelet is
//! never asked. Every DEL is known before the first runs, so the next plugins' processes are
//! started while one runs ([`crate::delegate::ahead`]). Progress is kept in memory only: the
//! caller removes the journal when everything is undone, or saves what is left; a crash in the
//! middle leaves the journal as it was, and the retry runs every DEL again, which the CNI spec
//! requires delegates to accept.
//!
//! Before any DEL of a journal whose ADD did not finish (a crash, or ADD's own rollback), the
//! delegate processes that ADD recorded are stopped if any is still running
//! ([`crate::delegate::orphans`]): a delegate ADD that outlived a killed plexus would
//! otherwise finish after the teardown and leave an interface or a lease no journal records.
//!
//! The rule for failures (continue past each, report all):
//! - an attachment whose ADD succeeded (`Added`) is strict: if its DEL fails it stays in the
//!   journal and the error is returned, so the runtime retries and nothing leaks;
//! - an attachment whose ADD never succeeded (`Started`: the delegate failed or was killed;
//!   or `Planned` in a crashed ADD) still gets its DEL, but a failing DEL is logged and the attachment is dropped: a
//!   misconfigured NAD (macvlan with a missing `master` fails DEL forever) must never make a
//!   pod undeletable.

use crate::cni::{Command, Error, NetworkConfig};
use crate::delegate::Invocation;
use crate::delegate::orphans;
use crate::devices::devinfo;
use crate::fault;
use crate::state::{AttachmentState, Journal, Phase};

use super::{Ctx, combine, journal_config};

/// Tears down what `j` holds; `netns` is the namespace to give the delegates (`None` when it
/// is gone). `after_crash` is true when the journal was read back from disk (DEL, GC, a new
/// ADD finding leftovers) rather than held by the ADD that is rolling back: then attachments
/// still `Planned` in a crashed ADD are torn down too (see
/// [`Journal::pending_teardown_after_crash`]). On return every torn-down attachment is
/// `Deleted` in `j` (in memory; the caller saves or removes the journal).
pub fn teardown(
    ctx: &Ctx<'_>,
    j: &mut Journal,
    netns: Option<String>,
    after_crash: bool,
) -> Result<(), Error> {
    if j.phase == Phase::Adding && !j.delegates.is_empty() {
        // An ADD that did not finish may have left delegates running: they must not finish
        // their work after this teardown (see `delegate::orphans`).
        orphans::stop(&j.delegates, orphans::STOP_BOUND).map_err(|cause| {
            Error::io(
                format!(
                    "stopping the delegates of the unfinished ADD of container {} interface {}",
                    j.container_id, j.ifname
                ),
                cause,
            )
        })?;
    }
    let pending: Vec<usize> = if after_crash {
        j.pending_teardown_after_crash().map(|(i, _)| i).collect()
    } else {
        j.pending_teardown().map(|(i, _)| i).collect()
    };
    // Each attachment's config and invocation, all read first so that the plugins can be
    // started ahead of their runs (see `delegate::ahead`).
    let runs: Vec<(usize, Result<DelRun, Error>)> = pending
        .into_iter()
        .map(|i| {
            let att = &j.attachments[i];
            let run = journal_config(&att.network, &att.config).map(|config| {
                let inv = Invocation {
                    network: att.network.clone(),
                    container_id: j.container_id.clone(),
                    netns: netns.clone(),
                    ifname: att.ifname.clone(),
                    cni_args: att.cni_args.clone(),
                    plugin_dirs: ctx.plugin_dirs(),
                    runtime_config: att.runtime_config.clone(),
                    timeout: ctx.node.delegate_timeout,
                };
                (config, inv)
            });
            (i, run)
        })
        .collect();
    ctx.expect_runs(
        Command::Del,
        runs.iter()
            .filter_map(|(_, run)| run.as_ref().ok().map(|(config, inv)| (config, inv))),
    );
    let mut errors = Vec::new();
    for (i, run) in runs {
        let att = j.attachments[i].clone();
        let outcome =
            run.and_then(|(config, inv)| ctx.chain().del(&config, &inv, att.result.as_ref()));
        match outcome {
            Ok(()) => {
                j.mark(i, AttachmentState::Deleted, None)?;
                fault::stop_at_indexed(stop_prefix(ctx.env.command), i, "");
            }
            Err(e) if att.state != AttachmentState::Added => {
                tracing::warn!(
                    network = %att.network,
                    error = %e,
                    "DEL of an attachment whose ADD never succeeded failed; dropping it so the pod stays deletable"
                );
                j.mark(i, AttachmentState::Deleted, None)?;
            }
            Err(e) => {
                errors.push(e);
                continue;
            }
        }
        if let Some(copy) = &att.device_info_file {
            devinfo::remove_copy(copy);
        }
    }
    combine(errors)
}

/// One attachment's DEL: its config (from the journal) and its invocation.
type DelRun = (NetworkConfig, Invocation);

/// The [`fault`] point prefix of a teardown run by `command` (`<cmd>:teardown`).
fn stop_prefix(command: Command) -> &'static str {
    match command {
        Command::Add => "add:teardown",
        Command::Del => "del:teardown",
        Command::Gc => "gc:teardown",
        _ => "teardown",
    }
}
