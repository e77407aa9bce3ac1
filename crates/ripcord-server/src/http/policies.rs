//! Policies: `PUT` one (a new version when it changed, optionally citing
//! the incident it answers), read the current one and its history.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::{QueryParams, body};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ingest::durable;
use crate::names::check_name;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/policies/{service}", put(put_policy).get(get_policy))
        .route("/v1/policies/{service}/versions", get(policy_versions))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyQuery {
    /// The incident this policy version answers.
    answers: Option<String>,
}

async fn put_policy(
    State(app): State<Shared>,
    principal: Principal,
    Path(service): Path<String>,
    q: Result<QueryParams<PolicyQuery>, ApiError>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_name("service", &service)?;
    let QueryParams(q) = q?;
    let bytes = body(bytes)?;
    let yaml = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::bad_request(format!("body: the policy is not UTF-8: {e}")))?;
    if let Some(id) = &q.answers {
        app.hub.citable(id, &service).await?;
    }
    let mut result = app.hub.put_policy(&service, yaml, &principal.name).await?;
    if let (Some(id), Some(version)) = (&q.answers, result["version"].as_i64())
        && result["changed"] == json!(true)
    {
        let pending = app.hub.cite(id, version, &principal).await?;
        durable(pending).await?;
        result["answers"] = json!(id);
    }
    let status = if result["changed"] == json!(true) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(result)).into_response())
}

async fn get_policy(
    State(app): State<Shared>,
    Path(service): Path<String>,
) -> Result<Response, ApiError> {
    let record = app
        .hub
        .store
        .policy(&service)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("service \"{service}\" has no policy")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/yaml".to_string()),
            (
                header::HeaderName::from_static("ripcord-policy-version"),
                record.version.to_string(),
            ),
        ],
        record.yaml,
    )
        .into_response())
}

async fn policy_versions(
    State(app): State<Shared>,
    Path(service): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let history = app.hub.store.policy_history(&service).await?;
    if history.is_empty() {
        return Err(ApiError::not_found(format!(
            "service \"{service}\" has no policy"
        )));
    }
    let versions: Vec<Value> = history
        .iter()
        .map(|p| json!({"version": p.version, "created_at": p.created_at, "yaml": p.yaml}))
        .collect();
    Ok(Json(json!({"service": service, "versions": versions})))
}
