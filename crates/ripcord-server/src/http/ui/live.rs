//! `GET /ui/events`: server-sent events telling open pages that something
//! was committed, so that they fetch their live parts again. The event
//! carries no data of any service: what a page shows is read through the
//! page, under the person's rights.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::watch;

use super::{UiError, Viewer};
use crate::dashboard::LiveSlot;
use crate::error::ApiError;
use crate::http::app::Shared;

/// Commits closer together than this make one event: a page redraws at
/// most a few times a second however fast events arrive.
const COALESCE: Duration = Duration::from_millis(250);
/// A stream ends after this long and the browser opens a new one, which
/// passes the session check again (a revoked token stops updating).
const LIFETIME: Duration = Duration::from_secs(15 * 60);

struct Open {
    changes: watch::Receiver<u64>,
    /// Held for the stream's life; dropping it frees the slot.
    _slot: LiveSlot,
    app: Shared,
    session: String,
    ends: tokio::time::Instant,
}

pub async fn events(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, UiError> {
    let Some(slot) = app.dashboard.live.take(&viewer.session) else {
        return Err(UiError(ApiError::overloaded(5)));
    };
    let mut changes = app.hub.writer.changes();
    changes.mark_unchanged();
    let open = Open {
        changes,
        _slot: slot,
        app: app.clone(),
        session: viewer.session.clone(),
        ends: tokio::time::Instant::now() + LIFETIME,
    };
    let hello = Event::default().event("ready").data("0");
    let first = futures_util::stream::once(async move { Ok(hello) });
    let rest = futures_util::stream::unfold(open, next_change);
    Ok(Sse::new(futures_util::StreamExt::chain(first, rest)).keep_alive(KeepAlive::default()))
}

/// Waits for the next commit (coalescing a burst), unless the session
/// ended or the stream has lived its time.
async fn next_change(mut open: Open) -> Option<(Result<Event, Infallible>, Open)> {
    tokio::time::timeout_at(open.ends, open.changes.changed())
        .await
        .ok()?
        .ok()?;
    tokio::time::sleep(COALESCE).await;
    let now = open.app.hub.now();
    open.app.dashboard.sessions.get(&open.session, now)?;
    let seq = *open.changes.borrow_and_update();
    let event = Event::default().event("change").data(seq.to_string());
    Some((Ok(event), open))
}
