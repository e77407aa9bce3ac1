//! `ripcord simulate`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SimulateArgs {}

pub fn run(_args: SimulateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
