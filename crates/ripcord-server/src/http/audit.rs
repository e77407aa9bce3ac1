//! `GET /v1/audit`: the hash-chained audit log.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::app::Shared;
use super::extract::{QueryParams, page_limit};
use super::paging::ndjson_page;
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
    Ok(ndjson_page(lines.iter().map(|l| l.line.as_str()), next))
}
