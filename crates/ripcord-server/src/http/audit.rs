//! `GET /v1/audit`: the hash-chained audit log.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::app::Shared;
use super::extract::{QueryParams, page_limit};
use crate::error::ApiError;

pub fn routes() -> Router<Shared> {
    Router::new().route("/v1/audit", get(audit_log))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/audit`: the hash-chained audit log as NDJSON (the lines
/// `ripcord audit export` writes), a page at a time; the header
/// `ripcord-next-after` is the cursor for the next page.
async fn audit_log(
    State(app): State<Shared>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Response, ApiError> {
    let after = q.after.unwrap_or(0).max(0);
    let limit = page_limit(q.limit)?;
    let lines = app.hub.store.audit(after.saturating_add(1), limit).await?;
    let next = lines.last().map_or(after, |l| l.seq);
    let mut text = String::new();
    for l in &lines {
        text.push_str(&l.line);
        text.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::HeaderName::from_static("ripcord-next-after"),
                next.to_string(),
            ),
        ],
        Body::from(text),
    )
        .into_response())
}
