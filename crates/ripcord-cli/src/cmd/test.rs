//! `ripcord test FILE...`: run policy test files; exit 1 on any failure.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ripcord_sim::policytest::{parse_test_file, policy_path, run_test};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Policy test files (YAML).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print every decision of failing tests.
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let (mut passed, mut failed) = (0, 0);
    for file in &args.files {
        let origin = file.display().to_string();
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {origin}"))?;
        let tests = match parse_test_file(&text, &origin) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let policy = match super::policy::load(&policy_path(file, &tests))? {
            Ok(p) => p,
            Err(_) => {
                failed += 1;
                continue;
            }
        };
        let base = file.parent().map(PathBuf::from).unwrap_or_default();
        println!("{origin}");
        for case in &tests.tests {
            let outcome = run_test(&policy, case, &base);
            if outcome.passed() {
                passed += 1;
                println!("  PASS  {}", outcome.name);
                continue;
            }
            failed += 1;
            println!("  FAIL  {}", outcome.name);
            for f in &outcome.failures {
                println!("        - {f}");
            }
            println!("        decisions:");
            let shown = if args.verbose { usize::MAX } else { 12 };
            for d in outcome.decisions.iter().take(shown) {
                let what = d.action.map_or(d.kind.as_str(), |a| a.as_str());
                println!(
                    "          +{:<10} {:<20} {}",
                    (d.at - outcome.start).to_string(),
                    what,
                    d.explanation.summary
                );
            }
            if outcome.decisions.len() > shown {
                println!(
                    "          … {} more (use --verbose)",
                    outcome.decisions.len() - shown
                );
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
