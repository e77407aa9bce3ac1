//! Retention: a background task that deletes what has outlived its class's
//! period (`retention:` in `ripcord.yaml`), in small audited batches, and
//! applies purges made on the store by `ripcord purge` to what the server
//! holds in memory; it also runs the data rules rollbacks left
//! ([`data_rules`]).
//!
//! Each pass reads the server's clock once, builds what the legal holds
//! keep ([`holds::held`]), then deletes class by class, at most
//! [`Retention::batch`] rows per transaction and [`BATCHES_PER_PASS`]
//! transactions per class, so that a backlog (the first pass after an
//! upgrade) is worked off over several passes without holding the store.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ripcord_core::{Dur, Time};
use ripcord_store::{DataClass, Expired, PendingAudit};
use serde::Serialize;

use crate::data_rules;
use crate::error::ApiError;
use crate::holds;
use crate::hub::Hub;
use crate::purge;

/// Transactions per class per pass.
pub const BATCHES_PER_PASS: u32 = 20;

const DAY: i64 = 86_400_000;

/// How long each class is kept, and how the task runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    pub keep: BTreeMap<DataClass, Dur>,
    /// Time between passes (real time).
    pub every: Duration,
    /// Rows deleted per transaction.
    pub batch: i64,
}

impl Default for Retention {
    /// Raw events (and whatever people put in them) go first; decisions
    /// and evidence stay for the reviews of a year or two; the audit log
    /// stays six years.
    fn default() -> Retention {
        Retention {
            keep: BTreeMap::from([
                (DataClass::RawEvents, Dur(30 * DAY)),
                (DataClass::Evidence, Dur(365 * DAY)),
                (DataClass::Decisions, Dur(730 * DAY)),
                (DataClass::Audit, Dur(2190 * DAY)),
            ]),
            every: Duration::from_secs(60),
            batch: 500,
        }
    }
}

impl Retention {
    pub fn keep(&self, class: DataClass) -> Dur {
        self.keep.get(&class).copied().unwrap_or(Dur(i64::MAX))
    }
}

/// One class in a pass's report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassReport {
    pub class: &'static str,
    /// The class's period in ms.
    pub keep_ms: i64,
    /// Rows older than this (RFC 3339) were due.
    pub before: String,
    pub deleted: u64,
    /// Due rows a legal hold kept.
    pub held: u64,
    /// More were due than one pass deletes: the next pass goes on.
    pub more: bool,
}

/// What one pass did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub at: String,
    pub classes: Vec<ClassReport>,
    /// Purges from the store applied to the live state in this pass.
    pub purges_applied: usize,
    /// The data rules of rolled-back releases that were due in this pass.
    pub after_rollback: Vec<data_rules::Outcome>,
}

/// The task's state the API shows: the settings, the last pass, the
/// totals since start, and the purges already applied.
pub struct Status {
    pub config: Retention,
    last: std::sync::Mutex<Option<Report>>,
    totals: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    applied: tokio::sync::Mutex<BTreeSet<String>>,
    /// Held by the purge running, so that purges run one at a time.
    pub purging: tokio::sync::Mutex<()>,
}

impl Status {
    pub fn new(config: Retention) -> Status {
        Status {
            config,
            last: Default::default(),
            totals: Default::default(),
            applied: Default::default(),
            purging: Default::default(),
        }
    }

    pub fn last(&self) -> Option<Report> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    pub fn totals(&self) -> BTreeMap<&'static str, u64> {
        self.totals.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn record(&self, report: &Report) {
        if let Ok(mut totals) = self.totals.lock() {
            for c in &report.classes {
                *totals.entry(c.class).or_default() += c.deleted;
            }
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(report.clone());
        }
    }
}

/// One pass at the hub's time.
pub async fn pass(hub: &Hub, status: &Status) -> Result<Report, ApiError> {
    let now = hub.now();
    let held = holds::held(&*hub.store).await?;
    let mut classes = Vec::new();
    for class in DataClass::ALL {
        classes.push(expire_class(hub, status, class, now, &held).await?);
    }
    let purges_applied = apply_purges(hub, status, &held).await?;
    let after_rollback = data_rules::run(hub, now, &held).await?;
    let report = Report {
        at: now.to_rfc3339(),
        classes,
        purges_applied,
        after_rollback,
    };
    status.record(&report);
    Ok(report)
}

async fn expire_class(
    hub: &Hub,
    status: &Status,
    class: DataClass,
    now: Time,
    held: &ripcord_store::Held,
) -> Result<ClassReport, ApiError> {
    let keep = status.config.keep(class);
    let before = Time(now.0.saturating_sub(keep.0));
    let record = PendingAudit {
        at_ms: now.0,
        principal: "ripcord".into(),
        action: ripcord_core::audit::EXPIRED.into(),
        subject: "retention".into(),
        detail: serde_json::Value::Null,
    };
    let mut total = Expired::default();
    let mut more = false;
    for _ in 0..BATCHES_PER_PASS {
        let batch = status.config.batch;
        let done = hub
            .store
            .expire(class, before.0, batch, held, &record)
            .await?;
        total.deleted += done.deleted;
        total.held = done.held;
        more = done.deleted as i64 >= batch;
        if !more {
            break;
        }
        tokio::task::yield_now().await;
    }
    if total.deleted > 0 {
        tracing::info!(
            "retention: deleted {} {} older than {} ({} kept by legal holds)",
            total.deleted,
            class.as_str(),
            before.to_rfc3339(),
            total.held
        );
        crate::metrics::retention_deleted(class.as_str(), total.deleted);
    }
    Ok(ClassReport {
        class: class.as_str(),
        keep_ms: keep.0,
        before: before.to_rfc3339(),
        deleted: total.deleted,
        held: total.held,
        more,
    })
}

/// Applies the stored purges this server has not applied yet (those made
/// by `ripcord purge` on the store while it ran, and, after a restart,
/// every purge again: a restored sample may predate one).
async fn apply_purges(
    hub: &Hub,
    status: &Status,
    held: &ripcord_store::Held,
) -> Result<usize, ApiError> {
    let stored = purge::stored(&*hub.store)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let mut applied = status.applied.lock().await;
    let mut n = 0;
    for p in &stored {
        if applied.contains(&p.id) {
            continue;
        }
        purge::apply(hub, p, held)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        applied.insert(p.id.clone());
        n += 1;
    }
    Ok(n)
}

/// Marks a purge the server made itself as applied.
pub async fn applied(status: &Status, id: &str) {
    status.applied.lock().await.insert(id.to_string());
}
