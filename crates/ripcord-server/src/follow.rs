//! What a replica that does not lead answers.
//!
//! Assignments (`/v1/assign`, OFREP) it answers itself, from the release
//! records the leader commits: it reads each service's newest record every
//! [`REFRESH`], so it lags the leader by at most that plus one commit, and
//! it keeps answering while no replica leads. `/healthz`, `/readyz` (not
//! ready: it does not lead), `/metrics` and `GET /v1/cluster` are its own.
//! Every other request, read or write, is forwarded to the leader as it
//! came (token included; the leader checks it) and the leader's answer is
//! returned with a `ripcord-leader` header. When no leader is known or it
//! does not answer, the answer is a retryable 503 with `Retry-After`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ripcord_core::Time;
use ripcord_store::Store;
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::assignment::Assigner;
use crate::auth::Tokens;
use crate::clock::Clock;
use crate::cluster::{Membership, Role};
use crate::error::ApiError;
use crate::hub::{Assignment, ReleaseView};

/// How often a follower reads the releases' newest records.
pub const REFRESH: Duration = Duration::from_millis(250);

/// Requests a follower forwards at once; more wait for none (503).
pub const FORWARDS: usize = 256;

/// Marks a forwarded request, so that a replica that does not lead either
/// answers it rather than forwarding it again.
const FORWARDED: &str = "ripcord-forwarded-by";

/// A replica's copy of the assignments, and its way to the leader.
pub struct Follower {
    pub membership: Arc<Membership>,
    pub tokens: Arc<Tokens>,
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    table: RwLock<Table>,
    client: reqwest::Client,
    forwards: Arc<Semaphore>,
}

#[derive(Default)]
struct Table {
    assignments: BTreeMap<String, Assignment>,
    /// When the table was last read from the store (ms, this clock).
    read_at_ms: Option<i64>,
}

impl Follower {
    pub fn new(
        membership: Arc<Membership>,
        tokens: Arc<Tokens>,
        store: Arc<dyn Store>,
        clock: Clock,
        timeout: Duration,
    ) -> Arc<Follower> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Arc::new(Follower {
            membership,
            tokens,
            store,
            clock,
            table: RwLock::new(Table::default()),
            client,
            forwards: Arc::new(Semaphore::new(FORWARDS)),
        })
    }

    /// Reads every service's newest release record into the table.
    pub async fn refresh(&self) -> Result<(), ripcord_store::StoreError> {
        let records = self.store.current_releases().await?;
        let mut assignments = BTreeMap::new();
        for record in records {
            let view: ReleaseView = match serde_json::from_value(record.body) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("release {}: unreadable record: {e}", record.id);
                    continue;
                }
            };
            // Of two records started in one batch, the newer has no `next`.
            if view.next.is_some() && assignments.contains_key(&view.service) {
                continue;
            }
            assignments.insert(view.service.clone(), Assignment::of(&view));
        }
        if let Ok(mut table) = self.table.write() {
            table.assignments = assignments;
            table.read_at_ms = Some(self.clock.now().0);
        }
        Ok(())
    }

    /// `GET /v1/cluster` on a follower: the membership and how fresh its
    /// assignments are.
    fn describe(&self) -> serde_json::Value {
        let mut body = self.membership.describe();
        let read_at = self.table.read().ok().and_then(|t| t.read_at_ms);
        body["assignments_read_at"] = json!(read_at.map(|ms| Time(ms).to_rfc3339()));
        body
    }

    /// The leader's base URL, unless it is this replica or unknown.
    fn leader(&self) -> Option<String> {
        match self.membership.role() {
            Role::Follower(Some(lease)) if lease.holder != self.membership.cluster.node => {
                Some(lease.holder)
            }
            _ => None,
        }
    }
}

impl Assigner for Arc<Follower> {
    fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    fn now(&self) -> Time {
        self.clock.now()
    }

    fn current(&self, service: &str) -> Result<Assignment, ApiError> {
        let table = self
            .table
            .read()
            .map_err(|_| ApiError::unavailable("the assignment table is unreadable"))?;
        if table.read_at_ms.is_none() {
            return Err(ApiError::unavailable(
                "this replica has not read the releases yet; retry",
            ));
        }
        table.assignments.get(service).cloned().ok_or_else(|| {
            ApiError::not_found(format!(
                "service \"{service}\" has no release; POST /v1/releases first"
            ))
        })
    }

    fn services(&self) -> Vec<String> {
        self.table
            .read()
            .map(|t| t.assignments.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Refreshes the follower's table every [`REFRESH`] while this replica
/// does not lead, until stopped.
pub async fn run(follower: Arc<Follower>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(REFRESH);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        if matches!(follower.membership.role(), Role::Leader(_)) {
            continue;
        }
        if let Err(e) = follower.refresh().await {
            tracing::warn!("reading the releases for assignments: {e}");
        }
    }
}

/// Every request the follower does not answer from its table.
pub async fn fallback(State(follower): State<Arc<Follower>>, request: Request) -> Response {
    match request.uri().path() {
        "/healthz" => return "ok\n".into_response(),
        "/metrics" => return crate::metrics::exposition(),
        "/v1/cluster" => return axum::Json(follower.describe()).into_response(),
        "/readyz" => return not_leading(&follower, "this replica does not lead"),
        _ => {}
    }
    if request.headers().contains_key(FORWARDED) {
        return not_leading(&follower, "forwarded here, but this replica does not lead");
    }
    let Some(leader) = follower.leader() else {
        return not_leading(&follower, "no leader is known yet");
    };
    let Ok(_permit) = follower.forwards.clone().try_acquire_owned() else {
        return not_leading(&follower, "too many requests are being forwarded");
    };
    match forward(&follower, &leader, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!("forwarding to the leader {leader}: {e}");
            not_leading(&follower, &format!("the leader {leader} did not answer"))
        }
    }
}

/// Sends the request to the leader and streams its answer back.
async fn forward(
    follower: &Follower,
    leader: &str,
    request: Request,
) -> Result<Response, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = end_to_end(&parts.headers);
    if let Ok(node) = HeaderValue::from_str(&follower.membership.cluster.node) {
        headers.insert(HeaderName::from_static(FORWARDED), node);
    }
    let answer = follower
        .client
        .request(parts.method, format!("{leader}{path}"))
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await?;
    let mut response = Response::builder().status(answer.status());
    if let Some(h) = response.headers_mut() {
        *h = end_to_end(answer.headers());
        if let Ok(value) = HeaderValue::from_str(leader) {
            h.insert(HeaderName::from_static("ripcord-leader"), value);
        }
    }
    Ok(response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| ApiError::unavailable("the leader's answer").into_response()))
}

/// The headers a proxy passes on (RFC 9110 §7.6.1: not the hop-by-hop
/// ones, nor `Host`, which names the follower).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let mut out = headers.clone();
    out.remove(header::HOST);
    for name in HOP {
        out.remove(name);
    }
    out
}

/// A retryable 503 naming the leader, when one is known.
fn not_leading(follower: &Follower, why: &str) -> Response {
    let (leader, message) = match follower.membership.role() {
        Role::Follower(Some(l)) => (
            Some(l.holder.clone()),
            format!(
                "{why}; {} leads (epoch {}): retry, or send it there",
                l.holder, l.epoch
            ),
        ),
        Role::Lost(lost) => (
            None,
            format!("{why}; this replica stopped leading ({lost}): retry another"),
        ),
        _ => (None, format!("{why}; retry")),
    };
    let mut response = ApiError::unavailable(message).into_response();
    if let Some(value) = leader.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("ripcord-leader"), value);
    }
    response
}
