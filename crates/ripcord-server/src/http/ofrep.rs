//! OpenFeature Remote Evaluation Protocol: a flag per service, the unit in
//! `context.targetingKey`, the version as the value, `baseline` or
//! `candidate` as the variant. Same assignment as `/v1/assign`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::assignment::{Assigner, assign_unit};
use crate::auth::Principal;
use crate::error::ApiError;

/// On the leader and on followers alike.
pub fn routes<S: Assigner>() -> Router<S> {
    Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate::<S>))
        .route("/ofrep/v1/evaluate/flags", post(bulk::<S>))
}

/// An OFREP error, in the protocol's shape.
fn failure(status: StatusCode, key: Option<&str>, code: &str, details: String) -> Box<Response> {
    let mut body = json!({"errorCode": code, "errorDetails": details});
    if let Some(key) = key {
        body["key"] = json!(key);
    }
    Box::new((status, Json(body)).into_response())
}

/// The targeting key from a request body, or the protocol's error.
fn targeting_key(
    bytes: Result<Bytes, BytesRejection>,
    key: Option<&str>,
) -> Result<String, Box<Response>> {
    let bytes =
        bytes.map_err(|e| failure(StatusCode::BAD_REQUEST, key, "PARSE_ERROR", e.body_text()))?;
    // The request body is optional in the protocol: none is no context.
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            failure(
                StatusCode::BAD_REQUEST,
                key,
                "PARSE_ERROR",
                format!("body: {e}"),
            )
        })?
    };
    if !body.is_object() {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            key,
            "PARSE_ERROR",
            "body: expected a JSON object".into(),
        ));
    }
    let context = match body.get("context") {
        Some(Value::Object(c)) => c,
        None | Some(Value::Null) => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                key,
                "TARGETING_KEY_MISSING",
                "context.targetingKey: required (the unit to assign)".into(),
            ));
        }
        Some(_) => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                key,
                "INVALID_CONTEXT",
                "context: expected an object".into(),
            ));
        }
    };
    match context.get("targetingKey") {
        Some(Value::String(k)) if !k.is_empty() => Ok(k.clone()),
        Some(Value::String(_) | Value::Null) | None => Err(failure(
            StatusCode::BAD_REQUEST,
            key,
            "TARGETING_KEY_MISSING",
            "context.targetingKey: required (the unit to assign)".into(),
        )),
        Some(_) => Err(failure(
            StatusCode::BAD_REQUEST,
            key,
            "INVALID_CONTEXT",
            "context.targetingKey: expected a string".into(),
        )),
    }
}

/// One flag's evaluation, or why there is none.
fn evaluation(app: &impl Assigner, flag: &str, unit: &str) -> Result<Value, ApiError> {
    let a = assign_unit(app, flag, unit)?;
    // A split while both versions serve; static once one serves everybody.
    let reason = if a.share > 0.0 && a.share < 1.0 {
        "SPLIT"
    } else {
        "STATIC"
    };
    Ok(json!({
        "key": flag,
        "value": a.version,
        "variant": if a.candidate { "candidate" } else { "baseline" },
        "reason": reason,
        "metadata": {"release": a.release, "share": a.share, "bucket": a.bucket},
    }))
}

/// `POST /ofrep/v1/evaluate/flags/{key}`.
async fn evaluate<S: Assigner>(
    State(app): State<S>,
    principal: Principal,
    Path(flag): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let unit = match targeting_key(bytes, Some(&flag)) {
        Ok(u) => u,
        Err(response) => return *response,
    };
    // Outside the token's scope the flag does not exist for this client,
    // as bulk evaluation leaves it out: the protocol's FLAG_NOT_FOUND, so
    // that a provider falls back to its default for this flag alone (the
    // protocol's 403 has no body and means the whole API is refused).
    if !principal.scope.allows(&flag) {
        return *failure(
            StatusCode::NOT_FOUND,
            Some(&flag),
            "FLAG_NOT_FOUND",
            principal.out_of_scope(&flag),
        );
    }
    match evaluation(&app, &flag, &unit) {
        Ok(v) => Json(v).into_response(),
        Err(e) => *failure(
            StatusCode::NOT_FOUND,
            Some(&flag),
            "FLAG_NOT_FOUND",
            e.message,
        ),
    }
}

/// `POST /ofrep/v1/evaluate/flags`: every service with a release (of the
/// token's scope), with an
/// ETag over the answer so that an unchanged answer costs a 304.
async fn bulk<S: Assigner>(
    State(app): State<S>,
    principal: Principal,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let unit = match targeting_key(bytes, None) {
        Ok(u) => u,
        Err(response) => return *response,
    };
    let flags: Vec<Value> = app
        .services()
        .iter()
        .filter(|name| principal.scope.allows(name))
        .filter_map(|name| evaluation(&app, name, &unit).ok())
        .collect();
    let body = json!({"flags": flags}).to_string();
    let digest = Sha256::digest(body.as_bytes());
    let etag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{etag}\"");
    // If-None-Match compares weakly (RFC 9110 §13.1.2): `W/"x"` matches
    // `"x"`; the header may come more than once, each a list.
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag);
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::ETAG, etag_value),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response()
}
