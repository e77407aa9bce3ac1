//! Where governance hands a rendered message to a notification channel.
//! Channels are configured in the server config (see `notify`).

use ripcord_store::Batch;
use serde_json::Value;

use crate::govern::Ctx;
use crate::hub::State;

/// Queues one message for `channel` in the batch's outbox.
#[allow(clippy::too_many_arguments)]
pub fn queue(
    _state: &State,
    channel: &str,
    _template: &str,
    _event: &str,
    _facts: &Value,
    _ctx: &Ctx,
    _incident: &str,
    _batch: &mut Batch,
) -> Result<(), String> {
    Err(format!("channel \"{channel}\" is not configured"))
}
