//! `ripcord evidence export`: an incident's evidence bundle, out of the
//! store as one reproducible `.tar.gz`, after checking that the bundle's
//! bytes still hash to its address and that the stored policy is the one
//! the bundle names.
//!
//! Exit codes: 0 written, 1 the evidence does not verify (changed bytes,
//! a policy whose hash differs), 2 other errors (no such bundle, I/O).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use ripcord_server::evidence_archive::{Failure, export};
use ripcord_store::StoreSpec;

use super::store::{StoreArg, open_existing};

#[derive(Args)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    command: EvidenceCommand,
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Write an incident's evidence bundle as one .tar.gz archive.
    Export {
        /// An incident id, or a bundle address (64 hex digits).
        target: String,
        /// The server's data dir.
        #[arg(long, default_value = "ripcord-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// The archive [default: evidence-<first 12 digits of the address>.tar.gz].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

pub fn run(args: EvidenceArgs) -> anyhow::Result<ExitCode> {
    let EvidenceCommand::Export {
        target,
        data_dir,
        store,
        output,
    } = args.command;
    let runtime = tokio::runtime::Runtime::new()?;
    match runtime.block_on(open_and_export(&target, &store.spec(&data_dir))) {
        Ok((address, archive)) => {
            let path = output
                .unwrap_or_else(|| PathBuf::from(format!("evidence-{}.tar.gz", &address[..12])));
            std::fs::write(&path, &archive)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {} (bundle {address})", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(Failure::Unverified(why)) => {
            eprintln!("error: {why}");
            Ok(ExitCode::from(1))
        }
        Err(Failure::Other(e)) => Err(e),
    }
}

async fn open_and_export(target: &str, spec: &StoreSpec) -> Result<(String, Vec<u8>), Failure> {
    let store = open_existing(spec).await?;
    export(&store, target).await
}
