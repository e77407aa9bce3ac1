//! Releases: start one, read and list them, and act on one (promote,
//! pause, resume, roll back, re-release, approve, reject).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::act::{ActionBody, act, release_in_scope};
use super::app::Shared;
use super::extract::{JsonBody, QueryParams};
use super::paging::{PageQuery, page};
use crate::auth::{Permission, Principal};
use crate::error::ApiError;
use crate::hub::StepView;
use crate::ingest::durable;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/releases", post(post_release).get(list_releases))
        .route("/v1/releases/{id}", get(get_release))
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
