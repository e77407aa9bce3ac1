//! The schema, as migrations applied in order once each
//! (`schema_migrations` counts them).
//!
//! One history serves both databases: most migrations are SQL both accept;
//! where they differ ([`Migration`]) a migration has a text for each
//! (binary columns: `BLOB`, `BYTEA`), or a backfill with SQLite's functions
//! of rows that a PostgreSQL store (never older than PostgreSQL support)
//! does not have. JSON is stored as `TEXT` on both, and the store
//! decodes it. A change to the schema appends one migration.

/// One step of the schema.
pub(crate) enum Migration {
    Both(&'static str),
    /// A change both make, then a backfill of rows that only an SQLite
    /// store can have (from before PostgreSQL support), with SQLite's
    /// functions.
    SqliteBackfill {
        change: &'static str,
        backfill: &'static str,
    },
    Each {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

use Migration::{Both, Each, SqliteBackfill};

/// The tables the store uses (for PostgreSQL's integrity check).
pub(crate) const TABLES: &[&str] = &[
    "policies",
    "versions",
    "releases",
    "journal",
    "decisions",
    "outbox",
    "answers",
    "sinks",
    "audit",
    "docs",
    "timers",
    "tokens",
    "blobs",
    "snapshots",
    "pruned",
    "leases",
    "series",
];

pub(crate) const MIGRATIONS: &[Migration] = &[
    Both(
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
    ),
    Both(
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
    ),
    Both(
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
    ),
    // Notification channels share the outbox: how each entry is delivered.
    Both(
        r#"
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
"#,
    ),
    Each {
        sqlite: r#"
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    bytes BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"#,
        postgres: r#"
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    created_at TEXT NOT NULL
        DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
);
"#,
    },
    // Idempotency answers expire (ingest keys): when each was given.
    Both(
        r#"
ALTER TABLE answers ADD COLUMN at_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX answers_at ON answers (at_ms);
"#,
    ),
    // Tokens belong to a person and may be scoped to services (a JSON
    // array of names; empty: every service).
    Both(
        r#"
ALTER TABLE tokens ADD COLUMN person TEXT;
ALTER TABLE tokens ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
"#,
    ),
    // A signed webhook's idempotency key has a column of its own. Webhooks
    // queued before carry it only in their payload: copied from there, so
    // that a retry sends the key its first attempt sent. (`json_extract`
    // is SQLite's; a PostgreSQL store has no such rows.)
    SqliteBackfill {
        change: "ALTER TABLE outbox ADD COLUMN idempotency_key TEXT;",
        backfill: r#"
UPDATE outbox SET idempotency_key = json_extract(payload, '$.idempotency_key')
WHERE kind = 'webhook' AND json_valid(payload);
"#,
    },
    // The latest snapshot of each service's engine, with the journal
    // position it covers (restart = snapshot + the journal after it).
    Each {
        sqlite: r#"
CREATE TABLE snapshots (
    service TEXT PRIMARY KEY,
    journal_seq BIGINT NOT NULL,
    body BLOB NOT NULL
);
"#,
        postgres: r#"
CREATE TABLE snapshots (
    service TEXT PRIMARY KEY,
    journal_seq BIGINT NOT NULL,
    body BYTEA NOT NULL
);
"#,
    },
    // Retention: the age of journal entries and blobs by the server's
    // clock, and the release journal entries and decisions belong to (what
    // a legal hold keeps). Entries of unknown age count from the upgrade,
    // so that nothing goes before a full period has passed; old decisions
    // find their release by its engine name; a service's last pruned
    // journal entry tells a restart what it can no longer replay.
    SqliteBackfill {
        change: r#"
ALTER TABLE journal ADD COLUMN at_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN release_id TEXT;
ALTER TABLE decisions ADD COLUMN release_id TEXT;
ALTER TABLE blobs ADD COLUMN at_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX journal_age ON journal (at_ms);
CREATE INDEX decisions_age ON decisions (at_ms);
CREATE INDEX blobs_age ON blobs (at_ms);
CREATE TABLE pruned (
    service TEXT PRIMARY KEY,
    through_seq BIGINT NOT NULL
);
"#,
        backfill: r#"
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
"#,
    },
    // The leader lease (one row, `leader`): its epoch is the fencing
    // token a leader's every write checks (`lease.rs`).
    Both(
        r#"
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
"#,
    ),
    // Each release's readings at a fixed cadence, for charts: one JSON
    // point per (release, instant), so recording an instant again (a
    // retried write) replaces it. Points expire with decisions, by age.
    Both(
        r#"
CREATE TABLE series (
    release TEXT NOT NULL,
    service TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (release, at_ms)
);
CREATE INDEX series_age ON series (at_ms);
"#,
    ),
];
