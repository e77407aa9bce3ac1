//! The `ripcord` binary: parses arguments and calls into the libraries.
//! No decision logic lives here.

mod cmd;
mod input;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A release guard for generative models.
#[derive(Parser)]
#[command(
    name = "ripcord",
    version,
    about = "A release guard for generative models: decides with anytime-valid statistics whether a candidate is worse than its baseline, and rolls it back"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check policy files, or print the policy JSON Schema.
    Policy(cmd::policy::PolicyArgs),
    /// Run the engine over a recorded event stream and print its decisions.
    Replay(cmd::replay::ReplayArgs),
    /// Run policy test files: synthetic traffic in, expected decisions out.
    Test(cmd::test::TestArgs),
    /// Write a realistic synthetic event stream as NDJSON.
    Simulate(cmd::simulate::SimulateArgs),
    /// Benchmarks that print markdown: `bench detect` (false rollbacks and
    /// detection delays against peers and the theoretical limit).
    Bench(cmd::bench::BenchArgs),
    /// A bad release caught and rolled back, through the real API, in under a minute.
    Demo(cmd::demo::DemoArgs),
    /// Export or verify the hash-chained audit log.
    Audit(cmd::audit::AuditArgs),
    /// Run the live service: ingest, releases, assignment, OFREP, webhooks.
    Serve(cmd::serve::ServeArgs),
    /// Make, list and revoke API tokens (each has a role).
    Token(cmd::token::TokenArgs),
    /// Preview incident communication templates.
    Template(cmd::template::TemplateArgs),
    /// Export an incident's evidence bundle as one archive.
    Evidence(cmd::evidence::EvidenceArgs),
    /// The post-incident report of an incident, as markdown or HTML.
    Report(cmd::report::ReportArgs),
    /// Erase one person's raw events and evidence samples, audited.
    Purge(cmd::purge::PurgeArgs),
    /// Threshold reviews the server made after each release: list, show.
    Review(cmd::review::ReviewArgs),
    /// Tabletop drills on a live server: run one to its scorecard, list them.
    Drill(cmd::drill::DrillArgs),
    /// Act on incidents through a running server's API: list, show, ack,
    /// status, step, mitigate, resolve, approve, reject.
    Incident(cmd::incident::IncidentArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy(args) => cmd::policy::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Bench(args) => cmd::bench::run_bench(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Token(args) => cmd::token::run(args),
        Command::Template(args) => cmd::template::run(args),
        Command::Evidence(args) => cmd::evidence::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Purge(args) => cmd::purge::run(args),
        Command::Review(args) => cmd::review::run(args),
        Command::Drill(args) => cmd::drill::run(args),
        Command::Incident(args) => cmd::incident::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
