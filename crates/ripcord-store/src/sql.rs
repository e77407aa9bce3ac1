//! The store: every query, written once for SQLite and PostgreSQL ([`db`]
//! runs it on either).
//!
//! SQLite is one file (bundled SQLite through sqlx), WAL, `synchronous=FULL`
//! so that a committed transaction survives power loss. PostgreSQL
//! connections set `synchronous_commit=on` (its default) for the same.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection};

use ripcord_core::audit::{GENESIS, Record, hex, link, to_line};

use crate::db::{Pool, Q, Tx, q, q_built};
use crate::lease::{self, Fence};
use crate::schema::MIGRATIONS;
use crate::{
    AuditLine, Batch, DataClass, DecisionEntry, Doc, EventsEntry, Expired, Held, JournalEntry,
    Lease, OutboxCounts, OutboxEntry, PendingAudit, PolicyRecord, PublishCheckpoint, ReleaseRecord,
    Result, SeriesPoint, SignCheckpoint, Sink, Snapshot, Store, StoreError, Timer, TimerChange,
    TokenRecord, VersionRecord,
};

/// Connections a PostgreSQL store keeps: the writer, the checkpoint task
/// and the readers of the HTTP API beside them.
const PG_CONNECTIONS: u32 = 8;

pub struct SqlStore {
    pool: Pool,
    /// Held by every transaction that appends to the audit chain. The
    /// database's write lock ([`Pool::begin_write`]) is what keeps the chain
    /// from forking; this only keeps this process's writers from holding
    /// several pooled connections while they wait for it.
    appending: tokio::sync::Mutex<()>,
    /// Seals webhook secrets before they are written; `None`: stored as
    /// given (a store opened without a key, such as `ripcord token`'s).
    sealer: Option<crate::seal::Sealer>,
    /// The lease this store writes under ([`Store::fence`]); `None`:
    /// unfenced. A std mutex: it is never held across an await.
    fence: std::sync::Mutex<Option<Fence>>,
    /// The lease period last asked for (ms; 0: none): how long a write
    /// transaction may sit idle before the database ends it.
    lease_ms: std::sync::atomic::AtomicI64,
}

/// An outbox row as stored (its secret sealed).
#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: String,
    service: String,
    kind: String,
    url: String,
    secret: String,
    payload: String,
    idempotency_key: Option<String>,
    attempts: i64,
    next_at_ms: i64,
}

/// The columns of an outbox row, in [`OutboxRow`]'s order.
macro_rules! outbox_columns {
    () => {
        "id, service, kind, url, secret, payload, idempotency_key, attempts, next_at_ms"
    };
}

/// A token row as stored.
#[derive(sqlx::FromRow)]
struct TokenRow {
    name: String,
    role: String,
    hash: String,
    created_at_ms: i64,
    expires_at_ms: Option<i64>,
    revoked_at_ms: Option<i64>,
    created_by: String,
    person: Option<String>,
    /// A JSON array of service names.
    services: String,
}

/// The columns of a token row, in [`TokenRow`]'s order.
macro_rules! token_columns {
    () => {
        "name, role, hash, created_at_ms, expires_at_ms, revoked_at_ms, created_by, person, \
         services"
    };
}

impl SqlStore {
    /// Opens (creating if needed) an SQLite store file and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<SqlStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::sqlite(options, 4).await
    }

    /// A private in-memory SQLite store (tests).
    pub async fn in_memory() -> Result<SqlStore> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // An in-memory database exists only on its own connection.
        Self::sqlite(options, 1).await
    }

    async fn sqlite(options: SqliteConnectOptions, connections: u32) -> Result<SqlStore> {
        // WAL lets readers run beside the one writer.
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await?;
        Self::migrated(Pool::Sqlite(pool)).await
    }

    /// Connects to a PostgreSQL database (`postgres://USER@HOST:PORT/DB`,
    /// libpq's URL form) and brings its schema up to date. The database
    /// must exist; the tables are created.
    pub async fn connect_postgres(url: &str) -> Result<SqlStore> {
        // Acknowledged means durable, whatever the server's default.
        let options = PgConnectOptions::from_str(url)?
            .application_name("ripcord")
            .options([("synchronous_commit", "on")]);
        // One attempt first: the pool would retry an unreachable server
        // until its acquire timeout, and the error would say less.
        PgConnection::connect_with(&options).await?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(PG_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Self::migrated(Pool::Postgres(pool)).await
    }

    async fn migrated(pool: Pool) -> Result<SqlStore> {
        let store = SqlStore {
            pool,
            appending: tokio::sync::Mutex::new(()),
            sealer: None,
            fence: std::sync::Mutex::new(None),
            lease_ms: std::sync::atomic::AtomicI64::new(0),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Seals the webhook secrets it writes with `key` (kept outside the
    /// database) and opens those it reads ([`crate::seal`]).
    pub fn sealing_secrets(mut self, key: &[u8; 32]) -> Result<SqlStore> {
        self.sealer = Some(crate::seal::Sealer::new(key)?);
        Ok(self)
    }

    /// Begins a write transaction: the database's write lock, then, when
    /// the store is fenced, the lease check ([`crate::lease`]) inside the
    /// locked transaction, so that no take-over can come between the check
    /// and the commit. A failed check drops (rolls back) the transaction.
    async fn write_tx(&self) -> Result<Tx> {
        let mut tx = self.pool.begin_write_within(self.idle_ms()).await?;
        let fence = self
            .fence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(fence) = fence {
            lease::check(&mut tx, &fence).await?;
        }
        Ok(tx)
    }

    /// How long a write transaction may sit idle: a lease period, when
    /// replicas share the database (0: no limit).
    fn idle_ms(&self) -> i64 {
        self.lease_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one writing statement in a write transaction of its own (not
    /// on a pooled connection), so that it is fenced like every write.
    async fn write_one(&self, query: Q<'_>) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let changed = query.execute(&mut tx).await?;
        tx.commit().await?;
        Ok(changed)
    }

    fn seal(&self, secret: &str, url: &str) -> Result<String> {
        match &self.sealer {
            Some(s) if !secret.is_empty() => s.seal(secret, url),
            _ => Ok(secret.to_string()),
        }
    }

    /// Queues one delivery (its secret sealed); an id already queued is
    /// left as it is, so a retried write delivers once.
    async fn insert_outbox(&self, tx: &mut Tx, o: &OutboxEntry) -> Result<()> {
        let secret = self.seal(&o.secret, &o.url)?;
        q(concat!(
            "INSERT INTO outbox (",
            outbox_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(&o.id)
        .bind(&o.service)
        .bind(&o.kind)
        .bind(&o.url)
        .bind(&secret)
        .bind(&o.payload)
        .bind(&o.idempotency_key)
        .bind(o.attempts)
        .bind(o.next_at_ms)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Writes what an engine input changed: its journal entries,
    /// decisions, deliveries, releases and idempotency answers.
    async fn write_engine(&self, tx: &mut Tx, batch: &Batch) -> Result<()> {
        for j in &batch.journal {
            q(
                "INSERT INTO journal (seq, service, kind, body, at_ms, release_id) \
               VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(j.seq)
            .bind(&j.service)
            .bind(&j.kind)
            .bind(&j.body)
            .bind(batch.answered_at_ms)
            .bind(&batch.release)
            .execute(&mut *tx)
            .await?;
        }
        for d in &batch.decisions {
            q(
                "INSERT INTO decisions (seq, service, at_ms, line, release_id) \
               VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(d.seq)
            .bind(&d.service)
            .bind(d.at_ms)
            .bind(&d.line)
            .bind(&batch.release)
            .execute(&mut *tx)
            .await?;
        }
        for o in &batch.outbox {
            self.insert_outbox(tx, o).await?;
        }
        for r in &batch.releases {
            let seq = batch.journal.first().map_or(0, |j| j.seq);
            q(
                "INSERT INTO releases (id, service, created_seq, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            )
            .bind(&r.id)
            .bind(&r.service)
            .bind(seq)
            .bind(&r.body.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for (key, answer) in &batch.answers {
            q(
                "INSERT INTO answers (key, answer, at_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(answer)
            .bind(batch.answered_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// An outbox row as read by `due` and `due_per_sink`, its secret unsealed.
    fn outbox_entry(&self, r: OutboxRow) -> Result<OutboxEntry> {
        Ok(OutboxEntry {
            secret: self.unseal(r.secret, &r.url)?,
            id: r.id,
            service: r.service,
            kind: r.kind,
            url: r.url,
            payload: r.payload,
            idempotency_key: r.idempotency_key,
            attempts: r.attempts,
            next_at_ms: r.next_at_ms,
        })
    }

    fn unseal(&self, stored: String, url: &str) -> Result<String> {
        match &self.sealer {
            Some(s) => s.open(&stored, url),
            None => Ok(stored),
        }
    }

    /// Applies the migrations not applied yet, in one write transaction:
    /// it holds the write lock, so two processes opening one new database
    /// at once apply each migration once (the second finds them done).
    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        tx.raw("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .await?;
        let done: i64 = q("SELECT COUNT(*) FROM schema_migrations")
            .scalar(&mut tx)
            .await?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            for sql in self.pool.dialect(migration) {
                tx.raw(sql).await?;
            }
            q("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await
    }
}

fn unhex(text: &str) -> Result<[u8; 32]> {
    ripcord_core::audit::unhex(text)
        .ok_or_else(|| StoreError::Corrupt(format!("audit hash {text:?}")))
}

/// The chain's tail as stored, read inside the transaction that extends it.
async fn stored_tail(tx: &mut Tx) -> Result<(i64, [u8; 32])> {
    let row: Option<(i64, String)> = q("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let Some((seq, hash)) = row else {
        return Ok((0, GENESIS));
    };
    Ok((seq, unhex(&hash)?))
}

/// Whether record `seq` is a checkpoint (a checkpoint over a checkpoint
/// would vouch for nothing new).
async fn is_checkpoint(tx: &mut Tx, seq: i64) -> Result<bool> {
    let line: Option<String> = q("SELECT line FROM audit WHERE seq = $1")
        .bind(seq)
        .scalar_optional(&mut *tx)
        .await?;
    let action = line
        .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .and_then(|v| v["action"].as_str().map(str::to_string));
    Ok(action.as_deref() == Some(ripcord_core::audit::CHECKPOINT))
}

/// Appends audit records inside a transaction, linking them from the
/// stored tail. The tail is read from the database (under its write lock),
/// not kept in memory, because another process (`ripcord token`, another
/// server) may have appended since.
async fn append_audit(tx: &mut Tx, pending: &[&PendingAudit]) -> Result<Vec<AuditLine>> {
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let (mut seq, mut prev) = stored_tail(tx).await?;
    let mut appended = Vec::with_capacity(pending.len());
    for p in pending {
        seq += 1;
        let record = Record {
            seq,
            at: p.at_ms,
            principal: p.principal.clone(),
            action: p.action.clone(),
            subject: p.subject.clone(),
            detail: p.detail.clone(),
        };
        let hash = link(&prev, &record);
        let line = to_line(&record, &prev, &hash);
        q(
            "INSERT INTO audit (seq, at_ms, principal, action, subject, line, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(seq)
        .bind(p.at_ms)
        .bind(&p.principal)
        .bind(&p.action)
        .bind(&p.subject)
        .bind(&line)
        .bind(&hex(&hash))
        .execute(&mut *tx)
        .await?;
        appended.push(AuditLine { seq, line });
        prev = hash;
    }
    Ok(appended)
}

/// Ends a write that changes at most one thing: with its audit record,
/// committed, when it `changed` something (`true`); rolled back, with no
/// record, when not.
async fn commit_audited(mut tx: Tx, changed: bool, audit: &PendingAudit) -> Result<bool> {
    if !changed {
        return Ok(false);
    }
    append_audit(&mut tx, &[audit]).await?;
    tx.commit().await?;
    Ok(true)
}

/// Upserts a batch's documents and applies its timer changes.
async fn write_governance(tx: &mut Tx, batch: &Batch) -> Result<()> {
    for d in &batch.docs {
        q(
            "INSERT INTO docs (kind, id, service, created_ms, body) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
        )
        .bind(&d.kind)
        .bind(&d.id)
        .bind(&d.service)
        .bind(d.created_ms)
        .bind(&d.body.to_string())
        .execute(&mut *tx)
        .await?;
    }
    for change in &batch.timers {
        match change {
            TimerChange::Set(t) => {
                q(
                    "INSERT INTO timers (id, service, due_ms, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET due_ms = excluded.due_ms, body = excluded.body",
                )
                .bind(&t.id)
                .bind(&t.service)
                .bind(t.due_ms)
                .bind(&t.body.to_string())
                .execute(&mut *tx)
                .await?;
            }
            TimerChange::Cancel(id) => {
                q("DELETE FROM timers WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Inserts a blob unless its address is stored; `true` if inserted.
async fn insert_blob(tx: &mut Tx, hash: &str, bytes: &[u8], at_ms: i64) -> Result<bool> {
    let done = q(
        "INSERT INTO blobs (hash, bytes, at_ms) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(hash)
    .bind(bytes)
    .bind(at_ms)
    .execute(&mut *tx)
    .await?;
    Ok(done == 1)
}

/// A purge's changes: journal bodies replaced, blobs deleted.
async fn rewrite(tx: &mut Tx, batch: &Batch) -> Result<()> {
    for (seq, body) in &batch.rewrites {
        q("UPDATE journal SET body = $1 WHERE seq = $2")
            .bind(body)
            .bind(*seq)
            .execute(&mut *tx)
            .await?;
    }
    for (service, seq) in &batch.unreplayable {
        crate::retention::mark_pruned(tx, service, *seq).await?;
    }
    for hash in &batch.forget_blobs {
        q("DELETE FROM blobs WHERE hash = $1")
            .bind(hash)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Records a batch's series points, then thins each release that went
/// over the batch's bound.
async fn write_series(tx: &mut Tx, batch: &Batch) -> Result<()> {
    for point in &batch.series {
        insert_point(tx, point).await?;
    }
    if batch.series_max <= 0 {
        return Ok(());
    }
    let mut releases: Vec<&str> = batch.series.iter().map(|p| p.release.as_str()).collect();
    releases.sort_unstable();
    releases.dedup();
    for release in releases {
        thin_series(tx, release, batch.series_max).await?;
    }
    Ok(())
}

/// Drops every other point of a release holding more than `max` (the
/// 2nd, 4th, … oldest; never the newest), until it holds at most `max`.
async fn thin_series(tx: &mut Tx, release: &str, max: i64) -> Result<()> {
    loop {
        let count: i64 = q("SELECT COUNT(*) FROM series WHERE release = $1")
            .bind(release)
            .scalar(&mut *tx)
            .await?;
        if count <= max {
            return Ok(());
        }
        let dropped = q("DELETE FROM series WHERE release = $1 AND at_ms IN (\
             SELECT at_ms FROM (SELECT at_ms, ROW_NUMBER() OVER (ORDER BY at_ms) AS n \
               FROM series WHERE release = $1) ranked \
             WHERE ranked.n % 2 = 0 \
               AND ranked.at_ms < (SELECT MAX(at_ms) FROM series WHERE release = $1))")
        .bind(release)
        .execute(&mut *tx)
        .await?;
        // Two points and a bound of one: the newest stays whatever the bound.
        if dropped == 0 {
            return Ok(());
        }
    }
}

/// Records a series point; one already at that instant is replaced.
async fn insert_point(tx: &mut Tx, point: &SeriesPoint) -> Result<()> {
    q(
        "INSERT INTO series (release, service, at_ms, body) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (release, at_ms) DO UPDATE SET body = excluded.body",
    )
    .bind(&point.release)
    .bind(&point.service)
    .bind(point.at_ms)
    .bind(&point.body.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// `%text%` for LIKE with `!` escaping its wildcards and itself.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[async_trait]
impl Store for SqlStore {
    async fn commit(&self, batches: &[Batch]) -> Result<()> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        for batch in batches {
            self.write_engine(&mut tx, batch).await?;
        }
        for batch in batches {
            write_governance(&mut tx, batch).await?;
        }
        for batch in batches {
            for (hash, bytes) in &batch.blobs {
                insert_blob(&mut tx, hash, bytes, batch.answered_at_ms).await?;
            }
            rewrite(&mut tx, batch).await?;
        }
        for batch in batches {
            write_series(&mut tx, batch).await?;
        }
        for snap in batches.iter().flat_map(|b| &b.snapshots) {
            q(
                "INSERT INTO snapshots (service, journal_seq, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (service) DO UPDATE SET journal_seq = excluded.journal_seq, \
                 body = excluded.body",
            )
            .bind(&snap.service)
            .bind(snap.journal_seq)
            .bind(&snap.body)
            .execute(&mut tx)
            .await?;
        }
        let pending: Vec<&PendingAudit> = batches.iter().flat_map(|b| &b.audit).collect();
        append_audit(&mut tx, &pending).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn snapshot(&self, service: &str) -> Result<Option<Snapshot>> {
        let snap = q("SELECT service, journal_seq, body FROM snapshots WHERE service = $1")
            .bind(service)
            .fetch_optional(&self.pool)
            .await?;
        Ok(snap)
    }

    async fn last_seqs(&self) -> Result<(i64, i64)> {
        let journal: Option<i64> = q("SELECT MAX(seq) FROM journal").scalar(&self.pool).await?;
        let decisions: Option<i64> = q("SELECT MAX(seq) FROM decisions")
            .scalar(&self.pool)
            .await?;
        Ok((journal.unwrap_or(0), decisions.unwrap_or(0)))
    }

    async fn put_policy(
        &self,
        service: &str,
        yaml: &str,
        at: &str,
        audit: &PendingAudit,
    ) -> Result<i64> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let last: Option<i64> = q("SELECT MAX(version) FROM policies WHERE service = $1")
            .bind(service)
            .scalar(&mut tx)
            .await?;
        let version = last.unwrap_or(0) + 1;
        q("INSERT INTO policies (service, version, yaml, created_at) VALUES ($1, $2, $3, $4)")
            .bind(service)
            .bind(version)
            .bind(yaml)
            .bind(at)
            .execute(&mut tx)
            .await?;
        let mut audit = audit.clone();
        audit.detail["version"] = serde_json::Value::from(version);
        append_audit(&mut tx, &[&audit]).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn policy(&self, service: &str) -> Result<Option<PolicyRecord>> {
        let row = q(
            "SELECT service, version, yaml, created_at FROM policies WHERE service = $1 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(service)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    async fn policy_version(&self, service: &str, version: i64) -> Result<Option<PolicyRecord>> {
        let row = q("SELECT service, version, yaml, created_at FROM policies \
             WHERE service = $1 AND version = $2")
        .bind(service)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    async fn policy_history(&self, service: &str) -> Result<Vec<PolicyRecord>> {
        let rows = q(
            "SELECT service, version, yaml, created_at FROM policies WHERE service = $1 \
             ORDER BY version",
        )
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn services(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = q("SELECT DISTINCT service FROM policies ORDER BY service")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    async fn register_version(&self, record: &VersionRecord, audit: &PendingAudit) -> Result<bool> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let done = q(
            "INSERT INTO versions (service, version, provenance, registered_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (service, version) DO NOTHING",
        )
        .bind(&record.service)
        .bind(&record.version)
        .bind(&record.provenance.to_string())
        .bind(&record.registered_at)
        .execute(&mut tx)
        .await?;
        commit_audited(tx, done == 1, audit).await
    }

    async fn version(&self, service: &str, version: &str) -> Result<Option<VersionRecord>> {
        let row = q(
            "SELECT service, version, provenance, registered_at FROM versions \
             WHERE service = $1 AND version = $2",
        )
        .bind(service)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    async fn versions(&self, service: &str) -> Result<Vec<VersionRecord>> {
        let rows = q(
            "SELECT service, version, provenance, registered_at FROM versions \
             WHERE service = $1 ORDER BY registered_at, version",
        )
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn release(&self, id: &str) -> Result<Option<ReleaseRecord>> {
        let row = q("SELECT id, service, body FROM releases WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    async fn releases(&self, service: Option<&str>) -> Result<Vec<ReleaseRecord>> {
        let rows = match service {
            Some(s) => {
                q("SELECT id, service, body FROM releases WHERE service = $1 \
                     ORDER BY created_seq, id")
                .bind(s)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                q("SELECT id, service, body FROM releases ORDER BY created_seq, id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }

    async fn current_releases(&self) -> Result<Vec<ReleaseRecord>> {
        let rows = q(
            "SELECT id, service, body FROM releases r WHERE created_seq = \
             (SELECT MAX(created_seq) FROM releases n WHERE n.service = r.service) \
             ORDER BY service, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn last_start(&self, service: &str) -> Result<Option<i64>> {
        Ok(
            q("SELECT MAX(seq) FROM journal WHERE service = $1 AND kind = 'start'")
                .bind(service)
                .scalar(&self.pool)
                .await?,
        )
    }

    async fn journal(&self, service: &str, from: i64, limit: i64) -> Result<Vec<JournalEntry>> {
        let rows = q(
            "SELECT seq, service, kind, body FROM journal WHERE service = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(service)
        .bind(from)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn decisions(
        &self,
        service: &str,
        since_ms: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DecisionEntry>> {
        let rows = q("SELECT seq, service, at_ms, line FROM decisions \
             WHERE service = $1 AND at_ms >= $2 AND seq > $3 ORDER BY seq LIMIT $4")
        .bind(service)
        .bind(since_ms)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn series(&self, release: &str, from_ms: i64, limit: i64) -> Result<Vec<SeriesPoint>> {
        let rows = q("SELECT release, service, at_ms, body FROM series \
             WHERE release = $1 AND at_ms >= $2 ORDER BY at_ms LIMIT $3")
        .bind(release)
        .bind(from_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn answer(&self, key: &str) -> Result<Option<String>> {
        Ok(q("SELECT answer FROM answers WHERE key = $1")
            .bind(key)
            .scalar_optional(&self.pool)
            .await?)
    }

    async fn forget_answers(&self, prefix: &str, before_ms: i64) -> Result<u64> {
        // substr rather than LIKE: a prefix may hold `%` or `_`.
        self.write_one(
            q("DELETE FROM answers WHERE at_ms < $1 AND substr(key, 1, length($2)) = $2")
                .bind(before_ms)
                .bind(prefix),
        )
        .await
    }

    async fn set_sinks(&self, service: &str, sinks: &[Sink], audit: &PendingAudit) -> Result<()> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        q("DELETE FROM sinks WHERE service = $1")
            .bind(service)
            .execute(&mut tx)
            .await?;
        for sink in sinks {
            let secret = self.seal(&sink.secret, &sink.url)?;
            q("INSERT INTO sinks (service, url, secret) VALUES ($1, $2, $3)")
                .bind(service)
                .bind(&sink.url)
                .bind(&secret)
                .execute(&mut tx)
                .await?;
        }
        append_audit(&mut tx, &[audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sinks(&self, service: &str) -> Result<Vec<Sink>> {
        let rows: Vec<(String, String)> =
            q("SELECT url, secret FROM sinks WHERE service = $1 ORDER BY url")
                .bind(service)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(url, secret)| {
                Ok(Sink {
                    secret: self.unseal(secret, &url)?,
                    url,
                })
            })
            .collect()
    }

    async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxEntry>> {
        let rows: Vec<OutboxRow> = q(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox \
             WHERE delivered_at_ms IS NULL AND next_at_ms <= $1 ORDER BY next_at_ms, id LIMIT $2"
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| self.outbox_entry(r)).collect()
    }

    async fn due_per_sink(&self, now_ms: i64, sinks: i64) -> Result<Vec<OutboxEntry>> {
        // PostgreSQL (before 16) wants the subquery named.
        let rows: Vec<OutboxRow> = q(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM ( \
               SELECT *, ROW_NUMBER() OVER (PARTITION BY url ORDER BY next_at_ms, id) AS nth \
               FROM outbox WHERE delivered_at_ms IS NULL AND next_at_ms <= $1 \
             ) AS due WHERE nth = 1 ORDER BY next_at_ms, id LIMIT $2"
        ))
        .bind(now_ms)
        .bind(sinks)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| self.outbox_entry(r)).collect()
    }

    async fn delivered(&self, id: &str, at_ms: i64) -> Result<()> {
        self.write_one(
            q(
                "UPDATE outbox SET delivered_at_ms = $1, attempts = attempts + 1, \
                 last_error = NULL WHERE id = $2",
            )
            .bind(at_ms)
            .bind(id),
        )
        .await?;
        Ok(())
    }

    async fn retry_later(&self, id: &str, next_at_ms: i64, error: &str) -> Result<()> {
        self.write_one(
            q(
                "UPDATE outbox SET next_at_ms = $1, attempts = attempts + 1, last_error = $2 \
                 WHERE id = $3",
            )
            .bind(next_at_ms)
            .bind(error)
            .bind(id),
        )
        .await?;
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let counts = q(
            "SELECT COALESCE(SUM(CASE WHEN delivered_at_ms IS NULL THEN 1 ELSE 0 END), 0) AS pending, \
             COALESCE(SUM(CASE WHEN delivered_at_ms IS NULL THEN 0 ELSE 1 END), 0) AS delivered \
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(counts)
    }

    async fn checkpoint(
        &self,
        at_ms: i64,
        only_after: i64,
        sign: &SignCheckpoint<'_>,
        publish: &PublishCheckpoint<'_>,
    ) -> Result<Option<AuditLine>> {
        let _appending = self.appending.lock().await;
        // Immediate: the head read is the head signed, even with another
        // process appending.
        let mut tx = self.write_tx().await?;
        let head = stored_tail(&mut tx).await?;
        if head.0 <= only_after || is_checkpoint(&mut tx, head.0).await? {
            return Ok(None);
        }
        let record = PendingAudit {
            at_ms,
            principal: "ripcord".into(),
            action: ripcord_core::audit::CHECKPOINT.into(),
            subject: "audit".into(),
            detail: sign(head.0, head.1),
        };
        let appended = append_audit(&mut tx, &[&record]).await?;
        let Some(signed) = appended.into_iter().next() else {
            return Err(StoreError::Corrupt(
                "the checkpoint record was not appended".into(),
            ));
        };
        for delivery in publish(&signed) {
            self.insert_outbox(&mut tx, &delivery).await?;
        }
        tx.commit().await?;
        Ok(Some(signed))
    }

    async fn audit(&self, from: i64, limit: i64) -> Result<Vec<AuditLine>> {
        let rows = q("SELECT seq, line FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2")
            .bind(from)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    async fn put_blob(&self, hash: &str, bytes: &[u8], audit: &PendingAudit) -> Result<bool> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let inserted = insert_blob(&mut tx, hash, bytes, audit.at_ms).await?;
        commit_audited(tx, inserted, audit).await
    }

    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        Ok(q("SELECT bytes FROM blobs WHERE hash = $1")
            .bind(hash)
            .scalar_optional(&self.pool)
            .await?)
    }

    async fn journal_count(&self, service: &str, kind: &str) -> Result<i64> {
        Ok(
            q("SELECT COUNT(*) FROM journal WHERE service = $1 AND kind = $2")
                .bind(service)
                .bind(kind)
                .scalar(&self.pool)
                .await?,
        )
    }

    async fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>> {
        Ok(q("SELECT * FROM docs WHERE kind = $1 AND id = $2")
            .bind(kind)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn docs(&self, kind: &str, service: Option<&str>) -> Result<Vec<Doc>> {
        Ok(q(
            "SELECT * FROM docs WHERE kind = $1 AND ($2 IS NULL OR service = $2) \
             ORDER BY created_ms, id",
        )
        .bind(kind)
        .bind(service)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn due_timers(&self, now_ms: i64, limit: i64) -> Result<Vec<Timer>> {
        Ok(
            q("SELECT * FROM timers WHERE due_ms <= $1 ORDER BY due_ms, id LIMIT $2")
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn timers(&self) -> Result<Vec<Timer>> {
        Ok(q("SELECT * FROM timers ORDER BY due_ms, id")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn integrity(&self) -> Result<Vec<String>> {
        self.pool.integrity().await
    }

    async fn expire(
        &self,
        class: DataClass,
        before_ms: i64,
        limit: i64,
        held: &Held,
        audit: &PendingAudit,
    ) -> Result<Expired> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let (expired, detail) =
            crate::retention::expire(&mut tx, class, (before_ms, limit), held).await?;
        if expired.deleted == 0 {
            return Ok(expired);
        }
        let mut record = audit.clone();
        // The action audit verification looks for to accept a cut prefix.
        record.action = ripcord_core::audit::EXPIRED.into();
        record.detail = serde_json::json!({
            "class": class.as_str(),
            "before_ms": before_ms,
            "deleted": expired.deleted,
            "held": expired.held,
        });
        if let (Some(to), serde_json::Value::Object(from)) = (record.detail.as_object_mut(), detail)
        {
            to.extend(from);
        }
        append_audit(&mut tx, &[&record]).await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn pruned_through(&self, service: &str) -> Result<Option<i64>> {
        q("SELECT through_seq FROM pruned WHERE service = $1")
            .bind(service)
            .scalar_optional(&self.pool)
            .await
    }

    async fn events_containing(
        &self,
        needles: Option<&[String]>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventsEntry>> {
        let needles = needles.unwrap_or(&[]);
        // LIKE, with its wildcards escaped, is portable; it may match more
        // than asked (SQLite's is case-blind), never less: callers parse.
        let any: Vec<String> = (0..needles.len())
            .map(|i| format!("body LIKE ${} ESCAPE '!'", i + 3))
            .collect();
        let filter = if any.is_empty() {
            String::new()
        } else {
            format!(" AND ({})", any.join(" OR "))
        };
        let patterns: Vec<String> = needles.iter().map(|n| like_pattern(n)).collect();
        let mut query = q_built(format!(
            "SELECT seq, service, release_id, body FROM journal \
             WHERE kind = 'events' AND seq > $1{filter} ORDER BY seq LIMIT $2"
        ))
        .bind(after)
        .bind(limit);
        for p in &patterns {
            query = query.bind(p);
        }
        query.fetch_all(&self.pool).await
    }

    async fn blob_addresses(&self, after: &str, limit: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            q("SELECT hash FROM blobs WHERE hash > $1 ORDER BY hash LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(h,)| h).collect())
    }

    async fn put_token(&self, token: &TokenRecord, audit: &PendingAudit) -> Result<bool> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let done = q(concat!(
            "INSERT INTO tokens (",
            token_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING"
        ))
        .bind(&token.name)
        .bind(&token.role)
        .bind(&token.hash)
        .bind(token.created_at_ms)
        .bind(token.expires_at_ms)
        .bind(token.revoked_at_ms)
        .bind(&token.created_by)
        .bind(&token.person)
        .bind(&serde_json::to_string(&token.services).unwrap_or_else(|_| "[]".into()))
        .execute(&mut tx)
        .await?;
        commit_audited(tx, done == 1, audit).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row: Option<TokenRow> = q(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(token_record).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = q(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(token_record).collect()
    }

    async fn revoke_token(&self, name: &str, at_ms: i64, audit: &PendingAudit) -> Result<bool> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let done =
            q("UPDATE tokens SET revoked_at_ms = $1 WHERE name = $2 AND revoked_at_ms IS NULL")
                .bind(at_ms)
                .bind(name)
                .execute(&mut tx)
                .await?;
        commit_audited(tx, done == 1, audit).await
    }

    async fn acquire_lease(&self, holder: &str, ttl_ms: i64) -> Result<Lease> {
        self.lease_ms
            .store(ttl_ms.max(0), std::sync::atomic::Ordering::Relaxed);
        // About to take an expired lease from another holder: a write
        // transaction older than half a period is the lost leader's.
        let taking = lease::read(&self.pool)
            .await?
            .is_some_and(|l| l.holder != holder && !l.is_live());
        if taking {
            let ended = self.pool.break_stuck_writers(ttl_ms / 2).await?;
            if ended > 0 {
                tracing::warn!(
                    "ended {ended} session(s) of the lost leader that held the write lock"
                );
            }
        }
        // Unfenced: asking again is how a deposed leader learns who leads.
        let mut tx = self.pool.begin_lease(self.idle_ms(), ttl_ms / 3).await?;
        let lease = lease::acquire(&mut tx, holder, ttl_ms).await?;
        tx.commit().await?;
        Ok(lease)
    }

    async fn lease(&self) -> Result<Option<Lease>> {
        lease::read(&self.pool).await
    }

    async fn release_lease(&self, holder: &str) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        lease::release(&mut tx, holder).await?;
        tx.commit().await
    }

    fn fence(&self, holder: &str, epoch: i64) {
        let fence = Fence {
            holder: holder.to_string(),
            epoch,
        };
        *self
            .fence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fence);
    }
}

fn token_record(row: TokenRow) -> Result<TokenRecord> {
    let services = serde_json::from_str(&row.services)
        .map_err(|e| StoreError::Corrupt(format!("token {:?}: services: {e}", row.name)))?;
    Ok(TokenRecord {
        person: row.person.unwrap_or_else(|| row.name.clone()),
        services,
        name: row.name,
        role: row.role,
        hash: row.hash,
        created_at_ms: row.created_at_ms,
        expires_at_ms: row.expires_at_ms,
        revoked_at_ms: row.revoked_at_ms,
        created_by: row.created_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store at the schema before the outbox's key column, with the
    /// given outbox rows (id, kind, payload).
    async fn before_key_column(rows: &[(&str, &str, &str)]) -> Result<SqlStore> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let pool = Pool::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?,
        );
        let mut tx = pool.begin_write().await?;
        tx.raw("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY)")
            .await?;
        // Migration 8 adds the column: the schema as of migration 7.
        for (i, migration) in MIGRATIONS[..7].iter().enumerate() {
            for sql in pool.dialect(migration) {
                tx.raw(sql).await?;
            }
            q("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        for (id, kind, payload) in rows {
            q(
                "INSERT INTO outbox (id, service, kind, url, secret, payload, attempts, next_at_ms) \
                 VALUES ($1, 'svc', $2, 'http://127.0.0.1:9/hook', '', $3, 0, 0)",
            )
            .bind(*id)
            .bind(*kind)
            .bind(*payload)
            .execute(&pool)
            .await?;
        }
        Ok(SqlStore {
            pool,
            appending: tokio::sync::Mutex::new(()),
            sealer: None,
            fence: std::sync::Mutex::new(None),
            lease_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// A webhook queued before the key had its column is retried with the
    /// key its payload carried; the others go under their id, as before.
    #[tokio::test]
    async fn webhooks_queued_before_the_key_column_keep_their_key() -> Result<()> {
        let store = before_key_column(&[
            (
                "msg_1_0",
                "webhook",
                r#"{"idempotency_key":"svc:v1->v2#1/pause/1"}"#,
            ),
            (
                "msg_2_0",
                "webhook",
                r#"{"type":"decision.criterion_breached"}"#,
            ),
            ("msg_3_0", "webhook", "not JSON"),
            ("ntf_1", "slack", r#"{"idempotency_key":"not a webhook"}"#),
        ])
        .await?;
        store.migrate().await?;
        let keys: Vec<(String, Option<String>)> = store
            .due(1, 10)
            .await?
            .into_iter()
            .map(|e| (e.id, e.idempotency_key))
            .collect();
        let key = |k: &str| Some(k.to_string());
        assert_eq!(
            keys,
            [
                ("msg_1_0".into(), key("svc:v1->v2#1/pause/1")),
                ("msg_2_0".into(), None),
                ("msg_3_0".into(), None),
                ("ntf_1".into(), None),
            ]
        );
        Ok(())
    }
}
