//! CHECK: every attachment of the journal, each with its own cached result.
//!
//! Attachments whose config version is below 0.4.0 are skipped (those plugins know no CHECK).
//! Without a journal there is nothing plexus added: CHECK fails with code 3.

use super::{Ctx, LOCK_TIMEOUT, journal_config};
use crate::cni::{Error, Version};
use crate::state::{AttachmentState, Phase};

/// Runs CHECK.
pub fn check(ctx: &Ctx<'_>) -> Result<(), Error> {
    let env = ctx.env;
    let _lock = ctx
        .state
        .lock(&env.container_id, &env.ifname, LOCK_TIMEOUT)?;
    let j = ctx
        .state
        .load(&env.container_id, &env.ifname)?
        .filter(|j| j.phase == Phase::Added)
        .ok_or_else(|| Error::UnknownContainer {
            msg: format!(
                "no completed ADD recorded for container {} interface {}",
                env.container_id, env.ifname
            ),
            details: format!(
                "plexus's journal directory is {}",
                ctx.state.path().display()
            ),
        })?;
    for att in j
        .attachments
        .iter()
        .filter(|a| a.state == AttachmentState::Added)
    {
        let config = journal_config(&att.network, &att.config)?;
        if config.version()? < Version::V0_4_0 {
            continue;
        }
        let Some(result) = &att.result else {
            continue;
        };
        let inv = ctx.invocation(
            &att.network,
            &att.ifname,
            &att.runtime_config,
            env.netns.clone(),
        );
        ctx.chain().check(&config, &inv, result)?;
    }
    Ok(())
}
