//! Releases: start one, read and list them, and act on one (promote,
//! pause, resume, roll back, re-release, approve, reject).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ripcord_core::Time;
use ripcord_store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::act::{ActionBody, act, release_in_scope};
use super::app::Shared;
use super::extract::{JsonBody, QueryParams};
use super::paging::{PageQuery, page};
use crate::auth::{Permission, Principal};
use crate::error::ApiError;
use crate::hub::{ReleaseView, StepView, series};
use crate::ingest::durable;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/releases", post(post_release).get(list_releases))
        .route("/v1/releases/{id}", get(get_release))
        .route("/v1/releases/{id}/series", get(get_series))
        .route("/v1/releases/{id}/actions", post(post_action))
}

/// What a `steps` override is called in the 403 that refuses it.
const STEPS_OVERRIDE: &str = "a \"steps\" override of the policy's rollout plan";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    service: String,
    baseline: String,
    candidate: String,
    #[serde(default)]
    steps: Option<Vec<StepView>>,
    /// A rehearsal: its incidents are drills.
    #[serde(default)]
    drill: bool,
}

async fn post_release(
    State(app): State<Shared>,
    principal: Principal,
    JsonBody(req): JsonBody<ReleaseBody>,
) -> Result<Response, ApiError> {
    principal.require_service(&req.service)?;
    let service = app.hub.known(&req.service)?;
    if req.steps.is_some() {
        // The rollout plan is part of the policy, and the policy's decision
        // rights are only as strong as its plan: a one-step plan at 100%
        // would promote without the approvals `rights.promote` asks for.
        app.tokens
            .require(&principal, Permission::PolicyWrite, STEPS_OVERRIDE)?;
    }
    if req.baseline == req.candidate {
        return Err(ApiError::bad_request(
            "candidate: must differ from the baseline",
        ));
    }
    for (field, version) in [("baseline", &req.baseline), ("candidate", &req.candidate)] {
        registered(&app, &req.service, field, version).await?;
    }
    let (view, applied) = app
        .hub
        .start_release(
            &service,
            &req.baseline,
            &req.candidate,
            req.steps,
            req.drill,
            &principal.name,
        )
        .await?;
    durable(applied.durable).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// 422 naming `field` unless `version` of `service` is registered.
async fn registered(
    app: &Shared,
    service: &str,
    field: &str,
    version: &str,
) -> Result<(), ApiError> {
    if app.hub.store.version(service, version).await?.is_some() {
        return Ok(());
    }
    Err(ApiError::unprocessable(
        format!(
            "{field}: version \"{version}\" of \"{service}\" is not registered; POST /v1/services/{service}/versions first"
        ),
        json!([{"path": field, "message": "not registered"}]),
    ))
}

async fn get_release(
    State(app): State<Shared>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(release_in_scope(&app, &principal, &id).await?.body))
}

/// Series points an answer holds when the query names no `limit`, and at
/// most: a week of points at one a minute fits in two pages.
const SERIES_LIMIT: i64 = 2_000;
const SERIES_MAX_LIMIT: i64 = 10_000;

#[derive(Deserialize)]
struct SeriesQuery {
    from: Option<String>,
    limit: Option<i64>,
}

/// The release's series points from `from` on, oldest first, with the
/// cadence they are recorded at now.
async fn get_series(
    State(app): State<Shared>,
    principal: Principal,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<SeriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let from = match &q.from {
        Some(text) => {
            Time::parse_rfc3339(text)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("from: \"{text}\" is not an RFC 3339 instant"))
                })?
                .0
        }
        None => i64::MIN,
    };
    let limit = match q.limit {
        None => SERIES_LIMIT,
        Some(n) if (1..=SERIES_MAX_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit: must be between 1 and {SERIES_MAX_LIMIT}, got {n}"
            )));
        }
    };
    let record = release_in_scope(&app, &principal, &id).await?;
    let view: ReleaseView = serde_json::from_value(record.body)
        .map_err(|e| StoreError::Corrupt(format!("release {id}: {e}")))?;
    let every = series::cadence(&app.hub.series, &view, app.hub.now());
    let points = app.hub.store.series(&id, from, limit).await?;
    let points: Vec<Value> = points.into_iter().map(|p| p.body).collect();
    Ok(Json(
        json!({"release": id, "every_ms": every.0, "points": points}),
    ))
}

#[derive(Deserialize)]
struct ReleaseQuery {
    service: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_releases(
    State(app): State<Shared>,
    principal: Principal,
    QueryParams(q): QueryParams<ReleaseQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(service) = &q.service {
        principal.require_service(service)?;
    }
    let records = app.hub.store.releases(q.service.as_deref()).await?;
    let releases: Vec<Value> = records
        .into_iter()
        .filter(|r| principal.scope.allows(&r.service))
        .map(|r| r.body)
        .collect();
    let paging = PageQuery {
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(page("releases", releases, paging)?))
}

async fn post_action(
    State(app): State<Shared>,
    principal: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ActionBody>,
) -> Result<Response, ApiError> {
    let (status, answer) = act(&app, &principal, &id, req).await?;
    Ok((status, Json(answer)).into_response())
}
