//! The storage interface (DESIGN.md "Storage") and its implementation on
//! SQLite (embedded, the default) and PostgreSQL.
//!
//! The server keeps one ordered **journal** per store: every input it fed an
//! engine (a release start, a batch of accepted events, a clock tick, a
//! command), in the order it fed them. Because the engine is deterministic,
//! replaying a service's journal from its last release start rebuilds the
//! engine exactly, which is how a restart after `kill -9` continues "as if
//! nothing happened". Decisions, webhook deliveries (the outbox), release
//! records and idempotency answers are written in the same transaction as the
//! journal entry that caused them, so they can never disagree.
//!
//! One implementation ([`SqlStore`], `sql.rs`) serves both databases: its
//! SQL is written once in the dialect both accept (no `AUTOINCREMENT`, no
//! SQLite-only types, `ON CONFLICT` upserts), and what differs — how a
//! write transaction takes the write lock, the few migrations that differ,
//! the integrity check — is in `db.rs` and `schema.rs`. Both pass the same conformance tests
//! (`tests/conformance.rs`). [`open`] opens the store a [`StoreSpec`] names.

mod db;
mod lease;
mod retention;
mod schema;
pub mod seal;
mod spec;
mod sql;
pub mod testing;

use async_trait::async_trait;

pub use spec::{StoreSpec, open};
pub use sql::SqlStore;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failed: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    /// The spec is shown without its password. (The cause is in the
    /// message, not a `source`, so that it is not printed twice.)
    #[error("cannot open the store {spec}: {cause}")]
    Open { spec: String, cause: sqlx::Error },
    #[error("{0}")]
    Spec(String),
    /// A fenced store's write found the leader lease taken over
    /// ([`Store::fence`]); nothing of the write was stored. The process
    /// must stop acting as the leader.
    #[error(
        "fenced: a newer leader holds the lease ({} at epoch {epoch}; this store writes for \
         epoch {ours}), so nothing was written and this process must stop acting as the leader",
        .held_by.as_deref().unwrap_or("no one")
    )]
    Fenced {
        /// The lease's holder now; `None` if the lease row is gone.
        held_by: Option<String>,
        epoch: i64,
        /// The epoch the store was fenced to.
        ours: i64,
    },
}

/// A JSON column: stored as text on every database (PostgreSQL's `JSON`
/// types would want binding as such, SQLite has none), decoded here.
pub struct JsonText(serde_json::Value);

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for JsonText
where
    String: sqlx::Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<JsonText, sqlx::error::BoxDynError> {
        let text = <String as sqlx::Decode<'r, DB>>::decode(value)?;
        Ok(JsonText(serde_json::from_str(&text)?))
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for JsonText
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl From<JsonText> for serde_json::Value {
    fn from(json: JsonText) -> serde_json::Value {
        json.0
    }
}

/// One version of a service's policy, as the user wrote it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct PolicyRecord {
    pub service: String,
    /// 1 for the first policy of a service, +1 per change.
    pub version: i64,
    pub yaml: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A registered, immutable version of a service with its provenance.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct VersionRecord {
    pub service: String,
    pub version: String,
    /// The provenance document as registered (JSON object).
    #[sqlx(try_from = "crate::JsonText")]
    pub provenance: serde_json::Value,
    pub registered_at: String,
}

/// A release record; its body is the server's JSON representation.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ReleaseRecord {
    pub id: String,
    pub service: String,
    #[sqlx(try_from = "crate::JsonText")]
    pub body: serde_json::Value,
}

/// One input the server fed an engine.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct JournalEntry {
    /// Store-wide order; assigned by the single writer.
    pub seq: i64,
    pub service: String,
    /// `start`, `events`, `tick` or `command`; the server defines the bodies.
    pub kind: String,
    pub body: String,
}

/// One decision, stored as its NDJSON line.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct DecisionEntry {
    pub seq: i64,
    pub service: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub line: String,
}

/// A delivery waiting in (or done with) the outbox: a signed webhook, or a
/// notification on a channel (`kind`).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    /// The `webhook-id`: the same on every attempt.
    pub id: String,
    pub service: String,
    /// How the worker delivers it: `webhook` (signed POST), `slack` or
    /// `pagerduty` (plain JSON POST) or `email` (SMTP; `url` is
    /// `smtp://host:port`, the payload carries the message).
    pub kind: String,
    pub url: String,
    pub secret: String,
    pub payload: String,
    /// The `idempotency-key` header a signed webhook is sent with (a
    /// decision's action key, a checkpoint's); `None`: its `id`.
    pub idempotency_key: Option<String>,
    pub attempts: i64,
    pub next_at_ms: i64,
}

/// Where a service's decisions and actions are delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Sink {
    pub url: String,
    /// `whsec_` + base64 key (Standard Webhooks).
    pub secret: String,
}

/// An audit record to append; the store gives it its sequence number and
/// links it into the chain (`ripcord_core::audit`) in the same transaction
/// as the change it records.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingAudit {
    pub at_ms: i64,
    pub principal: String,
    pub action: String,
    pub subject: String,
    pub detail: serde_json::Value,
}

/// A stored audit record, as exported: its canonical line with `prev` and
/// `hash`.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AuditLine {
    pub seq: i64,
    pub line: String,
}

/// Signs a checkpoint: the head's sequence number and hash in, the
/// checkpoint record's detail out.
pub type SignCheckpoint<'a> = dyn Fn(i64, [u8; 32]) -> serde_json::Value + Send + Sync + 'a;

/// The outbox deliveries that publish a checkpoint record outside the
/// store (none when nothing is configured).
pub type PublishCheckpoint<'a> = dyn Fn(&AuditLine) -> Vec<OutboxEntry> + Send + Sync + 'a;

/// A governance document (an incident, an action request) stored whole as
/// JSON and upserted by `(kind, id)`.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Doc {
    pub kind: String,
    pub id: String,
    pub service: String,
    /// Milliseconds since the Unix epoch; kept from the first write.
    pub created_ms: i64,
    #[sqlx(try_from = "crate::JsonText")]
    pub body: serde_json::Value,
}

/// A durable timer (an acknowledgement deadline, an escalation, a
/// playbook step's window). Its due time is absolute, so a restart neither
/// resets nor loses it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Timer {
    /// Unique; setting a timer with an existing id moves it.
    pub id: String,
    pub service: String,
    pub due_ms: i64,
    #[sqlx(try_from = "crate::JsonText")]
    pub body: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TimerChange {
    Set(Timer),
    Cancel(String),
}

/// An API token. Only the SHA-256 of the token is stored, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Unique; the principal that requests made with it are attributed to.
    pub name: String,
    pub role: String,
    /// SHA-256 of the token, lowercase hex.
    pub hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// The principal who made it.
    pub created_by: String,
    /// The person the token belongs to; separation of duties counts
    /// persons, so one person's two tokens are one approver. The token's
    /// name when none was given.
    pub person: String,
    /// The services the token may act on (ingest, assignment, OFREP, the
    /// routes that name a service); empty: every service.
    pub services: Vec<String>,
}

/// A service's engine state as of journal entry `journal_seq` (the
/// server's encoding); only the latest one per service is kept.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Snapshot {
    pub service: String,
    pub journal_seq: i64,
    pub body: Vec<u8>,
}

/// One point of a release's series: its criteria's readings at `at_ms`
/// (the server defines the body).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SeriesPoint {
    /// The release's id (as its record has it).
    pub release: String,
    pub service: String,
    /// Milliseconds since the Unix epoch, by the server's clock.
    pub at_ms: i64,
    #[sqlx(try_from = "crate::JsonText")]
    pub body: serde_json::Value,
}

/// Everything one engine input changes, written atomically.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub journal: Vec<JournalEntry>,
    pub decisions: Vec<DecisionEntry>,
    pub outbox: Vec<OutboxEntry>,
    /// Upserted by id.
    pub releases: Vec<ReleaseRecord>,
    /// (idempotency key, the answer given the first time).
    pub answers: Vec<(String, String)>,
    /// When the batch was made, in ms of the server's clock: the age of its
    /// answers, journal entries and blobs for their expiry.
    pub answered_at_ms: i64,
    /// The release the batch's journal entries and decisions belong to
    /// (what a legal hold on it keeps).
    pub release: Option<String>,
    /// Journal bodies replaced by `seq` (a purge's rewrite; the entry keeps
    /// its place and kind).
    pub rewrites: Vec<(i64, String)>,
    /// (service, seq): a rewrite changed that service's journal up to
    /// `seq`, so a replay from before it would build another state; kept
    /// as retention's mark (`pruned_through`), which makes a restart that
    /// would have to replay refuse rather than rebuild something else.
    pub unreplayable: Vec<(String, i64)>,
    /// Blobs deleted by address (a bundle replaced by its purged copy).
    pub forget_blobs: Vec<String>,
    pub audit: Vec<PendingAudit>,
    /// Upserted by (kind, id).
    pub docs: Vec<Doc>,
    pub timers: Vec<TimerChange>,
    /// Content-addressed blobs (address, bytes), e.g. evidence bundles;
    /// an address already stored is left as it is.
    pub blobs: Vec<(String, Vec<u8>)>,
    /// Replace the service's snapshot, in the transaction of the journal
    /// entry it covers.
    pub snapshots: Vec<Snapshot>,
    /// Upserted by (release, at_ms).
    pub series: Vec<SeriesPoint>,
    /// The most points a release of `series` may hold (0: no bound). A
    /// release that goes over loses every other point, the first and the
    /// newest kept: its chart keeps covering the whole release, at half
    /// the resolution.
    pub series_max: i64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty()
            && self.decisions.is_empty()
            && self.outbox.is_empty()
            && self.releases.is_empty()
            && self.answers.is_empty()
            && self.audit.is_empty()
            && self.docs.is_empty()
            && self.timers.is_empty()
            && self.blobs.is_empty()
            && self.snapshots.is_empty()
            && self.rewrites.is_empty()
            && self.unreplayable.is_empty()
            && self.forget_blobs.is_empty()
            && self.series.is_empty()
    }
}

/// What retention deletes by age, each class with its own period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    /// The journal: accepted event batches and the ticks and commands
    /// between them. A release's start entries are kept (they are small
    /// and name what ran), and so is what a restart still replays.
    RawEvents,
    Decisions,
    /// Evidence bundles.
    Evidence,
    /// The audit log's oldest records (a prefix: the chain stays whole).
    Audit,
}

impl DataClass {
    pub const ALL: [DataClass; 4] = [
        DataClass::RawEvents,
        DataClass::Decisions,
        DataClass::Evidence,
        DataClass::Audit,
    ];

    /// The name in `ripcord.yaml`, the API and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::RawEvents => "raw_events",
            DataClass::Decisions => "decisions",
            DataClass::Evidence => "evidence",
            DataClass::Audit => "audit",
        }
    }
}

/// What legal holds keep from every deletion: the data of these releases
/// (journal entries, decisions, series points), these blobs (evidence bundles) and the
/// audit records about these subjects. Built in one place by the server
/// (`retention::Holds`) and honoured by every deletion the store makes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub releases: std::collections::BTreeSet<String>,
    pub blobs: std::collections::BTreeSet<String>,
    pub subjects: std::collections::BTreeSet<String>,
}

/// What one expiry pass over a class did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub deleted: u64,
    /// Rows old enough to go that a legal hold kept.
    pub held: u64,
}

/// A journal entry a purge looks at: an `events` entry with its release.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct EventsEntry {
    pub seq: i64,
    pub service: String,
    pub release_id: Option<String>,
    pub body: String,
}

/// The leader lease as the database has it, with the database's clock
/// at the time it was read (every time here is the database's, in ms
/// since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    /// The fencing token: 1 for the first holder, +1 each time the lease
    /// changes hands; a renewal keeps it.
    pub epoch: i64,
    pub expires_ms: i64,
    /// The database's clock when the lease was read or written.
    pub now_ms: i64,
}

impl Lease {
    /// Whether the lease has not ended.
    pub fn is_live(&self) -> bool {
        self.expires_ms > self.now_ms
    }

    /// Whether `holder` holds it and it has not ended.
    pub fn is_held_by(&self, holder: &str) -> bool {
        self.holder == holder && self.is_live()
    }
}

/// Counts for `/metrics` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxCounts {
    pub pending: i64,
    pub delivered: i64,
}

/// The storage interface. Implementations must make [`Store::commit`]
/// durable before returning (acknowledged means durable).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes the batches in one transaction, durably.
    async fn commit(&self, batches: &[Batch]) -> Result<()>;
    /// The highest journal and decision sequence numbers (0 when empty).
    async fn last_seqs(&self) -> Result<(i64, i64)>;

    /// Stores a new policy version and returns its number.
    async fn put_policy(
        &self,
        service: &str,
        yaml: &str,
        at: &str,
        audit: &PendingAudit,
    ) -> Result<i64>;
    /// The newest policy of a service.
    async fn policy(&self, service: &str) -> Result<Option<PolicyRecord>>;
    async fn policy_version(&self, service: &str, version: i64) -> Result<Option<PolicyRecord>>;
    /// Every version, oldest first.
    async fn policy_history(&self, service: &str) -> Result<Vec<PolicyRecord>>;
    /// Services with a policy.
    async fn services(&self) -> Result<Vec<String>>;

    /// Registers a version; `false` if that version already exists (it is
    /// left unchanged).
    async fn register_version(&self, record: &VersionRecord, audit: &PendingAudit) -> Result<bool>;
    async fn version(&self, service: &str, version: &str) -> Result<Option<VersionRecord>>;
    async fn versions(&self, service: &str) -> Result<Vec<VersionRecord>>;

    async fn release(&self, id: &str) -> Result<Option<ReleaseRecord>>;
    /// Releases, oldest first; all services when `service` is `None`.
    async fn releases(&self, service: Option<&str>) -> Result<Vec<ReleaseRecord>>;
    /// Each service's newest releases: those stored by its latest batch
    /// that started one (two when a release and its successor were).
    async fn current_releases(&self) -> Result<Vec<ReleaseRecord>>;

    /// The service's latest engine snapshot.
    async fn snapshot(&self, service: &str) -> Result<Option<Snapshot>>;

    /// The sequence number of the service's latest `start` entry.
    async fn last_start(&self, service: &str) -> Result<Option<i64>>;
    /// Up to `limit` journal entries of a service with `seq >= from`, in order.
    async fn journal(&self, service: &str, from: i64, limit: i64) -> Result<Vec<JournalEntry>>;

    /// Decisions of a service at or after `since_ms`, oldest first, from
    /// sequence number `after` on (exclusive), at most `limit`.
    async fn decisions(
        &self,
        service: &str,
        since_ms: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DecisionEntry>>;

    /// Up to `limit` points of a release's series at or after `from_ms`,
    /// oldest first.
    async fn series(&self, release: &str, from_ms: i64, limit: i64) -> Result<Vec<SeriesPoint>>;

    /// The answer first given for an idempotency key.
    async fn answer(&self, key: &str) -> Result<Option<String>>;

    /// Forgets the answers of keys starting with `prefix` given before
    /// `before_ms` (so that keys kept for retries stay bounded); how many.
    async fn forget_answers(&self, prefix: &str, before_ms: i64) -> Result<u64>;

    async fn set_sinks(&self, service: &str, sinks: &[Sink], audit: &PendingAudit) -> Result<()>;
    async fn sinks(&self, service: &str) -> Result<Vec<Sink>>;
    /// Undelivered outbox entries due at `now_ms`, oldest first.
    async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxEntry>>;
    /// The oldest due entry of each sink (URL), for up to `sinks` sinks,
    /// oldest first: a sink with a long backlog cannot hide the others'.
    async fn due_per_sink(&self, now_ms: i64, sinks: i64) -> Result<Vec<OutboxEntry>> {
        let mut seen = std::collections::HashSet::new();
        let mut due = self.due(now_ms, sinks.saturating_mul(16)).await?;
        due.retain(|e| seen.insert(e.url.clone()));
        due.truncate(usize::try_from(sinks).unwrap_or(0));
        Ok(due)
    }
    async fn delivered(&self, id: &str, at_ms: i64) -> Result<()>;
    async fn retry_later(&self, id: &str, next_at_ms: i64, error: &str) -> Result<()>;
    async fn outbox_counts(&self) -> Result<OutboxCounts>;
    /// Appends a signed checkpoint over the chain's head, unless the head
    /// is at or before `only_after` (nothing new to vouch for). `sign`
    /// gets the head's sequence number and hash and returns the record's
    /// detail; `publish` gets the checkpoint record and returns the
    /// deliveries that publish it, queued in the outbox in the same
    /// transaction (so a checkpoint is never stored unpublished). Returns
    /// the checkpoint record.
    async fn checkpoint(
        &self,
        at_ms: i64,
        only_after: i64,
        sign: &SignCheckpoint<'_>,
        publish: &PublishCheckpoint<'_>,
    ) -> Result<Option<AuditLine>>;
    /// Up to `limit` audit records from sequence number `from` on, in order.
    async fn audit(&self, from: i64, limit: i64) -> Result<Vec<AuditLine>>;
    /// One governance document.
    async fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>>;
    /// Documents of a kind, oldest first; one service's when `service` is given.
    async fn docs(&self, kind: &str, service: Option<&str>) -> Result<Vec<Doc>>;
    /// Timers due at `now_ms`, earliest first.
    async fn due_timers(&self, now_ms: i64, limit: i64) -> Result<Vec<Timer>>;
    /// Every timer, earliest first (for listings and tests).
    async fn timers(&self) -> Result<Vec<Timer>>;
    /// What is wrong with the database; empty when it is sound. SQLite:
    /// its own integrity check of the file; PostgreSQL (which checks its
    /// own pages): that every table of the store is there.
    async fn integrity(&self) -> Result<Vec<String>>;
    /// Stores a content-addressed blob (an evidence bundle) with the audit
    /// record that says so; `false`, and nothing written, when the address
    /// is already stored. The caller computes the address.
    async fn put_blob(&self, hash: &str, bytes: &[u8], audit: &PendingAudit) -> Result<bool>;
    /// A stored blob's bytes.
    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>>;
    /// The count of stored events per service, from `events` journal
    /// entries' line counts (for tests and `/metrics`).
    async fn journal_count(&self, service: &str, kind: &str) -> Result<i64>;

    /// Deletes up to `limit` rows of `class` older than `before_ms` that
    /// `held` does not keep, oldest first, with the retention record
    /// (`audit`'s time, principal and subject; action `retention.expired`;
    /// a detail with the class and counts) in the
    /// same transaction; nothing is written when nothing is deleted.
    async fn expire(
        &self,
        class: DataClass,
        before_ms: i64,
        limit: i64,
        held: &Held,
        audit: &PendingAudit,
    ) -> Result<Expired>;
    /// The last journal entry of a service retention deleted (a restart
    /// cannot replay from before it).
    async fn pruned_through(&self, service: &str) -> Result<Option<i64>>;
    /// Up to `limit` `events` journal entries after `after`, in order, whose
    /// body contains one of `needles` (every entry when `None`).
    async fn events_containing(
        &self,
        needles: Option<&[String]>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventsEntry>>;
    /// Up to `limit` blob addresses after `after`, in order.
    async fn blob_addresses(&self, after: &str, limit: i64) -> Result<Vec<String>>;

    /// Stores a new token; `false` (and nothing written) if its name is
    /// taken, revoked or not.
    async fn put_token(&self, token: &TokenRecord, audit: &PendingAudit) -> Result<bool>;
    /// The token with this SHA-256 (hex), revoked or expired ones included.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// Every token, by name.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Marks a token revoked at `at_ms`; `false` if there is no such token
    /// or it was revoked already (its first revocation time stays).
    async fn revoke_token(&self, name: &str, at_ms: i64, audit: &PendingAudit) -> Result<bool>;

    /// Asks for the leader lease for `holder` (unique per process) for
    /// `ttl_ms` by the database's clock, in one write transaction: granted
    /// when nobody holds it, it has expired or `holder` holds it (a
    /// renewal). A new holder gets the next epoch, a renewal keeps it.
    /// Returns the lease after the call: `is_held_by(holder)` says whether
    /// it was granted. Not fenced: a deposed leader asking again learns
    /// who leads instead of failing.
    async fn acquire_lease(&self, holder: &str, ttl_ms: i64) -> Result<Lease>;
    /// The leader lease, if anyone ever took it (live or not).
    async fn lease(&self) -> Result<Option<Lease>>;
    /// Ends `holder`'s lease at once (a clean shutdown), so that another
    /// takes it without waiting for it to expire; nothing when someone
    /// else holds it.
    async fn release_lease(&self, holder: &str) -> Result<()>;
    /// Fences this store to the lease of `holder` at `epoch`: from now on
    /// every write transaction first checks, under the database's write
    /// lock, that the lease still names them, and otherwise writes nothing
    /// and fails with [`StoreError::Fenced`]. An expired lease nobody has
    /// taken still passes (no other leader can have written since); ending
    /// its own work before its lease ends is the leader's job. A store
    /// never fenced (one server, the CLI) writes whoever leads.
    fn fence(&self, holder: &str, epoch: i64);
}
