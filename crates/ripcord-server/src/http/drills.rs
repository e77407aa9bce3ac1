//! Drills: start one from a drill file, list a service's, read one with
//! its scorecard.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::{QueryParams, body};
use super::paging::{self, PageQuery};
use crate::auth::Principal;
use crate::drills::MAX_BYTES;
use crate::error::ApiError;
use crate::names::check_name;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/drills", get(list).post(start))
        .route("/v1/drills/{id}", get(one))
}

/// The body is the drill file (YAML).
async fn start(
    State(app): State<Shared>,
    p: Principal,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(bytes)?;
    if bytes.len() > MAX_BYTES {
        return Err(ApiError::bad_request(format!(
            "body: the drill file is {} bytes; at most {MAX_BYTES}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::bad_request(format!("body: the drill file is not UTF-8: {e}")))?;
    let drill = app.drills.start(&app.hub, text, &p).await?;
    Ok((StatusCode::CREATED, Json(json!(drill))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    service: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(app): State<Shared>,
    p: Principal,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(service) = &q.service {
        check_name("service", service)?;
        p.require_service(service)?;
    }
    let mut found = app.drills.list(&app.hub, q.service.as_deref()).await?;
    found.retain(|d| p.scope.allows(&d.service));
    let page = PageQuery {
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(paging::page("drills", found, page)?))
}

async fn one(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d = app.drills.get(&app.hub, &id).await?;
    p.require_service(&d.service)?;
    Ok(Json(json!(d)))
}
