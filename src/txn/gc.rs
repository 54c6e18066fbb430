//! GC: tear down every journaled attachment the runtime no longer knows, then forward GC.
//!
//! Journals whose (container ID, interface) pair is not in `cni.dev/valid-attachments` are
//! torn down like DEL (without CNI_NETNS: the sandbox is gone) and removed; rollback markers
//! of failed ADDs the runtime never deleted go too, and so do the DEL markers of attachments
//! no longer valid (see [`crate::state`]). Then GC is forwarded to the
//! cluster network with the valid list. Every failure is reported; none stops the others.

use std::time::Duration;

use serde_json::Value;

use super::teardown::teardown;
use super::{Ctx, combine};
use crate::cni::Error;
use crate::node::resolve;

/// GC does not wait long for an attachment busy in another plexus: it is in use, not garbage.
const GC_LOCK_TIMEOUT: Duration = Duration::from_millis(200);

/// Runs GC.
pub fn gc(ctx: &Ctx<'_>) -> Result<(), Error> {
    let valid = ctx
        .node
        .valid_attachments
        .clone()
        .unwrap_or(Value::Array(vec![]));
    let is_valid = |cid: &str, ifname: &str| {
        valid.as_array().is_some_and(|v| {
            v.iter().any(|a| {
                a.get("containerID").and_then(Value::as_str) == Some(cid)
                    && a.get("ifname").and_then(Value::as_str) == Some(ifname)
            })
        })
    };
    let mut errors = Vec::new();
    for (cid, ifname) in ctx.state.list()? {
        if is_valid(&cid, &ifname) {
            continue;
        }
        let outcome = (|| {
            let _lock = ctx.state.lock(&cid, &ifname, GC_LOCK_TIMEOUT)?;
            if let Some(mut j) = ctx.state.load(&cid, &ifname)? {
                tracing::info!(container = %cid, %ifname, "GC: tearing down an attachment the runtime no longer knows");
                teardown(ctx, &mut j, None, true)?;
            }
            ctx.state.remove(&cid, &ifname)
        })();
        if let Err(e) = outcome {
            errors.push(e);
        }
    }
    for (cid, ifname) in ctx.state.rolled_back()? {
        if !is_valid(&cid, &ifname) {
            let outcome = ctx
                .state
                .lock(&cid, &ifname, GC_LOCK_TIMEOUT)
                .and_then(|_lock| {
                    ctx.state.take_rolled_back(&cid, &ifname)?;
                    ctx.state.remove(&cid, &ifname)
                });
            if let Err(e) = outcome {
                errors.push(e);
            }
        }
    }
    for (cid, ifname) in ctx.state.deleted()? {
        if !is_valid(&cid, &ifname)
            && let Err(e) = ctx.state.take_deleted(&cid, &ifname)
        {
            errors.push(e);
        }
    }
    let api = ctx.api().unwrap_or(None);
    match resolve::node_networks(ctx.node, api) {
        Ok(nets) => {
            let inv = ctx.invocation(&nets.cluster.name, "", &Default::default(), None);
            if let Err(es) = ctx.chain().gc(&nets.cluster.config, &inv, &valid) {
                errors.extend(es);
            }
        }
        Err(e) => errors.push(e),
    }
    combine(errors)
}
