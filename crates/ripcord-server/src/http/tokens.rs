//! Tokens: issue one (shown in that answer only), list them (never a
//! hash), revoke one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::JsonBody;
use crate::auth::Principal;
use crate::auth::tokens::{self, NewToken};
use crate::error::ApiError;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/{name}", delete(revoke_token))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    role: String,
    /// `30d`, `12h`, …, or `never` (the default).
    #[serde(default)]
    expires: Option<String>,
    /// Whose token it is (the token's name when absent).
    #[serde(default)]
    person: Option<String>,
    /// The services it may act on; absent or empty: every service.
    #[serde(default)]
    services: Vec<String>,
}

/// `POST /v1/tokens`: the token is in this answer and nowhere else.
async fn create_token(
    State(app): State<Shared>,
    principal: Principal,
    JsonBody(req): JsonBody<TokenBody>,
) -> Result<Response, ApiError> {
    let expires = match &req.expires {
        Some(text) => tokens::parse_expires(text)?,
        None => None,
    };
    let now = app.hub.now();
    let new = NewToken {
        name: req.name,
        role: req.role,
        expires,
        person: req.person,
        services: req.services,
    };
    let made = tokens::issue(
        app.hub.store.as_ref(),
        &app.tokens.roles,
        &new,
        &principal.name,
        now,
    )
    .await?;
    let mut answer = tokens::view(&made.record, now);
    answer["token"] = json!(made.token);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /v1/tokens`: every token, never a hash.
async fn list_tokens(State(app): State<Shared>) -> Result<Json<Value>, ApiError> {
    let now = app.hub.now();
    let all = app.hub.store.tokens().await?;
    let shown: Vec<Value> = all.iter().map(|t| tokens::view(t, now)).collect();
    Ok(Json(json!({"tokens": shown})))
}

/// `DELETE /v1/tokens/{name}`: revoked from the next request on.
async fn revoke_token(
    State(app): State<Shared>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = app.hub.now();
    let record = tokens::revoke(app.hub.store.as_ref(), &name, &principal.name, now).await?;
    Ok(Json(tokens::view(&record, now)))
}
