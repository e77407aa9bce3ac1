//! `GET /v1/assign`: which version one unit gets.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::QueryParams;
use crate::assignment::{Assigner, assign_unit};
use crate::auth::Principal;
use crate::error::ApiError;

/// On the leader and on followers alike.
pub fn routes<S: Assigner>() -> Router<S> {
    Router::new().route("/v1/assign", get(assign::<S>))
}

#[derive(Deserialize)]
struct AssignQuery {
    service: Option<String>,
    unit: Option<String>,
}

async fn assign<S: Assigner>(
    State(app): State<S>,
    principal: Principal,
    QueryParams(q): QueryParams<AssignQuery>,
) -> Result<Json<Value>, ApiError> {
    let service = q
        .service
        .ok_or_else(|| ApiError::bad_request("service: query parameter is required"))?;
    principal.require_service(&service)?;
    let unit = q
        .unit
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("unit: query parameter is required"))?;
    let a = assign_unit(&app, &service, &unit)?;
    Ok(Json(json!({
        "service": service,
        "version": a.version,
        "release": a.release,
        "variant": if a.candidate { "candidate" } else { "baseline" },
        "share": a.share,
        "bucket": a.bucket,
    })))
}
