//! Webhook deliveries from the durable outbox, signed the Standard Webhooks
//! way: `webhook-id`, `webhook-timestamp` and `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the sink's
//! `whsec_` secret. At least once: an entry leaves the outbox only after a
//! 2xx answer; failures are retried with exponential backoff.
//!
//! The same worker delivers incident notifications (`notify`): each outbox
//! entry has a kind, `webhook` (signed), `slack` and `pagerduty` (plain JSON
//! POST) or `email` (SMTP), with the same retries and error recording.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use hmac::{Hmac, KeyInit, Mac};
use ripcord_store::{OutboxEntry, Store};
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::metrics;
use crate::notify::ChannelKind;
use crate::sinks::{Allowed, Guarded, check_url};
pub use crate::webhook_secret::{check_secret, new_secret};

/// The first retry waits this long; each further one twice as long.
const FIRST_RETRY_MS: i64 = 1_000;
const MAX_RETRY_MS: i64 = 3_600_000;

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

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// One attempt (connect, send, answer) that takes longer fails.
    pub timeout: Duration,
    /// Ranges beyond the public internet that sinks may reach.
    pub allowed: Allowed,
    /// URLs of the config's own webhook channels: the operator wrote them,
    /// so they are not held to `allowed` (sinks set through the API are).
    pub trusted: BTreeSet<String>,
    /// The server's clock: when entries are due, when they were delivered
    /// and the signatures' timestamps.
    pub clock: Clock,
}

impl Default for Delivery {
    fn default() -> Delivery {
        Delivery {
            timeout: Duration::from_secs(10),
            allowed: Allowed::default(),
            trusted: BTreeSet::new(),
            clock: Clock::Wall,
        }
    }
}

/// Sinks delivered to at once; the others wait for a free place.
const SINKS_AT_ONCE: usize = 64;

/// The two clients: sinks (set through the API) resolve names through the
/// address guard; notification channels come from the operator's config.
/// Neither follows redirects: a 3xx would re-POST a signed body to
/// wherever it points.
struct Clients {
    sinks: reqwest::Client,
    channels: reqwest::Client,
    allowed: Allowed,
    trusted: BTreeSet<String>,
    clock: Clock,
}

fn clients(delivery: &Delivery) -> reqwest::Result<Clients> {
    let base = || {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(delivery.timeout)
    };
    Ok(Clients {
        sinks: base()
            .dns_resolver(Guarded {
                allowed: delivery.allowed.clone(),
            })
            .build()?,
        channels: base().build()?,
        allowed: delivery.allowed.clone(),
        trusted: delivery.trusted.clone(),
        clock: delivery.clock.clone(),
    })
}

/// The deliveries under way, one per sink at most.
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<()>,
    urls: HashMap<tokio::task::Id, String>,
}

impl InFlight {
    fn busy(&self, url: &str) -> bool {
        self.urls.values().any(|u| u == url)
    }

    /// Frees the sink of a finished (or failed) task.
    fn done(&mut self, result: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match result {
            Ok((id, ())) => id,
            Err(e) => e.id(),
        };
        self.urls.remove(&id);
    }
}

/// Delivers due outbox entries until `stop` says so. Each sink (URL) has
/// at most one delivery in flight and no pass waits for one, so a slow or
/// silent sink delays only its own entries.
pub async fn run(
    store: Arc<dyn Store>,
    delivery: Delivery,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let clients = match clients(&delivery) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!("webhooks disabled: {e}");
            return;
        }
    };
    let mut flight = InFlight::default();
    loop {
        while let Some(done) = flight.tasks.try_join_next_with_id() {
            flight.done(done);
        }
        let started = dispatch(&store, &clients, &mut flight).await;
        if started == 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                Some(done) = flight.tasks.join_next_with_id() => flight.done(done),
                _ = stop.changed() => break,
            }
        }
        if *stop.borrow() {
            break;
        }
    }
    // What is under way stays in the outbox and is sent again after the
    // restart (at least once), rather than holding up the shutdown.
    flight.tasks.abort_all();
}

/// Starts the oldest due entry of every sink that has nothing in flight;
/// returns how many started.
async fn dispatch(store: &Arc<dyn Store>, clients: &Arc<Clients>, flight: &mut InFlight) -> usize {
    let due = match store
        .due_per_sink(clients.clock.now().0, SINKS_AT_ONCE as i64 * 2)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("reading the outbox: {e}");
            return 0;
        }
    };
    let mut started = 0;
    for entry in due {
        if flight.urls.len() >= SINKS_AT_ONCE || flight.busy(&entry.url) {
            continue;
        }
        let url = entry.url.clone();
        let (store, clients) = (store.clone(), clients.clone());
        let handle = flight
            .tasks
            .spawn(async move { attempt(&*store, &clients, &entry).await });
        flight.urls.insert(handle.id(), url);
        started += 1;
    }
    started
}

/// Sends one entry and records the outcome in the outbox.
async fn attempt(store: &dyn Store, clients: &Clients, entry: &OutboxEntry) {
    let result = send(clients, entry).await;
    let now = clients.clock.now().0;
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
async fn send(clients: &Clients, entry: &OutboxEntry) -> Result<(), String> {
    match ChannelKind::parse(&entry.kind) {
        Some(ChannelKind::Webhook) if clients.trusted.contains(&entry.url) => {
            send_signed(&clients.channels, &clients.clock, entry).await
        }
        Some(ChannelKind::Webhook) => {
            // Checked again at delivery: the URL may predate the check, or
            // the config may have changed since.
            check_url(&entry.url, &clients.allowed).map_err(|e| format!("url: {e}"))?;
            send_signed(&clients.sinks, &clients.clock, entry).await
        }
        Some(ChannelKind::Slack | ChannelKind::Pagerduty) => {
            post_json(&clients.channels, entry).await
        }
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
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        let to = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nowhere");
        Err(format!(
            "answered {status} to {to}; redirects are not followed (set the sink's URL to \
             where it should deliver)"
        ))
    } else {
        Err(format!("answered {status}"))
    }
}

async fn send_signed(
    client: &reqwest::Client,
    clock: &Clock,
    entry: &OutboxEntry,
) -> Result<(), String> {
    let timestamp = clock.now().0 / 1000;
    let signature = sign(&entry.secret, &entry.id, timestamp, &entry.payload)
        .ok_or_else(|| "the sink's secret is not whsec_ + base64".to_string())?;
    let key = entry.idempotency_key.as_deref().unwrap_or(&entry.id);
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
