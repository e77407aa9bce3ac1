//! Incident notifications: channels (signed webhook, Slack, PagerDuty,
//! email), communication templates, and the outbox entries that carry them.
//!
//! The incident code calls [`message`] when an incident opens, escalates,
//! gets a status update, is acknowledged or resolves, and writes the entry
//! it returns in the same transaction as the change it announces. The
//! outbox worker (`webhooks.rs`) then delivers it at least once, by kind,
//! with the same retries and backoff as the decision webhooks.

mod config;
pub mod email;
mod payload;
mod templates;

use ripcord_store::OutboxEntry;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use config::{ChannelConfig, ChannelKind, PAGERDUTY_URL, check_all, smtp_address};
pub use payload::{channel_payload, dedup_key};
pub use templates::{
    Audience, Part, Rendered, TemplateSource, builtin, builtins, check, from_policy, render,
    sample_facts,
};

/// What happened to the incident that the notification announces.
pub use ripcord_govern::NotifyKind;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotifyError {
    #[error("channels.{channel}.{key}: {message}")]
    Config {
        channel: String,
        key: String,
        message: String,
    },
    #[error("template {name:?}, {}{}: {message}", part.as_str(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Template {
        name: String,
        part: Part,
        line: Option<usize>,
        message: String,
    },
    #[error("no template named {name:?} (known: {})", known.join(", "))]
    UnknownTemplate { name: String, known: Vec<String> },
    #[error("facts: {0}")]
    Facts(String),
}

/// The text of a fact at `path` (dotted), required.
pub(crate) fn fact<'a>(facts: &'a Value, path: &str) -> Result<&'a str, NotifyError> {
    path.split('.')
        .try_fold(facts, |v, key| v.get(key))
        .and_then(Value::as_str)
        .ok_or_else(|| NotifyError::Facts(format!("{path} is missing or not a string")))
}

/// Renders `template` for `channel` and wraps it as an outbox entry.
///
/// The entry's id depends only on the incident, the channel, the event and
/// `at_ms`, so calling again for the same event (a retry after a crash)
/// gives the same id and the outbox keeps one delivery. Pass the event's
/// own time (from the incident's timeline), not the wall clock.
pub fn message(
    channel_name: &str,
    channel: &ChannelConfig,
    kind: NotifyKind,
    overrides: &[TemplateSource],
    template: &str,
    facts: &Value,
    at_ms: i64,
) -> Result<OutboxEntry, NotifyError> {
    let incident = fact(facts, "incident.id")?;
    let service = fact(facts, "service")?;
    let rendered = render(overrides, template, facts)?;
    let id = entry_id(incident, channel_name, kind, template, at_ms);
    let payload = channel_payload(channel, kind, template, &rendered, facts, at_ms)?;
    Ok(delivery(id, service, channel, &payload, at_ms))
}

/// A first delivery of `payload` to `channel`, due at `at_ms`.
pub fn delivery(
    id: String,
    service: &str,
    channel: &ChannelConfig,
    payload: &Value,
    at_ms: i64,
) -> OutboxEntry {
    let (url, secret) = destination(channel);
    OutboxEntry {
        id,
        service: service.to_string(),
        kind: channel.kind().as_str().to_string(),
        url,
        secret,
        payload: payload.to_string(),
        idempotency_key: None,
        attempts: 0,
        next_at_ms: at_ms,
    }
}

/// Where the outbox worker delivers a channel's entries, and the secret
/// it signs them with (empty for the kinds that are not signed).
pub fn destination(channel: &ChannelConfig) -> (String, String) {
    match channel {
        ChannelConfig::Webhook { url, secret } => (url.clone(), secret.clone()),
        ChannelConfig::Slack { url } | ChannelConfig::Pagerduty { url, .. } => {
            (url.clone(), String::new())
        }
        ChannelConfig::Email { smtp, .. } => (format!("smtp://{smtp}"), String::new()),
    }
}

/// `ntf_` + the first 32 hex digits of a hash over what makes the event
/// unique (names may hold characters that headers cannot).
fn entry_id(incident: &str, channel: &str, kind: NotifyKind, template: &str, at_ms: i64) -> String {
    let mut hash = Sha256::new();
    for part in [
        incident,
        channel,
        kind.as_str(),
        template,
        &at_ms.to_string(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let bytes: [u8; 32] = hash.finalize().into();
    let digest = ripcord_core::audit::hex(&bytes);
    format!("ntf_{}", &digest[..32])
}
