//! `ripcord replay`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ReplayArgs {}

pub fn run(_args: ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
