//! `ripcord demo`: the whole story in under a minute, through the real HTTP
//! API of a real server on a free loopback port with a temporary store.
//!
//! Simulated users ask `/v1/assign` which version they get and send the
//! signals of the answers they were served; halfway through, the candidate
//! starts failing moderation four times as often. The engine notices, rolls
//! the candidate back in two verified stages, and the demo narrates each
//! decision as the server logs it. Exit code 0 means the candidate ended
//! rolled back.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Beta, Distribution, LogNormal};
use regex::Regex;
use serde_json::{Value, json};

use crate::cmd::remote::Api;

const SERVICE: &str = "support-bot";
const POLICY: &str = include_str!("../../../../examples/conversational-agent/policy.yaml");
/// Simulated users.
const USERS: u32 = 5_000;
/// Users served per traffic tick (every 100 ms), outputs per user.
const USERS_PER_TICK: usize = 40;
const OUTPUTS_PER_USER: usize = 5;
/// The story must end within this; it normally takes about half.
const DEADLINE: Duration = Duration::from_secs(55);

#[derive(Args)]
pub struct DemoArgs {
    /// Seed of the simulated users.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Seconds after the start at which the candidate regresses.
    #[arg(long, default_value_t = 12)]
    regress_at: u64,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(args))
}

/// The example policy with demo-sized durations: every minute becomes a
/// second and every hour a minute, so the story runs 60 times faster.
pub fn demo_policy() -> String {
    let duration = Regex::new(
        r"\b(window|for|clear_for|hold|verify_for|within|watch_after_promotion): *(\d+)(m|h)\b",
    );
    match duration {
        Ok(re) => re
            .replace_all(POLICY, |c: &regex::Captures<'_>| {
                let unit = if &c[3] == "m" { "s" } else { "m" };
                format!("{}: {}{unit}", &c[1], &c[2])
            })
            .into_owned(),
        Err(_) => POLICY.to_string(),
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let mut config =
        ripcord_server::Config::new(dir.path().to_path_buf(), ([127, 0, 0, 1], 0).into());
    config.tick = Duration::from_millis(100);
    let server = ripcord_server::start(config).await?;
    let api = Api::on(
        format!("http://{}", server.addr),
        std::fs::read_to_string(&server.token_path)?
            .trim()
            .to_string(),
        reqwest::Client::builder().no_proxy().build()?,
    );
    println!("ripcord demo: a bad release of {SERVICE}, caught and rolled back by itself\n");
    println!(
        "  server    {} (temporary store in {})",
        api.base,
        dir.path().display()
    );
    let result = story(&api, &args).await;
    server.shutdown().await?;
    match result {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::from(1)),
        Err(e) => Err(e),
    }
}

async fn story(api: &Api, args: &DemoArgs) -> anyhow::Result<bool> {
    let response = api
        .http
        .put(format!("{}/v1/policies/{SERVICE}", api.base))
        .bearer_auth(&api.token)
        .body(demo_policy())
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("the demo policy was refused: {}", response.text().await?);
    }
    println!("  policy    examples/conversational-agent/policy.yaml, minutes read as seconds");
    for (version, prompt) in [("v1", "41"), ("v2", "42")] {
        api.post(
            &format!("/v1/services/{SERVICE}/versions"),
            &json!({
                "version": version,
                "model_id": "llama-3.1-8b-instruct",
                "weights_digest": "sha256:5f1c0e0e2b7d",
                "prompt_template_version": prompt,
                "decoding": {"temperature": 0.7, "top_p": 0.9},
                "training_datasets": ["support-tickets-2026-10"],
                "evaluation_reports": [format!("evals/{version}.html")],
            }),
        )
        .await
        .context("registering a version")?;
    }
    println!("  versions  v1 (prompt template 41) → v2 (prompt template 42), same model");
    let release = api
        .post(
            "/v1/releases",
            &json!({
                "service": SERVICE, "baseline": "v1", "candidate": "v2",
                "steps": [
                    {"share": 0.05, "hold": "6s"},
                    {"share": 0.25, "hold": "8s"},
                    {"share": 0.5, "hold": "30s"},
                ],
            }),
        )
        .await
        .context("starting the release")?;
    let id = release["id"].as_str().unwrap_or_default().to_string();
    println!("  release   {id}: 5% for 6s, 25% for 8s, 50% for 30s, then promotion");
    println!(
        "  traffic   {USERS} users; each asks /v1/assign, then sends the signals of its answers"
    );
    println!(
        "  at +{}s   v2 starts failing moderation 4 times as often\n",
        args.regress_at
    );
    run_traffic(api, args, &id).await
}

/// Drives users and narrates decisions until the release settles.
async fn run_traffic(api: &Api, args: &DemoArgs, id: &str) -> anyhow::Result<bool> {
    let mut users = Users::new(args.seed)?;
    let start = Instant::now();
    let mut cursor = 0i64;
    let mut candidate_users = HashSet::new();
    let mut injected = false;
    let mut settled_at = None;
    while start.elapsed() < DEADLINE {
        let tick = Instant::now();
        let regressed = start.elapsed() >= Duration::from_secs(args.regress_at);
        if regressed && !injected {
            injected = true;
            println!(
                "{:>7}  -- v2 regresses: moderation failures ×4 --",
                offset(start)
            );
        }
        let batch = users.serve(api, regressed, &mut candidate_users).await?;
        api.post("/v1/events", &Value::Array(batch)).await?;
        cursor = narrate(api, start, cursor).await?;
        let state = api.get(&format!("/v1/releases/{id}")).await?;
        match (state["state"].as_str(), settled_at) {
            (Some("rolled_back"), None) => settled_at = Some(Instant::now()),
            // A second more of traffic shows everybody is back on v1.
            (Some("rolled_back"), Some(t)) if t.elapsed() > Duration::from_secs(1) => {
                return finish(api, id, &candidate_users, start).await;
            }
            (Some("promoted"), _) => {
                println!("the release was promoted: the regression went unnoticed");
                return Ok(false);
            }
            (Some("paused"), _) => {
                let reason = state["reason"].as_str().unwrap_or("no reason given");
                println!("the release is paused for a person: {reason}");
                return Ok(false);
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed())).await;
    }
    println!("the story did not end within {DEADLINE:?}");
    Ok(false)
}

fn offset(start: Instant) -> String {
    format!("+{:.1}s", start.elapsed().as_secs_f64())
}

/// Prints the decisions logged since `cursor`; returns the new cursor.
async fn narrate(api: &Api, start: Instant, cursor: i64) -> anyhow::Result<i64> {
    let response = api
        .http
        .get(format!(
            "{}/v1/decisions?service={SERVICE}&after={cursor}",
            api.base
        ))
        .bearer_auth(&api.token)
        .send()
        .await?;
    let next = response
        .headers()
        .get("ripcord-next-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(cursor);
    let text = response.text().await?;
    for line in text.lines() {
        let d: Value = serde_json::from_str(line)?;
        let what = match (d["action"].as_str(), d["kind"].as_str()) {
            (Some(action), _) => match d["share"].as_f64() {
                Some(share) => format!("{action} → {}%", (share * 1000.0).round() / 10.0),
                None => action.to_string(),
            },
            (None, Some(kind)) => {
                let about = d["explanation"]["criterion"]
                    .as_str()
                    .or(d["trigger"].as_str())
                    .unwrap_or("");
                format!("{kind} {about}")
            }
            _ => String::new(),
        };
        println!("{:>7}  {what}", offset(start));
        println!(
            "{:>9}{}",
            "",
            d["explanation"]["summary"].as_str().unwrap_or("")
        );
    }
    Ok(next)
}

async fn finish(
    api: &Api,
    id: &str,
    candidate_users: &HashSet<u32>,
    start: Instant,
) -> anyhow::Result<bool> {
    let release = api.get(&format!("/v1/releases/{id}")).await?;
    let mut back = 0;
    for user in candidate_users {
        let a = api
            .get(&format!("/v1/assign?service={SERVICE}&unit=u-{user}"))
            .await?;
        if a["version"] == "v1" {
            back += 1;
        }
    }
    println!(
        "\n{:>7}  final: {id} is {}, v2 serves {}% of users; {back} of the {} users who had v2 get v1 again",
        offset(start),
        release["state"].as_str().unwrap_or("?"),
        release["share"].as_f64().unwrap_or(f64::NAN) * 100.0,
        candidate_users.len()
    );
    println!(
        "           events counted: v1 {}, v2 {}",
        release["events"]["baseline"], release["events"]["candidate"]
    );
    println!("           decision log: GET /v1/decisions?service={SERVICE} (replay NDJSON shape)");
    Ok(release["state"] == "rolled_back" && back == candidate_users.len())
}

/// The simulated users and their answers' signals.
struct Users {
    rng: StdRng,
    latency: LogNormal<f64>,
    utility: Beta<f64>,
}

/// Half the users write in English, a quarter in German, the rest in
/// French and Japanese.
fn locale_of(user: u32) -> &'static str {
    match user % 20 {
        0..10 => "en",
        10..15 => "de",
        15..18 => "fr",
        _ => "ja",
    }
}

impl Users {
    fn new(seed: u64) -> anyhow::Result<Users> {
        Ok(Users {
            rng: StdRng::seed_from_u64(seed),
            latency: LogNormal::new(800f64.ln(), 0.45)?,
            utility: Beta::new(8.0, 2.0)?,
        })
    }

    /// One traffic tick: some users ask for their version and get answers.
    async fn serve(
        &mut self,
        api: &Api,
        regressed: bool,
        candidate_users: &mut HashSet<u32>,
    ) -> anyhow::Result<Vec<Value>> {
        let mut events = Vec::with_capacity(USERS_PER_TICK * OUTPUTS_PER_USER);
        for _ in 0..USERS_PER_TICK {
            let user = self.rng.random_range(0..USERS);
            let a = api
                .get(&format!("/v1/assign?service={SERVICE}&unit=u-{user}"))
                .await?;
            let version = a["version"].as_str().unwrap_or("v1").to_string();
            if version == "v2" {
                candidate_users.insert(user);
            }
            let locale = locale_of(user);
            for _ in 0..OUTPUTS_PER_USER {
                events.push(self.answer(user, &version, locale, regressed && version == "v2"));
            }
        }
        Ok(events)
    }

    fn answer(&mut self, user: u32, version: &str, locale: &str, bad: bool) -> Value {
        let moderation = if bad { 0.02 } else { 0.005 };
        let flag = |rng: &mut StdRng, p: f64| u8::from(rng.random::<f64>() < p);
        let mut values = json!({
            "outputs": 1,
            "hallucination": flag(&mut self.rng, 5e-4),
            "moderation_fail": flag(&mut self.rng, moderation),
            "error": flag(&mut self.rng, 3e-3),
            "latency_ms": self.latency.sample(&mut self.rng).round(),
            "utility": self.utility.sample(&mut self.rng),
        });
        if self.rng.random::<f64>() < 0.1 {
            values["feedback"] = json!(1);
            values["thumbs_down"] = json!(flag(&mut self.rng, 0.08));
        }
        json!({
            "ts": ripcord_server::clock::wall_now().to_rfc3339(),
            "service": SERVICE,
            "version": version,
            "unit": format!("u-{user}"),
            "segment": {"locale": locale},
            "values": values,
        })
    }
}
