//! What the route modules share to read a request: a JSON body and a query
//! string whose every rejection is our error shape naming the field, the
//! caller's [`Principal`], and the `limit` of a log page.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::slow::BODY_LIMIT;

/// A JSON body parsed into `T`; a body that is too large, unreadable or
/// not a `T` is refused with an error naming the field (`steps[1].share:
/// …`).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body(Bytes::from_request(request, state).await)?;
        json_body(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`.
pub struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body(Bytes::from_request(request, state).await)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        json_body(&bytes).map(OptionalBody)
    }
}

/// The body of the routes that take an optional note.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    #[serde(default)]
    pub note: Option<String>,
}

/// A query string parsed into `T`, refused in our error shape.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let parsed: Result<Query<T>, QueryRejection> =
            Query::from_request_parts(parts, state).await;
        let Query(q) = parsed.map_err(query_error)?;
        Ok(QueryParams(q))
    }
}

/// The caller, as the auth middleware (`http::authorize`) found it; every
/// route that is not open has one.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::unauthorized("no caller: this route is not behind the token check")
        })
    }
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

/// A query string that does not parse, in our error shape.
pub fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("query: {}", e.body_text()))
}

/// Most lines one page of a log may hold.
pub const PAGE_LIMIT: i64 = 100_000;

/// A log page's `limit`: 10 000 when absent; outside 1–100 000 it is
/// refused, as the API document says, rather than quietly clamped.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(10_000),
        Some(n) if (1..=PAGE_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit: {n} is outside 1–{PAGE_LIMIT}"
        ))),
    }
}
