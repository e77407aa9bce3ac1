//! `ripcord audit export` and `ripcord audit verify`: the hash-chained
//! audit log, out of the store and checked offline.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use ripcord_core::audit::{hex, unhex, verify_with};
use ripcord_store::{SqliteStore, Store};

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Write the audit log as NDJSON, one chained record per line.
    Export {
        /// The server's data dir.
        #[arg(long, default_value = "ripcord-data")]
        data_dir: PathBuf,
        /// Where to write [default: standard output].
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Recompute the chain; exit 1 at the first record that breaks it.
    Verify {
        /// The server's data dir (verifies the live log).
        #[arg(long, default_value = "ripcord-data", conflicts_with = "file")]
        data_dir: PathBuf,
        /// An export to verify instead.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The server's checkpoint key (hex, as `ripcord serve` prints it):
        /// checkpoints signed by any other key are refused.
        #[arg(long)]
        public_key: Option<String>,
    },
}

const PAGE: i64 = 10_000;

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        AuditCommand::Export { data_dir, output } => {
            let text = runtime.block_on(export(&data_dir))?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            data_dir,
            file,
            public_key,
        } => {
            let pinned = match public_key.as_deref().map(|k| unhex::<32>(k.trim())) {
                Some(Some(k)) => Some(k),
                Some(None) => anyhow::bail!("--public-key: expected 64 hex digits"),
                None => None,
            };
            let text = match file {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => runtime.block_on(export(&data_dir))?,
            };
            Ok(report(&text, pinned.as_ref()))
        }
    }
}

/// The whole log, in order, one line per record.
async fn export(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let db = data_dir.join("ripcord.db");
    if !db.exists() {
        anyhow::bail!("{}: no store here (is --data-dir right?)", db.display());
    }
    let store = SqliteStore::open(&db).await?;
    let mut text = String::new();
    let mut from = 1;
    loop {
        let page = store.audit(from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for line in &page {
            text.push_str(&line.line);
            text.push('\n');
        }
    }
    Ok(text)
}

fn report(text: &str, pinned: Option<&[u8; 32]>) -> ExitCode {
    match verify_with(text, pinned) {
        Ok(v) => {
            println!(
                "ok: {} records, chain head {}",
                v.records,
                hex(&v.last_hash)
            );
            match v.public_key {
                Some(key) => println!(
                    "{} signed checkpoints; records 1–{} signed by {}{}",
                    v.checkpoints,
                    v.signed_upto,
                    hex(&key),
                    if pinned.is_some() {
                        " (the pinned key)"
                    } else {
                        ""
                    }
                ),
                None => println!("no signed checkpoint yet"),
            }
            ExitCode::SUCCESS
        }
        Err(broken) => {
            println!("broken: {broken}");
            ExitCode::from(1)
        }
    }
}
