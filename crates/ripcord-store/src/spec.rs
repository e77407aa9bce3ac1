//! Which database a store lives in, as the user names it: `--store`,
//! `RIPCORD_STORE` or `store:` in `ripcord.yaml`, for `ripcord serve` and
//! every command that opens the store. Without one, the store is the
//! embedded SQLite file `ripcord.db` in the data dir.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{Result, SqlStore, StoreError};

/// A store's place, parsed from what the user wrote.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum StoreSpec {
    /// An SQLite file (`sqlite://PATH`; the default, in the data dir).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://USER[:PASSWORD]@HOST:PORT/DB`).
    Postgres(PostgresUrl),
}

/// A PostgreSQL URL. It is shown (in errors, logs, `Debug`) with its
/// password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL as given, password included: for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&masked(&self.0))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// The URL with the password of its user part, and a `password=` query
/// parameter, replaced by `***`.
fn masked(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let rest = match rest.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let query: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => p.to_string(),
        })
        .collect();
    let mut out = format!("{scheme}://{rest}");
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query.join("&"));
    }
    out
}

impl StoreSpec {
    /// The default: `ripcord.db` in the data dir.
    pub fn in_data_dir(data_dir: &Path) -> StoreSpec {
        StoreSpec::Sqlite(data_dir.join("ripcord.db"))
    }

    /// The spec given, or the default for the data dir.
    pub fn or_default(spec: Option<StoreSpec>, data_dir: &Path) -> StoreSpec {
        spec.unwrap_or_else(|| StoreSpec::in_data_dir(data_dir))
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Sqlite(path) => write!(f, "{}", path.display()),
            StoreSpec::Postgres(url) => url.fmt(f),
        }
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreSpec({self})")
    }
}

impl FromStr for StoreSpec {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<StoreSpec> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreSpec::Postgres(PostgresUrl(text.to_string())));
        }
        match text.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(StoreSpec::Sqlite(PathBuf::from(path))),
            _ => Err(StoreError::Spec(format!(
                "store {:?}: expected postgres://USER@HOST:PORT/DB or sqlite://PATH",
                masked(text)
            ))),
        }
    }
}

impl TryFrom<String> for StoreSpec {
    type Error = StoreError;

    fn try_from(text: String) -> Result<StoreSpec> {
        text.parse()
    }
}

/// Opens the store `spec` names (creating its tables, or the SQLite file,
/// if needed). The error names the spec, never its password.
pub async fn open(spec: &StoreSpec) -> Result<SqlStore> {
    let opened = match spec {
        StoreSpec::Sqlite(path) => SqlStore::open(path).await,
        StoreSpec::Postgres(url) => SqlStore::connect_postgres(url.expose()).await,
    };
    opened.map_err(|e| match e {
        StoreError::Db(cause) => StoreError::Open {
            spec: spec.to_string(),
            cause,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_by_scheme() {
        assert_eq!(
            "sqlite:///var/lib/ripcord.db".parse::<StoreSpec>().ok(),
            Some(StoreSpec::Sqlite("/var/lib/ripcord.db".into()))
        );
        assert!(matches!(
            "postgresql://u@h:5432/d".parse::<StoreSpec>(),
            Ok(StoreSpec::Postgres(_))
        ));
        let err = "mysql://u:pw@h/d".parse::<StoreSpec>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "store \"mysql://u:***@h/d\": expected postgres://USER@HOST:PORT/DB or sqlite://PATH"
        );
    }

    #[test]
    fn passwords_are_never_shown() {
        let spec: StoreSpec = "postgres://ana:s3cret@db:5432/rc?sslmode=require&password=x"
            .parse()
            .unwrap();
        let shown = format!("{spec} {spec:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("password=x"),
            "{shown}"
        );
        assert!(shown.contains("postgres://ana:***@db:5432/rc?sslmode=require&password=***"));
    }
}
