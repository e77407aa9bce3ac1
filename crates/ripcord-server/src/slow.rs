//! Defences against slow clients: the accept loop that closes connections
//! whose request head does not arrive in time, a minimum rate for request
//! bodies that hold an ingest slot, and ingest slots shared fairly between
//! tokens.
//!
//! Without them a client that trickles header lines holds a connection
//! (and a file descriptor) forever, and sixteen uploads at one byte every
//! ten seconds hold every ingest slot, so every other sender gets 429.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, SemaphorePermit, watch};
use tokio::time::Instant;

use crate::error::ApiError;

/// How long a client may take to send a request's line and headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The slowest upload an ingest slot is held for: after `grace`, a body
/// must have arrived at `bytes_per_sec` on average, else 408.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyRate {
    pub grace: Duration,
    pub bytes_per_sec: u64,
}

impl Default for BodyRate {
    fn default() -> BodyRate {
        BodyRate {
            grace: Duration::from_secs(5),
            bytes_per_sec: 16 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets the
/// connections finish their requests and waits for them. Each connection
/// must deliver a request head within `header_timeout` (hyper closes it
/// otherwise).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // Each connection holds a receiver; the sender's `closed` says when
    // the last one is gone.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: pause, keep serving
                    // those we have.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            connection(stream, service, header_timeout, stop).await;
            drop(open);
        });
    }
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Resolves once `stop` is true (its guard dropped here, so that the
/// futures that wait on it stay `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    service: TowerToHyperService<Router>,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("connection: {e}");
            }
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Reads a request body of at most `limit` bytes, refusing (408) one that
/// arrives slower than `rate` once its grace has passed.
pub async fn read_body(mut body: Body, rate: BodyRate, limit: usize) -> Result<Bytes, ApiError> {
    let started = Instant::now();
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        let earned = bytes.len() as f64 / rate.bytes_per_sec.max(1) as f64;
        let deadline = started + rate.grace + Duration::from_secs_f64(earned.min(86_400.0));
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout_at(deadline, frame).await {
            Err(_) => return Err(too_slow(rate, bytes.len(), started)),
            Ok(None) => return Ok(Bytes::from(bytes)),
            Ok(Some(frame)) => {
                frame.map_err(|e| ApiError::bad_request(format!("body: could not be read: {e}")))?
            }
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len().saturating_add(data.len()) > limit {
                drain_later(body);
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&data);
        }
    }
}

/// Largest request body, in bytes.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// How much of a refused body is still read, and dropped, after its 413
/// has been sent: twice the body limit, so that a body up to twice the
/// limit is read to its end. A client whose write fails because the
/// server closed reports the broken pipe, not the 413 already on its way
/// (reqwest does, even with 31 of 32 MiB left to write after 1 MiB was
/// drained), so nothing short of the rest of the body is enough. Dropped
/// bytes cost no memory; beyond this the connection is closed under the
/// client.
pub const DRAIN_BYTES: u64 = 2 * BODY_LIMIT as u64;
/// The longest a refused body is drained.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Middleware: a request whose declared length is over `limit` is
/// answered 413 at once, on every route and before any other check, and
/// its body is drained in the background ([`drain_later`]).
pub async fn refuse_oversized(
    limit: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Err(e) = check_length(request.headers(), limit) {
        drain_later(request.into_body());
        return e.into_response();
    }
    next.run(request).await
}

/// Reads and drops up to [`DRAIN_BYTES`] of `body` for up to
/// [`DRAIN_TIME`], in a task of its own, so that the answer is sent
/// meanwhile. Dropping the body afterwards closes the connection if more
/// is still coming.
pub fn drain_later(mut body: Body) {
    tokio::spawn(async move {
        let deadline = Instant::now() + DRAIN_TIME;
        let mut read: u64 = 0;
        while read < DRAIN_BYTES {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
            match tokio::time::timeout_at(deadline, frame).await {
                Ok(Some(Ok(frame))) => {
                    read += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                // The end, a broken connection or the deadline.
                Ok(None | Some(Err(_))) | Err(_) => return,
            }
        }
    });
}

/// 413 at once when the declared length is over the limit.
pub fn check_length(headers: &axum::http::HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

fn too_large(limit: usize) -> ApiError {
    let mut err = ApiError::bad_request(format!("body: larger than the limit of {limit} bytes"));
    err.status = StatusCode::PAYLOAD_TOO_LARGE;
    err.code = "too_large";
    err
}

fn too_slow(rate: BodyRate, got: usize, started: Instant) -> ApiError {
    let mut err = ApiError::bad_request(format!(
        "body: {got} bytes in {:.1} s, slower than the minimum of {} bytes/s after {} s; \
         send bodies at once",
        started.elapsed().as_secs_f64(),
        rate.bytes_per_sec,
        rate.grace.as_secs()
    ));
    err.status = StatusCode::REQUEST_TIMEOUT;
    err.code = "timeout";
    err
}

/// Ingest requests in flight: `total` at once, of which one token may
/// hold at most `per_token`, so that one sender's slow uploads leave slots
/// for the others.
pub struct IngestSlots {
    total: Semaphore,
    per_token: usize,
    /// Slots held per token name; an entry is removed when it drops to
    /// zero, so the map never holds more than `total` names.
    held: Mutex<HashMap<String, usize>>,
}

/// One slot, given back on drop.
pub struct Slot<'a> {
    slots: &'a IngestSlots,
    token: String,
    _permit: SemaphorePermit<'a>,
}

impl IngestSlots {
    pub fn new(total: usize, per_token: usize) -> IngestSlots {
        IngestSlots {
            total: Semaphore::new(total),
            per_token: per_token.max(1),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Slots free now.
    pub fn available_permits(&self) -> usize {
        self.total.available_permits()
    }

    /// A slot for `token`, or 429 (with whose limit was reached).
    pub fn acquire(&self, token: &str) -> Result<Slot<'_>, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.get(token).copied().unwrap_or(0);
        if mine >= self.per_token {
            let mut err = ApiError::overloaded(1);
            err.message = format!(
                "token \"{token}\" already has {mine} ingest requests in flight (at most {} per \
                 token); retry after the delay in Retry-After",
                self.per_token
            );
            return Err(err);
        }
        let permit = self
            .total
            .try_acquire()
            .map_err(|_| ApiError::overloaded(1))?;
        held.insert(token.to_string(), mine + 1);
        Ok(Slot {
            slots: self,
            token: token.to_string(),
            _permit: permit,
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_cannot_take_every_slot() {
        let slots = IngestSlots::new(4, 2);
        let a1 = slots.acquire("a").unwrap();
        let _a2 = slots.acquire("a").unwrap();
        let refused = slots.acquire("a").err().unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            refused.message.contains("at most 2 per token"),
            "{}",
            refused.message
        );
        let _b1 = slots.acquire("b").unwrap();
        let _b2 = slots.acquire("b").unwrap();
        // Every slot is taken now.
        assert!(slots.acquire("c").is_err());
        drop(a1);
        assert!(slots.acquire("a").is_ok());
        assert_eq!(slots.held.lock().unwrap().len(), 2);
    }
}
