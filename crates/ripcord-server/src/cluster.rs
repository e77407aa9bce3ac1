//! Several `ripcord serve` processes on one PostgreSQL store, one leader.
//!
//! The leader is whoever holds the store's lease row; its epoch fences the
//! store (every write transaction checks it), so a leader that lost the
//! lease cannot write after its successor's first write. A replica that
//! does not lead follows (`crate::follow`): it answers assignments from
//! the stored releases and forwards the rest to the leader. It tries for the lease every third of a lease period, so it takes over
//! within two periods of the leader's death; then it recovers from the
//! store (snapshots and the journal after them) and leads.
//!
//! A leader renews every third of a period. One that has not renewed for
//! three quarters of a period (the database is unreachable) stops acting
//! before its lease can run out: it is `Lost`, refuses writes, and the
//! process exits so that a supervisor starts it again as a follower.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ripcord_store::{Lease, Store, StoreError};
use serde_json::json;
use tokio::sync::watch;

/// How a replica takes part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// This replica's name in the lease: the base URL clients can reach it
    /// at, so that a follower can forward to it and name it.
    pub node: String,
    pub lease: Duration,
}

/// Where a replica stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Not leading; the lease as last read (`None`: nobody holds one).
    Follower(Option<Lease>),
    Leader(Lease),
    /// Led, and stopped: the lease was lost or could not be renewed.
    Lost(String),
}

/// A replica's role, shared with the HTTP edge.
pub struct Membership {
    pub cluster: Cluster,
    role: watch::Sender<Role>,
}

impl Membership {
    pub fn new(cluster: Cluster) -> Arc<Membership> {
        Arc::new(Membership {
            cluster,
            role: watch::channel(Role::Follower(None)).0,
        })
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    fn set(&self, role: Role) {
        self.role.send_replace(role);
    }

    /// Resolves when this replica stops leading.
    pub async fn lost(&self) -> String {
        let mut rx = self.role.subscribe();
        loop {
            if let Role::Lost(why) = &*rx.borrow_and_update() {
                return why.clone();
            }
            if rx.changed().await.is_err() {
                return "the server stopped".into();
            }
        }
    }

    /// `GET /v1/cluster`.
    pub fn describe(&self) -> serde_json::Value {
        let (role, leader) = match self.role() {
            Role::Follower(lease) => ("follower", lease),
            Role::Leader(lease) => ("leader", Some(lease)),
            Role::Lost(_) => ("lost", None),
        };
        json!({
            "node": self.cluster.node,
            "role": role,
            "lease_ms": self.cluster.lease.as_millis() as u64,
            "leader": leader.map(|l| json!({"node": l.holder, "epoch": l.epoch, "expires_ms": l.expires_ms})),
        })
    }
}

/// Stands by until this replica holds the lease; then fences the store to
/// its epoch and returns the lease.
/// Also when the winning request was sent: the lease runs from no earlier,
/// which is what [`keep`] counts from.
pub async fn lead(
    store: &dyn Store,
    membership: &Membership,
) -> Result<(Lease, Instant), StoreError> {
    let Cluster { node, lease } = &membership.cluster;
    let ttl = lease.as_millis() as i64;
    let mut announced: Option<String> = None;
    loop {
        let sent = Instant::now();
        match store.acquire_lease(node, ttl).await {
            Ok(state) if state.is_held_by(node) => {
                store.fence(node, state.epoch);
                tracing::info!("{node} leads (epoch {})", state.epoch);
                membership.set(Role::Leader(state.clone()));
                return Ok((state, sent));
            }
            Ok(state) => {
                if announced.as_deref() != Some(state.holder.as_str()) {
                    tracing::info!("following: {} leads (epoch {})", state.holder, state.epoch);
                    announced = Some(state.holder.clone());
                }
                membership.set(Role::Follower(Some(state)));
            }
            Err(e) => tracing::warn!("following: the lease cannot be read: {e}"),
        }
        tokio::time::sleep(*lease / 3).await;
    }
}

/// Renews the lease every third of a period until stopped, or until it is
/// lost: taken (a newer epoch holds it), or not renewed for three quarters
/// of a period. That deadline is before the lease can end (the period runs
/// from when the renewal was sent, and the database starts it later
/// still), so a leader cut off from the database stops acting while its
/// lease still holds: a renewal that hangs is given up at the deadline,
/// and after a failed one the next try comes no later than it.
///
/// A leader whose writer failed (`failed`: a commit failed, so it takes
/// nothing more until it restarts) hands the lease on at once rather than
/// holding it while it cannot write.
///
/// It starts as soon as the lease is won (`renewed`: when that request
/// was sent), before recovery, so that a recovery longer than a lease
/// period neither loses the lease nor runs past it.
pub async fn keep(
    store: Arc<dyn Store>,
    membership: Arc<Membership>,
    renewed: Instant,
    failed: impl Fn() -> bool,
    mut stop: watch::Receiver<bool>,
) {
    let Cluster { node, lease } = membership.cluster.clone();
    let ttl = lease.as_millis() as i64;
    let mut renewed = renewed;
    loop {
        if failed() {
            let handed = tokio::time::timeout(lease / 3, store.release_lease(&node)).await;
            if !matches!(handed, Ok(Ok(()))) {
                tracing::warn!("{node}: the lease could not be handed on; it ends by itself");
            }
            return stop_leading(&membership, "a commit failed".to_string());
        }
        let deadline = renewed + lease * 3 / 4;
        let pause = (lease / 3).min(deadline.saturating_duration_since(Instant::now()));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            // The lease is handed over by `Server::shutdown`, after the
            // last write.
            _ = stop.changed() => return,
        }
        let sent = Instant::now();
        let left = deadline.saturating_duration_since(sent);
        let why = match tokio::time::timeout(left, store.acquire_lease(&node, ttl)).await {
            Ok(Ok(state)) if state.is_held_by(&node) => {
                renewed = sent;
                membership.set(Role::Leader(state));
                continue;
            }
            Ok(Ok(state)) => {
                let why = format!("{} took the lease (epoch {})", state.holder, state.epoch);
                return stop_leading(&membership, why);
            }
            Ok(Err(e)) => format!("renewing the lease failed: {e}"),
            Err(_) => "renewing the lease did not finish in time".to_string(),
        };
        if Instant::now() >= deadline {
            return stop_leading(&membership, why);
        }
        tracing::warn!("{node}: {why}; retrying");
    }
}

fn stop_leading(membership: &Membership, why: String) {
    tracing::error!("{} stops leading: {why}", membership.cluster.node);
    membership.set(Role::Lost(why));
}
