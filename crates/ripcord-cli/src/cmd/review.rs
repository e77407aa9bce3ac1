//! `ripcord review list SERVICE | show ID`: threshold reviews as the
//! server stored them (read from the store; accepting one goes through the
//! API, `POST /v1/reviews/{id}/accept`, so that the new policy version
//! reaches the running engines).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use ripcord_server::reviews::{self, to_markdown};

use crate::cmd::store::{StoreArg, open_existing};

#[derive(Args)]
pub struct ReviewArgs {
    #[command(subcommand)]
    command: ReviewCommand,
}

/// Where the store is.
#[derive(Args)]
struct Place {
    /// The server's data dir.
    #[arg(long, default_value = "ripcord-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(Subcommand)]
enum ReviewCommand {
    /// A service's reviews, newest first: id, release, outcome, status,
    /// suggested changes.
    List {
        service: String,
        #[command(flatten)]
        place: Place,
    },
    /// One review as markdown: each criterion's grid of bounds, each
    /// release's closest approach, the suggestion and its effect.
    Show {
        id: String,
        #[command(flatten)]
        place: Place,
    },
}

pub fn run(args: ReviewArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let place = match &args.command {
            ReviewCommand::List { place, .. } | ReviewCommand::Show { place, .. } => place,
        };
        let store = open_existing(&place.store.spec(&place.data_dir)).await?;
        match &args.command {
            ReviewCommand::List { service, .. } => {
                for r in reviews::list(&store, service).await.map_err(api)? {
                    let suggested: Vec<String> = r
                        .review
                        .iter()
                        .flat_map(|v| &v.criteria)
                        .filter_map(|c| {
                            let s = c.suggestion.as_ref()?;
                            Some(format!("{} {} → {}", c.criterion, s.from, s.to))
                        })
                        .collect();
                    println!(
                        "{}\t{}\t{:?}\t{:?}\t{}",
                        r.id,
                        r.release,
                        r.outcome,
                        r.status,
                        suggested.join("; ")
                    );
                }
            }
            ReviewCommand::Show { id, .. } => {
                let r = reviews::get(&store, id).await.map_err(api)?;
                print!("{}", to_markdown(&r));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn api(e: ripcord_server::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}
