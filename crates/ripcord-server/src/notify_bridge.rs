//! Where governance hands a rendered message to a notification channel:
//! the channel comes from the server config, the template from the
//! policy's `templates:` or the built-ins.

use ripcord_store::Batch;
use serde_json::Value;

use crate::govern::Ctx;
use crate::hub::State;
use crate::notify::{self, NotifyKind};

fn kind_of(event: &str) -> NotifyKind {
    match event {
        "open" => NotifyKind::Open,
        "escalate" => NotifyKind::Escalate,
        "acknowledge" => NotifyKind::Acknowledge,
        "resolve" => NotifyKind::Resolve,
        _ => NotifyKind::Update,
    }
}

/// Queues one message for `channel` in the batch's outbox, in the same
/// transaction as the incident change it announces.
pub fn queue(
    state: &State,
    channel: &str,
    template: &str,
    event: &str,
    facts: &Value,
    ctx: &Ctx,
    batch: &mut Batch,
) -> Result<(), String> {
    let config = ctx
        .channels
        .get(channel)
        .ok_or_else(|| format!("channel \"{channel}\" is not configured on this server"))?;
    let overrides = notify::from_policy(&state.policy.governance.templates);
    let entry = notify::message(
        channel,
        config,
        kind_of(event),
        &overrides,
        template,
        facts,
        ctx.now.0,
    )
    .map_err(|e| e.to_string())?;
    batch.outbox.push(entry);
    Ok(())
}
