//! Webhook deliveries from the durable outbox, signed the Standard Webhooks
//! way: `webhook-id`, `webhook-timestamp` and `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the sink's
//! `whsec_` secret. At least once: an entry leaves the outbox only after a
//! 2xx answer; failures are retried with exponential backoff.
//!
//! The same worker delivers incident notifications (`notify`): each outbox
//! entry has a kind, `webhook` (signed), `slack` and `pagerduty` (plain JSON
//! POST) or `email` (SMTP), with the same retries and error recording.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use hmac::{Hmac, KeyInit, Mac};
use ripcord_store::{OutboxEntry, Store};
use sha2::Sha256;

use crate::hub::wall_now;
use crate::metrics;
use crate::notify::ChannelKind;

/// The first retry waits this long; each further one twice as long.
const FIRST_RETRY_MS: i64 = 1_000;
const MAX_RETRY_MS: i64 = 3_600_000;

/// Makes a new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    // getrandom only fails without an OS entropy source; a zero key would
    // still sign, and the caller sees the secret it got.
    let _ = getrandom::fill(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// Key sizes the Standard Webhooks specification recommends for symmetric
/// secrets, in bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Whether `secret` is a usable sink secret: `whsec_` followed by the
/// base64 of 24 to 64 bytes. An empty key would sign with no secret at all.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or("must start with whsec_")?;
    let key = STANDARD_PAD_INDIFFERENT
        .decode(encoded)
        .map_err(|e| format!("must be whsec_ followed by base64: {e}"))?;
    if !SECRET_BYTES.contains(&key.len()) {
        return Err(format!(
            "the key must be {} to {} bytes, got {}",
            SECRET_BYTES.start(),
            SECRET_BYTES.end(),
            key.len()
        ));
    }
    Ok(())
}

/// The `webhook-signature` value for a message.
/// The key may come with or without base64 padding, as the reference
/// libraries accept it.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD_PAD_INDIFFERENT
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The wait before the next attempt after `attempts` failures.
pub fn backoff(attempts: i64) -> i64 {
    let shift = attempts.clamp(0, 20) as u32;
    (FIRST_RETRY_MS << shift).min(MAX_RETRY_MS)
}

/// Delivers due outbox entries until `stop` says so.
pub async fn run(store: Arc<dyn Store>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhooks disabled: {e}");
            return;
        }
    };
    loop {
        let delivered = deliver_due(&store, &client).await;
        if delivered == 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => return,
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One pass over the due entries, sent side by side so that one slow sink
/// does not hold up the others; returns how many were attempted.
async fn deliver_due(store: &Arc<dyn Store>, client: &reqwest::Client) -> usize {
    let due = match store.due(wall_now().0, 64).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("reading the outbox: {e}");
            return 0;
        }
    };
    let count = due.len();
    let mut sending = tokio::task::JoinSet::new();
    for entry in due {
        let (store, client) = (store.clone(), client.clone());
        sending.spawn(async move { attempt(&*store, &client, &entry).await });
    }
    while sending.join_next().await.is_some() {}
    count
}

/// Sends one entry and records the outcome in the outbox.
async fn attempt(store: &dyn Store, client: &reqwest::Client, entry: &OutboxEntry) {
    let result = send(client, entry).await;
    let now = wall_now().0;
    let stored = match result {
        Ok(()) => {
            metrics::webhook("delivered");
            store.delivered(&entry.id, now).await
        }
        Err(e) => {
            metrics::webhook("failed");
            tracing::warn!("{} {} to {}: {e}", entry.kind, entry.id, entry.url);
            store
                .retry_later(&entry.id, now + backoff(entry.attempts), &e)
                .await
        }
    };
    if let Err(e) = stored {
        tracing::warn!("updating the outbox: {e}");
    }
}

/// Delivers by the entry's kind.
async fn send(client: &reqwest::Client, entry: &OutboxEntry) -> Result<(), String> {
    match ChannelKind::parse(&entry.kind) {
        Some(ChannelKind::Webhook) => send_signed(client, entry).await,
        Some(ChannelKind::Slack | ChannelKind::Pagerduty) => post_json(client, entry).await,
        Some(ChannelKind::Email) => crate::notify::email::send(entry).await,
        None => Err(format!("unknown outbox kind {:?}", entry.kind)),
    }
}

/// A plain JSON POST, as Slack incoming webhooks and PagerDuty's Events
/// API take it (both answer 2xx when they accepted the message).
async fn post_json(client: &reqwest::Client, entry: &OutboxEntry) -> Result<(), String> {
    let response = client
        .post(&entry.url)
        .header("content-type", "application/json")
        .body(entry.payload.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    answered(response)
}

fn answered(response: reqwest::Response) -> Result<(), String> {
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

async fn send_signed(client: &reqwest::Client, entry: &OutboxEntry) -> Result<(), String> {
    let timestamp = wall_now().0 / 1000;
    let signature = sign(&entry.secret, &entry.id, timestamp, &entry.payload)
        .ok_or_else(|| "the sink's secret is not whsec_ + base64".to_string())?;
    let key = serde_json::from_str::<serde_json::Value>(&entry.payload)
        .ok()
        .and_then(|v| v["idempotency_key"].as_str().map(str::to_string))
        .unwrap_or_else(|| entry.id.clone());
    let response = client
        .post(&entry.url)
        .header("content-type", "application/json")
        .header("webhook-id", &entry.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("idempotency-key", key)
        .body(entry.payload.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    answered(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test vectors.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn secrets_need_the_prefix_and_a_real_key() {
        assert_eq!(check_secret(&new_secret()), Ok(()));
        assert_eq!(
            check_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Ok(())
        );
        assert!(check_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(check_secret("whsec_").is_err());
        assert!(check_secret("whsec_c2hvcnQ=").is_err());
        assert!(check_secret("whsec_not base64!").is_err());
        // Unpadded base64, as the reference libraries take it: same key.
        let padded = format!("whsec_{}", STANDARD.encode([9u8; 32]));
        let unpadded = padded.trim_end_matches('=');
        assert_ne!(padded, unpadded);
        assert_eq!(check_secret(unpadded), Ok(()));
        assert_eq!(sign(unpadded, "m", 1, "b"), sign(&padded, "m", 1, "b"));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), 1_000);
        assert_eq!(backoff(3), 8_000);
        assert_eq!(backoff(40), 3_600_000);
    }
}
