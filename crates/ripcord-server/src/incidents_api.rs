//! HTTP routes for incidents and approval requests.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Shared, body, json_body, query_error};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::incident::{ActionItem, REQUEST, Request};
use crate::incidents::Ask;
use crate::ingest::durable;
use crate::paging::{self, PageQuery};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/incidents", get(list).post(declare))
        .route("/v1/incidents/{id}", get(one))
        .route("/v1/incidents/{id}/acknowledge", post(acknowledge))
        .route("/v1/incidents/{id}/status", post(status))
        .route("/v1/incidents/{id}/mitigate", post(mitigate))
        .route("/v1/incidents/{id}/resolve", post(resolve))
        .route("/v1/incidents/{id}/review", post(review))
        .route("/v1/incidents/{id}/steps/{step}", post(step))
        .route("/v1/requests", get(requests))
        .route("/v1/requests/{id}", get(request))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/v1/requests/{id}/reject", post(reject))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    service: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    if let Some(service) = &q.service {
        p.require_service(service)?;
    }
    let mut found = app
        .hub
        .incidents(q.service.as_deref(), q.state.as_deref(), q.kind.as_deref())
        .await?;
    found.retain(|i| p.scope.allows(&i.service));
    let page = PageQuery {
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(paging::page("incidents", found, page)?))
}

async fn one(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inc = app.hub.incident(&id).await?;
    p.require_service(&inc.service)?;
    Ok(Json(json!(inc)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclareBody {
    service: String,
    kind: String,
    severity: String,
    title: String,
}

async fn declare(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: DeclareBody = json_body(&body(bytes)?)?;
    p.require_service(&req.service)?;
    let service = app.hub.known(&req.service)?;
    let (inc, pending) = app
        .hub
        .declare(&service, &req.kind, &req.severity, req.title, &p)
        .await?;
    durable(pending).await?;
    Ok((StatusCode::CREATED, Json(json!(inc))).into_response())
}

async fn ask(app: &Shared, id: &str, ask: Ask, p: &Principal) -> Result<Json<Value>, ApiError> {
    let (inc, pending) = app.hub.incident_ask(id, ask, p).await?;
    durable(pending).await?;
    Ok(Json(json!(inc)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    #[serde(default)]
    note: Option<String>,
}

/// An optional JSON body: empty means `{}`.
fn optional<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(bytes)
}

async fn acknowledge(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: NoteBody = optional(&body(bytes)?)?;
    ask(&app, &id, Ask::Acknowledge { note: b.note }, &p).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    message: String,
    #[serde(default)]
    next_update_in: Option<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    template: Option<String>,
}

async fn status(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: StatusBody = json_body(&body(bytes)?)?;
    let a = Ask::Status {
        message: b.message,
        next_update_in: b.next_update_in,
        channels: b.channels,
        template: b.template,
    };
    ask(&app, &id, a, &p).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequiredNote {
    note: String,
}

async fn mitigate(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: RequiredNote = json_body(&body(bytes)?)?;
    ask(&app, &id, Ask::Mitigate { note: b.note }, &p).await
}

async fn resolve(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: RequiredNote = json_body(&body(bytes)?)?;
    ask(&app, &id, Ask::Resolve { note: b.note }, &p).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    summary: String,
    #[serde(default)]
    action_items: Vec<ActionItem>,
}

async fn review(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: ReviewBody = json_body(&body(bytes)?)?;
    let a = Ask::Review {
        summary: b.summary,
        action_items: b.action_items,
    };
    ask(&app, &id, a, &p).await
}

async fn step(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path((id, name)): Path<(String, String)>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: NoteBody = optional(&body(bytes)?)?;
    ask(&app, &id, Ask::Step { name, note: b.note }, &p).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestQuery {
    service: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn requests(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    q: Result<Query<RequestQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    if let Some(service) = &q.service {
        p.require_service(service)?;
    }
    let docs = app.hub.store.docs(REQUEST, q.service.as_deref()).await?;
    let found: Vec<Request> = docs
        .into_iter()
        .filter_map(|d| serde_json::from_value::<Request>(d.body).ok())
        .filter(|r| p.scope.allows(&r.service))
        .filter(|r| q.state.as_deref().is_none_or(|s| r.state.as_str() == s))
        .collect();
    let page = PageQuery {
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(paging::page("requests", found, page)?))
}

/// Request `id`: 404 when there is none, 403 when it belongs to a service
/// outside the token's scope.
async fn load_request(app: &Shared, id: &str, p: &Principal) -> Result<Request, ApiError> {
    let doc = app
        .hub
        .store
        .doc(REQUEST, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("request \"{id}\" does not exist")))?;
    p.require_service(&doc.service)?;
    serde_json::from_value(doc.body)
        .map_err(|e| ApiError::unavailable(format!("request {id} is unreadable: {e}")))
}

async fn request(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(load_request(&app, &id, &p).await?)))
}

async fn vote(
    app: &Shared,
    id: &str,
    p: &Principal,
    approve: bool,
    note: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let req = load_request(app, id, p).await?;
    let service = app.hub.known(&req.service)?;
    let mut state = service.state.lock().await;
    let (answer, batch) = app.hub.decide(&service, &mut state, id, p, approve, note)?;
    let pending = app.hub.writer.submit(batch).await;
    drop(state);
    durable(pending).await?;
    Ok(Json(answer))
}

async fn approve(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: NoteBody = optional(&body(bytes)?)?;
    vote(&app, &id, &p, true, b.note).await
}

async fn reject(
    State(app): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: NoteBody = optional(&body(bytes)?)?;
    vote(&app, &id, &p, false, b.note).await
}
