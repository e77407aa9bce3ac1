//! The HTTP API: the router assembled from one module per resource, each a
//! thin layer over the hub (parse, authorize, call the hub, shape the
//! answer).
//!
//! Architecture Invariant: route modules import none of each other nor
//! this one; what they share is in [`app`] (the state), [`extract`] (the
//! body, query and caller extractors), [`paging`], [`authorize`] (the
//! auth middleware) and [`act`] (a release action, which the API and the
//! dashboard both take). Nothing outside `http` but the crate root imports it
//! (`tests/layering.rs`).

pub mod act;
pub mod app;
pub mod authorize;
pub mod extract;
pub mod paging;

mod assign;
mod audit;
mod decisions;
mod drills;
mod events;
mod incidents;
mod ofrep;
mod ops;
mod otlp;
mod policies;
mod releases;
mod requests;
mod retention;
mod reviews;
mod sinks;
mod tokens;
mod ui;
mod versions;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;

pub use self::app::{App, INGEST_SLOTS, INGEST_SLOTS_PER_TOKEN, Shared};
use crate::error::ApiError;
use crate::follow::Follower;
use crate::metrics;
pub use crate::slow::BODY_LIMIT;

/// Every route, without the layers.
fn routes() -> Router<Shared> {
    Router::new()
        .merge(events::routes())
        .merge(policies::routes())
        .merge(versions::routes())
        .merge(sinks::routes())
        .merge(releases::routes())
        .merge(assign::routes())
        .merge(decisions::routes())
        .merge(ofrep::routes())
        .merge(incidents::routes())
        .merge(requests::routes())
        .merge(ops::routes())
        .merge(tokens::routes())
        .merge(audit::routes())
        .merge(retention::routes())
        .merge(reviews::routes())
        .merge(drills::routes())
        .merge(otlp::routes())
}

pub fn router(app: Shared) -> Router {
    let routes = routes()
        // Every routed request is checked against the route table
        // (`auth::routes`); an unknown path is a 404 either way.
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            authorize::authorize::<Shared>,
        ))
        // The dashboard checks its session cookie instead of a bearer
        // token (`ui::routes`), against its own table.
        .merge(ui::routes(app.clone()))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") });
    edge(routes).with_state(app)
}

/// What a replica that does not lead serves: assignments and OFREP from
/// its own copy, through the same token check; everything else through
/// `follow::fallback` (forwarded to the leader, or a retryable 503).
pub fn follower_router(follower: Arc<Follower>) -> Router {
    let routes = Router::new()
        .merge(assign::routes())
        .merge(ofrep::routes())
        .route_layer(middleware::from_fn_with_state(
            follower.clone(),
            authorize::authorize::<Arc<Follower>>,
        ))
        .fallback(crate::follow::fallback);
    edge(routes).with_state(follower)
}

/// The layers every request passes, whoever answers it.
fn edge<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes
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
}

async fn count_responses(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    metrics::http_request(response.status().as_u16());
    response
}
