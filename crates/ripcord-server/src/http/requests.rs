//! Approval requests: list and read them, approve or reject one.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::{NoteBody, OptionalBody, QueryParams};
use super::paging::{self, PageQuery};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::hub::answer::Voted;
use crate::hub::govern::{read_doc, read_docs};
use crate::ingest::durable;
use ripcord_govern::record::{REQUEST, Request};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/requests", get(requests))
        .route("/v1/requests/{id}", get(request))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/v1/requests/{id}/reject", post(reject))
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
    p: Principal,
    QueryParams(q): QueryParams<RequestQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(service) = &q.service {
        p.require_service(service)?;
    }
    let all: Vec<Request> = read_docs(&*app.hub.store, REQUEST, q.service.as_deref()).await?;
    let found: Vec<Request> = all
        .into_iter()
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
    read_doc(doc)
}

async fn request(
    State(app): State<Shared>,
    p: Principal,
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
) -> Result<Json<Voted>, ApiError> {
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
    p: Principal,
    Path(id): Path<String>,
    OptionalBody(b): OptionalBody<NoteBody>,
) -> Result<Json<Voted>, ApiError> {
    vote(&app, &id, &p, true, b.note).await
}

async fn reject(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    OptionalBody(b): OptionalBody<NoteBody>,
) -> Result<Json<Voted>, ApiError> {
    vote(&app, &id, &p, false, b.note).await
}
