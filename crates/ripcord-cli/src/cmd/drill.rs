//! `ripcord drill run FILE | list | show ID`: tabletop drills on a live
//! server, through its API (`/v1/drills`). `run` starts the drill and
//! follows it to its scorecard; the exit code is 0 only when every line
//! passed, so an unattended drill (people's steps scripted) can gate CI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::cmd::remote::{Api, Server};

#[derive(Args)]
pub struct DrillArgs {
    #[command(subcommand)]
    command: DrillCommand,
}

#[derive(Subcommand)]
enum DrillCommand {
    /// Starts the drill FILE describes and follows it to its scorecard;
    /// exits 0 only when every line passed.
    Run {
        file: PathBuf,
        #[command(flatten)]
        server: Server,
        /// Start it and print its id without waiting for the end.
        #[arg(long)]
        no_wait: bool,
        /// Print the drill record as JSON at the end instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Drills, newest first: id, service, state, failing lines.
    List {
        /// Only this service's.
        #[arg(long)]
        service: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// One drill's scorecard.
    Show {
        id: String,
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: DrillArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match args.command {
            DrillCommand::Run {
                file,
                server,
                no_wait,
                json,
            } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let api = Api::new(&server)?;
                run_drill(&api, text, no_wait, json).await
            }
            DrillCommand::List { service, server } => {
                let api = Api::new(&server)?;
                let query = service.map_or(String::new(), |s| format!("&service={s}"));
                let list = api.get(&format!("/v1/drills?limit=1000{query}")).await?;
                for d in list["drills"].as_array().into_iter().flatten() {
                    println!("{}", summary(d));
                }
                Ok(ExitCode::SUCCESS)
            }
            DrillCommand::Show { id, server, json } => {
                let api = Api::new(&server)?;
                let d = api.get(&format!("/v1/drills/{id}")).await?;
                print_drill(&d, json)?;
                Ok(exit_code(&d))
            }
        }
    })
}

async fn run_drill(api: &Api, text: String, no_wait: bool, json: bool) -> anyhow::Result<ExitCode> {
    let req = api
        .http
        .post(format!("{}/v1/drills", api.base))
        .header("content-type", "application/yaml")
        .body(text);
    let started = api.send(req).await?;
    let id = started["id"].as_str().unwrap_or_default().to_string();
    eprintln!(
        "drill {id} ({}) started on {}: release {} ({} → {}), scored by {}{}",
        started["name"].as_str().unwrap_or_default(),
        started["service"].as_str().unwrap_or_default(),
        started["release"].as_str().unwrap_or_default(),
        started["baseline"].as_str().unwrap_or_default(),
        started["candidate"].as_str().unwrap_or_default(),
        started["ends_by"].as_str().unwrap_or_default(),
        if started["unattended"] == Value::Bool(true) {
            ", unattended"
        } else {
            "; act on its incident through the API, the dashboard or the CLI"
        }
    );
    if no_wait {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut seen = Progress::default();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let d = api.get(&format!("/v1/drills/{id}")).await?;
        seen.report(&d);
        if d["state"] != "running" {
            print_drill(&d, json)?;
            return Ok(exit_code(&d));
        }
    }
}

/// What `run` already told the user while following the drill.
#[derive(Default)]
struct Progress {
    incident: bool,
    steps: usize,
}

impl Progress {
    fn report(&mut self, d: &Value) {
        if !self.incident
            && let Some(inc) = d["incident"].as_str()
        {
            eprintln!("  incident {inc} opened");
            self.incident = true;
        }
        let ran: Vec<&Value> = d["script"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| !s["ok"].is_null())
            .collect();
        for s in ran.iter().skip(self.steps) {
            let what = match s["step"].as_str() {
                Some(step) => format!("{} {step}", s["do"].as_str().unwrap_or_default()),
                None => s["do"].as_str().unwrap_or_default().to_string(),
            };
            let outcome = match s["error"].as_str() {
                Some(e) => format!("refused: {e}"),
                None => "done".to_string(),
            };
            eprintln!(
                "  {} {what} ({outcome})",
                s["by"].as_str().unwrap_or_default()
            );
        }
        self.steps = self.steps.max(ran.len());
    }
}

fn exit_code(d: &Value) -> ExitCode {
    if d["state"] == "passed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn summary(d: &Value) -> String {
    let failing: Vec<&str> = d["scorecard"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["pass"] == Value::Bool(false))
        .filter_map(|l| l["name"].as_str())
        .collect();
    let s = |k: &str| d[k].as_str().unwrap_or("-").to_string();
    let failing = if failing.is_empty() {
        String::new()
    } else {
        format!("  failed: {}", failing.join(", "))
    };
    format!(
        "{}  {}  {}  {}  {}{failing}",
        s("id"),
        s("service"),
        s("started_at"),
        s("state"),
        s("name")
    )
}

fn print_drill(d: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    let lines = d["scorecard"].as_array().cloned().unwrap_or_default();
    let failed = lines
        .iter()
        .filter(|l| l["pass"] == Value::Bool(false))
        .count();
    println!(
        "drill {} ({}) on {}: {}{}",
        d["id"].as_str().unwrap_or_default(),
        d["name"].as_str().unwrap_or_default(),
        d["service"].as_str().unwrap_or_default(),
        d["state"].as_str().unwrap_or_default().to_uppercase(),
        match (failed, d["timed_out"] == Value::Bool(true)) {
            (0, _) if lines.is_empty() => String::new(),
            (0, _) => format!(", all {} lines", lines.len()),
            (n, t) => format!(
                ", {n} of {} lines failed{}",
                lines.len(),
                if t { " (timed out)" } else { "" }
            ),
        }
    );
    for l in &lines {
        let mark = if l["pass"] == Value::Bool(true) {
            "PASS"
        } else {
            "FAIL"
        };
        println!("  {mark}  {}", l["name"].as_str().unwrap_or_default());
        println!(
            "        expected: {}",
            l["expected"].as_str().unwrap_or_default()
        );
        println!(
            "        got:      {}",
            l["got"].as_str().unwrap_or_default()
        );
    }
    for c in d["cleanup"].as_array().into_iter().flatten() {
        println!("  cleanup: {}", c.as_str().unwrap_or_default());
    }
    Ok(())
}
