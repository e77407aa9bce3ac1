//! The single writer: commits what the engines decided, in the order they
//! decided it, several requests per transaction (group commit), and tells
//! each request when its writes are durable.
//!
//! It is fail-stop: after a failed commit the engines in memory are ahead
//! of the store, so every later batch is refused too (clients get 503 and
//! `/readyz` fails) until a restart rebuilds the engines from what is
//! durable. Committing later batches would store decisions whose causes
//! were lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use ripcord_store::{Batch, Store};
use tokio::sync::{mpsc, oneshot, watch};

/// Requests queued beyond this wait at `submit` (backpressure, bounded
/// memory).
const QUEUE: usize = 256;
/// At most this many requests share one transaction.
const GROUP: usize = 128;

type Done = oneshot::Sender<Result<(), String>>;

pub struct Writer {
    queue: mpsc::Sender<(Batch, Done)>,
    failed: Arc<AtomicBool>,
    journal_seq: AtomicI64,
    decision_seq: AtomicI64,
    /// Counts commits that changed something; the dashboard's live
    /// updates wait on it.
    changes: watch::Receiver<u64>,
}

/// Resolves when the batch is durable (or failed to be).
pub type Durable = oneshot::Receiver<Result<(), String>>;

impl Writer {
    pub fn spawn(store: Arc<dyn Store>, last_journal: i64, last_decision: i64) -> Writer {
        let (queue, mut rx) = mpsc::channel::<(Batch, Done)>(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let stopped = failed.clone();
        let (changed, changes) = watch::channel(0u64);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < GROUP {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                let batches: Vec<Batch> = jobs.iter_mut().map(|(b, _)| std::mem::take(b)).collect();
                let result = if stopped.load(Ordering::SeqCst) {
                    Err(
                        "an earlier commit failed; restart ripcord to recover from the store"
                            .into(),
                    )
                } else {
                    store.commit(&batches).await.map_err(|e| e.to_string())
                };
                match &result {
                    Err(e) => {
                        tracing::error!("commit failed: {e}");
                        stopped.store(true, Ordering::SeqCst);
                    }
                    Ok(()) if batches.iter().any(|b| !b.is_empty()) => {
                        changed.send_modify(|n| *n += 1);
                    }
                    Ok(()) => {}
                }
                for (_, done) in jobs {
                    let _ = done.send(result.clone());
                }
            }
        });
        Writer {
            queue,
            failed,
            journal_seq: AtomicI64::new(last_journal),
            decision_seq: AtomicI64::new(last_decision),
            changes,
        }
    }

    /// Moves on after every commit that changed something.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Whether a commit has failed (the writer refuses everything since).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn next_journal_seq(&self) -> i64 {
        self.journal_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn next_decision_seq(&self) -> i64 {
        self.decision_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Queues a batch. Call it while holding the lock under which the batch
    /// was decided, so that the commit order is the decision order; await
    /// the returned receiver after letting go of the lock.
    pub async fn submit(&self, batch: Batch) -> Durable {
        let (done, durable) = oneshot::channel();
        if let Err(mpsc::error::SendError((_, done))) = self.queue.send((batch, done)).await {
            let _ = done.send(Err("the writer has stopped".into()));
        }
        durable
    }

    /// Waits until everything queued so far is durable.
    pub async fn flush(&self) -> Result<(), String> {
        match self.submit(Batch::default()).await.await {
            Ok(r) => r,
            Err(_) => Err("the writer has stopped".into()),
        }
    }
}
