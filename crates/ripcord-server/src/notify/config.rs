//! Notification channels as configured in `ripcord.yaml` (`channels:`), by
//! name. Parsed strictly (unknown keys are errors naming the key), then
//! checked by [`ChannelConfig::check`], which names the channel and key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::NotifyError;

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

fn pagerduty_url() -> String {
    PAGERDUTY_URL.to_string()
}

/// One notification channel. `Debug` leaves out the webhook secret and the
/// routing key, so logging a config does not leak them.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// A Standard Webhooks signed JSON POST (the same signing as the
    /// decision sinks).
    Webhook { url: String, secret: String },
    /// A Slack incoming webhook (or anything that takes its payload).
    Slack { url: String },
    /// PagerDuty Events API v2.
    Pagerduty {
        #[serde(default = "pagerduty_url")]
        url: String,
        routing_key: String,
    },
    /// Plain-text email over SMTP.
    Email {
        /// `host:port`.
        smtp: String,
        from: String,
        to: Vec<String>,
        /// Upgrade the connection with STARTTLS before sending.
        #[serde(default)]
        starttls: bool,
    },
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelConfig::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("secret", &"<redacted>")
                .finish(),
            ChannelConfig::Slack { url } => f.debug_struct("Slack").field("url", url).finish(),
            ChannelConfig::Pagerduty { url, .. } => f
                .debug_struct("Pagerduty")
                .field("url", url)
                .field("routing_key", &"<redacted>")
                .finish(),
            ChannelConfig::Email {
                smtp,
                from,
                to,
                starttls,
            } => f
                .debug_struct("Email")
                .field("smtp", smtp)
                .field("from", from)
                .field("to", to)
                .field("starttls", starttls)
                .finish(),
        }
    }
}

/// How the outbox worker delivers an entry; also the outbox `kind` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Pagerduty,
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Pagerduty => "pagerduty",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        match s {
            "webhook" => Some(ChannelKind::Webhook),
            "slack" => Some(ChannelKind::Slack),
            "pagerduty" => Some(ChannelKind::Pagerduty),
            "email" => Some(ChannelKind::Email),
            _ => None,
        }
    }
}

impl ChannelConfig {
    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelConfig::Webhook { .. } => ChannelKind::Webhook,
            ChannelConfig::Slack { .. } => ChannelKind::Slack,
            ChannelConfig::Pagerduty { .. } => ChannelKind::Pagerduty,
            ChannelConfig::Email { .. } => ChannelKind::Email,
        }
    }

    /// Checks the values serde cannot: URLs, the webhook secret, the SMTP
    /// address and the mail addresses. Errors name `channels.<name>.<key>`.
    pub fn check(&self, name: &str) -> Result<(), NotifyError> {
        let bad = |key: &str, message: String| NotifyError::Config {
            channel: name.to_string(),
            key: key.to_string(),
            message,
        };
        match self {
            ChannelConfig::Webhook { url, secret } => {
                check_url(url).map_err(|m| bad("url", m))?;
                crate::webhook_secret::check_secret(secret).map_err(|m| bad("secret", m))
            }
            ChannelConfig::Slack { url } => check_url(url).map_err(|m| bad("url", m)),
            ChannelConfig::Pagerduty { url, routing_key } => {
                check_url(url).map_err(|m| bad("url", m))?;
                if routing_key.trim().is_empty() {
                    return Err(bad("routing_key", "must not be empty".into()));
                }
                Ok(())
            }
            ChannelConfig::Email { smtp, from, to, .. } => {
                smtp_address(smtp).map_err(|m| bad("smtp", m))?;
                check_mailbox(from).map_err(|m| bad("from", m))?;
                if to.is_empty() {
                    return Err(bad("to", "needs at least one address".into()));
                }
                for (i, address) in to.iter().enumerate() {
                    check_mailbox(address).map_err(|m| bad(&format!("to[{i}]"), m))?;
                }
                Ok(())
            }
        }
    }
}

/// Checks every channel of a config map.
pub fn check_all(channels: &BTreeMap<String, ChannelConfig>) -> Result<(), NotifyError> {
    channels.iter().try_for_each(|(name, c)| c.check(name))
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("must be an http:// or https:// URL, got {url:?}"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("has no host: {url:?}"));
    }
    Ok(())
}

/// Splits `host:port`.
pub fn smtp_address(smtp: &str) -> Result<(String, u16), String> {
    let (host, port) = smtp
        .rsplit_once(':')
        .ok_or_else(|| format!("must be host:port, got {smtp:?}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("the port must be a number from 1 to 65535, got {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(format!("must be host:port, got {smtp:?}"));
    }
    Ok((host.to_string(), port))
}

fn check_mailbox(address: &str) -> Result<(), String> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| format!("{address:?} is not a mail address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_out_secrets() {
        let hook = ChannelConfig::Webhook {
            url: "http://h/x".into(),
            secret: "whsec_SECRET".into(),
        };
        let pd = ChannelConfig::Pagerduty {
            url: PAGERDUTY_URL.into(),
            routing_key: "ROUTING".into(),
        };
        let text = format!("{hook:?} {pd:?}");
        assert!(
            !text.contains("SECRET") && !text.contains("ROUTING"),
            "{text}"
        );
        assert!(text.contains("http://h/x"), "{text}");
    }

    #[test]
    fn smtp_addresses_need_a_host_and_a_port() {
        assert_eq!(smtp_address("127.0.0.1:25"), Ok(("127.0.0.1".into(), 25)));
        assert_eq!(smtp_address("[::1]:2525"), Ok(("::1".into(), 2525)));
        assert!(smtp_address("mail.example.com").is_err());
        assert!(smtp_address(":25").is_err());
        assert!(smtp_address("h:0").is_err());
        assert!(smtp_address("h:99999").is_err());
    }
}
