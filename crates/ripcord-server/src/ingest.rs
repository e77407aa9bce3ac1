//! `POST /v1/events`: a JSON array or NDJSON of events in the replay format,
//! answered only once the accepted ones are durable.

use std::time::Instant;

use ripcord_core::engine::Rejection;
use ripcord_core::ndjson::{Line, event_to_line, parse_line};
use ripcord_core::{Dur, Event};
use ripcord_store::Batch;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::{Hub, wall_now};
use crate::metrics;

/// Events stamped further ahead of the server clock than this are refused:
/// one would move the engine's "now" and make every later event too late.
const MAX_AHEAD: Dur = Dur(5 * 60 * 1000);

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub accepted: usize,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Serialize)]
pub struct Rejected {
    /// 0-based position in the array, or 0-based line of the NDJSON body.
    pub index: usize,
    pub error: String,
}

/// One well-formed event and the line to journal for it.
struct Item<'a> {
    index: usize,
    event: Event<'a>,
    line: &'a [u8],
}

/// Splits the body into (index, bytes) items.
fn items(body: &[u8], ndjson: bool) -> Result<Vec<(usize, &[u8])>, ApiError> {
    if ndjson {
        return Ok(body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .collect());
    }
    let raw: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "body: expected a JSON array of events (or send application/x-ndjson): {e}"
        ))
    })?;
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i, r.get().as_bytes()))
        .collect())
}

/// Parses every item; well-formed events are returned, the rest rejected.
fn parse<'a>(items: &[(usize, &'a [u8])], outcome: &mut Outcome) -> Vec<Item<'a>> {
    let limit = wall_now() + MAX_AHEAD;
    let mut good = Vec::with_capacity(items.len());
    for &(index, bytes) in items {
        let error = match parse_line(bytes) {
            Ok(Line::Event(event)) if event.ts > limit => format!(
                "ts: {} is more than {MAX_AHEAD} ahead of the server clock",
                event.ts.to_rfc3339()
            ),
            Ok(Line::Event(event)) => {
                good.push(Item {
                    index,
                    event,
                    line: bytes,
                });
                continue;
            }
            Ok(Line::Release(_)) => {
                "release: releases are started with POST /v1/releases, not sent as events".into()
            }
            Ok(Line::Blank) => "expected an event object, got nothing".into(),
            Err(e) => e.to_string(),
        };
        outcome.rejected.push(Rejected { index, error });
    }
    good
}

/// Ingest with no token scope (every service).
pub async fn ingest(hub: &Hub, body: &[u8], ndjson: bool) -> Result<Outcome, ApiError> {
    ingest_for(hub, body, ndjson, None).await
}

/// Ingest for a token: events of services outside its scope are refused
/// per item, and the request is 403 when that was every item.
pub async fn ingest_for(
    hub: &Hub,
    body: &[u8],
    ndjson: bool,
    principal: Option<&Principal>,
) -> Result<Outcome, ApiError> {
    let items = items(body, ndjson)?;
    let mut outcome = Outcome::default();
    let mut events = parse(&items, &mut outcome);
    // Group by service, keeping each service's events in body order.
    events.sort_by(|a, b| {
        a.event
            .service
            .cmp(&b.event.service)
            .then(a.index.cmp(&b.index))
    });
    let mut start = 0;
    while start < events.len() {
        let service = events[start].event.service.clone();
        let end = start
            + events[start..]
                .iter()
                .take_while(|i| i.event.service == service)
                .count();
        match principal.filter(|p| !p.scope.allows(&service)) {
            Some(p) => out_of_scope(p, &service, &events[start..end], &mut outcome),
            None => ingest_service(hub, &service, &events[start..end], &mut outcome).await?,
        }
        start = end;
    }
    outcome.rejected.sort_by_key(|r| r.index);
    if let Some(p) = principal {
        forbidden_if_all_out_of_scope(p, &outcome)?;
    }
    metrics::ingested(outcome.accepted, outcome.rejected.len());
    if outcome.accepted == 0 && !outcome.rejected.is_empty() {
        return Err(ApiError {
            details: Some(serde_json::to_value(&outcome.rejected).unwrap_or_default()),
            ..ApiError::bad_request(format!(
                "no event was valid; first problem: item {}: {}",
                outcome.rejected[0].index, outcome.rejected[0].error
            ))
        });
    }
    if outcome.accepted == 0 {
        return Err(ApiError::bad_request("body: no events"));
    }
    Ok(outcome)
}

/// A scoped token's events for another service are refused per item.
fn out_of_scope(principal: &Principal, service: &str, items: &[Item<'_>], outcome: &mut Outcome) {
    let error = principal.out_of_scope(service);
    for item in items {
        outcome.rejected.push(Rejected {
            index: item.index,
            error: error.clone(),
        });
    }
}

/// 403 (not 400) when nothing was accepted and every item was refused
/// for its service being outside the token's scope.
fn forbidden_if_all_out_of_scope(principal: &Principal, outcome: &Outcome) -> Result<(), ApiError> {
    let refused = |r: &Rejected| {
        r.error
            .starts_with(&format!("service: token \"{}\" is scoped", principal.name))
    };
    if outcome.accepted > 0 || outcome.rejected.is_empty() || !outcome.rejected.iter().all(refused)
    {
        return Ok(());
    }
    Err(ApiError {
        details: Some(serde_json::to_value(&outcome.rejected).unwrap_or_default()),
        ..ApiError::forbidden(outcome.rejected[0].error.clone())
    })
}

async fn ingest_service(
    hub: &Hub,
    name: &str,
    items: &[Item<'_>],
    outcome: &mut Outcome,
) -> Result<(), ApiError> {
    let Some(service) = hub.service(name) else {
        for item in items {
            outcome.rejected.push(Rejected {
                index: item.index,
                error: format!("service: no policy for \"{name}\"; PUT /v1/policies/{name} first"),
            });
        }
        return Ok(());
    };
    let mut state = service.state.lock().await;
    let began = Instant::now();
    let mut decisions = Vec::new();
    let mut body = String::with_capacity(items.iter().map(|i| i.line.len() + 1).sum());
    let mut accepted = 0;
    let mut counts = (0, 0);
    let lateness = hub.options.lateness;
    let sides = state
        .current
        .as_ref()
        .map(|c| (c.baseline.clone(), c.candidate.clone()));
    for item in items {
        let result = match state.engine.as_mut() {
            Some(engine) => engine.observe(&item.event, &mut decisions),
            None => Err(Rejection::NoRelease),
        };
        if result == Err(Rejection::TooLate) {
            // The service's clock is its newest event or the server's clock,
            // whichever is later: a sender whose clock lags by more than the
            // lateness sees every event refused, and this says why.
            let clock = state.engine.as_ref().map_or(item.event.ts, |e| e.now());
            outcome.rejected.push(Rejected {
                index: item.index,
                error: format!(
                    "ts: {} is more than {lateness} behind this service's clock ({}); send events as they happen, from a clock in sync",
                    item.event.ts.to_rfc3339(),
                    clock.to_rfc3339()
                ),
            });
            continue;
        }
        if let Err(why) = result {
            metrics::ignored(why);
        }
        accepted += 1;
        if let Some((baseline, candidate)) = &sides {
            if item.event.version == baseline.as_str() {
                counts.0 += 1;
            } else if item.event.version == candidate.as_str() {
                counts.1 += 1;
            }
        }
        push_line(&mut body, item);
    }
    metrics::evaluation(began.elapsed());
    if accepted == 0 {
        return Ok(());
    }
    if let Some(current) = state.current.as_mut() {
        current.events.baseline += counts.0;
        current.events.candidate += counts.1;
    }
    let applied = hub
        .finish(
            &service,
            &mut state,
            ("events", body),
            decisions,
            Batch::default(),
            crate::hub::ENGINE,
        )
        .await;
    drop(state);
    durable(applied.durable).await?;
    outcome.accepted += accepted;
    Ok(())
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
