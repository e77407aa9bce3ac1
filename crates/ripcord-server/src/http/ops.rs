//! What operators and their tools read: metrics, liveness, readiness and
//! the API document.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use super::app::Shared;
use crate::error::ApiError;
use crate::{metrics, openapi};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/cluster", get(cluster))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
}

async fn metrics_text(State(app): State<Shared>) -> Response {
    if let Ok(counts) = app.hub.store.outbox_counts().await {
        ::metrics::gauge!("ripcord_webhook_outbox_pending").set(counts.pending as f64);
    }
    metrics::exposition()
}

/// `GET /v1/cluster`: this replica, its role and the leader.
async fn cluster(State(app): State<Shared>) -> axum::Json<serde_json::Value> {
    axum::Json(match &app.membership {
        Some(m) => m.describe(),
        None => serde_json::json!({
            "node": app.hub.link_base.get(),
            "role": "single",
            "lease_ms": null,
            "leader": null,
        }),
    })
}

async fn readyz(State(app): State<Shared>) -> Result<&'static str, ApiError> {
    if let Some(m) = &app.membership
        && !matches!(m.role(), crate::cluster::Role::Leader(_))
    {
        return Err(ApiError::unavailable("this replica does not lead"));
    }
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
