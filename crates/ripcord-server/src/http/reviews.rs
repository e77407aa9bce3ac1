//! Threshold reviews: list a service's, read one, accept one (a new policy
//! version citing it).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::{OptionalBody, QueryParams};
use super::paging::{self, PageQuery};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::names::check_name;
use crate::reviews;

/// Criteria one accept may name.
const MAX_CRITERIA: usize = 100;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/services/{service}/reviews", get(list))
        .route("/v1/reviews/{id}", get(one))
        .route("/v1/reviews/{id}/accept", post(accept))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(app): State<Shared>,
    p: Principal,
    Path(service): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    check_name("service", &service)?;
    p.require_service(&service)?;
    let found = reviews::list(app.hub.store.as_ref(), &service).await?;
    let page = PageQuery {
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(paging::page("reviews", found, page)?))
}

async fn one(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = reviews::get(app.hub.store.as_ref(), &id).await?;
    p.require_service(&r.service)?;
    Ok(Json(json!(r)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    /// Only these criteria's suggestions; all of them when left out.
    #[serde(default)]
    criteria: Option<Vec<String>>,
}

async fn accept(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    OptionalBody(b): OptionalBody<AcceptBody>,
) -> Result<Response, ApiError> {
    if b.criteria.as_ref().is_some_and(|c| c.len() > MAX_CRITERIA) {
        return Err(ApiError::bad_request(format!(
            "criteria: at most {MAX_CRITERIA} names"
        )));
    }
    let r = reviews::get(app.hub.store.as_ref(), &id).await?;
    p.require_service(&r.service)?;
    let out = reviews::accept(&app.hub, &id, b.criteria.as_deref(), &p.name).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}
