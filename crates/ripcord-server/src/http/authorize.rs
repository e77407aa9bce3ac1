//! The auth middleware and the endpoints of tokens and the audit log.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{
    Extension, FromRequestParts, MatchedPath, Path, Query, RawPathParams, Request, State,
};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::routes::{self, Need};
use crate::auth::tokens::{self, NewToken, TokenError};
use crate::auth::{Permission, Principal, Scope};
use crate::http::{Shared, body, json_body, query_error};
use crate::error::ApiError;
use crate::hub::wall_now;

/// Resolves the bearer token to a [`Principal`], checks the permission the
/// route needs (from [`routes::ROUTES`]) and hands the principal to the
/// handler. 401: no valid token; 403: the role may not, or the route is
/// not in the table.
pub async fn authorize(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let what = format!("{} {route}", request.method());
    let Some(need) = routes::need(request.method(), &route) else {
        return ApiError::forbidden(format!(
            "no permission is defined for this route ({what}); refused until one is"
        ))
        .into_response();
    };
    if need == Need::Open {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match app
        .tokens
        .authenticate(app.hub.store.as_ref(), authorization, wall_now())
        .await
    {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let allowed = match need {
        Need::Permission(p) => app.tokens.require(&principal, p, &what),
        // The handler checks the action's own permission; here the role
        // must have at least one of them.
        Need::Action => any_action(&app, &principal, &what),
        Need::Open => Ok(()),
    };
    if let Err(e) = allowed {
        return e.into_response();
    }
    let (mut parts, body) = request.into_parts();
    if let Err(e) = in_scope(&principal, &mut parts).await {
        return e.into_response();
    }
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// 403 when the route names a service (`{service}` in its path) that the
/// token is not scoped to. Ingest, assignment and OFREP name theirs in
/// the body or query and check there.
async fn in_scope(
    principal: &Principal,
    parts: &mut axum::http::request::Parts,
) -> Result<(), ApiError> {
    if principal.scope == Scope::All {
        return Ok(());
    }
    let Ok(params) = RawPathParams::from_request_parts(parts, &()).await else {
        return Ok(());
    };
    match params.iter().find(|(k, _)| *k == "service") {
        Some((_, service)) => principal.require_service(service),
        None => Ok(()),
    }
}

fn any_action(app: &Shared, principal: &Principal, what: &str) -> Result<(), ApiError> {
    let roles = &app.tokens.roles;
    if roles.permissions(&principal.role).is_none() {
        // `require` says the role is undefined.
        return app
            .tokens
            .require(principal, Permission::ReleasePause, what);
    }
    if routes::ACTIONS
        .iter()
        .any(|(_, p)| roles.allows(&principal.role, *p))
    {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "role \"{}\" has none of the permissions release actions need \
         (release_pause, release_request, approve), which {what} needs",
        principal.role
    )))
}

/// The permission one release action needs, checked by its handler.
pub fn require_action(app: &Shared, principal: &Principal, action: &str) -> Result<(), ApiError> {
    match routes::action(action) {
        Some(p) => app
            .tokens
            .require(principal, p, &format!("the action \"{action}\"")),
        // Unknown actions are the handler's 400.
        None => Ok(()),
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        match e {
            TokenError::Invalid(m) => ApiError::bad_request(m),
            TokenError::Exists(_) => ApiError::conflict(e.to_string()),
            TokenError::NotFound(_) => ApiError::not_found(e.to_string()),
            TokenError::Random(_) => ApiError::unavailable(e.to_string()),
            TokenError::Store(s) => s.into(),
        }
    }
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
pub async fn create_token(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: TokenBody = json_body(&body(bytes)?)?;
    let expires = match &req.expires {
        Some(text) => tokens::parse_expires(text)?,
        None => None,
    };
    let now = wall_now();
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
pub async fn list_tokens(State(app): State<Shared>) -> Result<Json<Value>, ApiError> {
    let now = wall_now();
    let all = app.hub.store.tokens().await?;
    let shown: Vec<Value> = all.iter().map(|t| tokens::view(t, now)).collect();
    Ok(Json(json!({"tokens": shown})))
}

/// `DELETE /v1/tokens/{name}`: revoked from the next request on.
pub async fn revoke_token(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = wall_now();
    let record = tokens::revoke(app.hub.store.as_ref(), &name, &principal.name, now).await?;
    Ok(Json(tokens::view(&record, now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/audit`: the hash-chained audit log as NDJSON (the lines
/// `ripcord audit export` writes), a page at a time; the header
/// `ripcord-next-after` is the cursor for the next page.
pub async fn audit_log(
    State(app): State<Shared>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let after = q.after.unwrap_or(0).max(0);
    let limit = crate::http::page_limit(q.limit)?;
    let lines = app.hub.store.audit(after.saturating_add(1), limit).await?;
    let next = lines.last().map_or(after, |l| l.seq);
    let mut text = String::new();
    for l in &lines {
        text.push_str(&l.line);
        text.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::HeaderName::from_static("ripcord-next-after"),
                next.to_string(),
            ),
        ],
        Body::from(text),
    )
        .into_response())
}
