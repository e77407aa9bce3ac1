//! Disk per day of traffic, with retention on and off: the live server
//! in-process on a manual clock, fed two weeks of NYC taxi demand (30-min
//! counts, `../shared/data/traffic/nyc_taxi.csv`, scaled) as the events of
//! one live release, with a retention pass at the end of each day. Prints
//! the store's bytes (file and WAL) and journal entries after each day;
//! asserts nothing.
//!
//! ```sh
//! cargo bench -p ripcord-server --bench retention             # 14 days, 1/20 of the demand
//! cargo bench -p ripcord-server --bench retention -- --quick  # 5 days, 1/100
//! ```

use std::path::Path;
use std::time::Duration;

use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use ripcord_store::DataClass;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;
const HALF_HOUR: i64 = 1_800_000;

const POLICY: &str = "\
service: taxi
scenario: conversational-agent
srm: off
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.5, min_samples: 1000, window: 1h}
  latency_p95: {signal: latency_ms, quantile: 0.95, absolute: 2500, window: 1h}
rollout:
  steps:
    - {share: 0.5, hold: 365d}
";

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The half-hour demand counts of the recorded series, in order.
fn demand() -> Result<Vec<u64>> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/traffic/nyc_taxi.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.trim().parse().ok())
        .collect())
}

fn disk(dir: &Path) -> u64 {
    ["ripcord.db", "ripcord.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

struct Day {
    events: u64,
    bytes: u64,
    entries: usize,
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: Value,
) -> Result<Value> {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{path}: {status} {answer}").into());
    }
    Ok(answer)
}

/// `days` days of scaled demand; raw events kept `keep` (None: default 30 d).
async fn run(days: usize, scale: u64, keep: Option<Dur>) -> Result<Vec<Day>> {
    let dir = tempfile::tempdir()?;
    let keys = tempfile::tempdir()?;
    let clock = Clock::manual(Time(1_404_172_800_000)); // 2014-07-01
    let mut config = ripcord_server::Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse()?);
    config.clock = clock.clone();
    config.tick = Duration::from_secs(3600);
    config.checkpoint_every = Duration::from_secs(3600);
    config.audit_key = Some(keys.path().join("audit.key"));
    if let Some(keep) = keep {
        config.retention.keep.insert(DataClass::RawEvents, keep);
    }
    let server = ripcord_server::start(config).await?;
    let token = std::fs::read_to_string(&server.token_path)?
        .trim()
        .to_string();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{base}/v1/policies/taxi"))
        .bearer_auth(&token)
        .body(POLICY)
        .send()
        .await?;
    if !put.status().is_success() {
        return Err(format!("policy: {}", put.text().await?).into());
    }
    for v in ["v1", "v2"] {
        call(
            &http,
            &base,
            &token,
            "/v1/services/taxi/versions",
            json!({"version": v, "model_id": "m"}),
        )
        .await?;
    }
    call(
        &http,
        &base,
        &token,
        "/v1/releases",
        json!({"service": "taxi", "baseline": "v1", "candidate": "v2"}),
    )
    .await?;
    let series = demand()?;
    let mut out = Vec::new();
    let mut slot = 0;
    for day in 0..days {
        let mut events = 0;
        for _ in 0..48 {
            let n = series.get(slot).copied().unwrap_or(0) / scale;
            slot += 1;
            let ts = clock.now().to_rfc3339();
            // Users come back: a pool of 50,000, sticky to their version.
            let batch: Vec<Value> = (0..n)
                .map(|i| {
                    let user = (slot as u64 * 7919 + i * 104_729) % 50_000;
                    json!({"ts": ts, "service": "taxi", "version": if user.is_multiple_of(2) { "v1" } else { "v2" },
                           "unit": format!("user-{user}"), "segment": {"locale": "en-US"},
                           "prompt": "Where is my ride? It has been twenty minutes.",
                           "values": {"outputs": 1, "moderation_fail": u8::from(i % 97 == 0), "latency_ms": 400 + (i * 37) % 900}})
                })
                .collect();
            for chunk in batch.chunks(1000) {
                call(
                    &http,
                    &base,
                    &token,
                    "/v1/events",
                    Value::Array(chunk.to_vec()),
                )
                .await?;
            }
            events += n;
            clock.advance(Dur(HALF_HOUR));
            server.app.hub.tick_all().await;
        }
        call(&http, &base, &token, "/v1/retention/run", json!({})).await?;
        let entries = server
            .app
            .hub
            .store
            .journal("taxi", 0, i64::MAX)
            .await?
            .len();
        out.push(Day {
            events,
            bytes: disk(dir.path()),
            entries,
        });
        let _ = day;
    }
    server.shutdown().await?;
    Ok(out)
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1 << 20) as f64)
}

fn main() -> Result {
    let quick = std::env::args().any(|a| a == "--quick");
    let (days, scale) = if quick { (5, 100) } else { (14, 20) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let kept = runtime.block_on(run(days, scale, Some(Dur(DAY))))?;
    let default = runtime.block_on(run(days, scale, None))?;
    println!("## Disk per day of traffic, retention on (raw events 1 d) and off (30 d)\n");
    println!("NYC taxi demand / {scale}, one live release, a retention pass each day.\n");
    println!(
        "| day | events that day | store MiB, kept 1 d | journal entries | store MiB, kept 30 d | journal entries |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (i, (k, d)) in kept.iter().zip(&default).enumerate() {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            i + 1,
            k.events,
            mib(k.bytes),
            k.entries,
            mib(d.bytes),
            d.entries
        );
    }
    let total: u64 = default.iter().map(|d| d.events).sum();
    let last = default.last().map_or(0, |d| d.bytes);
    println!(
        "\nStored per event while nothing expires: {} bytes.",
        last / total.max(1)
    );
    Ok(())
}
