//! The embedded store: one SQLite file (bundled SQLite through sqlx), WAL,
//! `synchronous=FULL` so that a committed transaction survives power loss.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use ripcord_core::audit::{GENESIS, Record, hex, link, to_line};

use crate::{
    AuditLine, Batch, DataClass, DecisionEntry, Doc, EventsEntry, Expired, Held, JournalEntry,
    OutboxCounts, OutboxEntry, PendingAudit, PolicyRecord, PublishCheckpoint, ReleaseRecord,
    Result, SignCheckpoint, Sink, Snapshot, Store, StoreError, Timer, TimerChange, TokenRecord,
    VersionRecord,
};

/// Schema migrations, applied in order once each. Portable SQL only.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE policies (
    service TEXT NOT NULL,
    version BIGINT NOT NULL,
    yaml TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (service, version)
);
CREATE TABLE versions (
    service TEXT NOT NULL,
    version TEXT NOT NULL,
    provenance TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    PRIMARY KEY (service, version)
);
CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    created_seq BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX releases_service ON releases (service, created_seq);
CREATE TABLE journal (
    seq BIGINT PRIMARY KEY,
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX journal_service ON journal (service, kind, seq);
CREATE TABLE decisions (
    seq BIGINT PRIMARY KEY,
    service TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX decisions_service ON decisions (service, at_ms, seq);
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at_ms BIGINT NOT NULL,
    delivered_at_ms BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (delivered_at_ms, next_at_ms);
CREATE TABLE answers (
    key TEXT PRIMARY KEY,
    answer TEXT NOT NULL
);
CREATE TABLE sinks (
    service TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    PRIMARY KEY (service, url)
);
"#,
    r#"
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    line TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE docs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    service TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE timers (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    due_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX timers_due ON timers (due_ms);
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT,
    created_by TEXT NOT NULL
);
"#,
    // Notification channels share the outbox: how each entry is delivered.
    r#"
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
"#,
    r#"
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    bytes BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"#,
    // Idempotency answers expire (ingest keys): when each was given.
    r#"
ALTER TABLE answers ADD COLUMN at_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX answers_at ON answers (at_ms);
"#,
    // Tokens belong to a person and may be scoped to services (a JSON
    // array of names; empty: every service).
    r#"
ALTER TABLE tokens ADD COLUMN person TEXT;
ALTER TABLE tokens ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
"#,
    // A signed webhook's idempotency key has a column of its own. Webhooks
    // queued before carry it only in their payload: copied from there, so
    // that a retry sends the key its first attempt sent. (`json_extract`
    // is SQLite's; a new store of another backend has no such rows.)
    r#"
ALTER TABLE outbox ADD COLUMN idempotency_key TEXT;
UPDATE outbox SET idempotency_key = json_extract(payload, '$.idempotency_key')
WHERE kind = 'webhook' AND json_valid(payload);
"#,
    // The latest snapshot of each service's engine, with the journal
    // position it covers (restart = snapshot + the journal after it).
    r#"
CREATE TABLE snapshots (
    service TEXT PRIMARY KEY,
    journal_seq BIGINT NOT NULL,
    body BLOB NOT NULL
);
"#,
    // Retention: the age of journal entries and blobs by the server's
    // clock, and the release journal entries and decisions belong to (what
    // a legal hold keeps). Entries of unknown age count from the upgrade,
    // so that nothing goes before a full period has passed; old decisions
    // find their release by its engine name; a service's last pruned
    // journal entry tells a restart what it can no longer replay.
    r#"
ALTER TABLE journal ADD COLUMN at_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN release_id TEXT;
ALTER TABLE decisions ADD COLUMN release_id TEXT;
ALTER TABLE blobs ADD COLUMN at_ms BIGINT NOT NULL DEFAULT 0;
UPDATE journal SET at_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
UPDATE journal SET release_id = (
    SELECT r.id FROM releases r WHERE r.service = journal.service AND r.created_seq <= journal.seq
    ORDER BY r.created_seq DESC LIMIT 1);
UPDATE decisions SET release_id = (
    SELECT r.id FROM releases r WHERE r.service = decisions.service AND json_valid(r.body)
    AND json_extract(r.body, '$.engine_release') = json_extract(decisions.line, '$.release')
    ORDER BY r.created_seq DESC LIMIT 1)
WHERE json_valid(line);
UPDATE blobs SET at_ms = COALESCE(CAST(strftime('%s', created_at) AS INTEGER) * 1000, 0);
CREATE INDEX journal_age ON journal (at_ms);
CREATE INDEX decisions_age ON decisions (at_ms);
CREATE INDEX blobs_age ON blobs (at_ms);
CREATE TABLE pruned (
    service TEXT PRIMARY KEY,
    through_seq BIGINT NOT NULL
);
"#,
];

pub struct SqliteStore {
    pool: SqlitePool,
    /// Held by every transaction that appends to the audit chain, so that
    /// this process's writers cannot fork it (the tail itself is read from
    /// the file inside each transaction).
    appending: tokio::sync::Mutex<()>,
    /// Seals webhook secrets before they are written; `None`: stored as
    /// given (a store opened without a key, such as `ripcord token`'s).
    sealer: Option<crate::seal::Sealer>,
}

impl SqliteStore {
    /// A write transaction takes SQLite's write lock when it begins. A
    /// deferred one that reads first and then writes fails at once with
    /// "database is locked" (the busy timeout does not retry it) when
    /// another connection wrote in between: the writer, the checkpoint
    /// task and the few writes beside the writer do exactly that.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Opens (creating if needed) the store file and brings its schema up
    /// to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::with_options(options, 4).await
    }

    /// A private in-memory store (tests).
    pub async fn in_memory() -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // An in-memory database exists only on its own connection.
        Self::with_options(options, 1).await
    }

    async fn with_options(options: SqliteConnectOptions, connections: u32) -> Result<SqliteStore> {
        // WAL lets readers run beside the one writer.
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await?;
        let store = SqliteStore {
            pool,
            appending: tokio::sync::Mutex::new(()),
            sealer: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Seals the webhook secrets it writes with `key` (kept outside the
    /// database) and opens those it reads ([`crate::seal`]).
    pub fn sealing_secrets(mut self, key: &[u8; 32]) -> Result<SqliteStore> {
        self.sealer = Some(crate::seal::Sealer::new(key)?);
        Ok(self)
    }

    fn seal(&self, secret: &str, url: &str) -> Result<String> {
        match &self.sealer {
            Some(s) if !secret.is_empty() => s.seal(secret, url),
            _ => Ok(secret.to_string()),
        }
    }

    /// Queues one delivery (its secret sealed); an id already queued is
    /// left as it is, so a retried write delivers once.
    async fn insert_outbox(&self, tx: &mut sqlx::SqliteConnection, o: &OutboxEntry) -> Result<()> {
        let secret = self.seal(&o.secret, &o.url)?;
        sqlx::query(
            "INSERT INTO outbox \
             (id, service, kind, url, secret, payload, idempotency_key, attempts, next_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
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

    /// An outbox row as read by `due` and `due_per_sink`, its secret unsealed.
    fn outbox_entry(&self, r: &sqlx::sqlite::SqliteRow) -> Result<OutboxEntry> {
        let url: String = r.try_get("url")?;
        Ok(OutboxEntry {
            id: r.try_get("id")?,
            service: r.try_get("service")?,
            kind: r.try_get("kind")?,
            secret: self.unseal(r.try_get("secret")?, &url)?,
            url,
            payload: r.try_get("payload")?,
            idempotency_key: r.try_get("idempotency_key")?,
            attempts: r.try_get("attempts")?,
            next_at_ms: r.try_get("next_at_ms")?,
        })
    }

    fn unseal(&self, stored: String, url: &str) -> Result<String> {
        match &self.sealer {
            Some(s) => s.open(&stored, url),
            None => Ok(stored),
        }
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .execute(&self.pool)
            .await?;
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(&self.pool)
            .await?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            let mut tx = self.write_tx().await?;
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

fn unhex(text: &str) -> Result<[u8; 32]> {
    ripcord_core::audit::unhex(text)
        .ok_or_else(|| StoreError::Corrupt(format!("audit hash {text:?}")))
}

/// The chain's tail as stored, read inside the transaction that extends it.
async fn stored_tail(tx: &mut sqlx::SqliteConnection) -> Result<(i64, [u8; 32])> {
    let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Ok((0, GENESIS));
    };
    let hash: String = row.try_get("hash")?;
    Ok((row.try_get("seq")?, unhex(&hash)?))
}

/// Whether record `seq` is a checkpoint (a checkpoint over a checkpoint
/// would vouch for nothing new).
async fn is_checkpoint(tx: &mut sqlx::SqliteConnection, seq: i64) -> Result<bool> {
    let line: Option<String> = sqlx::query_scalar("SELECT line FROM audit WHERE seq = $1")
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
    let action = line
        .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .and_then(|v| v["action"].as_str().map(str::to_string));
    Ok(action.as_deref() == Some(ripcord_core::audit::CHECKPOINT))
}

/// Appends audit records inside a transaction, linking them from the
/// stored tail. The tail is read from the file, not kept in memory, because
/// another process (`ripcord token`) may have appended since.
async fn append_audit(
    tx: &mut sqlx::SqliteConnection,
    pending: &[&PendingAudit],
) -> Result<Vec<AuditLine>> {
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
        sqlx::query(
            "INSERT INTO audit (seq, at_ms, principal, action, subject, line, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(seq)
        .bind(p.at_ms)
        .bind(&p.principal)
        .bind(&p.action)
        .bind(&p.subject)
        .bind(&line)
        .bind(hex(&hash))
        .execute(&mut *tx)
        .await?;
        appended.push(AuditLine { seq, line });
        prev = hash;
    }
    Ok(appended)
}

/// Upserts a batch's documents and applies its timer changes.
async fn write_governance(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    batch: &Batch,
) -> Result<()> {
    for d in &batch.docs {
        sqlx::query(
            "INSERT INTO docs (kind, id, service, created_ms, body) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
        )
        .bind(&d.kind)
        .bind(&d.id)
        .bind(&d.service)
        .bind(d.created_ms)
        .bind(d.body.to_string())
        .execute(&mut **tx)
        .await?;
    }
    for change in &batch.timers {
        match change {
            TimerChange::Set(t) => {
                sqlx::query(
                    "INSERT INTO timers (id, service, due_ms, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET due_ms = excluded.due_ms, body = excluded.body",
                )
                .bind(&t.id)
                .bind(&t.service)
                .bind(t.due_ms)
                .bind(t.body.to_string())
                .execute(&mut **tx)
                .await?;
            }
            TimerChange::Cancel(id) => {
                sqlx::query("DELETE FROM timers WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Inserts a blob unless its address is stored; `true` if inserted.
async fn insert_blob(
    tx: &mut sqlx::SqliteConnection,
    hash: &str,
    bytes: &[u8],
    at_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO blobs (hash, bytes, at_ms) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(hash)
    .bind(bytes)
    .bind(at_ms)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A purge's changes: journal bodies replaced, blobs deleted.
async fn rewrite(tx: &mut sqlx::SqliteConnection, batch: &Batch) -> Result<()> {
    for (seq, body) in &batch.rewrites {
        sqlx::query("UPDATE journal SET body = $1 WHERE seq = $2")
            .bind(body)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
    }
    for hash in &batch.forget_blobs {
        sqlx::query("DELETE FROM blobs WHERE hash = $1")
            .bind(hash)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, batches: &[Batch]) -> Result<()> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        for batch in batches {
            for j in &batch.journal {
                sqlx::query(
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
                sqlx::query(
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
                self.insert_outbox(&mut tx, o).await?;
            }
            for r in &batch.releases {
                let seq = batch.journal.first().map_or(0, |j| j.seq);
                sqlx::query(
                    "INSERT INTO releases (id, service, created_seq, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                )
                .bind(&r.id)
                .bind(&r.service)
                .bind(seq)
                .bind(r.body.to_string())
                .execute(&mut *tx)
                .await?;
            }
            for (key, answer) in &batch.answers {
                sqlx::query(
                    "INSERT INTO answers (key, answer, at_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(answer)
                .bind(batch.answered_at_ms)
                .execute(&mut *tx)
                .await?;
            }
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
        for snap in batches.iter().flat_map(|b| &b.snapshots) {
            sqlx::query(
                "INSERT INTO snapshots (service, journal_seq, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (service) DO UPDATE SET journal_seq = excluded.journal_seq, \
                 body = excluded.body",
            )
            .bind(&snap.service)
            .bind(snap.journal_seq)
            .bind(&snap.body)
            .execute(&mut *tx)
            .await?;
        }
        let pending: Vec<&PendingAudit> = batches.iter().flat_map(|b| &b.audit).collect();
        append_audit(&mut tx, &pending).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn snapshot(&self, service: &str) -> Result<Option<Snapshot>> {
        let snap =
            sqlx::query_as("SELECT service, journal_seq, body FROM snapshots WHERE service = $1")
                .bind(service)
                .fetch_optional(&self.pool)
                .await?;
        Ok(snap)
    }

    async fn last_seqs(&self) -> Result<(i64, i64)> {
        let journal: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM journal")
            .fetch_one(&self.pool)
            .await?;
        let decisions: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM decisions")
            .fetch_one(&self.pool)
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
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM policies WHERE service = $1")
                .bind(service)
                .fetch_one(&mut *tx)
                .await?;
        let version = last.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO policies (service, version, yaml, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(service)
        .bind(version)
        .bind(yaml)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.detail["version"] = serde_json::Value::from(version);
        append_audit(&mut tx, &[&audit]).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn policy(&self, service: &str) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query_as(
            "SELECT service, version, yaml, created_at FROM policies WHERE service = $1 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(service)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    async fn policy_version(&self, service: &str, version: i64) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query_as(
            "SELECT service, version, yaml, created_at FROM policies \
             WHERE service = $1 AND version = $2",
        )
        .bind(service)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    async fn policy_history(&self, service: &str) -> Result<Vec<PolicyRecord>> {
        let rows = sqlx::query_as(
            "SELECT service, version, yaml, created_at FROM policies WHERE service = $1 \
             ORDER BY version",
        )
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn services(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT service FROM policies ORDER BY service")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn register_version(&self, record: &VersionRecord, audit: &PendingAudit) -> Result<bool> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "INSERT INTO versions (service, version, provenance, registered_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (service, version) DO NOTHING",
        )
        .bind(&record.service)
        .bind(&record.version)
        .bind(record.provenance.to_string())
        .bind(&record.registered_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        append_audit(&mut tx, &[audit]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn version(&self, service: &str, version: &str) -> Result<Option<VersionRecord>> {
        let row = sqlx::query_as(
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
        let rows = sqlx::query_as(
            "SELECT service, version, provenance, registered_at FROM versions \
             WHERE service = $1 ORDER BY registered_at, version",
        )
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn release(&self, id: &str) -> Result<Option<ReleaseRecord>> {
        let row = sqlx::query_as("SELECT id, service, body FROM releases WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    async fn releases(&self, service: Option<&str>) -> Result<Vec<ReleaseRecord>> {
        let rows = match service {
            Some(s) => {
                sqlx::query_as(
                    "SELECT id, service, body FROM releases WHERE service = $1 \
                     ORDER BY created_seq, id",
                )
                .bind(s)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as("SELECT id, service, body FROM releases ORDER BY created_seq, id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }

    async fn last_start(&self, service: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar(
                "SELECT MAX(seq) FROM journal WHERE service = $1 AND kind = 'start'",
            )
            .bind(service)
            .fetch_one(&self.pool)
            .await?,
        )
    }

    async fn journal(&self, service: &str, from: i64, limit: i64) -> Result<Vec<JournalEntry>> {
        let rows = sqlx::query_as(
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
        let rows = sqlx::query_as(
            "SELECT seq, service, at_ms, line FROM decisions \
             WHERE service = $1 AND at_ms >= $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(service)
        .bind(since_ms)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn answer(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT answer FROM answers WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn forget_answers(&self, prefix: &str, before_ms: i64) -> Result<u64> {
        // substr rather than LIKE: a prefix may hold `%` or `_`.
        let done =
            sqlx::query("DELETE FROM answers WHERE at_ms < $1 AND substr(key, 1, length($2)) = $2")
                .bind(before_ms)
                .bind(prefix)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    async fn set_sinks(&self, service: &str, sinks: &[Sink], audit: &PendingAudit) -> Result<()> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM sinks WHERE service = $1")
            .bind(service)
            .execute(&mut *tx)
            .await?;
        for sink in sinks {
            let secret = self.seal(&sink.secret, &sink.url)?;
            sqlx::query("INSERT INTO sinks (service, url, secret) VALUES ($1, $2, $3)")
                .bind(service)
                .bind(&sink.url)
                .bind(&secret)
                .execute(&mut *tx)
                .await?;
        }
        append_audit(&mut tx, &[audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sinks(&self, service: &str) -> Result<Vec<Sink>> {
        let rows = sqlx::query("SELECT url, secret FROM sinks WHERE service = $1 ORDER BY url")
            .bind(service)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let url: String = r.try_get("url")?;
                Ok(Sink {
                    secret: self.unseal(r.try_get("secret")?, &url)?,
                    url,
                })
            })
            .collect()
    }

    async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(
            "SELECT id, service, kind, url, secret, payload, idempotency_key, attempts, next_at_ms \
             FROM outbox \
             WHERE delivered_at_ms IS NULL AND next_at_ms <= $1 ORDER BY next_at_ms, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.outbox_entry(r)).collect()
    }

    async fn due_per_sink(&self, now_ms: i64, sinks: i64) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(
            "SELECT id, service, kind, url, secret, payload, idempotency_key, attempts, next_at_ms \
             FROM ( \
               SELECT *, ROW_NUMBER() OVER (PARTITION BY url ORDER BY next_at_ms, id) AS nth \
               FROM outbox WHERE delivered_at_ms IS NULL AND next_at_ms <= $1 \
             ) WHERE nth = 1 ORDER BY next_at_ms, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(sinks)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.outbox_entry(r)).collect()
    }

    async fn delivered(&self, id: &str, at_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET delivered_at_ms = $1, attempts = attempts + 1, last_error = NULL \
             WHERE id = $2",
        )
        .bind(at_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn retry_later(&self, id: &str, next_at_ms: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET next_at_ms = $1, attempts = attempts + 1, last_error = $2 \
             WHERE id = $3",
        )
        .bind(next_at_ms)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let counts = sqlx::query_as(
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
        let rows =
            sqlx::query_as("SELECT seq, line FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2")
                .bind(from)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }

    async fn put_blob(&self, hash: &str, bytes: &[u8], audit: &PendingAudit) -> Result<bool> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        if !insert_blob(&mut tx, hash, bytes, audit.at_ms).await? {
            return Ok(false);
        }
        append_audit(&mut tx, &[audit]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT bytes FROM blobs WHERE hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn journal_count(&self, service: &str, kind: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM journal WHERE service = $1 AND kind = $2")
                .bind(service)
                .bind(kind)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>> {
        Ok(
            sqlx::query_as("SELECT * FROM docs WHERE kind = $1 AND id = $2")
                .bind(kind)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn docs(&self, kind: &str, service: Option<&str>) -> Result<Vec<Doc>> {
        Ok(sqlx::query_as(
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
            sqlx::query_as("SELECT * FROM timers WHERE due_ms <= $1 ORDER BY due_ms, id LIMIT $2")
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn timers(&self) -> Result<Vec<Timer>> {
        Ok(sqlx::query_as("SELECT * FROM timers ORDER BY due_ms, id")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn integrity(&self) -> Result<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
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
        Ok(
            sqlx::query_scalar("SELECT through_seq FROM pruned WHERE service = $1")
                .bind(service)
                .fetch_optional(&self.pool)
                .await?,
        )
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
        let sql = format!(
            "SELECT seq, service, release_id, body FROM journal \
             WHERE kind = 'events' AND seq > $1{filter} ORDER BY seq LIMIT $2"
        );
        // Constants and placeholders only; the needles are bound.
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit);
        for n in needles {
            query = query.bind(like_pattern(n));
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    async fn blob_addresses(&self, after: &str, limit: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM blobs WHERE hash > $1 ORDER BY hash LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn put_token(&self, token: &TokenRecord, audit: &PendingAudit) -> Result<bool> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "INSERT INTO tokens (name, role, hash, created_at_ms, expires_at_ms, revoked_at_ms, \
             created_by, person, services) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&token.name)
        .bind(&token.role)
        .bind(&token.hash)
        .bind(token.created_at_ms)
        .bind(token.expires_at_ms)
        .bind(token.revoked_at_ms)
        .bind(&token.created_by)
        .bind(&token.person)
        .bind(serde_json::to_string(&token.services).unwrap_or_else(|_| "[]".into()))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        append_audit(&mut tx, &[audit]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT name, role, hash, created_at_ms, expires_at_ms, revoked_at_ms, created_by, \
             person, services FROM tokens WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(
            "SELECT name, role, hash, created_at_ms, expires_at_ms, revoked_at_ms, created_by, \
             person, services FROM tokens ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_token(&self, name: &str, at_ms: i64, audit: &PendingAudit) -> Result<bool> {
        let _appending = self.appending.lock().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at_ms = $1 WHERE name = $2 AND revoked_at_ms IS NULL",
        )
        .bind(at_ms)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        append_audit(&mut tx, &[audit]).await?;
        tx.commit().await?;
        Ok(true)
    }
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

fn token_row(row: &sqlx::sqlite::SqliteRow) -> Result<TokenRecord> {
    let name: String = row.try_get("name")?;
    let person: Option<String> = row.try_get("person")?;
    let services: String = row.try_get("services")?;
    let services = serde_json::from_str(&services)
        .map_err(|e| StoreError::Corrupt(format!("token {name:?}: services: {e}")))?;
    Ok(TokenRecord {
        person: person.unwrap_or_else(|| name.clone()),
        services,
        name,
        role: row.try_get("role")?,
        hash: row.try_get("hash")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
        created_by: row.try_get("created_by")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory store at the schema of the first `n` migrations.
    async fn at_migration(n: usize) -> Result<SqlitePool> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::query("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY)")
            .execute(&pool)
            .await?;
        for (i, sql) in MIGRATIONS[..n].iter().enumerate() {
            sqlx::raw_sql(*sql).execute(&pool).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&pool)
                .await?;
        }
        Ok(pool)
    }

    fn on(pool: SqlitePool) -> SqliteStore {
        SqliteStore {
            pool,
            appending: tokio::sync::Mutex::new(()),
            sealer: None,
        }
    }

    /// Rows stored before retention's columns get their release (the
    /// journal's from the release records, the decisions' by the release's
    /// engine name) and an age that lets them stay a full period.
    #[tokio::test]
    async fn rows_stored_before_retention_get_their_release_and_a_fresh_age() -> Result<()> {
        let pool = at_migration(9).await?;
        for sql in [
            "INSERT INTO releases VALUES ('svc-1', 'svc', 1, '{\"engine_release\":\"svc:v1->v2#1\"}')",
            "INSERT INTO releases VALUES ('svc-2', 'svc', 3, '{\"engine_release\":\"svc:v1->v3#1\"}')",
            "INSERT INTO journal VALUES (1, 'svc', 'start', '{}'), (2, 'svc', 'events', ''), \
             (3, 'svc', 'start', '{}'), (4, 'svc', 'tick', '{}')",
            "INSERT INTO decisions VALUES (1, 'svc', 5, '{\"release\":\"svc:v1->v2#1\"}'), \
             (2, 'svc', 6, '{\"release\":\"svc:v1->v3#1\"}'), (3, 'svc', 7, 'not json')",
            "INSERT INTO blobs (hash, bytes, created_at) VALUES ('b', x'00', '2026-01-01 00:00:00')",
        ] {
            sqlx::query(sql).execute(&pool).await?;
        }
        let store = on(pool);
        store.migrate().await?;
        let journal: Vec<(i64, Option<String>, i64)> =
            sqlx::query_as("SELECT seq, release_id, at_ms FROM journal ORDER BY seq")
                .fetch_all(&store.pool)
                .await?;
        let releases: Vec<_> = journal.iter().map(|(s, r, _)| (*s, r.clone())).collect();
        let svc = |n: &str| Some(n.to_string());
        assert_eq!(
            releases,
            [
                (1, svc("svc-1")),
                (2, svc("svc-1")),
                (3, svc("svc-2")),
                (4, svc("svc-2"))
            ]
        );
        // Stamped at the upgrade (this century, by the wall clock).
        assert!(journal.iter().all(|(_, _, at)| *at > 1_700_000_000_000));
        let decisions: Vec<Option<String>> =
            sqlx::query_scalar("SELECT release_id FROM decisions ORDER BY seq")
                .fetch_all(&store.pool)
                .await?;
        assert_eq!(decisions, [svc("svc-1"), svc("svc-2"), None]);
        let blob: i64 = sqlx::query_scalar("SELECT at_ms FROM blobs")
            .fetch_one(&store.pool)
            .await?;
        assert_eq!(blob, 1_767_225_600_000);
        Ok(())
    }

    /// A store at the schema before the outbox's key column, with the
    /// given outbox rows (id, kind, payload).
    async fn before_key_column(rows: &[(&str, &str, &str)]) -> Result<SqliteStore> {
        // Migration 8 adds the column: the schema as of migration 7.
        let pool = at_migration(7).await?;
        for (id, kind, payload) in rows {
            sqlx::query(
                "INSERT INTO outbox (id, service, kind, url, secret, payload, attempts, next_at_ms) \
                 VALUES ($1, 'svc', $2, 'http://127.0.0.1:9/hook', '', $3, 0, 0)",
            )
            .bind(id)
            .bind(kind)
            .bind(payload)
            .execute(&pool)
            .await?;
        }
        Ok(on(pool))
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
