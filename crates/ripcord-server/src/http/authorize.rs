//! The auth middleware: every routed request's token against the
//! permission table (`auth::routes`), and the per-action check of the
//! release actions.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::app::Shared;
use crate::assignment::Assigner;
use crate::auth::routes::{self, Need};
use crate::auth::tokens::TokenError;
use crate::auth::{Permission, Principal, Scope, Tokens};
use crate::error::ApiError;

/// Resolves the bearer token to a [`Principal`], checks the permission the
/// route needs (from [`routes::ROUTES`]) and hands the principal to the
/// handler. 401: no valid token; 403: the role may not, or the route is
/// not in the table.
pub async fn authorize<S: Assigner>(
    State(app): State<S>,
    request: Request,
    next: Next,
) -> Response {
    let (route, what) = matched(&request);
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
        .tokens()
        .authenticate(app.store(), authorization, app.now())
        .await
    {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = allowed(app.tokens(), &principal, need, &what) {
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

/// The request's route as routed (`/v1/releases/{id}`) and how messages
/// name it (`POST /v1/releases/{id}`).
pub fn matched(request: &Request) -> (String, String) {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let what = format!("{} {route}", request.method());
    (route, what)
}

/// 403 unless the principal's role meets what the route needs.
pub fn allowed(
    tokens: &Tokens,
    principal: &Principal,
    need: Need,
    what: &str,
) -> Result<(), ApiError> {
    match need {
        Need::Permission(p) => tokens.require(principal, p, what),
        // The handler checks the action's own permission; here the role
        // must have at least one of them.
        Need::Action => any_action(tokens, principal, what),
        Need::Open => Ok(()),
    }
}

fn any_action(tokens: &Tokens, principal: &Principal, what: &str) -> Result<(), ApiError> {
    let roles = &tokens.roles;
    if roles.permissions(&principal.role).is_none() {
        // `require` says the role is undefined.
        return tokens.require(principal, Permission::ReleasePause, what);
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
