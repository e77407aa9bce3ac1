//! Retention, legal holds and purges: the settings and the last pass, a
//! pass on demand, holds placed and lifted with a reason, and the erasure
//! of one person's data.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::JsonBody;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::holds::{self, Target};
use crate::ingest::durable;
use crate::{data_rules, purge, retention};

/// The longest reason, and the longest unit id a purge accepts.
const MAX_TEXT: usize = 2048;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/retention", get(settings))
        .route("/v1/retention/run", post(run))
        .route("/v1/holds", get(list).post(place))
        .route("/v1/holds/{id}/lift", post(lift))
        .route("/v1/purge", post(purge_unit))
}

/// A reason (or a unit): present, not blank, bounded.
fn text(field: &str, value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request(format!("{field}: must not be empty")));
    }
    if value.len() > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "{field}: {} bytes, more than the {MAX_TEXT} allowed",
            value.len()
        )));
    }
    Ok(value.to_string())
}

/// The newest data rules `GET /v1/retention` shows.
const MAX_RULES_SHOWN: usize = 200;

/// `GET /v1/retention`: each class's period, the last pass and the totals
/// since the server started, and the data rules rollbacks left.
async fn settings(State(app): State<Shared>, p: Principal) -> Result<Json<Value>, ApiError> {
    let config = &app.retention.config;
    let keep: serde_json::Map<String, Value> = config
        .keep
        .iter()
        .map(|(class, keep)| (class.as_str().to_string(), json!(keep.0)))
        .collect();
    let mut rules = data_rules::list(&*app.hub.store).await?;
    rules.retain(|r| p.scope.allows(&r.service));
    let skip = rules.len().saturating_sub(MAX_RULES_SHOWN);
    Ok(Json(json!({
        "keep_ms": keep,
        "every_ms": config.every.as_millis() as u64,
        "batch": config.batch,
        "last": app.retention.last(),
        "deleted_since_start": app.retention.totals(),
        "after_rollback": &rules[skip..],
    })))
}

/// `POST /v1/retention/run`: one pass now; its report.
async fn run(State(app): State<Shared>, _p: Principal) -> Result<Json<Value>, ApiError> {
    let report = retention::pass(&app.hub, &app.retention).await?;
    Ok(Json(json!(report)))
}

async fn list(State(app): State<Shared>, p: Principal) -> Result<Json<Value>, ApiError> {
    let mut found = holds::list(&*app.hub.store).await?;
    found.retain(|h| p.scope.allows(&h.service));
    Ok(Json(json!({ "holds": found })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceBody {
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    incident: Option<String>,
    reason: String,
}

/// `POST /v1/holds`: `{release | incident, reason}`.
async fn place(
    State(app): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<PlaceBody>,
) -> Result<Response, ApiError> {
    let on = match (req.release, req.incident) {
        (Some(id), None) => Target::Release(id),
        (None, Some(id)) => Target::Incident(id),
        _ => {
            return Err(ApiError::bad_request(
                "name exactly one of release and incident",
            ));
        }
    };
    let reason = text("reason", &req.reason)?;
    let store = &*app.hub.store;
    let active = holds::list(store)
        .await?
        .iter()
        .filter(|h| h.active())
        .count();
    if active >= holds::MAX_ACTIVE {
        return Err(ApiError::conflict(format!(
            "{active} holds are active, the most there may be; lift one first"
        )));
    }
    let service = holds::service_of(store, &on).await?;
    p.require_service(&service)?;
    let (hold, batch) = holds::place(on, service, reason, &p.name, app.hub.now());
    durable(app.hub.writer.submit(batch).await).await?;
    Ok((StatusCode::CREATED, Json(json!(hold))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftBody {
    reason: String,
}

/// `POST /v1/holds/{id}/lift`: `{reason}`.
async fn lift(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<LiftBody>,
) -> Result<Json<Value>, ApiError> {
    let reason = text("reason", &req.reason)?;
    let store = &*app.hub.store;
    let (hold, batch) = holds::lift(store, &id, reason, &p.name, app.hub.now()).await?;
    p.require_service(&hold.service)?;
    durable(app.hub.writer.submit(batch).await).await?;
    Ok(Json(json!(hold)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    unit: String,
    reason: String,
}

/// `POST /v1/purge`: `{unit, reason}`; what was erased and what holds
/// kept. Only a token of every service may purge: a person's data spans
/// services.
async fn purge_unit(
    State(app): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<PurgeBody>,
) -> Result<Json<Value>, ApiError> {
    if !matches!(p.scope, crate::auth::Scope::All) {
        return Err(ApiError::forbidden(
            "a purge reaches every service: a token limited to services may not purge",
        ));
    }
    let unit = text("unit", &req.unit)?;
    let reason = text("reason", &req.reason)?;
    // What the writer queued is in the store before the purge reads it.
    app.hub
        .writer
        .flush()
        .await
        .map_err(|e| ApiError::unavailable(format!("nothing was purged: {e}")))?;
    // Run apart from the request, one purge at a time: a purge of a long
    // journal goes on to the end even when the client stops waiting.
    let task = tokio::spawn(async move {
        let _one = app.retention.purging.lock().await;
        let held = holds::held(&*app.hub.store).await?;
        let request = purge::Request {
            unit: &unit,
            reason: &reason,
            by: &p.name,
            now: app.hub.now(),
        };
        let purged = purge::purge(&app.hub, &request, &held)
            .await
            .map_err(|e| ApiError::unavailable(format!("the purge stopped: {e:#}")))?;
        retention::applied(&app.retention, &purged.id).await;
        Ok::<_, ApiError>(purged)
    });
    let purged = task
        .await
        .map_err(|e| ApiError::unavailable(format!("the purge stopped: {e}")))??;
    Ok(Json(json!(purged)))
}
