//! Test support: a fresh PostgreSQL database per test, dropped after it.
//!
//! For the tests of this crate and of the crates above it (the server's
//! and the CLI's run against PostgreSQL too). The server is the one
//! `RIPCORD_TEST_PG` names (default: the local one `scripts/test` makes
//! sure of). When it cannot be reached the test fails, saying so: a test
//! that skips itself silently could never fail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Where the tests' PostgreSQL server is.
pub const TEST_PG_ENV: &str = "RIPCORD_TEST_PG";
/// The default: the machine's own server, trust authentication.
pub const DEFAULT_TEST_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Test databases are named `ripcord_test_<pid>_<nanos since the epoch>`.
const PREFIX: &str = "ripcord_test_";
/// A test database older than this was left by a run that was killed
/// before it could drop it; the next run drops it.
const ABANDONED: Duration = Duration::from_secs(3600);

/// A database created for one test; dropped (with any connections still
/// open to it) when this is dropped, also when the test panics.
pub struct TestDatabase {
    /// The database's URL, to open the store with.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Creates a new, empty database on the test server.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached or refuses: the message names the
    /// server and how to point the tests elsewhere.
    pub async fn create() -> TestDatabase {
        let admin = std::env::var(TEST_PG_ENV).unwrap_or_else(|_| DEFAULT_TEST_PG.to_string());
        let created = async {
            let mut conn = PgConnection::connect(&admin).await?;
            drop_abandoned(&mut conn).await?;
            let name = new_name();
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            Ok::<_, sqlx::Error>(name)
        };
        let name = created.await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL for the tests at {admin} ({TEST_PG_ENV}, default \
                 {DEFAULT_TEST_PG}) cannot be used: {e}. scripts/test starts it."
            )
        });
        TestDatabase {
            url: with_database(&admin, &name),
            admin,
            name,
        }
    }
}

impl TestDatabase {
    /// Terminates every session connected to the database
    /// (`pg_terminate_backend`), as an operator or a failover of the
    /// server would; how many.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub async fn terminate_sessions(&self) -> i64 {
        let terminated = async {
            let mut conn = PgConnection::connect(&self.admin).await?;
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) \
                 FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&self.name)
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            Ok::<_, sqlx::Error>(n)
        };
        terminated
            .await
            .unwrap_or_else(|e| panic!("terminating the sessions of {}: {e}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside the test's runtime, which cannot block on a
        // future; a thread with a runtime of its own can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                drop_database(&mut conn, &name).await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("test database {} was not dropped: {e}", self.name);
        }
    }
}

fn new_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{PREFIX}{}_{nanos}", std::process::id())
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    // FORCE: a pool the test dropped may still be closing its connections.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops the test databases that runs killed before their end left.
async fn drop_abandoned(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut *conn)
            .await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    for (name,) in names {
        let created = name.rsplit('_').next().and_then(|n| n.parse::<u128>().ok());
        if created.is_some_and(|c| now.saturating_sub(c) > ABANDONED.as_nanos()) {
            drop_database(conn, &name).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_of_a_url_is_replaced() {
        let with = super::with_database;
        assert_eq!(
            with("postgres://postgres@127.0.0.1:5432/postgres", "t"),
            "postgres://postgres@127.0.0.1:5432/t"
        );
        assert_eq!(
            with("postgres://u:p@h/db?sslmode=disable", "t"),
            "postgres://u:p@h/t?sslmode=disable"
        );
        assert_eq!(with("postgres://h:5432", "t"), "postgres://h:5432/t");
    }
}
