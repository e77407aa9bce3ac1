//! The one place that knows there are two database drivers.
//!
//! Every query of the store is written once, as SQL both SQLite and
//! PostgreSQL accept, and run through [`Q`]: its arguments are a small set
//! of values ([`Arg`]) and its rows are types that decode from either
//! driver's rows ([`Rows`]). [`Q`]'s methods dispatch to the driver here.
//! Everything the two databases do differently is in this module and in
//! [`crate::schema`]: how a write transaction starts (and so serialises
//! writers), the few migrations that differ, and what an integrity check
//! is.
//!
//! Why not sqlx's `Any` driver: it drops SQLite's connect options (WAL,
//! `synchronous=FULL`, the busy timeout) that durability depends on. Why
//! not a store generic over `sqlx::Database`: the bounds (an executor for
//! every `&mut Connection`, `Encode`/`Decode` for every column type) would
//! have to be repeated on every function that runs a query.

use std::borrow::Cow;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Database, Encode, FromRow, Postgres, Sqlite, Transaction, Type};

use crate::Result;
use crate::schema::{self, Migration};

/// The key of the PostgreSQL advisory lock every write transaction takes
/// first: the counterpart of SQLite's `BEGIN IMMEDIATE`, so that writers of
/// several processes take turns and the audit chain's tail one of them
/// reads is still the tail when it appends. (`ripcord` in ASCII.)
const WRITE_LOCK: i64 = 0x0072_6970_636f_7264;

/// A connection pool of one of the drivers.
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction: it holds the database's write lock from its start
/// to its commit (or its drop, which rolls back).
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Pool {
    /// Begins a write transaction, waiting for the write lock first. A
    /// transaction that read before taking it could append to an audit
    /// chain whose tail another writer has since moved (a fork), and on
    /// SQLite it fails outright with "database is locked". Unfenced: only
    /// migrations and the lease itself begin here; every other write goes
    /// through `SqlStore::write_tx`, which checks the store's fence.
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        self.begin_write_within(0).await
    }

    /// Like [`Pool::begin_write`]; on PostgreSQL, when `idle_ms` > 0, the
    /// server ends the session if the transaction sits idle that long. A
    /// leader cut off from the database mid-transaction holds the write
    /// lock, which every other replica's writes (taking the lease too)
    /// wait for; the database, not the lost leader, has to let it go.
    pub(crate) async fn begin_write_within(&self, idle_ms: i64) -> Result<Tx> {
        self.begin_locked(idle_ms, 0).await
    }

    /// A write transaction that waits at most `wait_ms` for the write lock
    /// on PostgreSQL (0: as long as it takes), for taking or renewing the
    /// lease: a lock held by a lost leader must not stall the replica that
    /// would break it ([`Pool::break_stuck_writers`]). SQLite's wait is its
    /// busy timeout.
    pub(crate) async fn begin_lease(&self, idle_ms: i64, wait_ms: i64) -> Result<Tx> {
        self.begin_locked(idle_ms, wait_ms).await
    }

    async fn begin_locked(&self, idle_ms: i64, wait_ms: i64) -> Result<Tx> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => {
                let mut tx = p.begin().await?;
                // One round trip: the settings (local to the transaction),
                // then the lock.
                sqlx::query(
                    "SELECT set_config('idle_in_transaction_session_timeout', $2, true), \
                     set_config('lock_timeout', $3, true), pg_advisory_xact_lock($1)",
                )
                .bind(WRITE_LOCK)
                .bind(idle_ms.max(0).to_string())
                .bind(wait_ms.max(0).to_string())
                .execute(&mut *tx)
                .await?;
                Tx::Postgres(tx)
            }
        })
    }

    /// On PostgreSQL, ends the sessions of this database that have held the
    /// write lock in a transaction begun more than `older_than_ms` ago; how
    /// many. Called only by a replica about to take an expired lease from
    /// another holder: such a transaction is a lost leader's, stuck where
    /// the idle timeout does not reach (cut off in the middle of a
    /// message), and it would hold the lock until its connection ends.
    /// Nothing on SQLite, whose lock dies with its process.
    pub(crate) async fn break_stuck_writers(&self, older_than_ms: i64) -> Result<i64> {
        let Pool::Postgres(p) = self else {
            return Ok(0);
        };
        let (ended,): (i64,) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid)) \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted \
               AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND a.pid <> pg_backend_pid() \
               AND a.xact_start < clock_timestamp() - make_interval(secs => $3)",
        )
        .bind(WRITE_LOCK >> 32)
        .bind(WRITE_LOCK & 0xffff_ffff)
        .bind(older_than_ms as f64 / 1000.0)
        .fetch_one(p)
        .await?;
        Ok(ended)
    }

    /// What this driver runs of a migration ([`crate::schema`]), in order.
    pub(crate) fn dialect(&self, migration: &Migration) -> Vec<&'static str> {
        match (migration, self) {
            (Migration::Both(sql), _) => vec![sql],
            (Migration::SqliteBackfill { change, backfill }, Pool::Sqlite(_)) => {
                vec![change, backfill]
            }
            (Migration::SqliteBackfill { change, .. }, Pool::Postgres(_)) => vec![change],
            (Migration::Each { sqlite, .. }, Pool::Sqlite(_)) => vec![sqlite],
            (Migration::Each { postgres, .. }, Pool::Postgres(_)) => vec![postgres],
        }
    }

    /// What is wrong with the database, as its own check reports it;
    /// empty when it is sound. SQLite: `PRAGMA integrity_check` over the
    /// file. PostgreSQL checks its pages itself (and checksums them when
    /// the cluster has them on); what is left to check from here is that
    /// every table the store uses is there and reachable.
    pub(crate) async fn integrity(&self) -> Result<Vec<String>> {
        let problems: Vec<(String,)> = match self {
            Pool::Sqlite(p) => {
                let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
                    .fetch_all(p)
                    .await?;
                rows.into_iter().filter(|(r,)| r != "ok").collect()
            }
            Pool::Postgres(p) => {
                sqlx::query_as(
                    "SELECT 'table ' || t || ' is missing' FROM unnest($1::text[]) AS t \
                     WHERE to_regclass(t) IS NULL",
                )
                .bind(schema::TABLES)
                .fetch_all(p)
                .await?
            }
        };
        Ok(problems.into_iter().map(|(p,)| p).collect())
    }
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Runs SQL of several statements (a migration).
    pub(crate) async fn raw(&mut self, sql: &'static str) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => {
                sqlx::raw_sql(sql).execute(&mut **tx).await?;
            }
            Tx::Postgres(tx) => {
                sqlx::raw_sql(sql).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }
}

/// Where a query runs: on any pooled connection, or inside a transaction.
pub(crate) enum On<'c> {
    Pool(&'c Pool),
    Tx(&'c mut Tx),
}

impl<'c> From<&'c Pool> for On<'c> {
    fn from(pool: &'c Pool) -> On<'c> {
        On::Pool(pool)
    }
}

impl<'c> From<&'c mut Tx> for On<'c> {
    fn from(tx: &'c mut Tx) -> On<'c> {
        On::Tx(tx)
    }
}

/// Milliseconds since the Unix epoch by the database server's clock: the
/// one clock every replica shares, so that none with a skewed clock of
/// its own moves the lease. PostgreSQL's `clock_timestamp()`, not `now()`,
/// which is when the transaction began, before it waited for the write
/// lock; SQLite's `'now'` is read once per statement.
pub(crate) async fn now_ms<'c>(on: impl Into<On<'c>>) -> Result<i64> {
    let on = on.into();
    let sql = match &on {
        On::Pool(Pool::Sqlite(_)) | On::Tx(Tx::Sqlite(_)) => {
            "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)"
        }
        On::Pool(Pool::Postgres(_)) | On::Tx(Tx::Postgres(_)) => {
            "SELECT CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)"
        }
    };
    q(sql).scalar(on).await
}

/// A query argument. The columns the store binds are text, integers and
/// bytes; JSON is bound as its text.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bytes(&'a [u8]),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Arg<'a> {
        Arg::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Arg<'a> {
        Arg::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Arg<'a> {
        Arg::Text(v)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Arg<'a> {
        Arg::Text(v.as_deref())
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<&i64> for Arg<'_> {
    fn from(v: &i64) -> Self {
        Arg::Int(Some(*v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Arg<'a> {
        Arg::Bytes(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Arg<'a> {
        Arg::Bytes(v)
    }
}

/// A row type both drivers can decode (derive `sqlx::FromRow`; tuples of
/// column types work too).
pub(crate) trait Rows:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Rows for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// One statement with its arguments, run on either driver.
pub(crate) struct Q<'a> {
    sql: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

/// Starts a query; `$1`, `$2`, … are its arguments in order.
pub(crate) fn q<'a>(sql: &'static str) -> Q<'a> {
    Q {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
    }
}

/// A query whose text is put together at run time (a list of `$n`
/// placeholders as long as the values it binds). Only for SQL made of
/// constants and placeholders: every value is bound, never spliced in.
pub(crate) fn q_built<'a>(sql: String) -> Q<'a> {
    Q {
        sql: Cow::Owned(sql),
        args: Vec::new(),
    }
}

fn bind_all<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: Database,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> &'t [u8]: Encode<'t, DB> + Type<DB>,
{
    for arg in args {
        query = match *arg {
            Arg::Text(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
            Arg::Bytes(v) => query.bind(v),
        };
    }
    query
}

/// Runs `$run` with `$query` (the statement with its arguments bound) and
/// `$exec` (an executor) of whichever driver `$on` is.
macro_rules! dispatch {
    ($self:ident, $on:expr, |$query:ident, $exec:ident| $run:expr) => {
        match Into::<On<'_>>::into($on) {
            On::Pool(Pool::Sqlite($exec)) => {
                let $query = bind_all(sqlx::query::<Sqlite>(AssertSqlSafe($self.sql)), &$self.args);
                $run
            }
            On::Pool(Pool::Postgres($exec)) => {
                let $query = bind_all(
                    sqlx::query::<Postgres>(AssertSqlSafe($self.sql)),
                    &$self.args,
                );
                $run
            }
            On::Tx(Tx::Sqlite(tx)) => {
                let $query = bind_all(sqlx::query::<Sqlite>(AssertSqlSafe($self.sql)), &$self.args);
                let $exec = &mut **tx;
                $run
            }
            On::Tx(Tx::Postgres(tx)) => {
                let $query = bind_all(
                    sqlx::query::<Postgres>(AssertSqlSafe($self.sql)),
                    &$self.args,
                );
                let $exec = &mut **tx;
                $run
            }
        }
    };
}

impl<'a> Q<'a> {
    pub(crate) fn bind(mut self, arg: impl Into<Arg<'a>>) -> Q<'a> {
        self.args.push(arg.into());
        self
    }

    /// Runs the statement; how many rows it changed.
    pub(crate) async fn execute<'c>(self, on: impl Into<On<'c>>) -> Result<u64> {
        Ok(dispatch!(self, on, |query, exec| query
            .execute(exec)
            .await?
            .rows_affected()))
    }

    pub(crate) async fn fetch_all<'c, T: Rows>(self, on: impl Into<On<'c>>) -> Result<Vec<T>> {
        Ok(dispatch!(self, on, |query, exec| query
            .try_map(|row| T::from_row(&row))
            .fetch_all(exec)
            .await?))
    }

    pub(crate) async fn fetch_optional<'c, T: Rows>(
        self,
        on: impl Into<On<'c>>,
    ) -> Result<Option<T>> {
        Ok(dispatch!(self, on, |query, exec| query
            .try_map(|row| T::from_row(&row))
            .fetch_optional(exec)
            .await?))
    }

    pub(crate) async fn fetch_one<'c, T: Rows>(self, on: impl Into<On<'c>>) -> Result<T> {
        Ok(dispatch!(self, on, |query, exec| query
            .try_map(|row| T::from_row(&row))
            .fetch_one(exec)
            .await?))
    }

    /// The first column of the one row.
    pub(crate) async fn scalar<'c, T>(self, on: impl Into<On<'c>>) -> Result<T>
    where
        (T,): Rows,
    {
        Ok(self.fetch_one::<(T,)>(on).await?.0)
    }

    /// The first column of the row, if there is one.
    pub(crate) async fn scalar_optional<'c, T>(self, on: impl Into<On<'c>>) -> Result<Option<T>>
    where
        (T,): Rows,
    {
        Ok(self.fetch_optional::<(T,)>(on).await?.map(|(v,)| v))
    }
}
