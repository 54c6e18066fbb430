//! STATUS: ready for ADD when the readiness indicator exists and the cluster network's
//! delegates (1.1.0 configs) answer STATUS; otherwise code 50.

use super::Ctx;
use crate::cni::Error;
use crate::node::{readiness, resolve};

/// Runs STATUS.
pub fn status(ctx: &Ctx<'_>) -> Result<(), Error> {
    if let Some(f) = &ctx.node.readiness_file {
        if !f.exists() {
            let e = readiness::not_ready(f, None);
            return Err(Error::Unavailable {
                msg: e.msg(),
                details: e.details(),
            });
        }
    }
    let api = ctx.api().unwrap_or(None);
    let cluster = resolve::node_networks(ctx.node, api)?.cluster;
    let inv = ctx.invocation(&cluster.name, "", &Default::default(), None);
    ctx.chain().status(&cluster.config, &inv)
}
