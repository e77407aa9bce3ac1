//! The dashboard at `/ui/`: server-rendered pages (minijinja templates and
//! SVG charts, embedded in the binary, nothing fetched from elsewhere),
//! kept live over server-sent events by a small script.
//!
//! A person logs in with an API token (`/ui/login`); the session cookie
//! stands for that token, whose role decides what the pages offer and what
//! the server accepts. Every form carries the session's CSRF value, checked
//! here before any handler runs. Actions take the API's own paths
//! (`http::act`, the hub's incident commands), so the dashboard has no
//! rights, checks or idempotency of its own.

mod chart;
mod live;
mod pages;
mod view;

use std::sync::OnceLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde_json::{Value, json};

use super::app::Shared;
use super::authorize::{allowed, matched};
use crate::auth::routes::ui_need;
use crate::auth::{Permission, Principal, digest};
use crate::dashboard::{Session, same_secret};
use crate::error::ApiError;

/// The session cookie; scoped to `/ui` so the API never sees it.
const SESSION_COOKIE: &str = "ripcord_session";
/// The login form's double-submit value (there is no session yet).
const LOGIN_COOKIE: &str = "ripcord_login";
/// Forms are small: a reason, a note, a token.
const FORM_LIMIT: usize = 16 * 1024;

pub fn routes(app: Shared) -> Router<Shared> {
    let guarded = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::releases))
        .route("/ui/events", get(live::events))
        .route("/ui/logout", post(logout))
        .route("/ui/releases/{id}", get(pages::release))
        .route("/ui/releases/{id}/actions", post(pages::action))
        .route("/ui/incidents", get(pages::incidents))
        .route("/ui/drills", get(pages::drills))
        .route("/ui/drills/{id}", get(pages::drill))
        .route("/ui/incidents/{id}", get(pages::incident))
        .route("/ui/incidents/{id}/evidence", get(pages::evidence))
        .route("/ui/incidents/{id}/report", get(pages::report))
        .route("/ui/incidents/{id}/acknowledge", post(pages::acknowledge))
        .route("/ui/incidents/{id}/status", post(pages::status))
        .route("/ui/incidents/{id}/steps/{step}", post(pages::step))
        .route("/ui/policies/{service}", get(pages::policy))
        .route("/ui/audit", get(pages::audit))
        .route_layer(middleware::from_fn_with_state(app, guard));
    Router::new()
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/assets/{name}", get(asset))
        .merge(guarded)
        .layer(middleware::map_response(hardened))
}

/// Nothing but our own origin may load, frame or be sent from a page: the
/// assets are embedded, so the policy costs nothing and stops injected
/// markup from reaching elsewhere.
async fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The logged-in person of a dashboard request, put there by [`guard`].
#[derive(Clone)]
pub struct Viewer {
    pub principal: Principal,
    pub session: String,
    pub csrf: String,
}

/// A page's error: the API's status and message, as a page.
pub struct UiError(pub ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError(e)
    }
}

impl From<ripcord_store::StoreError> for UiError {
    fn from(e: ripcord_store::StoreError) -> UiError {
        UiError(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let ctx = json!({"status": self.0.status.as_u16(), "message": self.0.message});
        let body = render("error.html", ctx).unwrap_or_else(|_| Html(self.0.message.clone()));
        let mut response = (self.0.status, body).into_response();
        if let Some(secs) = self.0.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("releases.html", include_str!("templates/releases.html")),
    ("release.html", include_str!("templates/release.html")),
    ("incidents.html", include_str!("templates/incidents.html")),
    ("incident.html", include_str!("templates/incident.html")),
    ("drills.html", include_str!("templates/drills.html")),
    ("drill.html", include_str!("templates/drill.html")),
    ("policy.html", include_str!("templates/policy.html")),
    ("audit.html", include_str!("templates/audit.html")),
];

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // Our own templates: a syntax error is a bug, caught by the
            // tests that render every page.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!("dashboard template {name}: {e}");
            }
        }
        env
    })
}

/// Renders a template (HTML-escaped by its `.html` name).
pub fn render(name: &str, ctx: Value) -> Result<Html<String>, UiError> {
    templates()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(ctx))))
        .map(Html)
        .map_err(|e| {
            tracing::error!("rendering {name}: {e:#}");
            UiError(ApiError::unavailable(format!(
                "the page could not be drawn: {e}"
            )))
        })
}

/// The assets: one stylesheet and one script, which a browser keeps for
/// five minutes (a new binary's assets reach open pages soon after).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "ui.css",
        "text/css; charset=utf-8",
        include_str!("assets/ui.css"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/ui.js"),
    ),
];

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let Some((_, kind, text)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return UiError(ApiError::not_found(format!("no asset \"{name}\""))).into_response();
    };
    (
        [
            (header::CONTENT_TYPE, *kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        *text,
    )
        .into_response()
}

/// Checks the session, the route's permission and, for a form, its CSRF
/// value; hands the handler a [`Viewer`] (and the principal, as the API's
/// handlers take it).
async fn guard(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let (route, what) = matched(&request);
    let Some(need) = ui_need(request.method(), &route) else {
        return UiError(ApiError::forbidden(format!(
            "no permission is defined for this page ({what}); refused until one is"
        )))
        .into_response();
    };
    let now = app.hub.now();
    let found = cookie(request.headers(), SESSION_COOKIE)
        .and_then(|id| Some((id.to_string(), app.dashboard.sessions.get(id, now)?)));
    let Some((id, session)) = found else {
        return to_login(&request, None);
    };
    let principal = match app
        .tokens
        .authenticate_digest(app.hub.store.as_ref(), session.digest, now)
        .await
    {
        Ok(p) => p,
        // The token was revoked or expired: the session ends with it.
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            app.dashboard.sessions.close(&id);
            return to_login(&request, Some(&e.message));
        }
        // The store did not answer: the session stays.
        Err(e) => return UiError(e).into_response(),
    };
    if let Err(e) = allowed(&app.tokens, &principal, need, &what) {
        return UiError(e).into_response();
    }
    let mut request = match checked_form(request, &session).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let viewer = Viewer {
        principal: principal.clone(),
        session: id,
        csrf: session.csrf.clone(),
    };
    request.extensions_mut().insert(principal);
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

/// A page asked for without a session goes to the login form (and comes
/// back after); a form or a stream gets 401.
fn to_login(request: &Request, why: Option<&str>) -> Response {
    if request.method() != Method::GET || request.uri().path() == "/ui/events" {
        let message = why.unwrap_or("log in first: your session has ended");
        return UiError(ApiError::unauthorized(message.to_string())).into_response();
    }
    let next = request
        .uri()
        .path_and_query()
        .map_or("/ui/", |p| p.as_str());
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    Redirect::to(&format!("/ui/login?{query}")).into_response()
}

/// For a POST: reads the form (bounded), refuses it unless its `csrf`
/// field is the session's, and puts the body back for the handler.
async fn checked_form(request: Request, session: &Session) -> Result<Request, UiError> {
    if request.method() != Method::POST {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = read_form(body).await?;
    let presented = field(&bytes, "csrf").unwrap_or_default();
    if !session.accepts(&presented) {
        return Err(UiError(ApiError::forbidden(
            "csrf: the form is not from this session's pages; reload the page and try again",
        )));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

async fn read_form(body: Body) -> Result<Bytes, UiError> {
    axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        UiError(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..ApiError::bad_request(format!("the form is over {FORM_LIMIT} bytes"))
        })
    })
}

/// The first value of a form field.
fn field(form: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(form)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for `/ui` only.
fn set_cookie(name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    let text = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_s}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(serde::Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Result<Response, UiError> {
    login_page(StatusCode::OK, q.next.as_deref(), None)
}

/// The form, with a fresh double-submit value in a cookie and a field.
fn login_page(
    status: StatusCode,
    next: Option<&str>,
    error: Option<&str>,
) -> Result<Response, UiError> {
    let csrf = crate::auth::new_token()
        .map_err(|e| UiError(ApiError::unavailable(format!("no randomness: {e}"))))?;
    let ctx = json!({"csrf": csrf, "next": safe_next(next), "error": error});
    let page = render("login.html", ctx)?;
    let mut response = (status, page).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &csrf, 600));
    Ok(response)
}

/// Where to go after logging in: only a dashboard page (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/ui/",
    }
}

async fn login(State(app): State<Shared>, request: Request) -> Result<Response, UiError> {
    let (parts, body) = request.into_parts();
    let form = read_form(body).await?;
    let next = field(&form, "next");
    let presented = field(&form, "csrf").unwrap_or_default();
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(expected, &presented) {
        return login_page(
            StatusCode::FORBIDDEN,
            next.as_deref(),
            Some("The login form had expired or came from another site. Paste the token again."),
        );
    }
    let token = field(&form, "token").unwrap_or_default();
    let now = app.hub.now();
    let token_digest = digest(&token);
    let principal = app
        .tokens
        .authenticate_digest(app.hub.store.as_ref(), token_digest, now)
        .await;
    let principal = match principal {
        Ok(p) if !token.trim().is_empty() => p,
        _ => {
            return login_page(
                StatusCode::UNAUTHORIZED,
                next.as_deref(),
                Some("token: not a token this server accepts (unknown, revoked or expired)."),
            );
        }
    };
    let issued = app
        .dashboard
        .sessions
        .open(token_digest, now)
        .map_err(|e| UiError(ApiError::unavailable(e.to_string())))?;
    if issued.first {
        audit_login(&app, &principal).await?;
    }
    let mut response = Redirect::to(safe_next(next.as_deref())).into_response();
    let lifetime_s = crate::dashboard::LIFETIME.0 / 1000;
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &issued.id, lifetime_s),
    );
    headers.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
    Ok(response)
}

/// Records that a token opened the dashboard (once while it has a live
/// session: repeated logins add nothing to the log).
async fn audit_login(app: &Shared, principal: &Principal) -> Result<(), UiError> {
    let record = crate::hub::audit(
        app.hub.now(),
        &principal.name,
        "dashboard.login",
        "dashboard",
        json!({"role": principal.role}),
    );
    let batch = ripcord_store::Batch {
        audit: vec![record],
        ..Default::default()
    };
    let pending = app.hub.writer.submit(batch).await;
    crate::ingest::durable(pending).await?;
    Ok(())
}

async fn logout(
    State(app): State<Shared>,
    axum::Extension(viewer): axum::Extension<Viewer>,
) -> Response {
    app.dashboard.sessions.close(&viewer.session);
    let mut response = Redirect::to("/ui/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    response
}

/// What every page's frame needs: who is logged in, the CSRF value, and
/// which controls the role may use (the server checks again).
pub fn frame(app: &Shared, viewer: &Viewer, nav: &str) -> Value {
    let can = |p: Permission| app.tokens.roles.allows(&viewer.principal.role, p);
    json!({
        "me": {"name": viewer.principal.name, "role": viewer.principal.role},
        "csrf": viewer.csrf,
        "nav": nav,
        "can": {
            "pause": can(Permission::ReleasePause),
            "request": can(Permission::ReleaseRequest),
            "approve": can(Permission::Approve),
            "ack": can(Permission::IncidentAck),
            "update": can(Permission::IncidentUpdate),
            "audit": can(Permission::AuditRead),
        },
    })
}

/// Joins two JSON objects (the frame and a page's own fields).
pub fn with(mut frame: Value, page: Value) -> Value {
    if let (Some(f), Value::Object(p)) = (frame.as_object_mut(), page) {
        f.extend(p);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            assert!(templates().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn after_login_only_a_dashboard_page_is_a_destination() {
        assert_eq!(safe_next(Some("/ui/releases/a-1")), "/ui/releases/a-1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
        assert_eq!(safe_next(Some("/ui/\\evil")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("x_ripcord_session=no; ripcord_session=yes"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("yes"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }
}
