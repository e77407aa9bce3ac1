//! The NATS JetStream source (`ripcord serve --nats`): events pulled from a
//! stream through a durable pull consumer, so that producers on many
//! machines feed one ripcord through a broker they already run.
//!
//! Each message is an NDJSON body of events, as for `POST /v1/events`, and
//! goes through the same ingest path with an idempotency key (the
//! message's `Nats-Msg-Id`, else its stream sequence). The key's answer is
//! stored in the transaction that stores the events, and the message is
//! acknowledged (with confirmation) only after that: a message redelivered
//! because ripcord died before its ack is answered from the store and
//! counts nothing twice.
//!
//! A message whose lines are refused is acknowledged all the same (it
//! would never succeed), with the refusals logged and counted; one that
//! fails because the store is unavailable is not: it is nak'd with a delay,
//! and the source pauses and backs off. Only the leader consumes (the task
//! starts when the replica leads and stops when it no longer does).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::ApiError;
use crate::hub::Hub;
use crate::ingest::{Key, Outcome, ingest_ndjson};
use crate::leader::{Server, stopped};
use crate::metrics;
use crate::slow::BODY_LIMIT;

/// The durable consumer's name unless `--nats-consumer` says otherwise.
pub const DEFAULT_CONSUMER: &str = "ripcord";
/// Messages pulled in one request (the client asks for the next batch
/// before this one is used up). No byte limit on the pull: JetStream never
/// delivers a message larger than a pull's byte limit, which would stall
/// the consumer on it; what waits here is bounded by the server's
/// `max_payload` (1 MiB by default) times this plus [`IN_FLIGHT`].
pub const BATCH: usize = 64;
/// Messages handled at once, as many as HTTP ingest slots: enough for
/// group commit to put several in one transaction, while the memory they
/// hold stays bounded.
pub const IN_FLIGHT: usize = 16;
/// How long a nak'd message waits before it is delivered again.
const NAK_DELAY: Duration = Duration::from_secs(2);
/// Unacknowledged messages are redelivered after this long. It is also how
/// long the messages a killed ripcord had taken wait before its successor
/// gets them, so it is short; a message whose commit takes longer (a
/// stalled disk) is delivered twice, which its idempotency key makes
/// harmless.
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// A silent server is noticed within about twice this.
const HEARTBEAT: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where the events come from: validated, so that a typo fails at start
/// rather than in a retry loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `nats://host:port` (with `user:password@` or a token if the server
    /// wants them), or several, comma-separated.
    pub url: String,
    pub stream: String,
    /// The durable consumer ripcord creates or binds.
    pub consumer: String,
    /// Only the stream's messages on these subjects (`events.>`).
    pub subject: Option<String>,
    pub batch: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("--nats: \"{url}\" is not a NATS server address ({why}); expected nats://HOST:PORT")]
    Url { url: String, why: String },
    #[error(
        "--nats-{what}: \"{name}\" is not a valid name: it must be non-empty, without spaces, \
         dots, `*`, `>`, `/` or `\\`"
    )]
    Name { what: &'static str, name: String },
    #[error("--nats-subject: \"{0}\" is not a subject filter: non-empty, without spaces")]
    Subject(String),
    #[error(
        "--nats-stream: required with --nats (the stream to consume; ripcord does not create it)"
    )]
    NoStream,
}

impl Source {
    pub fn new(
        url: &str,
        stream: Option<&str>,
        consumer: Option<&str>,
        subject: Option<&str>,
    ) -> Result<Source, SourceError> {
        for one in url.split(',') {
            one.trim()
                .parse::<async_nats::ServerAddr>()
                .map_err(|e| SourceError::Url {
                    url: one.to_string(),
                    why: e.to_string(),
                })?;
        }
        let stream = stream.ok_or(SourceError::NoStream)?;
        let consumer = consumer.unwrap_or(DEFAULT_CONSUMER);
        for (what, name) in [("stream", stream), ("consumer", consumer)] {
            let bad = |c: char| c.is_whitespace() || ".*>/\\".contains(c);
            if name.is_empty() || name.contains(bad) {
                return Err(SourceError::Name {
                    what,
                    name: name.to_string(),
                });
            }
        }
        if let Some(s) = subject
            && (s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(SourceError::Subject(s.to_string()));
        }
        Ok(Source {
            url: url.to_string(),
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            subject: subject.map(str::to_string),
            batch: BATCH,
        })
    }
}

impl fmt::Display for Source {
    /// The stream and consumer, never the URL (it may hold a password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {} (consumer {})", self.stream, self.consumer)
    }
}

/// Why a session with the server ended, short of a shutdown.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("cannot bind the consumer: {0}")]
    Bind(String),
    #[error("pulling messages: {0}")]
    Messages(String),
    #[error("the store is unavailable ({0}); the message was nak'd and the source pauses")]
    Store(String),
}

/// Consumes until `stop` (or until this replica no longer leads),
/// reconnecting with backoff whenever the server is unreachable.
pub async fn run<S: Server>(app: Arc<S>, source: Source, mut stop: watch::Receiver<bool>) {
    metrics::nats_connected(false);
    let mut backoff = BACKOFF_FIRST;
    loop {
        let failure = match session(&app, &source, &mut stop, &mut backoff).await {
            Ok(()) => break,
            Err(failure) => failure,
        };
        metrics::nats_connected(false);
        tracing::warn!("NATS source, {source}: {failure}; retrying in {backoff:?}");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop, app.as_ref()) => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    metrics::nats_connected(false);
}

/// One connection: binds the consumer and handles messages, at most
/// [`IN_FLIGHT`] at once. `Ok` on shutdown.
async fn session<S: Server>(
    app: &Arc<S>,
    source: &Source,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Result<(), Failure> {
    let bound = tokio::select! {
        bound = bind(source) => bound?,
        () = stopped(stop, app.as_ref()) => return Ok(()),
    };
    let (consumer, scope) = bound;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(source.batch)
        .heartbeat(HEARTBEAT)
        .messages()
        .await
        .map_err(|e| Failure::Messages(e.to_string()))?;
    metrics::nats_connected(true);
    tracing::info!("NATS source: consuming {source}");
    *backoff = BACKOFF_FIRST;
    let mut in_flight = JoinSet::new();
    let ended = loop {
        tokio::select! {
            () = stopped(stop, app.as_ref()) => break Ok(()),
            Some(done) = in_flight.join_next() => {
                if let Ok(Err(failure)) = done {
                    break Err(failure);
                }
            }
            next = messages.next(), if in_flight.len() < IN_FLIGHT => match next {
                Some(Ok(message)) => {
                    in_flight.spawn(handle(app.clone(), scope.clone(), message));
                }
                Some(Err(e)) => break Err(Failure::Messages(e.to_string())),
                None => break Err(Failure::Messages("the server ended the stream".into())),
            },
        }
    };
    // What is in flight finishes (acked or nak'd) rather than waiting out
    // the ack wait to be redelivered.
    while in_flight.join_next().await.is_some() {}
    ended
}

/// Connects, and creates the durable consumer or binds the existing one;
/// also the idempotency keys' scope: the stream by name and creation time,
/// so that a stream deleted and made again, whose sequences start over,
/// does not meet the old stream's keys.
async fn bind(source: &Source) -> Result<(PullConsumer, Arc<str>), Failure> {
    let client = async_nats::ConnectOptions::new()
        .name("ripcord")
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => metrics::nats_connected(true),
                async_nats::Event::Disconnected | async_nats::Event::Closed => {
                    metrics::nats_connected(false);
                }
                _ => {}
            }
        })
        .connect(source.url.as_str())
        .await
        .map_err(|e| Failure::Connect(e.to_string()))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(&source.stream)
        .await
        .map_err(|e| Failure::Bind(format!("stream {}: {e}", source.stream)))?;
    let created = stream.cached_info().created.unix_timestamp_nanos();
    let consumer = stream
        .create_consumer(consumer_config(source))
        .await
        .map_err(|e| Failure::Bind(format!("consumer {}: {e}", source.consumer)))?;
    let scope = format!("nats:{}@{created}", source.stream);
    Ok((consumer, scope.into()))
}

fn consumer_config(source: &Source) -> pull::Config {
    pull::Config {
        durable_name: Some(source.consumer.clone()),
        description: Some("ripcord serve: events for the release guard".into()),
        filter_subject: source.subject.clone().unwrap_or_default(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        // A pulled batch and what is being handled: more would only wait
        // in this process while their ack wait runs.
        max_ack_pending: i64::try_from(source.batch + IN_FLIGHT).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

/// What became of one message.
enum Handled {
    Ingested,
    Rejected,
}

/// Ingests one message and acks it, or naks it when the store failed (the
/// session's failure then).
async fn handle(
    app: Arc<impl Server>,
    scope: Arc<str>,
    message: jetstream::Message,
) -> Result<Handled, Failure> {
    let key = message_key(&message);
    let result = ingest(app.hub(), &scope, &key, &message.payload).await;
    let handled = match result {
        Ok(outcome) if outcome.rejected_count == 0 => Handled::Ingested,
        Ok(outcome) => {
            refused(&key, &outcome);
            Handled::Rejected
        }
        Err(e) if e.status.is_server_error() => {
            metrics::nats_message("retried");
            if let Err(nak) = message.ack_with(AckKind::Nak(Some(NAK_DELAY))).await {
                tracing::warn!(
                    "NATS message {key}: nak failed ({nak}); it is redelivered after the ack wait"
                );
            }
            return Err(Failure::Store(e.message));
        }
        Err(e) => {
            tracing::warn!("NATS message {key}: refused whole: {}", e.message);
            metrics::nats_rejected(1);
            Handled::Rejected
        }
    };
    metrics::nats_message(match handled {
        Handled::Ingested => "ingested",
        Handled::Rejected => "rejected",
    });
    // Confirmed by the server: until then the message may come again, and
    // is answered from the store when it does.
    if let Err(e) = message.double_ack().await {
        tracing::warn!(
            "NATS message {key}: ack not confirmed ({e}); a redelivery is answered from the store"
        );
    }
    Ok(handled)
}

/// Ingests a payload under its key; the payload is bounded as an HTTP body.
async fn ingest(hub: &Hub, scope: &str, key: &str, payload: &[u8]) -> Result<Outcome, ApiError> {
    if payload.len() > BODY_LIMIT {
        return Err(ApiError::bad_request(format!(
            "{} bytes, more than the limit of {BODY_LIMIT}",
            payload.len()
        )));
    }
    let key = Key::new(scope, key, payload)?;
    ingest_ndjson(hub, payload, &key).await
}

/// The message's `Nats-Msg-Id` when it has a usable one (the producer's
/// own id survives a publish retried after JetStream's duplicate window),
/// else its stream sequence. Prefixed, so that an id never meets a
/// sequence's key; an id that does not fit a key (over 196 characters,
/// not printable ASCII) falls back to the sequence.
fn message_key(message: &jetstream::Message) -> String {
    let id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| format!("id:{}", v.as_str()))
        .filter(|id| Key::new("", id, b"").is_ok());
    match (id, message.info()) {
        (Some(id), _) => id,
        (None, Ok(info)) => format!("stream:{}", info.stream_sequence),
        // Not a JetStream delivery (no ack subject): it cannot be acked
        // either, so any key will do.
        (None, Err(_)) => "unknown".into(),
    }
}

/// Logs and counts a message's refused lines.
fn refused(key: &str, outcome: &Outcome) {
    metrics::nats_rejected(outcome.rejected_count as u64);
    let first = outcome
        .rejected
        .first()
        .map(|r| format!("; first: line {}: {}", r.index + 1, r.error))
        .unwrap_or_default();
    tracing::warn!(
        "NATS message {key}: {} line(s) refused, {} accepted (acked: it would never succeed){first}",
        outcome.rejected_count,
        outcome.accepted,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_checked_when_configured() {
        let s = Source::new("nats://127.0.0.1:4222", Some("EVENTS"), None, None).unwrap();
        assert_eq!(s.consumer, "ripcord");
        assert_eq!(s.to_string(), "stream EVENTS (consumer ripcord)");
        assert_eq!(
            Source::new("nats://127.0.0.1:4222", None, None, None),
            Err(SourceError::NoStream)
        );
        let e = Source::new("nats://h:4222", Some("a.b"), None, None).unwrap_err();
        assert!(e.to_string().starts_with("--nats-stream: \"a.b\""), "{e}");
        let e = Source::new("nats://h:4222", Some("s"), Some(""), None).unwrap_err();
        assert!(e.to_string().starts_with("--nats-consumer: \"\""), "{e}");
        let e = Source::new("nats://h:4222", Some("s"), None, Some("a b")).unwrap_err();
        assert!(e.to_string().starts_with("--nats-subject: "), "{e}");
        let e = Source::new("http://[::1", Some("s"), None, None).unwrap_err();
        assert!(e.to_string().starts_with("--nats: \"http://[::1\""), "{e}");
    }
}
