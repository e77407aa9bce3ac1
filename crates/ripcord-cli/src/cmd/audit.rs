//! `ripcord audit export` and `ripcord audit verify`: the hash-chained
//! audit log, out of the store and checked offline.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use ripcord_core::audit::{Expect, hex, parse_published, unhex, verify_signed, verify_with};
use ripcord_core::policy::units::parse_duration;
use ripcord_store::Store;

use super::store::{StoreArg, open_existing};

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
        #[command(flatten)]
        store: StoreArg,
        /// Where to write [default: standard output].
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Recompute the chain; exit 1 at the first record that breaks it.
    Verify {
        /// The server's data dir (verifies the live log).
        #[arg(long, default_value = "ripcord-data", conflicts_with = "file")]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// An export to verify instead.
        #[arg(long, conflicts_with = "store")]
        file: Option<PathBuf>,
        /// The server's checkpoint key (hex, as `ripcord serve` prints it):
        /// checkpoints signed by any other key are refused, and so are an
        /// empty log, a span longer than `--period` without a checkpoint
        /// and unsigned records older than `--period`.
        #[arg(long)]
        public_key: Option<String>,
        /// The checkpoints the server published (`ripcord serve
        /// --audit-checkpoints`): the log must hold every one of them.
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
        /// The server's checkpoint period.
        #[arg(long, default_value = "1m", value_parser = duration_ms)]
        period: i64,
        /// Slack for a checkpoint that came late.
        #[arg(long, default_value = "10s", value_parser = duration_ms)]
        grace: i64,
    },
}

const PAGE: i64 = 10_000;

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        AuditCommand::Export {
            data_dir,
            store,
            output,
        } => {
            let text = runtime.block_on(export(&store, &data_dir))?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            data_dir,
            store,
            file,
            public_key,
            checkpoints,
            period,
            grace,
        } => {
            let pinned = match public_key.as_deref().map(|k| unhex::<32>(k.trim())) {
                Some(Some(k)) => Some(k),
                Some(None) => anyhow::bail!("--public-key: expected 64 hex digits"),
                None => None,
            };
            let published = match (&checkpoints, &pinned) {
                (Some(path), Some(key)) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    parse_published(&text, key)
                        .map_err(|e| anyhow::anyhow!("--checkpoints {}: {e}", path.display()))?
                }
                _ => Vec::new(),
            };
            let text = match file {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => runtime.block_on(export(&store, &data_dir))?,
            };
            let expect = pinned.map(|key| Expect {
                key,
                published: &published,
                period_ms: period,
                grace_ms: grace,
                now_ms: now_ms(),
            });
            Ok(report(&text, expect.as_ref()))
        }
    }
}

/// The whole log, in order, one line per record.
async fn export(store: &StoreArg, data_dir: &std::path::Path) -> anyhow::Result<String> {
    let store = open_existing(&store.spec(data_dir)).await?;
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

/// A duration flag (`1m`, `10s`) in milliseconds.
fn duration_ms(text: &str) -> Result<i64, String> {
    let d = parse_duration(text)?;
    if d.0 <= 0 {
        return Err("must be more than 0".into());
    }
    Ok(d.0)
}

/// The wall clock, read once here at the edge: how old the unsigned tail is.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn report(text: &str, expect: Option<&Expect>) -> ExitCode {
    let pinned = expect.map(|e| &e.key);
    let verified = match expect {
        Some(e) => verify_signed(text, e),
        None => verify_with(text, None),
    };
    match verified {
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
            if let Some(e) = expect.filter(|e| !e.published.is_empty()) {
                println!(
                    "{} published checkpoints found in the log",
                    e.published.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(broken) => {
            println!("broken: {broken}");
            ExitCode::from(1)
        }
    }
}
