//! `ripcord token create|list|revoke`: API tokens, managed on the store
//! directly (`--store`, else the data dir's), so that the first tokens can
//! be made before any exist (and while the server runs: every write
//! transaction takes the store's write lock first, so the two writers take
//! turns, and the server looks tokens up on every request, so a revocation
//! counts from its next one).
//!
//! Changes are audited under the principal `local:<unix user>`: whoever
//! can open the data dir acts as an admin. Roles are checked against the
//! built-in ones plus the config's `roles:` (`--config`, else
//! `./ripcord.yaml` when present), the same file `ripcord serve` reads.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use ripcord_core::Time;
use ripcord_server::auth::Roles;
use ripcord_server::auth::tokens::{self, NewToken, TokenError};
use ripcord_store::{SqlStore, StoreSpec, TokenRecord};

use super::serve::{config_path, read_config};
use super::store::{StoreArg, open_existing};

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

/// Where the store is and which roles exist.
#[derive(Args)]
struct Place {
    /// The server's data dir [default: the config's `data_dir`, else ./ripcord-data].
    #[arg(long, env = "RIPCORD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArg,
    /// Config file with custom `roles:` and `store:` [default: ./ripcord.yaml when it exists].
    #[arg(long, env = "RIPCORD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token for a role and print it, once, on standard output.
    Create {
        /// Unique; requests made with the token are attributed to it.
        #[arg(long)]
        name: String,
        /// viewer, service, operator, release_manager, safety_lead, admin,
        /// or a custom role from the config.
        #[arg(long)]
        role: String,
        /// How long it is valid (`30d`, `12h`, …) [default: until revoked].
        #[arg(long)]
        expires: Option<String>,
        /// The person the token belongs to; separation of duties counts
        /// persons, so one person's tokens approve once [default: the name].
        #[arg(long)]
        person: Option<String>,
        /// A service the token may act on (repeatable); ingest, assignment
        /// and OFREP answer only for these [default: every service].
        #[arg(long = "service")]
        services: Vec<String>,
        #[command(flatten)]
        place: Place,
    },
    /// List tokens: name, role, state, created, expires, revoked, person,
    /// services (never a token or its hash).
    List {
        #[command(flatten)]
        place: Place,
    },
    /// Revoke a token; it fails from its next request on.
    Revoke {
        name: String,
        #[command(flatten)]
        place: Place,
    },
}

pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match args.command {
            TokenCommand::Create {
                name,
                role,
                expires,
                person,
                services,
                place,
            } => {
                let request = NewToken {
                    name,
                    role,
                    expires: None,
                    person,
                    services,
                };
                create(request, expires, &place).await
            }
            TokenCommand::List { place } => list(&place).await,
            TokenCommand::Revoke { name, place } => revoke(&name, &place).await,
        }
    })
}

/// Where the store is (flag, environment, config, default) and the roles.
fn resolve(place: &Place) -> anyhow::Result<(Located, Roles)> {
    let file = read_config(place.config.as_deref())?;
    let roles = match config_path(place.config.as_deref()) {
        Some(path) => file.roles(&path)?,
        None => Roles::built_in(),
    };
    let data_dir = place
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("ripcord-data"));
    let spec = StoreSpec::or_default(place.store.store.clone().or(file.store), &data_dir);
    Ok((Located { data_dir, spec }, roles))
}

/// The store a token command works on.
struct Located {
    data_dir: PathBuf,
    spec: StoreSpec,
}

/// Opens the store; `create` makes the data dir and the embedded store
/// file if they are not there (a token may be made before the first
/// `ripcord serve`).
async fn open(at: &Located, create: bool) -> anyhow::Result<SqlStore> {
    if !create {
        return open_existing(&at.spec).await;
    }
    ripcord_server::private_data_dir(&at.data_dir, &at.spec)?;
    Ok(ripcord_store::open(&at.spec).await?)
}

/// Who ran the command, for the audit log.
pub fn local_principal() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    if user.is_empty() {
        "local".to_string()
    } else {
        format!("local:{user}")
    }
}

fn now() -> Time {
    ripcord_server::clock::wall_now()
}

async fn create(
    mut request: NewToken,
    expires: Option<String>,
    place: &Place,
) -> anyhow::Result<ExitCode> {
    let (at, roles) = resolve(place)?;
    request.expires = match expires.as_deref() {
        Some(text) => tokens::parse_expires(text).map_err(flag_error)?,
        None => None,
    };
    let store = open(&at, true).await?;
    let made = tokens::issue(&store, &roles, &request, &local_principal(), now())
        .await
        .map_err(flag_error)?;
    println!("{}", made.token);
    let until = made
        .record
        .expires_at_ms
        .map_or("until revoked".to_string(), |t| {
            format!("until {}", Time(t).to_rfc3339())
        });
    let scope = if made.record.services.is_empty() {
        "every service".to_string()
    } else {
        made.record.services.join(", ")
    };
    eprintln!(
        "token \"{}\" (role {}, person {}, for {scope}) is valid {until}; it is shown only now (the store keeps its SHA-256): send it as `Authorization: Bearer <token>`",
        made.record.name, made.record.role, made.record.person
    );
    Ok(ExitCode::SUCCESS)
}

/// Token errors in terms of the command's flags (`--name: …`).
fn flag_error(e: TokenError) -> anyhow::Error {
    match e {
        TokenError::Invalid(m) => anyhow::anyhow!("--{m}"),
        TokenError::Exists(_) | TokenError::NotFound(_) => anyhow::anyhow!("--{e}"),
        other => anyhow::anyhow!(other),
    }
}

async fn list(place: &Place) -> anyhow::Result<ExitCode> {
    let (at, _) = resolve(place)?;
    let store = open(&at, false).await?;
    let all = ripcord_store::Store::tokens(&store).await?;
    print!("{}", table(&all, now()));
    Ok(ExitCode::SUCCESS)
}

/// Aligned columns; `-` where there is nothing.
fn table(all: &[TokenRecord], now: Time) -> String {
    let at = |ms: Option<i64>| ms.map_or("-".to_string(), |t| Time(t).to_rfc3339());
    let mut rows = vec![[
        "NAME".to_string(),
        "ROLE".to_string(),
        "STATE".to_string(),
        "CREATED".to_string(),
        "EXPIRES".to_string(),
        "REVOKED".to_string(),
        "CREATED BY".to_string(),
        "PERSON".to_string(),
        "SERVICES".to_string(),
    ]];
    for t in all {
        rows.push([
            t.name.clone(),
            t.role.clone(),
            tokens::state(t, now).to_string(),
            at(Some(t.created_at_ms)),
            at(t.expires_at_ms),
            at(t.revoked_at_ms),
            t.created_by.clone(),
            t.person.clone(),
            if t.services.is_empty() {
                "*".to_string()
            } else {
                t.services.join(",")
            },
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

async fn revoke(name: &str, place: &Place) -> anyhow::Result<ExitCode> {
    let (at, _) = resolve(place)?;
    let store = open(&at, false).await?;
    let record = tokens::revoke(&store, name, &local_principal(), now())
        .await
        .map_err(flag_error)?;
    let at = record
        .revoked_at_ms
        .map_or(String::new(), |t| Time(t).to_rfc3339());
    eprintln!("token \"{name}\" is revoked (at {at}); requests with it now get 401");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_aligned_and_shows_no_hash() {
        let record = TokenRecord {
            name: "ci".into(),
            role: "service".into(),
            hash: "ab".repeat(32),
            created_at_ms: 0,
            expires_at_ms: Some(86_400_000),
            revoked_at_ms: None,
            created_by: "local:ana".into(),
            person: "ana".into(),
            services: vec!["support-bot".into(), "search".into()],
        };
        let text = table(&[record], Time(1_000));
        assert_eq!(
            text,
            "NAME  ROLE     STATE   CREATED                   EXPIRES                   REVOKED  CREATED BY  PERSON  SERVICES\n\
             ci    service  active  1970-01-01T00:00:00.000Z  1970-01-02T00:00:00.000Z  -        local:ana   ana     support-bot,search\n"
        );
    }
}
