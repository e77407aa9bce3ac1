//! The HTTP API: routes, request parsing with errors that name the field,
//! and the handlers, each a thin layer over the hub.

pub mod authorize;
mod incidents;
pub mod ofrep;
pub mod paging;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use ripcord_core::assign::bucket;
use ripcord_store::{Sink, VersionRecord};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use self::authorize as auth_http;
use crate::auth::{Permission, Principal, Tokens};
use crate::error::ApiError;
use crate::hub::{self, Hub, StepView, parse_command};
use crate::ingest::{self, durable, ingest_for};
use crate::slow::{BodyRate, IngestSlots, read_body};
use crate::{metrics, openapi, webhooks};

/// Largest request body, in bytes.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Ingest requests handled at once; more get 429 (bounded memory).
pub const INGEST_SLOTS: usize = 16;
/// Of those, how many one token may hold: one sender's slow uploads leave
/// the other slots to the others.
pub const INGEST_SLOTS_PER_TOKEN: usize = 4;

pub struct App {
    pub hub: Hub,
    pub tokens: Tokens,
    pub ingest_slots: IngestSlots,
    /// The slowest ingest body a slot is held for.
    pub body_rate: BodyRate,
    /// Address ranges webhook sinks may name beyond the public internet.
    pub sinks_allowed: crate::sinks::Allowed,
}

pub type Shared = Arc<App>;

pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/policies/{service}", put(put_policy).get(get_policy))
        .route("/v1/policies/{service}/versions", get(policy_versions))
        .route(
            "/v1/services/{service}/versions",
            post(register_version).get(list_versions),
        )
        .route(
            "/v1/services/{service}/versions/{version}",
            get(get_version),
        )
        .route(
            "/v1/services/{service}/webhooks",
            put(put_webhooks).get(get_webhooks),
        )
        .route("/v1/releases", post(post_release).get(list_releases))
        .route("/v1/releases/{id}", get(get_release))
        .route("/v1/releases/{id}/actions", post(post_action))
        .route("/v1/assign", get(assign))
        .route("/v1/decisions", get(decisions))
        .route("/ofrep/v1/evaluate/flags/{key}", post(ofrep::evaluate))
        .route("/ofrep/v1/evaluate/flags", post(ofrep::bulk))
        .merge(incidents::routes())
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .route(
            "/v1/tokens",
            post(auth_http::create_token).get(auth_http::list_tokens),
        )
        .route("/v1/tokens/{name}", delete(auth_http::revoke_token))
        .route("/v1/audit", get(auth_http::audit_log))
        // Every routed request is checked against the route table
        // (`auth::routes`); an unknown path is a 404 either way.
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            auth_http::authorize,
        ))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                ..ApiError::bad_request(
                    "this endpoint does not take that method; see /openapi.json",
                )
            }
        })
        // Before the token is checked: no route reads a body over the
        // limit, and a 401 would close on a client still writing too.
        .layer(middleware::from_fn(|request, next| {
            crate::slow::refuse_oversized(BODY_LIMIT, request, next)
        }))
        .layer(middleware::from_fn(count_responses))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

async fn count_responses(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    metrics::http_request(response.status().as_u16());
    response
}

/// Reads a body, turning "too large" into 413 with our error shape.
pub fn body(bytes: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    bytes.map_err(|e| {
        let status = e.status();
        let mut err = ApiError::bad_request(format!("body: {}", e.body_text()));
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            err.status = status;
            err.code = "too_large";
            err.message = format!("body: larger than the limit of {BODY_LIMIT} bytes");
        }
        err
    })
}

/// Most lines one page of a log may hold.
pub const PAGE_LIMIT: i64 = 100_000;

/// A page's `limit`: 10 000 when absent; outside 1–100 000 it is refused,
/// as the API document says, rather than quietly clamped.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(10_000),
        Some(n) if (1..=PAGE_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit: {n} is outside 1–{PAGE_LIMIT}"
        ))),
    }
}

/// A query string that does not parse, in our error shape.
pub fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("query: {}", e.body_text()))
}

/// Parses a JSON body; errors name the field (`steps[1].share: …`).
pub fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("body: {inner}"))
        } else {
            ApiError::bad_request(format!("{path}: {inner}"))
        }
    })
}

/// Service and version names: what fits in a URL path segment and a label.
/// Names made only of dots are refused: `.` and `..` are path segments
/// with a meaning of their own.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.chars().all(|c| c == '.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field}: \"{name}\" must be 1–128 characters of letters, digits, '-', '_' or '.', \
             and not only dots"
        )))
    }
}

async fn post_events(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
    request: Request,
) -> Result<Response, ApiError> {
    // The slot is taken before the body is read, so that under overload
    // bodies wait in the clients, not in our memory; a body slower than
    // the minimum rate gives its slot back with a 408. (A declared length
    // over the limit never gets here: `slow::refuse_oversized`.)
    let _slot = app.ingest_slots.acquire(&principal.name)?;
    let headers = request.headers();
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.starts_with("application/x-ndjson") || t.starts_with("application/jsonl")
        });
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::bad_request("Idempotency-Key: must be printable ASCII characters")
                })?
                .to_string(),
        ),
    };
    let bytes = read_body(request.into_body(), app.body_rate, BODY_LIMIT).await?;
    let key = key
        .map(|k| ingest::Key::new(&principal.name, &k, &bytes))
        .transpose()?;
    let (status, answer) =
        ingest_for(&app.hub, &bytes, ndjson, key.as_ref(), Some(&principal)).await?;
    Ok((status, Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyQuery {
    /// The incident this policy version answers.
    answers: Option<String>,
}

async fn put_policy(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(service): Path<String>,
    q: Result<Query<PolicyQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_name("service", &service)?;
    let Query(q) = q.map_err(query_error)?;
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
    Extension(principal): Extension<Principal>,
    Path(service): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_name("service", &service)?;
    let provenance: Provenance = json_body(&body(bytes)?)?;
    check_name("version", &provenance.version)?;
    let record = VersionRecord {
        service: service.clone(),
        version: provenance.version.clone(),
        provenance: serde_json::to_value(&provenance).unwrap_or_default(),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SinksBody {
    sinks: Vec<SinkBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkBody {
    url: String,
    #[serde(default)]
    secret: Option<String>,
}

async fn put_webhooks(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(service): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let service_ref = app.hub.known(&service)?;
    let parsed: SinksBody = json_body(&body(bytes)?)?;
    if parsed.sinks.len() > crate::sinks::MAX_SINKS {
        return Err(ApiError::bad_request(format!(
            "sinks: at most {} per service, got {}",
            crate::sinks::MAX_SINKS,
            parsed.sinks.len()
        )));
    }
    let mut sinks = Vec::new();
    let mut generated = Vec::new();
    for (i, s) in parsed.sinks.into_iter().enumerate() {
        if let Err(why) = crate::sinks::check_url(&s.url, &app.sinks_allowed) {
            return Err(ApiError::bad_request(format!("sinks[{i}].url: {why}")));
        }
        if let Some(j) = sinks.iter().position(|k: &Sink| k.url == s.url) {
            return Err(ApiError::bad_request(format!(
                "sinks[{i}].url: {} is already sinks[{j}]",
                s.url
            )));
        }
        generated.push(s.secret.is_none());
        let secret = s.secret.unwrap_or_else(webhooks::new_secret);
        if let Err(why) = webhooks::check_secret(&secret) {
            return Err(ApiError::bad_request(format!("sinks[{i}].secret: {why}")));
        }
        sinks.push(Sink { url: s.url, secret });
    }
    let mut state = service_ref.state.lock().await;
    let urls: Vec<&str> = sinks.iter().map(|s| s.url.as_str()).collect();
    let audit = hub::audit(
        app.hub.now(),
        &principal.name,
        "webhooks.set",
        &service,
        json!({"urls": urls}),
    );
    app.hub.store.set_sinks(&service, &sinks, &audit).await?;
    state.sinks = sinks.clone();
    // A secret is shown once, when ripcord made it; one the caller sent is
    // not echoed back.
    let shown: Vec<Value> = sinks
        .iter()
        .zip(generated)
        .map(|(s, made)| match made {
            true => json!({"url": s.url, "secret": s.secret}),
            false => json!({"url": s.url}),
        })
        .collect();
    Ok(Json(json!({"service": service, "sinks": shown})))
}

async fn get_webhooks(
    State(app): State<Shared>,
    Path(service): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.hub.known(&service)?;
    let sinks = app.hub.store.sinks(&service).await?;
    let shown: Vec<Value> = sinks.iter().map(|s| json!({"url": s.url})).collect();
    Ok(Json(json!({"service": service, "sinks": shown})))
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
    Extension(principal): Extension<Principal>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ReleaseBody = json_body(&body(bytes)?)?;
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
        if app
            .hub
            .store
            .version(&req.service, version)
            .await?
            .is_none()
        {
            return Err(ApiError::unprocessable(
                format!(
                    "{field}: version \"{version}\" of \"{}\" is not registered; POST /v1/services/{}/versions first",
                    req.service, req.service
                ),
                json!([{"path": field, "message": "not registered"}]),
            ));
        }
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

async fn get_release(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
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
) -> Result<ripcord_store::ReleaseRecord, ApiError> {
    let record = app
        .hub
        .store
        .release(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("release \"{id}\" does not exist")))?;
    principal.require_service(&record.service)?;
    Ok(record)
}

#[derive(Deserialize)]
struct ReleaseQuery {
    service: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_releases(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
    q: Result<Query<ReleaseQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    if let Some(service) = &q.service {
        principal.require_service(service)?;
    }
    let records = app.hub.store.releases(q.service.as_deref()).await?;
    let releases: Vec<Value> = records
        .into_iter()
        .filter(|r| principal.scope.allows(&r.service))
        .map(|r| r.body)
        .collect();
    let page = paging::PageQuery {
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(paging::page("releases", releases, page)?))
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
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ActionBody = json_body(&body(bytes)?)?;
    let command = parse_command(&req.action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "action: \"{}\" is not one of promote, pause, resume, rollback, re_release, approve, reject",
            req.action
        ))
    })?;
    auth_http::require_action(&app, &principal, &req.action)?;
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
        let value: Value = serde_json::from_str(&first).unwrap_or_default();
        if value["action"] != json!(req.action) {
            return Err(ApiError::unprocessable(
                format!(
                    "idempotency_key: already used for {} on release \"{id}\"; use a new key for a different action",
                    value["action"]
                ),
                json!([{"path": "idempotency_key", "message": "used for another action"}]),
            ));
        }
        return Ok((StatusCode::OK, Json(value)).into_response());
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
        (req.action.as_str(), current.state.as_str()),
        ("rollback", "rolling_back" | "rolled_back") | ("pause", "paused")
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
    let status = if answer["request"]["state"] == json!("pending") {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

#[derive(Deserialize)]
struct AssignQuery {
    service: Option<String>,
    unit: Option<String>,
}

/// The assignment of one unit, shared by `/v1/assign` and OFREP.
pub struct Assigned {
    pub version: String,
    pub release: String,
    pub candidate: bool,
    pub share: f64,
    pub bucket: u64,
}

pub fn assign_unit(hub: &Hub, service: &str, unit: &str) -> Result<Assigned, ApiError> {
    let svc = hub.known(service)?;
    let a = svc.assignment().ok_or_else(|| {
        ApiError::not_found(format!(
            "service \"{service}\" has no release; POST /v1/releases first"
        ))
    })?;
    let bucket = bucket(service, unit);
    let candidate = (bucket as f64) < a.share * 10_000.0;
    Ok(Assigned {
        version: if candidate { a.candidate } else { a.baseline },
        release: a.release,
        candidate,
        share: a.share,
        bucket,
    })
}

async fn assign(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
    q: Result<Query<AssignQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let service = q
        .service
        .ok_or_else(|| ApiError::bad_request("service: query parameter is required"))?;
    principal.require_service(&service)?;
    let unit = q
        .unit
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("unit: query parameter is required"))?;
    let a = assign_unit(&app.hub, &service, &unit)?;
    Ok(Json(json!({
        "service": service,
        "version": a.version,
        "release": a.release,
        "variant": if a.candidate { "candidate" } else { "baseline" },
        "share": a.share,
        "bucket": a.bucket,
    })))
}

#[derive(Deserialize)]
struct DecisionQuery {
    service: Option<String>,
    since: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

/// The decision log as NDJSON, each line in exactly the replay shape. The
/// `ripcord-next-after` header carries the cursor for the next page.
async fn decisions(
    State(app): State<Shared>,
    Extension(principal): Extension<Principal>,
    q: Result<Query<DecisionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let service = q
        .service
        .ok_or_else(|| ApiError::bad_request("service: query parameter is required"))?;
    principal.require_service(&service)?;
    app.hub.known(&service)?;
    let since = match q.since {
        Some(text) => {
            ripcord_core::Time::parse_rfc3339(&text)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("since: \"{text}\" is not an RFC 3339 instant"))
                })?
                .0
        }
        None => i64::MIN,
    };
    let limit = page_limit(q.limit)?;
    let rows = app
        .hub
        .store
        .decisions(&service, since, q.after.unwrap_or(0), limit)
        .await?;
    let next = rows.last().map_or(q.after.unwrap_or(0), |r| r.seq);
    let mut text = String::new();
    for r in &rows {
        text.push_str(&r.line);
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

async fn metrics_text(State(app): State<Shared>) -> Response {
    if let Ok(counts) = app.hub.store.outbox_counts().await {
        ::metrics::gauge!("ripcord_webhook_outbox_pending").set(counts.pending as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(),
    )
        .into_response()
}

async fn readyz(State(app): State<Shared>) -> Result<&'static str, ApiError> {
    if app.hub.writer.has_failed() {
        return Err(ApiError::unavailable(
            "store: a commit failed; restart ripcord to recover from what is stored",
        ));
    }
    tokio::time::timeout(Duration::from_secs(2), app.hub.store.last_seqs())
        .await
        .map_err(|_| ApiError::unavailable("store: not answering"))??;
    Ok("ready\n")
}
