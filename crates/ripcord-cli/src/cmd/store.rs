//! How every command that opens the store finds it: `--store` or
//! `RIPCORD_STORE` (`postgres://…` or `sqlite://PATH`), else `ripcord.db`
//! in the data dir — the same for `serve`, `token`, `audit`, `evidence`,
//! `report` and `purge`.

use std::path::Path;

use anyhow::bail;
use clap::Args;
use ripcord_store::{SqlStore, StoreSpec};

#[derive(Args, Clone, Debug, Default)]
pub struct StoreArg {
    /// The store: postgres://USER@HOST:PORT/DB or sqlite://PATH [default:
    /// `store:` of ripcord.yaml for serve and token, else ripcord.db in
    /// the data dir].
    #[arg(long, env = "RIPCORD_STORE")]
    pub store: Option<StoreSpec>,
}

impl StoreArg {
    /// The store named, else the one in `data_dir`.
    pub fn spec(&self, data_dir: &Path) -> StoreSpec {
        StoreSpec::or_default(self.store.clone(), data_dir)
    }
}

/// Opens the store for a command that reads what a server stored: an
/// SQLite file that is not there is an error (a wrong `--data-dir`), not
/// a new, empty store.
pub async fn open_existing(spec: &StoreSpec) -> anyhow::Result<SqlStore> {
    if let StoreSpec::Sqlite(path) = spec
        && !path.exists()
    {
        bail!(
            "{}: no store here (is --data-dir or --store right?)",
            path.display()
        );
    }
    Ok(ripcord_store::open(spec).await?)
}
