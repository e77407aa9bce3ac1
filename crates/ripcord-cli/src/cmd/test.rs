//! `ripcord test`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TestArgs {}

pub fn run(_args: TestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
