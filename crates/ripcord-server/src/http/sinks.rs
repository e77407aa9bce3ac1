//! A service's webhook sinks: set them (secrets made here are shown once)
//! and list them (never a secret).

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use ripcord_store::Sink;
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::JsonBody;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::sinks::{MAX_SINKS, check_url};
use crate::{hub, webhooks};

pub fn routes() -> Router<Shared> {
    Router::new().route(
        "/v1/services/{service}/webhooks",
        put(put_webhooks).get(get_webhooks),
    )
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
    principal: Principal,
    Path(service): Path<String>,
    parsed: Result<JsonBody<SinksBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let service_ref = app.hub.known(&service)?;
    let JsonBody(parsed) = parsed?;
    let (sinks, generated) = checked_sinks(&app, parsed)?;
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

/// The sinks as asked, each with whether its secret was made here; 400
/// naming the sink whose URL or secret is refused.
fn checked_sinks(app: &Shared, parsed: SinksBody) -> Result<(Vec<Sink>, Vec<bool>), ApiError> {
    if parsed.sinks.len() > MAX_SINKS {
        return Err(ApiError::bad_request(format!(
            "sinks: at most {MAX_SINKS} per service, got {}",
            parsed.sinks.len()
        )));
    }
    let mut sinks = Vec::new();
    let mut generated = Vec::new();
    for (i, s) in parsed.sinks.into_iter().enumerate() {
        if let Err(why) = check_url(&s.url, &app.sinks_allowed) {
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
    Ok((sinks, generated))
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
