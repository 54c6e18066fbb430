//! DEL: from the journal, needing nothing else; without one, from what can be known.
//!
//! - **Journal present**: every started attachment is torn down, last first, each with its own
//!   cached result (see [`teardown`](super::teardown)); the journal is removed once all
//!   succeeded, and kept otherwise so that the runtime's retry finishes the job.
//! - **Rollback marker** (a failed ADD already undone): nothing to do; the marker goes.
//! - **DEL marker** (no journal, but a DEL of this attachment already finished it, see
//!   [`crate::state`]'s `deleted` markers): success at once, with no API client built and no
//!   delegate run. Every DEL that finishes an attachment plexus knew (journal, rollback
//!   marker, corrupt journal) leaves one, so the runtime's repeated DELs cost nothing.
//! - **No journal**: plexus writes the journal before any delegate is given its config, so no
//!   journal means no delegate ran for this attachment (or the state directory was wiped). DEL
//!   still runs the delegates it can find, best-effort: the node's networks (cluster network with the
//!   runtime's `prevResult`) and, when the API answers within its bound, the pod's selected
//!   networks; their failures are logged, not returned, so a pod whose ADD failed before
//!   anything ran is always deletable. An interface that a journal of another attachment of
//!   the same container records (an ADD for another `CNI_IFNAME` that succeeded) is skipped:
//!   it is that attachment's.
//! - **Corrupt journal** (truncated, not JSON): reported, then the same rebuild, but strict
//!   (failures returned): something did run. The corrupt file is removed once that succeeded.
//! - A missing network namespace changes nothing: every delegate still gets DEL (without
//!   CNI_NETNS) so that IPAM releases its addresses.
//! - The kubelet is never asked: a journal holds every attachment's exact config (the device
//!   ID injected) and its device-information copy, which teardown removes. A rebuilt DEL
//!   (no journal) knows no device, so its delegates get configs without `deviceID`.
//! - Every path ends by removing the attachment's files, its lock file included. On a
//!   **read-only state directory** (a disk remounted read-only) DEL reads the journal, undoes
//!   everything and succeeds, but can remove nothing: the files stay until a later DEL or GC.

use serde_json::Value;

use super::teardown::teardown;
use super::{Ctx, LOCK_TIMEOUT, add, combine, plan};
use crate::cni::{Command, Error, result};
use crate::fault;
use crate::k8s::pod;
use crate::state::Phase;

/// Runs DEL.
pub fn del(ctx: &Ctx<'_>) -> Result<(), Error> {
    let env = ctx.env;
    let (cid, ifname) = (env.container_id.as_str(), env.ifname.as_str());
    let _lock = ctx.state.lock(cid, ifname, LOCK_TIMEOUT)?;
    let read_only = ctx.state.read_only();
    // What DEL has undone is forgotten with the journal's files (the lock file included, so a
    // DEL without a journal leaves nothing behind either). On a read-only state directory
    // nothing can be removed: DEL still undoes everything and succeeds, and the files stay
    // until a later DEL or GC finds the directory writable (undoing again is a no-op).
    let forget = || {
        if read_only {
            tracing::warn!(
                dir = %ctx.state.path().display(),
                "the plexus journal directory is read-only: its files for this attachment stay \
                 until a later DEL or GC (tearing down again is a no-op)"
            );
            Ok(())
        } else {
            ctx.state.remove(cid, ifname)
        }
    };
    // An attachment plexus knew and has now finished: its repeated DELs answer from a marker.
    // A marker that cannot be written only leaves them best-effort.
    let finish = || {
        forget()?;
        if !read_only && let Err(e) = ctx.state.mark_deleted(cid, ifname) {
            tracing::warn!(error = %e, "no DEL marker: a repeated DEL will run best-effort");
        }
        Ok(())
    };
    let rolled_back = if read_only {
        ctx.state
            .rolled_back()?
            .iter()
            .any(|(c, i)| c == cid && i == ifname)
    } else {
        ctx.state.take_rolled_back(cid, ifname)?
    };
    if rolled_back {
        tracing::info!("the ADD of this attachment failed and was rolled back: nothing to undo");
        fault::stop_at("del:marker-taken");
        return finish();
    }
    match ctx.state.load(cid, ifname) {
        Ok(Some(mut j)) => {
            let crashed = j.phase == Phase::Adding;
            teardown(ctx, &mut j, env.netns.clone(), crashed)?;
            fault::stop_at("del:torn-down");
            finish()
        }
        Ok(None) if ctx.state.was_deleted(cid, ifname) => {
            tracing::info!("a DEL of this attachment already finished it: nothing to undo");
            Ok(())
        }
        Ok(None) => {
            rebuild(ctx, false)?;
            forget()
        }
        Err(corrupt) => {
            tracing::error!(error = %corrupt, "the journal is corrupt; tearing down from the node config and the API instead");
            rebuild(ctx, true).map_err(|e| {
                Error::Internal(format!(
                    "{}; and the journal was corrupt: {}",
                    e.msg(),
                    corrupt.msg()
                ))
            })?;
            finish()
        }
    }
}

/// The interface names that the journals of this container's other attachments (other
/// `CNI_IFNAME`s) record: a DEL without a journal rebuilds its plan with the same secondary
/// names (`net1`...), and the delegates key interfaces and leases by container ID and
/// interface name, so tearing one of those down would undo another ADD's work. Read under
/// the container's lock; a journal that cannot be read is skipped.
fn recorded_elsewhere(ctx: &Ctx<'_>) -> Vec<String> {
    let (cid, ifname) = (&ctx.env.container_id, &ctx.env.ifname);
    let others = ctx.state.other_interfaces(cid, ifname).unwrap_or_default();
    others
        .iter()
        .filter_map(|other| ctx.state.load(cid, other).ok().flatten())
        .flat_map(|j| j.attachments.into_iter().map(|a| a.ifname))
        .collect()
}

/// DEL of every network this attachment would have, from the node config and the API.
fn rebuild(ctx: &Ctx<'_>, strict: bool) -> Result<(), Error> {
    let api = match ctx.api() {
        Ok(api) => api,
        Err(e) => {
            tracing::warn!(error = %e, "no Kubernetes client; only the node's networks are torn down");
            None
        }
    };
    // The runtime's copy of the pod's annotations (see crate::k8s::pod) is this sandbox's own.
    let pod = match (api, ctx.pod_ref()) {
        (Some(api), Some(r)) => pod::find(api, &r, &ctx.node.runtime_config, Command::Del)
            .inspect_err(|e| tracing::warn!(error = %e, "pod not readable; only the node's networks are torn down"))
            .ok(),
        _ => None,
    };
    // The pod's own networks only matter when they can be resolved and planned; the node's
    // networks never depend on the pod.
    let planned = add::inputs(ctx, api, pod.as_ref()).and_then(|i| plan::plan(i, &[]));
    let atts = match planned {
        Ok(atts) => atts,
        Err(e) if pod.is_some() => {
            tracing::warn!(error = %e, "the pod's networks cannot be planned; only the node's networks are torn down");
            plan::plan(add::inputs(ctx, api, None)?, &[])?
        }
        Err(e) => return Err(e),
    };
    let prev: Option<Value> = ctx.node.prev_result.clone();
    let taken = recorded_elsewhere(ctx);
    let mut errors = Vec::new();
    for (i, att) in atts.iter().enumerate().rev() {
        if taken.contains(&att.ifname) {
            tracing::info!(
                network = %att.network,
                ifname = %att.ifname,
                "not torn down: another attachment of this container records that interface"
            );
            continue;
        }
        let inv = ctx.invocation(
            &att.network,
            &att.ifname,
            &att.runtime_config,
            ctx.env.netns.clone(),
        );
        let prev = match (i, &prev, att.config.version()) {
            (0, Some(p), Ok(v)) => Some(result::convert(p, v).unwrap_or_else(|_| p.clone())),
            _ => None,
        };
        if let Err(e) = ctx.chain().del(&att.config, &inv, prev.as_ref()) {
            if strict {
                errors.push(e);
            } else {
                tracing::warn!(error = %e, "DEL without a journal failed; nothing of this attachment was recorded as added");
            }
        }
    }
    if !atts.is_empty() && !strict {
        tracing::info!(
            "no journal for this attachment: nothing was recorded as added; DEL ran best-effort"
        );
    }
    combine(errors)
}
