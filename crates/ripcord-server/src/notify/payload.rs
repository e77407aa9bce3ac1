//! What each channel receives: the rendered template in the shape that
//! channel's receiver documents.
//!
//! - webhook: a Standard Webhooks message `{type, timestamp, data}`, signed
//!   by the worker like the decision sinks;
//! - Slack incoming webhook: `text` (the notification fallback) plus
//!   `blocks` with a header (plain text, at most 150 characters) and a
//!   section (mrkdwn, at most 3000);
//! - PagerDuty Events API v2: `trigger` for open/escalate/update,
//!   `acknowledge` and `resolve` with the same `dedup_key`
//!   (`<release id>/<trigger name>`, at most 255 characters) so repeats
//!   join one alert and a resolve closes it;
//! - email: the message for the SMTP sender.

use ripcord_core::time::Time;
use serde_json::{Value, json};

use super::{ChannelConfig, NotifyError, NotifyKind, Rendered, fact};

const SLACK_HEADER_CHARS: usize = 150;
const SLACK_SECTION_CHARS: usize = 3000;
const PAGERDUTY_SUMMARY_CHARS: usize = 1024;
const PAGERDUTY_DEDUP_CHARS: usize = 255;

/// The JSON (as a value) that `channel` receives for this notification.
pub fn channel_payload(
    channel: &ChannelConfig,
    kind: NotifyKind,
    template: &str,
    rendered: &Rendered,
    facts: &Value,
    at_ms: i64,
) -> Result<Value, NotifyError> {
    match channel {
        ChannelConfig::Webhook { .. } => Ok(webhook(kind, template, rendered, facts, at_ms)),
        ChannelConfig::Slack { .. } => Ok(slack(rendered)),
        ChannelConfig::Pagerduty { routing_key, .. } => {
            pagerduty(routing_key, kind, rendered, facts, at_ms)
        }
        ChannelConfig::Email {
            from, to, starttls, ..
        } => Ok(json!({
            "from": from,
            "to": to,
            "subject": rendered.subject,
            "body": rendered.body,
            "starttls": starttls,
        })),
    }
}

fn webhook(
    kind: NotifyKind,
    template: &str,
    rendered: &Rendered,
    facts: &Value,
    at_ms: i64,
) -> Value {
    json!({
        "type": format!("incident.{}", kind.as_str()),
        "timestamp": Time(at_ms).to_rfc3339(),
        "data": {
            "template": template,
            "subject": rendered.subject,
            "body": rendered.body,
            "facts": facts,
        },
    })
}

fn slack(rendered: &Rendered) -> Value {
    json!({
        "text": rendered.subject,
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": truncate(&rendered.subject, SLACK_HEADER_CHARS),
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": truncate(&slack_escape(&rendered.body), SLACK_SECTION_CHARS),
                },
            },
        ],
    })
}

/// Slack reads `&`, `<` and `>` as markup (`<!channel>` pings everyone);
/// facts are data, not markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `<release id>/<trigger name>`: one PagerDuty alert per release and
/// trigger, whatever the incident's later events. An incident people
/// declared (or a drill) has no trigger: its own id is the key.
pub fn dedup_key(facts: &Value) -> Result<String, NotifyError> {
    let key = match (fact(facts, "release.id"), fact(facts, "trigger.name")) {
        (Ok(release), Ok(trigger)) => format!("{release}/{trigger}"),
        _ => fact(facts, "incident.id")?.to_string(),
    };
    Ok(truncate(&key, PAGERDUTY_DEDUP_CHARS))
}

fn pagerduty(
    routing_key: &str,
    kind: NotifyKind,
    rendered: &Rendered,
    facts: &Value,
    at_ms: i64,
) -> Result<Value, NotifyError> {
    let dedup_key = dedup_key(facts)?;
    let action = match kind {
        NotifyKind::Open | NotifyKind::Escalate | NotifyKind::Update => "trigger",
        NotifyKind::Acknowledge => "acknowledge",
        NotifyKind::Resolve => "resolve",
    };
    if action != "trigger" {
        // PagerDuty only reads the key for these; the alert keeps the
        // trigger's details.
        return Ok(json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": dedup_key,
        }));
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
        "client": "ripcord",
        "payload": {
            "summary": truncate(&rendered.subject, PAGERDUTY_SUMMARY_CHARS),
            "source": fact(facts, "service")?,
            "severity": pagerduty_severity(facts),
            "timestamp": Time(at_ms).to_rfc3339(),
            "component": facts["release"]["candidate"],
            "custom_details": {
                "body": rendered.body,
                "incident": facts["incident"]["id"],
                "release": facts["release"],
                "trigger": facts["trigger"],
                "signals": facts["signals"],
            },
        },
    });
    if let Some(link) = facts["link"].as_str() {
        event["client_url"] = json!(link);
        event["links"] = json!([{"href": link, "text": "ripcord incident"}]);
    }
    Ok(event)
}

/// ripcord's incident severities mapped onto PagerDuty's four.
fn pagerduty_severity(facts: &Value) -> &'static str {
    match facts["incident"]["severity"].as_str() {
        Some("critical") => "critical",
        Some("major") => "error",
        Some("minor") => "warning",
        _ => "info",
    }
}

/// At most `max` characters, cut on a character boundary, with `…` when
/// cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole_and_within_the_limit() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééé", 2), "é…");
        assert_eq!(truncate(&"x".repeat(2000), 1024).chars().count(), 1024);
    }

    #[test]
    fn slack_markup_in_facts_is_escaped() {
        assert_eq!(slack_escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }
}
