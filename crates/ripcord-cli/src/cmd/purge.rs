//! `ripcord purge --unit U --reason R`: erases one person's raw events and
//! evidence samples from the store, everywhere, audited, and prints what it
//! erased and what legal holds kept. It works on the store directly (like
//! `ripcord token`), so it runs with the server up or down; a running
//! server applies it to the samples it holds in memory at its next
//! retention pass (within `retention.every`), or at once through
//! `POST /v1/purge`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ripcord_server::{holds, purge};

use super::store::{StoreArg, open_existing};

#[derive(Args)]
pub struct PurgeArgs {
    /// The unit (user, session) whose data goes, as events name it.
    #[arg(long)]
    unit: String,
    /// Why, for the audit log (a ticket, a request's reference).
    #[arg(long)]
    reason: String,
    /// The server's data dir.
    #[arg(long, env = "RIPCORD_DATA_DIR", default_value = "ripcord-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    store: StoreArg,
}

pub fn run(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    if args.unit.trim().is_empty() || args.reason.trim().is_empty() {
        anyhow::bail!("--unit and --reason must not be empty");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let purged = runtime.block_on(async {
        let store = open_existing(&args.store.spec(&args.data_dir)).await?;
        let held = holds::held(&store)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let request = purge::Request {
            unit: &args.unit,
            reason: &args.reason,
            by: &super::token::local_principal(),
            now: ripcord_server::clock::wall_now(),
        };
        purge::purge_store(&store, &request, &held).await
    })?;
    println!("{}", serde_json::to_string_pretty(&purged)?);
    Ok(ExitCode::SUCCESS)
}
