//! A service's versions: registered once with their provenance, then
//! immutable.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ripcord_store::VersionRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::JsonBody;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub;
use crate::names::check_name;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/v1/services/{service}/versions",
            post(register_version).get(list_versions),
        )
        .route(
            "/v1/services/{service}/versions/{version}",
            get(get_version),
        )
}

/// A version's provenance, as registered.
#[derive(Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Provenance {
    version: String,
    model_id: String,
    #[serde(default)]
    weights_digest: Option<String>,
    #[serde(default)]
    prompt_template_version: Option<String>,
    #[serde(default)]
    decoding: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    training_datasets: Vec<String>,
    #[serde(default)]
    evaluation_reports: Vec<String>,
}

fn version_json(r: &VersionRecord) -> Value {
    let mut v = r.provenance.clone();
    v["service"] = json!(r.service);
    v["registered_at"] = json!(r.registered_at);
    v
}

async fn register_version(
    State(app): State<Shared>,
    principal: Principal,
    Path(service): Path<String>,
    provenance: Result<JsonBody<Provenance>, ApiError>,
) -> Result<Response, ApiError> {
    check_name("service", &service)?;
    let JsonBody(provenance) = provenance?;
    check_name("version", &provenance.version)?;
    let document = serde_json::to_value(&provenance)
        .map_err(|e| ApiError::unserialisable("the provenance", e))?;
    let record = VersionRecord {
        service: service.clone(),
        version: provenance.version.clone(),
        provenance: document,
        registered_at: app.hub.now().to_rfc3339(),
    };
    let audit = hub::audit(
        app.hub.now(),
        &principal.name,
        "version.register",
        &format!("{service}/{}", provenance.version),
        record.provenance.clone(),
    );
    if app.hub.store.register_version(&record, &audit).await? {
        return Ok((StatusCode::CREATED, Json(version_json(&record))).into_response());
    }
    let existing = app
        .hub
        .store
        .version(&service, &provenance.version)
        .await?
        .ok_or_else(|| ApiError::unavailable("version vanished while registering"))?;
    if existing.provenance == record.provenance {
        return Ok((StatusCode::OK, Json(version_json(&existing))).into_response());
    }
    Err(ApiError::conflict(format!(
        "version: {} of \"{service}\" is registered already with other provenance; versions are immutable, register a new one",
        provenance.version
    )))
}

async fn list_versions(
    State(app): State<Shared>,
    Path(service): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions = app.hub.store.versions(&service).await?;
    Ok(Json(json!({
        "service": service,
        "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
    })))
}

async fn get_version(
    State(app): State<Shared>,
    Path((service, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = app
        .hub
        .store
        .version(&service, &version)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "version \"{version}\" of \"{service}\" is not registered"
            ))
        })?;
    Ok(Json(version_json(&record)))
}
