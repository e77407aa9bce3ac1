//! What the leader's own sources (the NATS consumer, the Prometheus
//! reader) need of the running server: its hub, and when to stop.

use std::sync::Arc;

use tokio::sync::watch;

use crate::cluster::Membership;
use crate::hub::Hub;

/// The running server as a source sees it: implemented by the HTTP
/// layer's `App` (in `lib.rs`), which the sources may not import.
pub trait Server: Send + Sync + 'static {
    fn hub(&self) -> &Hub;
    /// This replica's place in a cluster; `None`: it is the only one.
    fn membership(&self) -> Option<&Arc<Membership>>;
}

/// Resolves on shutdown, or when this replica stops leading: a deposed
/// leader's writes are refused, so it should stop taking events too.
pub async fn stopped(stop: &mut watch::Receiver<bool>, app: &impl Server) {
    let lost = async {
        match app.membership() {
            Some(m) => drop(m.lost().await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stop.changed() => {}
        () = lost => {}
    }
}
