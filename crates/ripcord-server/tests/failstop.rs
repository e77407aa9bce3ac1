//! A store whose commits start failing (a full disk, say): the server stops
//! acknowledging anything and stays stopped until a restart, which recovers
//! exactly what was stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ripcord_core::engine::EngineOptions;
use ripcord_server::clock::wall_now;
use ripcord_server::hub::Hub;
use ripcord_server::ingest::ingest;
use ripcord_store::*;

/// The real SQLite store, with commits that fail while `broken` is set
/// (after 300 ms while `slow` is: a commit still in flight).
struct Faulty {
    inner: SqlStore,
    broken: AtomicBool,
    slow: AtomicBool,
}

#[async_trait]
impl Store for Faulty {
    async fn commit(&self, batches: &[Batch]) -> Result<()> {
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt("disk full (injected)".into()));
        }
        self.inner.commit(batches).await
    }
    async fn last_seqs(&self) -> Result<(i64, i64)> {
        self.inner.last_seqs().await
    }
    async fn put_policy(
        &self,
        service: &str,
        yaml: &str,
        at: &str,
        audit: &PendingAudit,
    ) -> Result<i64> {
        self.inner.put_policy(service, yaml, at, audit).await
    }
    async fn policy(&self, service: &str) -> Result<Option<PolicyRecord>> {
        self.inner.policy(service).await
    }
    async fn policy_version(&self, service: &str, version: i64) -> Result<Option<PolicyRecord>> {
        self.inner.policy_version(service, version).await
    }
    async fn policy_history(&self, service: &str) -> Result<Vec<PolicyRecord>> {
        self.inner.policy_history(service).await
    }
    async fn services(&self) -> Result<Vec<String>> {
        self.inner.services().await
    }
    async fn register_version(&self, record: &VersionRecord, audit: &PendingAudit) -> Result<bool> {
        self.inner.register_version(record, audit).await
    }
    async fn version(&self, service: &str, version: &str) -> Result<Option<VersionRecord>> {
        self.inner.version(service, version).await
    }
    async fn versions(&self, service: &str) -> Result<Vec<VersionRecord>> {
        self.inner.versions(service).await
    }
    async fn release(&self, id: &str) -> Result<Option<ReleaseRecord>> {
        self.inner.release(id).await
    }
    async fn releases(&self, service: Option<&str>) -> Result<Vec<ReleaseRecord>> {
        self.inner.releases(service).await
    }
    async fn current_releases(&self) -> Result<Vec<ReleaseRecord>> {
        self.inner.current_releases().await
    }
    async fn last_start(&self, service: &str) -> Result<Option<i64>> {
        self.inner.last_start(service).await
    }
    async fn snapshot(&self, service: &str) -> Result<Option<ripcord_store::Snapshot>> {
        self.inner.snapshot(service).await
    }
    async fn journal(&self, service: &str, from: i64, limit: i64) -> Result<Vec<JournalEntry>> {
        self.inner.journal(service, from, limit).await
    }
    async fn decisions(
        &self,
        service: &str,
        since_ms: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DecisionEntry>> {
        self.inner.decisions(service, since_ms, after, limit).await
    }
    async fn series(&self, release: &str, from_ms: i64, limit: i64) -> Result<Vec<SeriesPoint>> {
        self.inner.series(release, from_ms, limit).await
    }
    async fn answer(&self, key: &str) -> Result<Option<String>> {
        self.inner.answer(key).await
    }
    async fn forget_answers(&self, prefix: &str, before_ms: i64) -> Result<u64> {
        self.inner.forget_answers(prefix, before_ms).await
    }
    async fn set_sinks(&self, service: &str, sinks: &[Sink], audit: &PendingAudit) -> Result<()> {
        self.inner.set_sinks(service, sinks, audit).await
    }
    async fn checkpoint(
        &self,
        at_ms: i64,
        only_after: i64,
        sign: &ripcord_store::SignCheckpoint<'_>,
        publish: &ripcord_store::PublishCheckpoint<'_>,
    ) -> Result<Option<AuditLine>> {
        self.inner
            .checkpoint(at_ms, only_after, sign, publish)
            .await
    }
    async fn audit(&self, from: i64, limit: i64) -> Result<Vec<AuditLine>> {
        self.inner.audit(from, limit).await
    }
    async fn sinks(&self, service: &str) -> Result<Vec<Sink>> {
        self.inner.sinks(service).await
    }
    async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxEntry>> {
        self.inner.due(now_ms, limit).await
    }
    async fn delivered(&self, id: &str, at_ms: i64) -> Result<()> {
        self.inner.delivered(id, at_ms).await
    }
    async fn retry_later(&self, id: &str, next_at_ms: i64, error: &str) -> Result<()> {
        self.inner.retry_later(id, next_at_ms, error).await
    }
    async fn outbox_counts(&self) -> Result<OutboxCounts> {
        self.inner.outbox_counts().await
    }
    async fn put_blob(&self, hash: &str, bytes: &[u8], audit: &PendingAudit) -> Result<bool> {
        self.inner.put_blob(hash, bytes, audit).await
    }
    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        self.inner.blob(hash).await
    }
    async fn journal_count(&self, service: &str, kind: &str) -> Result<i64> {
        self.inner.journal_count(service, kind).await
    }
    async fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>> {
        self.inner.doc(kind, id).await
    }
    async fn docs(&self, kind: &str, service: Option<&str>) -> Result<Vec<Doc>> {
        self.inner.docs(kind, service).await
    }
    async fn due_timers(&self, now_ms: i64, limit: i64) -> Result<Vec<Timer>> {
        self.inner.due_timers(now_ms, limit).await
    }
    async fn timers(&self) -> Result<Vec<Timer>> {
        self.inner.timers().await
    }
    async fn integrity(&self) -> Result<Vec<String>> {
        self.inner.integrity().await
    }
    async fn put_token(&self, token: &TokenRecord, audit: &PendingAudit) -> Result<bool> {
        self.inner.put_token(token, audit).await
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        self.inner.token_by_hash(hash).await
    }
    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.inner.tokens().await
    }
    async fn expire(
        &self,
        class: DataClass,
        before_ms: i64,
        limit: i64,
        held: &Held,
        audit: &PendingAudit,
    ) -> Result<Expired> {
        self.inner
            .expire(class, before_ms, limit, held, audit)
            .await
    }
    async fn pruned_through(&self, service: &str) -> Result<Option<i64>> {
        self.inner.pruned_through(service).await
    }
    async fn events_containing(
        &self,
        needles: Option<&[String]>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventsEntry>> {
        self.inner.events_containing(needles, after, limit).await
    }
    async fn blob_addresses(&self, after: &str, limit: i64) -> Result<Vec<String>> {
        self.inner.blob_addresses(after, limit).await
    }
    async fn revoke_token(&self, name: &str, at_ms: i64, audit: &PendingAudit) -> Result<bool> {
        self.inner.revoke_token(name, at_ms, audit).await
    }
    async fn acquire_lease(&self, holder: &str, ttl_ms: i64) -> Result<Lease> {
        self.inner.acquire_lease(holder, ttl_ms).await
    }
    async fn lease(&self) -> Result<Option<Lease>> {
        self.inner.lease().await
    }
    async fn release_lease(&self, holder: &str) -> Result<()> {
        self.inner.release_lease(holder).await
    }
    fn fence(&self, holder: &str, epoch: i64) {
        self.inner.fence(holder, epoch)
    }
}

fn batch(units: std::ops::Range<u32>) -> String {
    units
        .map(|u| {
            format!(
                "{{\"ts\":\"{}\",\"service\":\"support-bot\",\"version\":\"v1\",\"unit\":\"u-{u}\",\"values\":{{\"outputs\":1}}}}\n",
                wall_now().to_rfc3339()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_commit_nothing_more_is_acknowledged_until_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ripcord.db");
    let (store, hub) = release_on_faulty(&path).await;
    assert_eq!(
        ingest(&hub, batch(0..10).as_bytes(), true, None)
            .await
            .unwrap()
            .1["accepted"],
        10
    );

    store.broken.store(true, Ordering::SeqCst);
    let err = ingest(&hub, batch(10..20).as_bytes(), true, None)
        .await
        .unwrap_err();
    assert_eq!(err.status, 503);
    assert!(
        err.message.contains("disk full (injected)"),
        "{}",
        err.message
    );
    assert!(hub.writer.has_failed());
    // The disk is fine again, but the engine in memory counted the lost
    // batch: the server keeps refusing rather than store on top of it.
    store.broken.store(false, Ordering::SeqCst);
    let err = ingest(&hub, batch(20..30).as_bytes(), true, None)
        .await
        .unwrap_err();
    assert_eq!(err.status, 503);
    assert!(err.message.contains("restart ripcord"), "{}", err.message);
    drop(hub);

    // A restart rebuilds from what was stored: the first batch only.
    let reopened = Arc::new(SqlStore::open(&path).await.unwrap());
    let hub = Hub::load(reopened.clone(), EngineOptions::default())
        .await
        .unwrap();
    assert!(!hub.writer.has_failed());
    let release = reopened.release("support-bot-1").await.unwrap().unwrap();
    assert_eq!(release.body["events"]["baseline"], 10);
    assert_eq!(
        ingest(&hub, batch(30..35).as_bytes(), true, None)
            .await
            .unwrap()
            .1["accepted"],
        5
    );
    let release = reopened.release("support-bot-1").await.unwrap().unwrap();
    assert_eq!(release.body["events"]["baseline"], 15);
}

/// A hub on a `Faulty` store at `path`, with a release of `support-bot`.
async fn release_on_faulty(path: &std::path::Path) -> (Arc<Faulty>, Hub) {
    let store = Arc::new(Faulty {
        inner: SqlStore::open(path).await.unwrap(),
        broken: AtomicBool::new(false),
        slow: AtomicBool::new(false),
    });
    let hub = Hub::load(store.clone(), EngineOptions::default())
        .await
        .unwrap();
    let policy = include_str!("../../../examples/conversational-agent/policy.yaml");
    hub.put_policy("support-bot", policy, "test").await.unwrap();
    let service = hub.service("support-bot").unwrap();
    hub.start_release(&service, "v1", "v2", None, false, "test")
        .await
        .unwrap();
    // The release is stored before any fault.
    hub.writer.flush().await.unwrap();
    (store, hub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_failed_commit_is_not_answered_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (store, hub) = release_on_faulty(&dir.path().join("ripcord.db")).await;
    store.broken.store(true, Ordering::SeqCst);
    let body = batch(0..10);
    let key = ripcord_server::ingest::Key::new("test", "k-1", body.as_bytes()).unwrap();
    for attempt in ["first", "retry"] {
        let err = ingest(&hub, body.as_bytes(), true, Some(&key))
            .await
            .unwrap_err();
        assert_eq!(err.status, 503, "{attempt}: {}", err.message);
    }
}

/// A retry that arrives while the first attempt's batch is still being
/// committed waits for that commit: when it fails, the retry gets 503 too,
/// not the remembered answer of events that were never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_while_the_first_commit_is_in_flight_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, hub) = release_on_faulty(&dir.path().join("ripcord.db")).await;
    store.slow.store(true, Ordering::SeqCst);
    store.broken.store(true, Ordering::SeqCst);
    let hub = Arc::new(hub);
    let body = batch(0..10);
    let key = ripcord_server::ingest::Key::new("test", "k-2", body.as_bytes()).unwrap();
    let first = {
        let (hub, body) = (hub.clone(), body.clone());
        let key = ripcord_server::ingest::Key::new("test", "k-2", body.as_bytes()).unwrap();
        tokio::spawn(async move { ingest(&hub, body.as_bytes(), true, Some(&key)).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let retry = ingest(&hub, body.as_bytes(), true, Some(&key)).await;
    assert_eq!(
        retry
            .map(|(s, _)| s.as_u16())
            .map_err(|e| e.status.as_u16()),
        Err(503)
    );
    let first = first.await.unwrap();
    assert_eq!(
        first
            .map(|(s, _)| s.as_u16())
            .map_err(|e| e.status.as_u16()),
        Err(503)
    );
}

/// The NATS source's view of a bare hub.
struct Alone(Hub);

impl ripcord_server::leader::Server for Alone {
    fn hub(&self) -> &Hub {
        &self.0
    }

    fn membership(&self) -> Option<&Arc<ripcord_server::cluster::Membership>> {
        None
    }
}

/// Waits until the consumer's state satisfies `done`.
async fn until_consumer(
    stream: &async_nats::jetstream::stream::Stream,
    what: &str,
    done: impl Fn(&async_nats::jetstream::consumer::Info) -> bool,
) -> async_nats::jetstream::consumer::Info {
    let started = std::time::Instant::now();
    loop {
        let consumer: std::result::Result<async_nats::jetstream::consumer::PullConsumer, _> =
            stream.get_consumer("ripcord").await;
        if let Ok(mut consumer) = consumer {
            let info = consumer.info().await.unwrap().clone();
            if done(&info) {
                return info;
            }
        }
        // Generous: a loaded machine (the whole suite at once) can take
        // seconds between the nak's delay and the source's next fetch.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the consumer never got to: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_message_that_cannot_be_stored_is_not_acked_and_counts_once_after_a_restart() {
    use async_nats::jetstream::{self, stream};
    use ripcord_server::nats;
    let client = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("a NATS server with JetStream on 127.0.0.1:4222 (scripts/test starts one)");
    let js = jetstream::new(client);
    let name = format!("RC_failstop_{}_{}", std::process::id(), wall_now().0);
    let subject = format!("rctest.{name}");
    let events = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let source = nats::Source::new("nats://127.0.0.1:4222", Some(&name), None, None).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ripcord.db");
    let (store, hub) = release_on_faulty(&path).await;
    store.broken.store(true, Ordering::SeqCst);
    js.publish(subject.clone(), batch(0..10).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(nats::run(Arc::new(Alone(hub)), source.clone(), stopped));
    // Nak'd, delivered again after the nak's delay, and never acked.
    let info = until_consumer(&events, "a redelivery", |i| {
        i.delivered.consumer_sequence >= 2
    })
    .await;
    assert_eq!(info.ack_floor.stream_sequence, 0, "{info:?}");
    stop.send(true).unwrap();
    running.await.unwrap();

    // A restart on the mended store takes the message and counts it once.
    let reopened = Arc::new(SqlStore::open(&path).await.unwrap());
    let hub = Hub::load(reopened.clone(), EngineOptions::default())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(nats::run(Arc::new(Alone(hub)), source, stopped));
    until_consumer(&events, "every message acked", |i| {
        i.ack_floor.stream_sequence == 1 && i.num_ack_pending == 0
    })
    .await;
    stop.send(true).unwrap();
    running.await.unwrap();
    let release = reopened.release("support-bot-1").await.unwrap().unwrap();
    assert_eq!(release.body["events"]["baseline"], 10);
    let _ = js.delete_stream(&name).await;
}
