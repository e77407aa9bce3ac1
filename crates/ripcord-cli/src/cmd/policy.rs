//! `ripcord policy check FILE...` and `ripcord policy schema`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ripcord_core::policy::{load_policy, policy_json_schema};

#[derive(clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(clap::Subcommand)]
enum PolicyCommand {
    /// Validate policy files; print every problem with its place. Exit 1 on any.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the policy format (for editor autocompletion).
    Schema,
}

pub fn run(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Check { files } => check(&files),
        PolicyCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&policy_json_schema())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for file in files {
        let origin = file.display().to_string();
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {origin}"))?;
        match load_policy(&text, &origin) {
            Ok(p) => println!(
                "{origin}: ok — service {}, {} signals, {} criteria, {} triggers, {} rollout steps",
                p.service,
                p.signals.len(),
                p.criteria.len(),
                p.triggers.len(),
                p.rollout.steps.len()
            ),
            Err(d) => {
                failed += 1;
                eprint!("{d}");
                eprintln!("{origin}: {} problem(s)", d.items.len());
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Loads one policy for the other commands, printing its problems.
pub fn load(path: &std::path::Path) -> anyhow::Result<Result<ripcord_core::Policy, ExitCode>> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {origin}"))?;
    match load_policy(&text, &origin) {
        Ok(p) => Ok(Ok(p)),
        Err(d) => {
            eprint!("{d}");
            eprintln!("{origin}: {} problem(s)", d.items.len());
            Ok(Err(ExitCode::from(1)))
        }
    }
}
