//! `POST /v1/events`: a JSON array or NDJSON of events in the replay format,
//! answered only once the accepted ones are durable.
//!
//! Bounded whatever the body: items are parsed one at a time while walking
//! the body (no list of items is built first), a body holds at most
//! [`MAX_ITEMS`], and an answer lists at most [`LISTED`] refusals while
//! counting them all. Each event must keep within the per-event limits
//! (`EventLimits`) and within [`MAX_LEAD`] of the server clock, so that no
//! sender can blind a comparison or stall a service's clock.
//!
//! With an `Idempotency-Key`, each service's share of the answer is stored
//! in the same transaction as its events: a retry (say after the answer was
//! lost to a crash) is answered from what was stored and counts nothing
//! twice.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::http::StatusCode;
use ripcord_core::engine::Rejection;
use ripcord_core::ndjson::{BodyError, BodyFormat, Line, each_item, event_to_line, parse_line};
use ripcord_core::{Dur, Event};
use ripcord_store::Batch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::{Hub, State};
use crate::metrics;

/// Refusals listed in an answer; the rest are only counted.
pub const LISTED: usize = 100;
/// Items (array elements, or lines of NDJSON) one body may hold.
pub const MAX_ITEMS: usize = 1_000_000;
/// How far ahead of the server clock an event may be stamped. An event
/// moves its service's clock, and events more than the lateness behind that
/// clock are refused: a small lead keeps one sender from making everybody
/// else's events late.
pub const MAX_LEAD: Dur = Dur(5_000);
/// How long an ingest idempotency key is remembered.
pub const KEY_TTL: Dur = Dur(24 * 3600 * 1000);
/// Longest idempotency key accepted.
const KEY_MAX_LEN: usize = 200;
/// Keys kept in memory per service, covering answers queued but not yet
/// durable (older ones are read back from the store).
pub const KEYS_IN_MEMORY: usize = 1024;
/// Prefix of the stored answers of ingest requests.
const KEY_PREFIX: &str = "ingest:";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub accepted: usize,
    /// Items refused, all of them (only the first [`LISTED`] are listed).
    pub rejected_count: usize,
    /// The first refusals in body order.
    pub rejected: Vec<Rejected>,
    /// Once the list is full: the largest index it keeps.
    #[serde(skip)]
    cutoff: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rejected {
    /// 0-based position in the array, or 0-based line of the NDJSON body.
    pub index: usize,
    pub error: String,
}

impl Outcome {
    fn reject(&mut self, index: usize, error: impl fmt::Display) {
        self.rejected_count += 1;
        // Only the smallest indices are listed; refusals from a later
        // service can come before ones already listed, so the list is
        // trimmed now and then rather than closed at the first N.
        if self.cutoff.is_some_and(|c| index > c) {
            return;
        }
        self.rejected.push(Rejected {
            index,
            error: error.to_string(),
        });
        if self.rejected.len() >= 2 * LISTED {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.rejected.sort_by_key(|r| r.index);
        self.rejected.truncate(LISTED);
        if self.rejected.len() == LISTED {
            self.cutoff = self.rejected.last().map(|r| r.index);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.accepted += other.accepted;
        self.rejected_count += other.rejected_count;
        self.rejected.extend(other.rejected);
        self.trim();
    }
}

/// A request's idempotency key, scoped to its caller, with the body's
/// digest (a key reused for another body is refused).
pub struct Key {
    scope: String,
    body_sha256: String,
}

impl Key {
    /// Checks the `Idempotency-Key` header's value.
    pub fn new(principal: &str, key: &str, body: &[u8]) -> Result<Key, ApiError> {
        let printable = key.bytes().all(|b| b.is_ascii_graphic());
        if key.is_empty() || key.len() > KEY_MAX_LEN || !printable {
            return Err(ApiError::bad_request(format!(
                "Idempotency-Key: must be 1–{KEY_MAX_LEN} printable ASCII characters"
            )));
        }
        let digest: [u8; 32] = Sha256::digest(body).into();
        Ok(Key {
            scope: format!("{KEY_PREFIX}{principal}:{key}"),
            body_sha256: ripcord_core::audit::hex(&digest),
        })
    }

    fn for_service(&self, service: &str) -> String {
        format!("{}:{service}", self.scope)
    }
}

/// What is stored under a key for one service.
#[derive(Serialize, Deserialize)]
struct Remembered {
    body_sha256: String,
    outcome: Outcome,
}

/// One well-formed event and the line to journal for it.
struct Item<'a> {
    index: usize,
    event: Event<'a>,
    line: &'a [u8],
}

/// Walks the body, parsing each item as it comes: well-formed events are
/// kept, everything else is counted (and the first ones listed).
struct Parser<'a, 'o> {
    good: Vec<Item<'a>>,
    outcome: &'o mut Outcome,
}

impl<'a> Parser<'a, '_> {
    fn take(&mut self, index: usize, bytes: &'a [u8]) -> Result<(), ApiError> {
        if index >= MAX_ITEMS {
            let mut err = ApiError::bad_request(format!(
                "body: more than {MAX_ITEMS} items; send them in several requests"
            ));
            err.status = StatusCode::PAYLOAD_TOO_LARGE;
            err.code = "too_large";
            return Err(err);
        }
        match parse_line(bytes) {
            Ok(Line::Event(event)) => self.good.push(Item {
                index,
                event,
                line: bytes,
            }),
            Ok(Line::Release(_)) => self.outcome.reject(
                index,
                "release: releases are started with POST /v1/releases, not sent as events",
            ),
            Ok(Line::Blank) => self
                .outcome
                .reject(index, "expected an event object, got nothing"),
            Err(e) => self.outcome.reject(index, e),
        }
        Ok(())
    }
}

/// Ingests a body for no token scope (every service): the status and
/// answer to send.
pub async fn ingest(
    hub: &Hub,
    body: &[u8],
    ndjson: bool,
    key: Option<&Key>,
) -> Result<(StatusCode, Value), ApiError> {
    ingest_for(hub, body, ndjson, key, None).await
}

/// Ingests a body for a token: events of services outside its scope are
/// refused per item, and the request is 403 when that was every item.
pub async fn ingest_for(
    hub: &Hub,
    body: &[u8],
    ndjson: bool,
    key: Option<&Key>,
    principal: Option<&Principal>,
) -> Result<(StatusCode, Value), ApiError> {
    let (outcome, out_of_scope) = tally(hub, body, ndjson, key, principal).await?;
    metrics::ingested(outcome.accepted, outcome.rejected_count);
    if outcome.accepted == 0 && out_of_scope > 0 && out_of_scope == outcome.rejected_count {
        return Err(ApiError {
            details: Some(json!(outcome.rejected)),
            ..ApiError::forbidden(outcome.rejected[0].error.clone())
        });
    }
    answer(outcome)
}

/// Ingests an NDJSON body for a source inside the server (the NATS
/// consumer): the typed outcome rather than an HTTP answer, so that the
/// caller counts refusals without reading them back out of JSON.
pub async fn ingest_ndjson(hub: &Hub, body: &[u8], key: &Key) -> Result<Outcome, ApiError> {
    let (outcome, _) = tally(hub, body, true, Some(key), None).await?;
    metrics::ingested(outcome.accepted, outcome.rejected_count);
    Ok(outcome)
}

/// [`ingest_ndjson`] for a drill's simulated users: the same path, counted
/// apart from real events (`ripcord_drill_events_total`). No idempotency
/// key: the drill never sends a body twice, so no answer is kept for it.
pub async fn ingest_simulated(hub: &Hub, body: &[u8]) -> Result<Outcome, ApiError> {
    let (outcome, _) = tally(hub, body, true, None, None).await?;
    metrics::drill_events(outcome.accepted);
    Ok(outcome)
}

/// Parses and ingests a body: the outcome, and how many items were refused
/// for being outside the principal's scope.
async fn tally(
    hub: &Hub,
    body: &[u8],
    ndjson: bool,
    key: Option<&Key>,
    principal: Option<&Principal>,
) -> Result<(Outcome, usize), ApiError> {
    let mut outcome = Outcome::default();
    let mut parser = Parser {
        good: Vec::new(),
        outcome: &mut outcome,
    };
    let format = if ndjson {
        BodyFormat::Ndjson
    } else {
        BodyFormat::JsonArray
    };
    each_item(body, format, |index, bytes| parser.take(index, bytes)).map_err(|e| match e {
        BodyError::Stopped(e) => e,
        BodyError::Malformed(e) => ApiError::bad_request(format!(
            "body: expected a JSON array of events (or send application/x-ndjson): {e}"
        )),
    })?;
    let mut events = parser.good;
    if key.is_some() {
        forget_expired_keys(hub).await;
    }
    // Group by service, keeping each service's events in body order.
    events.sort_by(|a, b| {
        a.event
            .service
            .cmp(&b.event.service)
            .then(a.index.cmp(&b.index))
    });
    let mut start = 0;
    let mut out_of_scope = 0;
    while start < events.len() {
        let service = events[start].event.service.clone();
        let end = start
            + events[start..]
                .iter()
                .take_while(|i| i.event.service == service)
                .count();
        match principal.filter(|p| !p.scope.allows(&service)) {
            Some(p) => out_of_scope += out_of_scope_items(p, &events[start..end], &mut outcome),
            None => ingest_service(hub, &service, &events[start..end], key, &mut outcome).await?,
        }
        start = end;
    }
    outcome.trim();
    Ok((outcome, out_of_scope))
}

/// 202 when anything was accepted; 400 otherwise, with the refusals.
fn answer(outcome: Outcome) -> Result<(StatusCode, Value), ApiError> {
    if outcome.accepted > 0 {
        return Ok((StatusCode::ACCEPTED, json!(outcome)));
    }
    let Some(first) = outcome.rejected.first() else {
        return Err(ApiError::bad_request("body: no events"));
    };
    let message = format!(
        "no event was valid ({} refused, the first {} listed in details); first problem: item {}: {}",
        outcome.rejected_count,
        outcome.rejected.len(),
        first.index,
        first.error
    );
    Ok((
        StatusCode::BAD_REQUEST,
        json!({
            "error": "bad_request",
            "message": message,
            "details": outcome.rejected,
            "rejected_count": outcome.rejected_count,
        }),
    ))
}

/// A scoped token's events for another service are refused per item; how
/// many.
fn out_of_scope_items(principal: &Principal, items: &[Item<'_>], outcome: &mut Outcome) -> usize {
    for item in items {
        let service = &item.event.service;
        outcome.reject(item.index, principal.out_of_scope(service));
    }
    items.len()
}

async fn ingest_service(
    hub: &Hub,
    name: &str,
    items: &[Item<'_>],
    key: Option<&Key>,
    outcome: &mut Outcome,
) -> Result<(), ApiError> {
    let Some(service) = hub.service(name) else {
        for item in items {
            outcome.reject(
                item.index,
                format!("service: no policy for \"{name}\"; PUT /v1/policies/{name} first"),
            );
        }
        return Ok(());
    };
    let mut state = service.state.lock().await;
    let stored_key = key.map(|k| k.for_service(name));
    if let (Some(key), Some(stored)) = (key, &stored_key)
        && let Some(prior) = remembered(hub, in_memory(hub, &state, stored)?, stored, key).await?
    {
        outcome.merge(prior);
        return Ok(());
    }
    let began = Instant::now();
    let mut part = Outcome::default();
    let (body, decisions, counts) = observe(hub, &mut state, items, &mut part);
    metrics::evaluation(began.elapsed());
    if part.accepted == 0 {
        outcome.merge(part);
        return Ok(());
    }
    if let Some(current) = state.current.as_mut() {
        current.events.baseline += counts.0;
        current.events.candidate += counts.1;
    }
    let mut batch = Batch::default();
    if let (Some(key), Some(stored)) = (key, stored_key) {
        part.trim();
        let text = json!(Remembered {
            body_sha256: key.body_sha256.clone(),
            outcome: part.clone(),
        })
        .to_string();
        remember(&mut state.ingest_keys, stored.clone(), text.clone());
        batch.answers.push((stored, text));
    }
    let applied = hub
        .finish(
            &service,
            &mut state,
            (crate::journal::Kind::Events, body),
            decisions,
            batch,
            crate::hub::ENGINE,
        )
        .await;
    drop(state);
    durable(applied.durable).await?;
    outcome.merge(part);
    Ok(())
}

/// Feeds the service's engine every item that keeps within the limits;
/// the journal body, the decisions and the events per side.
fn observe(
    hub: &Hub,
    state: &mut State,
    items: &[Item<'_>],
    part: &mut Outcome,
) -> (String, Vec<ripcord_core::Decision>, (u64, u64)) {
    let mut decisions = Vec::new();
    let mut body = String::with_capacity(items.iter().map(|i| i.line.len() + 1).sum());
    let mut counts = (0, 0);
    let lateness = hub.options.lateness;
    let limits = hub.options.limits;
    let lead_limit = hub.now() + MAX_LEAD;
    let sides = state
        .current
        .as_ref()
        .map(|c| (c.baseline.clone(), c.candidate.clone()));
    for item in items {
        if item.event.ts > lead_limit {
            part.reject(
                item.index,
                format_args!(
                    "ts: {} is more than {MAX_LEAD} ahead of the server clock ({}); send events as they happen, from a clock in sync",
                    item.event.ts.to_rfc3339(),
                    hub.now().to_rfc3339()
                ),
            );
            continue;
        }
        let policy = state.engine.as_ref().map_or(&state.policy, |e| e.policy());
        if let Err(e) = limits.check(policy, &item.event) {
            part.reject(item.index, e);
            continue;
        }
        let result = state.observe(&item.event, &mut decisions);
        if result == Err(Rejection::TooLate) {
            // The service's clock is its newest event or the server's clock,
            // whichever is later: a sender whose clock lags by more than the
            // lateness sees every event refused, and this says why.
            let clock = state.engine.as_ref().map_or(item.event.ts, |e| e.now());
            part.reject(
                item.index,
                format_args!(
                    "ts: {} is more than {lateness} behind this service's clock ({}); send events as they happen, from a clock in sync",
                    item.event.ts.to_rfc3339(),
                    clock.to_rfc3339()
                ),
            );
            continue;
        }
        if let Err(why) = result {
            metrics::ignored(why);
        }
        part.accepted += 1;
        if let Some((baseline, candidate)) = &sides {
            if item.event.version == baseline.as_str() {
                counts.0 += 1;
            } else if item.event.version == candidate.as_str() {
                counts.1 += 1;
            }
        }
        push_line(&mut body, item);
    }
    (body, decisions, counts)
}

/// The answer already given to this key for this service: from memory
/// (once its batch is durable) while it may not be in the store yet, else
/// from the store.
async fn remembered(
    hub: &Hub,
    in_memory: Option<String>,
    stored: &str,
    key: &Key,
) -> Result<Option<Outcome>, ApiError> {
    let text = match in_memory {
        Some(text) => {
            // Its batch was queued before this retry took the service's
            // lock, so it commits before this flush: answer only once it
            // is durable. A commit that fails meanwhile gets this retry a
            // 503 (and the retry after the restart is ingested), never
            // the answer of events that were lost.
            hub.writer.flush().await.map_err(|e| {
                ApiError::unavailable(format!("nothing was stored: {e}; retry later"))
            })?;
            Some(text)
        }
        None => hub.store.answer(stored).await?,
    };
    let Some(text) = text else {
        return Ok(None);
    };
    let prior: Remembered = serde_json::from_str(&text)
        .map_err(|e| ApiError::unavailable(format!("stored answer for the key: {e}")))?;
    if prior.body_sha256 != key.body_sha256 {
        return Err(ApiError::unprocessable(
            "Idempotency-Key: already used for a different body; use a new key for new events",
            json!([{"path": "Idempotency-Key", "message": "used for another body"}]),
        ));
    }
    Ok(Some(prior.outcome))
}

/// An answer remembered in memory may belong to a batch that never became
/// durable: once the writer has failed, none is given (a retry after the
/// restart is answered from the store, or ingested).
fn in_memory(hub: &Hub, state: &State, stored: &str) -> Result<Option<String>, ApiError> {
    if hub.writer.has_failed() {
        return Err(ApiError::unavailable(
            "nothing was stored: an earlier commit failed; restart ripcord to recover from the store",
        ));
    }
    Ok(in_memory_answer(state, stored))
}

fn in_memory_answer(state: &State, stored: &str) -> Option<String> {
    state
        .ingest_keys
        .iter()
        .find(|(k, _)| k == stored)
        .map(|(_, text)| text.clone())
}

fn remember(keys: &mut VecDeque<(String, String)>, key: String, text: String) {
    if keys.len() >= KEYS_IN_MEMORY {
        keys.pop_front();
    }
    keys.push_back((key, text));
}

/// Forgets ingest keys older than [`KEY_TTL`], at most once a minute.
async fn forget_expired_keys(hub: &Hub) {
    let now = hub.now().0;
    let last = hub.keys_pruned_ms.load(Ordering::SeqCst);
    if now - last < 60_000
        || hub
            .keys_pruned_ms
            .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return;
    }
    if let Err(e) = hub.store.forget_answers(KEY_PREFIX, now - KEY_TTL.0).await {
        tracing::warn!("forgetting expired idempotency keys: {e}");
    }
}

/// Appends the event's journal line: the client's own line when it is one
/// line already, else the canonical rendering.
fn push_line(body: &mut String, item: &Item<'_>) {
    let raw = std::str::from_utf8(item.line).ok().map(str::trim);
    match raw {
        Some(line) if !line.contains('\n') => body.push_str(line),
        _ => body.push_str(&event_to_line(&item.event)),
    }
    body.push('\n');
}

/// Waits for the writer. A failed commit acknowledges nothing of the
/// request (the writer is fail-stop: see `writer.rs`).
pub async fn durable(durable: crate::writer::Durable) -> Result<(), ApiError> {
    let result = match durable.await {
        Ok(r) => r,
        Err(_) => Err("the writer has stopped".to_string()),
    };
    result.map_err(|e| ApiError::unavailable(format!("nothing was stored: {e}")))
}
