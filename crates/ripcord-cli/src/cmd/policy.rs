//! `ripcord policy`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PolicyArgs {}

pub fn run(_args: PolicyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
