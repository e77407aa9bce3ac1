//! `POST /v1/events`: ingest. The parsing and the engines' work are
//! `crate::ingest`'s; this route holds a slot and reads the body at a
//! minimum rate.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::app::Shared;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ingest::{self, ingest_for};
use crate::slow::{BODY_LIMIT, read_body};

pub fn routes() -> Router<Shared> {
    Router::new().route("/v1/events", post(post_events))
}

async fn post_events(
    State(app): State<Shared>,
    principal: Principal,
    request: Request,
) -> Result<Response, ApiError> {
    // The slot is taken before the body is read, so that under overload
    // bodies wait in the clients, not in our memory; a body slower than
    // the minimum rate gives its slot back with a 408. (A declared length
    // over the limit never gets here: `slow::refuse_oversized`.)
    let _slot = app.ingest_slots.acquire(&principal.name)?;
    let headers = request.headers();
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.starts_with("application/x-ndjson") || t.starts_with("application/jsonl")
        });
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::bad_request("Idempotency-Key: must be printable ASCII characters")
                })?
                .to_string(),
        ),
    };
    let bytes = read_body(request.into_body(), app.body_rate, BODY_LIMIT).await?;
    let key = key
        .map(|k| ingest::Key::new(&principal.name, &k, &bytes))
        .transpose()?;
    let (status, answer) =
        ingest_for(&app.hub, &bytes, ndjson, key.as_ref(), Some(&principal)).await?;
    Ok((status, Json(answer)).into_response())
}
