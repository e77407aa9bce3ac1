//! `ripcord incident …`: what the on-call engineer does to an incident
//! (a real one or a drill's) from a terminal, through the server's API:
//! list and read incidents, acknowledge, post status updates, run
//! playbook steps, mitigate, resolve, and vote on approval requests.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::cmd::remote::{Api, Server};

#[derive(Args)]
pub struct IncidentArgs {
    #[command(subcommand)]
    command: IncidentCommand,
    #[command(flatten)]
    server: Server,
}

#[derive(Subcommand)]
enum IncidentCommand {
    /// Incidents, oldest first: id, kind, state, severity, title.
    List {
        #[arg(long)]
        service: Option<String>,
        /// `real` or `drill`.
        #[arg(long)]
        kind: Option<String>,
        /// `open`, `mitigated`, `resolved` or `reviewed`.
        #[arg(long)]
        state: Option<String>,
    },
    /// One incident: its deadlines, playbook steps and timeline.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Acknowledges the page.
    Ack {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Posts a status update to the incident's channels.
    Status {
        id: String,
        message: String,
        /// When the next one is due, e.g. `30m`.
        #[arg(long)]
        next_update_in: Option<String>,
    },
    /// Runs a playbook step (as its owner role).
    Step {
        id: String,
        step: String,
        #[arg(long)]
        note: Option<String>,
    },
    Mitigate {
        id: String,
        #[arg(long)]
        note: String,
    },
    Resolve {
        id: String,
        #[arg(long)]
        note: String,
    },
    /// Approves an approval request (`GET /v1/requests` lists them).
    Approve {
        request: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Rejects an approval request.
    Reject {
        request: String,
        #[arg(long)]
        note: Option<String>,
    },
}

pub fn run(args: IncidentArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let api = Api::new(&args.server)?;
        let path = |id: &str, what: &str| format!("/v1/incidents/{}/{what}", encode(id));
        let note = |n: &Option<String>| n.as_ref().map_or(json!({}), |n| json!({"note": n}));
        let done = match &args.command {
            IncidentCommand::List {
                service,
                kind,
                state,
            } => return list(&api, service, kind, state).await,
            IncidentCommand::Show { id, json } => {
                let inc = api.get(&format!("/v1/incidents/{}", encode(id))).await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&inc)?);
                } else {
                    print!("{}", describe(&inc));
                }
                return Ok(ExitCode::SUCCESS);
            }
            IncidentCommand::Ack { id, note: n } => {
                api.post(&path(id, "acknowledge"), &note(n)).await?
            }
            IncidentCommand::Status {
                id,
                message,
                next_update_in,
            } => {
                let mut body = json!({"message": message});
                if let Some(next) = next_update_in {
                    body["next_update_in"] = json!(next);
                }
                api.post(&path(id, "status"), &body).await?
            }
            IncidentCommand::Step { id, step, note: n } => {
                api.post(&path(id, &format!("steps/{}", encode(step))), &note(n))
                    .await?
            }
            IncidentCommand::Mitigate { id, note } => {
                api.post(&path(id, "mitigate"), &json!({"note": note}))
                    .await?
            }
            IncidentCommand::Resolve { id, note } => {
                api.post(&path(id, "resolve"), &json!({"note": note}))
                    .await?
            }
            IncidentCommand::Approve { request, note: n } => {
                return vote(&api, request, "approve", note(n)).await;
            }
            IncidentCommand::Reject { request, note: n } => {
                return vote(&api, request, "reject", note(n)).await;
            }
        };
        print!("{}", describe(&done));
        Ok(ExitCode::SUCCESS)
    })
}

/// Votes on a request; prints its state after the vote.
async fn vote(api: &Api, request: &str, how: &str, body: Value) -> anyhow::Result<ExitCode> {
    let path = format!("/v1/requests/{}/{how}", encode(request));
    let voted = api.post(&path, &body).await?;
    let state = voted["request"]["state"].as_str().unwrap_or("?");
    println!("{request}: {state}");
    Ok(ExitCode::SUCCESS)
}

fn encode(part: &str) -> String {
    form_urlencoded::byte_serialize(part.as_bytes()).collect()
}

async fn list(
    api: &Api,
    service: &Option<String>,
    kind: &Option<String>,
    state: &Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut query = vec!["limit=1000".to_string()];
    for (k, v) in [("service", service), ("kind", kind), ("state", state)] {
        if let Some(v) = v {
            query.push(format!("{k}={}", encode(v)));
        }
    }
    let list = api
        .get(&format!("/v1/incidents?{}", query.join("&")))
        .await?;
    for i in list["incidents"].as_array().into_iter().flatten() {
        let s = |k: &str| i[k].as_str().unwrap_or("-").to_string();
        println!(
            "{}  {}  {}  {}  {}",
            s("id"),
            s("kind"),
            s("state"),
            s("severity"),
            s("title")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An incident as the on-call engineer reads it: state and deadlines,
/// the playbook, the latest of the timeline.
fn describe(inc: &Value) -> String {
    let s = |k: &str| inc[k].as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "{} ({}, {}) {} — {}\n  opened {}; acknowledge by {}; acknowledged {}\n",
        s("id"),
        s("kind"),
        s("severity"),
        s("state"),
        s("title"),
        s("opened_at"),
        s("ack_by"),
        s("acknowledged_at"),
    );
    for step in inc["steps"].as_array().into_iter().flatten() {
        let t = |k: &str| step[k].as_str().unwrap_or("-").to_string();
        out.push_str(&format!(
            "  step {:<20} {:<10} owner {:<14} due {}\n",
            t("name"),
            t("status"),
            t("owner"),
            t("due_at")
        ));
    }
    let timeline = inc["timeline"].as_array().cloned().unwrap_or_default();
    for e in timeline.iter().rev().take(10).rev() {
        let t = |k: &str| e[k].as_str().unwrap_or("-").to_string();
        out.push_str(&format!(
            "  {}  {}  {}\n",
            t("at"),
            t("actor"),
            t("summary")
        ));
    }
    out
}
