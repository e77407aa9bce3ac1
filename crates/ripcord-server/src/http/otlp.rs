//! OTLP/HTTP: `POST /otlp/v1/traces` and `POST /otlp/v1/logs` (an
//! exporter's endpoint is `http://HOST:PORT/otlp`), protobuf or JSON,
//! optionally gzipped. The mapping is `crate::otlp`'s; the events take
//! `/v1/events`' path and the answer comes once they are durable. As the
//! OTLP specification asks: refused items are counted in a partial
//! success with their reasons (200), an undecodable body is 400, a body
//! over the limit 413, overload 429 and an unavailable store 503, both
//! with `Retry-After`.

use std::io::Read;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::app::Shared;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ingest::ingest_for;
use crate::otlp::{self, Mapped, Signals};
use crate::slow::{BODY_LIMIT, read_body};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/otlp/v1/traces", post(traces))
        .route("/otlp/v1/logs", post(logs))
}

/// Reasons listed in a partial success's message; the rest are counted.
const REASONS: usize = 5;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn traces(
    State(app): State<Shared>,
    principal: Principal,
    request: Request,
) -> Result<Response, ApiError> {
    let map = |req: &ExportTraceServiceRequest, signals: &Signals| {
        otlp::spans(req, signals, &app.otlp_responses)
    };
    let (encoding, rejected, message) =
        receive(&app, &principal, request, otlp::trace_services, map).await?;
    let answer = ExportTraceServiceResponse {
        partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: message,
        }),
    };
    Ok(encode(encoding, &answer))
}

async fn logs(
    State(app): State<Shared>,
    principal: Principal,
    request: Request,
) -> Result<Response, ApiError> {
    let (now, lateness) = (app.hub.now(), app.hub.options.lateness);
    let map = |req: &ExportLogsServiceRequest, signals: &Signals| {
        otlp::logs(req, signals, &app.otlp_responses, now, lateness)
    };
    let (encoding, rejected, message) =
        receive(&app, &principal, request, otlp::log_services, map).await?;
    let answer = ExportLogsServiceResponse {
        partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: message,
        }),
    };
    Ok(encode(encoding, &answer))
}

/// One export, whichever signal: an ingest slot, the body decoded, its
/// items mapped by the services' policies and ingested. The encoding to
/// answer in, the items refused and the first reasons.
async fn receive<R>(
    app: &Shared,
    principal: &Principal,
    request: Request,
    services: fn(&R) -> Vec<String>,
    map: impl FnOnce(&R, &Signals) -> Mapped,
) -> Result<(Encoding, i64, String), ApiError>
where
    R: Message + Default + serde::de::DeserializeOwned,
{
    let _slot = app.ingest_slots.acquire(&principal.name)?;
    let (encoding, bytes) = body(app, request).await?;
    let req: R = decode(encoding, &bytes)?;
    let signals = signals(app, services(&req)).await;
    let mapped = map(&req, &signals);
    let (rejected, message) = ingest(app, principal, mapped).await?;
    Ok((encoding, rejected, message))
}

/// The body's encoding and its bytes, gunzipped, within the body limit.
async fn body(app: &Shared, request: Request) -> Result<(Encoding, Vec<u8>), ApiError> {
    let encoding = encoding(request.headers())?;
    let gzip = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let bytes = read_body(request.into_body(), app.body_rate, BODY_LIMIT).await?;
    if !gzip {
        return Ok((encoding, bytes.to_vec()));
    }
    // A small body may inflate to anything: read at most the limit.
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .take(BODY_LIMIT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("body: not gzip: {e}")))?;
    if out.len() > BODY_LIMIT {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            ..ApiError::bad_request(format!("body: over {BODY_LIMIT} bytes once gunzipped"))
        });
    }
    Ok((encoding, out))
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if kind.starts_with("application/x-protobuf") {
        Ok(Encoding::Protobuf)
    } else if kind.starts_with("application/json") {
        Ok(Encoding::Json)
    } else {
        Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            ..ApiError::bad_request(format!(
                "Content-Type: \"{kind}\" is not OTLP; send application/x-protobuf or application/json"
            ))
        })
    }
}

fn decode<T>(encoding: Encoding, bytes: &[u8]) -> Result<T, ApiError>
where
    T: Message + Default + serde::de::DeserializeOwned,
{
    match encoding {
        Encoding::Protobuf => T::decode(bytes)
            .map_err(|e| ApiError::bad_request(format!("body: not an OTLP protobuf message: {e}"))),
        Encoding::Json => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("body: not OTLP/JSON: {e}"))),
    }
}

fn encode<T: Message + serde::Serialize>(encoding: Encoding, answer: &T) -> Response {
    match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            answer.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(answer).unwrap_or_default(),
        )
            .into_response(),
    }
}

/// The signals of each named service's policy (services without one are
/// left out; their items are refused by name).
async fn signals(app: &Shared, names: Vec<String>) -> Signals {
    let mut out = Signals::new();
    for name in names {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(service) = app.hub.service(&name) {
            let state = service.state.lock().await;
            let target = otlp::Target {
                signals: state.policy.signals.clone(),
                map: state.policy.sources.otlp.clone(),
            };
            out.insert(name, target);
        }
    }
    out
}

/// Ingests the mapped events as NDJSON; the items refused in all (before
/// and by ingest) and the first reasons.
async fn ingest(
    app: &Shared,
    principal: &Principal,
    mapped: Mapped,
) -> Result<(i64, String), ApiError> {
    let Mapped {
        events,
        refused,
        refused_count,
    } = mapped;
    let mut reasons: Vec<String> = refused
        .iter()
        .map(|(what, why)| format!("{what}: {why}"))
        .collect();
    let mut rejected = refused_count as i64;
    if !events.is_empty() {
        let mut body = String::new();
        for (_, line) in &events {
            body.push_str(line);
            body.push('\n');
        }
        let (_, answer) =
            ingest_for(&app.hub, body.as_bytes(), true, None, Some(principal)).await?;
        rejected += answer["rejected_count"].as_i64().unwrap_or(0);
        // A body with no valid event is answered with its refusals as
        // `details`; otherwise they are `rejected`.
        let listed = answer.get("rejected").or_else(|| answer.get("details"));
        for r in listed.and_then(|l| l.as_array()).into_iter().flatten() {
            let what = r["index"]
                .as_u64()
                .and_then(|i| events.get(i as usize))
                .map_or("an item".to_string(), |(origin, _)| origin.to_string());
            reasons.push(format!(
                "{what}: {}",
                r["error"].as_str().unwrap_or_default()
            ));
        }
    }
    let shown = reasons.len().min(REASONS);
    let mut message = reasons[..shown].join("; ");
    if rejected > shown as i64 {
        message.push_str(&format!("; and {} more", rejected - shown as i64));
    }
    Ok((rejected, message))
}
