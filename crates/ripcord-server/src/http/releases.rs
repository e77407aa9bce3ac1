//! Releases: start one, read and list them, and act on one (promote,
//! pause, resume, roll back, re-release, approve, reject).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ripcord_core::Time;
use ripcord_core::engine::{Command, Phase};
use ripcord_store::{ReleaseRecord, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::authorize::require_action;
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

/// Release `id`: 404 when there is none, 403 when it belongs to a service
/// outside the token's scope.
async fn release_in_scope(
    app: &Shared,
    principal: &Principal,
    id: &str,
) -> Result<ReleaseRecord, ApiError> {
    let record = app
        .hub
        .store
        .release(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("release \"{id}\" does not exist")))?;
    principal.require_service(&record.service)?;
    Ok(record)
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    action: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

async fn post_action(
    State(app): State<Shared>,
    principal: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ActionBody>,
) -> Result<Response, ApiError> {
    let command = Command::parse(&req.action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "action: \"{}\" is not one of promote, pause, resume, rollback, re_release, approve, reject",
            req.action
        ))
    })?;
    require_action(&app, &principal, &req.action)?;
    // Before the stored answers: a retried key must not show another
    // service's release either.
    let record = release_in_scope(&app, &principal, &id).await?;
    let key = req
        .idempotency_key
        .as_ref()
        .map(|k| format!("action:{id}:{k}"));
    if let Some(key) = &key
        && let Some(first) = app.hub.store.answer(key).await?
    {
        return replayed(&first, &req.action, &id);
    }
    let service = app.hub.known(&record.service)?;
    let current = service.state.lock().await.current.clone();
    let Some(current) = current.filter(|c| c.id == id) else {
        return Err(ApiError::conflict(format!(
            "release \"{id}\" is superseded; act on the service's latest release"
        )));
    };
    // Rolling back what is already rolling back or rolled back is the same
    // as doing it once.
    let settled = matches!(
        (&command, current.state),
        (Command::Rollback, Phase::RollingBack | Phase::RolledBack)
            | (Command::Pause, Phase::Paused)
    );
    if settled {
        let answer = json!({
            "action": req.action,
            "release": current,
            "changed": false,
            "reason": req.reason,
            "decisions": [],
        });
        return Ok((StatusCode::OK, Json(answer)).into_response());
    }
    let (answer, pending) = app
        .hub
        .command(&service, command, key, req.reason, &principal)
        .await?;
    if let Some(pending) = pending {
        durable(pending).await?;
    }
    // A request waiting for approvals is accepted, not done.
    let status = if answer.waits() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

/// The stored answer to an idempotency key used before: the same answer
/// for the same action, 422 for another.
fn replayed(first: &str, action: &str, id: &str) -> Result<Response, ApiError> {
    let value: Value = serde_json::from_str(first).map_err(|e| {
        StoreError::Corrupt(format!(
            "the answer to an idempotency key of release \"{id}\": {e}"
        ))
    })?;
    if value["action"] != json!(action) {
        return Err(ApiError::unprocessable(
            format!(
                "idempotency_key: already used for {} on release \"{id}\"; use a new key for a different action",
                value["action"]
            ),
            json!([{"path": "idempotency_key", "message": "used for another action"}]),
        ));
    }
    Ok((StatusCode::OK, Json(value)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored answer that does not parse is an error naming it, not an
    /// empty answer (which would read as "used for another action").
    #[test]
    fn an_unreadable_stored_answer_is_an_error_that_names_it() {
        let e =
            replayed("{\"action\":", "pause", "svc-1").map_or_else(|e| e, |_| panic!("replayed"));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            e.message.starts_with(
                "stored record is unreadable: the answer to an idempotency key of release \"svc-1\": "
            ),
            "{}",
            e.message
        );
    }
}
