//! `GET /v1/decisions`: a service's decision log as NDJSON, each line in
//! exactly the replay shape, a page at a time.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::app::Shared;
use super::extract::{QueryParams, page_limit};
use super::paging::ndjson_page;
use crate::auth::Principal;
use crate::error::ApiError;

pub fn routes() -> Router<Shared> {
    Router::new().route("/v1/decisions", get(decisions))
}

#[derive(Deserialize)]
struct DecisionQuery {
    service: Option<String>,
    since: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

/// The `ripcord-next-after` header carries the cursor for the next page.
async fn decisions(
    State(app): State<Shared>,
    principal: Principal,
    QueryParams(q): QueryParams<DecisionQuery>,
) -> Result<Response, ApiError> {
    let service = q
        .service
        .ok_or_else(|| ApiError::bad_request("service: query parameter is required"))?;
    principal.require_service(&service)?;
    app.hub.known(&service)?;
    let since = match q.since {
        Some(text) => {
            ripcord_core::Time::parse_rfc3339(&text)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("since: \"{text}\" is not an RFC 3339 instant"))
                })?
                .0
        }
        None => i64::MIN,
    };
    let limit = page_limit(q.limit)?;
    let rows = app
        .hub
        .store
        .decisions(&service, since, q.after.unwrap_or(0), limit)
        .await?;
    let next = rows.last().map_or(q.after.unwrap_or(0), |r| r.seq);
    Ok(ndjson_page(rows.iter().map(|r| r.line.as_str()), next))
}
