//! `ripcord serve` benchmarks against the real (release) binary on a temp
//! dir, over loopback HTTP. Prints figures; asserts no timings.
//!
//! ```sh
//! cargo bench -p ripcord-cli --bench serve            # ~10 s per ingest row
//! cargo bench -p ripcord-cli --bench serve -- --quick # ~2 s per ingest row
//! ```
//!
//! Cargo builds the `ripcord` binary with the bench (release) profile before
//! running this (it is `target/release/ripcord`).
//!
//! - Ingest: events/s with durable acknowledgement (202 only after commit),
//!   batches of 1,000 events (a JSON array), 1, 2 and 4 concurrent client
//!   connections, a fresh server for each row; the server's peak memory
//!   (VmHWM). The client runs on the same 2 cores: bodies are generated
//!   before the clock starts.
//! - Time to revert: from the arrival of the 202 for the batch that carries
//!   the decisive evidence to `/v1/assign` giving the baseline to a unit that
//!   was on the candidate, as a multiple of one loopback `/healthz` round
//!   trip measured in the same run.
//! - Assignment throughput: `/v1/assign` requests per second from 1, 2 and
//!   4 connections against `/healthz` in the same run (what one replica
//!   serves, next to the cheapest request it answers).
//! - OTLP (`-- --otlp`): GenAI spans over OTLP/HTTP protobuf, batches of
//!   1,000 spans from 2 connections, acknowledged after commit, next to
//!   the NDJSON row of `/v1/events` in the same run.
//! - NATS (`-- --nats`, needs a NATS server with JetStream on
//!   127.0.0.1:4222): 2 connections of NDJSON over HTTP, then the same
//!   events as JetStream messages of 1,000 lines, published while ripcord
//!   is stopped and consumed (each acked after commit) by a fresh start:
//!   events/s from serving to the last ack.
//! - Restart: a release of the example policy fed N events (distinct
//!   units, batches of 1,000), then `kill -9` and a new process on the
//!   same data: the time from spawning it to serving, the journal replayed
//!   (from the latest snapshot, or the release start), the store's size.

// The tests' set-up, of which this bench needs a part.
#[allow(dead_code)]
#[path = "../tests/support.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use ripcord_store::Store;
use support::{
    Serve, assigned, client, event, quiet_policy, rfc3339_now, set_up_release, until_ready,
};

const BIN: &str = env!("CARGO_BIN_EXE_ripcord");

const REVERT_POLICY: &str = "\
service: revert-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.2, min_samples: 50, window: 1m, for: 0s}
triggers:
  safety: {when: moderation_rel, severity: critical, action: rollback}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
";

const BATCH: usize = 1000;

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    let (only_restart, only_assign) = (has("--restart"), has("--assign"));
    if has("--cluster") {
        return runtime.block_on(cluster(quick));
    }
    if has("--otlp") {
        return runtime.block_on(async {
            ingest(quick, &[(2, true)]).await?;
            otlp::ingest(quick).await
        });
    }
    if has("--nats") {
        return runtime.block_on(async {
            ingest(quick, &[(2, true)]).await?;
            nats::ingest(quick).await
        });
    }
    runtime.block_on(async {
        if !only_restart && !only_assign {
            ingest(quick, &[(1, false), (2, false), (4, false), (2, true)]).await?;
            revert(quick).await?;
        }
        if !only_restart {
            assign_throughput(quick).await?;
        }
        if !only_assign {
            restart(quick).await?;
        }
        Ok(())
    })
}

/// The body of batch `b`: `BATCH` events (units distinct across
/// batches), half per side, 1% failures; a JSON array, or NDJSON.
fn batch_text(service: &str, b: usize, ts: &str, ndjson: bool) -> String {
    let (open, sep, close) = if ndjson {
        ("", "\n", "\n")
    } else {
        ("[", ",", "]")
    };
    let mut body = String::with_capacity(BATCH * 170 + 2);
    body.push_str(open);
    for i in 0..BATCH {
        if i > 0 {
            body.push_str(sep);
        }
        let version = if i % 2 == 0 { "v1" } else { "v2" };
        let unit = format!("u{b}-{i}");
        event(
            &mut body,
            ts,
            service,
            version,
            &unit,
            i.is_multiple_of(100),
        );
    }
    body.push_str(close);
    body
}

/// Batch bodies, leaked so that sending one copies nothing (`&'static
/// str` bodies).
fn bodies(service: &str, count: usize, ndjson: bool) -> Vec<&'static str> {
    let ts = rfc3339_now();
    (0..count)
        .map(|b| &*Box::leak(batch_text(service, b, &ts, ndjson).into_boxed_str()))
        .collect()
}

struct IngestRow {
    connections: usize,
    format: &'static str,
    events_per_s: f64,
    requests: usize,
    p50_ms: f64,
    p99_ms: f64,
    peak_mib: f64,
    db_mib: f64,
}

/// One row per (connections, NDJSON or a JSON array).
async fn ingest(quick: bool, rows_of: &[(usize, bool)]) -> anyhow::Result<()> {
    let run_for = Duration::from_secs(if quick { 2 } else { 10 });
    let mut rows = Vec::new();
    for &(connections, ndjson) in rows_of {
        let content_type = if ndjson {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        let dir = tempfile::tempdir()?;
        let server = Serve::start(Path::new(BIN), dir.path(), false).await?;
        let c = client()?;
        set_up_release(&c, &server, "bench-svc", &quiet_policy("bench-svc"), None).await?;
        // Warm up (connections, page cache, the engine's first windows).
        post_json(&c, &server, bodies("bench-svc", 1, false)[0].to_string()).await?;
        let bodies = Arc::new(bodies("bench-svc", 16, ndjson));
        let started = Instant::now();
        let until = started + run_for;
        let tasks: Vec<_> = (0..connections)
            .map(|k| {
                let c = c.clone();
                let url = server.url("/v1/events");
                let auth = server.auth();
                let bodies = bodies.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut accepted = 0u64;
                    let mut i = k;
                    while Instant::now() < until {
                        let body = bodies[i % bodies.len()];
                        i += connections;
                        let sent = Instant::now();
                        let r = c
                            .post(&url)
                            .header("authorization", &auth)
                            .header("content-type", content_type)
                            .body(body)
                            .send()
                            .await?;
                        let status = r.status();
                        let text = r.text().await?;
                        if status != reqwest::StatusCode::ACCEPTED {
                            bail!("POST /v1/events: {status}: {text}");
                        }
                        latencies.push(sent.elapsed());
                        let v: serde_json::Value = serde_json::from_str(&text)?;
                        accepted += v["accepted"].as_u64().unwrap_or(0);
                    }
                    Ok::<_, anyhow::Error>((accepted, latencies))
                })
            })
            .collect();
        let mut accepted = 0;
        let mut latencies = Vec::new();
        for t in tasks {
            let (a, l) = t.await??;
            accepted += a;
            latencies.extend(l);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let pick = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let db: u64 = ["ripcord.db", "ripcord.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum();
        rows.push(IngestRow {
            connections,
            format: if ndjson { "NDJSON" } else { "JSON array" },
            events_per_s: accepted as f64 / elapsed.as_secs_f64(),
            requests: latencies.len(),
            p50_ms: pick(0.5),
            p99_ms: pick(0.99),
            peak_mib: server.peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
            db_mib: db as f64 / (1024.0 * 1024.0),
        });
    }
    println!(
        "\n## Ingest: POST /v1/events, {BATCH} events per batch, 202 after commit, {} s per row\n",
        run_for.as_secs()
    );
    println!(
        "| connections | body | events/s | requests | p50 ms | p99 ms | server peak RSS (VmHWM) MiB | store MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.connections,
            r.format,
            r.events_per_s,
            r.requests,
            r.p50_ms,
            r.p99_ms,
            r.peak_mib,
            r.db_mib
        );
    }
    Ok(())
}

async fn post_json(c: &reqwest::Client, s: &Serve, body: String) -> anyhow::Result<()> {
    let r = c
        .post(s.url("/v1/events"))
        .header("authorization", s.auth())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = r.status();
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("POST /v1/events: {status}: {}", r.text().await?);
    }
    r.bytes().await?;
    Ok(())
}

async fn start_release(c: &reqwest::Client, s: &Serve, service: &str) -> anyhow::Result<()> {
    let r = c
        .post(s.url("/v1/releases"))
        .header("authorization", s.auth())
        .json(&serde_json::json!({
            "service": service, "baseline": "v1", "candidate": "v2",
            "steps": [{"share": 0.5, "hold": "1h"}],
        }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("POST /v1/releases: {}: {}", r.status(), r.text().await?);
    }
    Ok(())
}

/// Median of a sorted-on-the-fly copy.
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn revert(quick: bool) -> anyhow::Result<()> {
    let releases = if quick { 3 } else { 10 };
    let dir = tempfile::tempdir()?;
    let server = Serve::start(Path::new(BIN), dir.path(), false).await?;
    let c = client()?;
    set_up_release(&c, &server, "revert-svc", REVERT_POLICY, None).await?;
    // One plain loopback round trip, on a warm connection, and one
    // /v1/assign round trip with nothing happening (the floor for the time
    // to revert: the first assign after the 202 is one of these),
    // interleaved so that both see the same machine.
    let mut back_to_back = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        c.get(server.url("/healthz")).send().await?.bytes().await?;
        back_to_back.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut rtts = Vec::new();
    let mut assign_rtts = Vec::new();
    for k in 0..300 {
        let t = Instant::now();
        c.get(server.url("/healthz")).send().await?.bytes().await?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        c.get(server.url(&format!("/v1/assign?service=revert-svc&unit=warm-{k}")))
            .header("authorization", server.auth())
            .send()
            .await?
            .bytes()
            .await?;
        assign_rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rtt = median(&rtts);
    let mut revert_us = Vec::new();
    // The same measurement after the 202s that did not revert yet.
    let mut not_yet_us = Vec::new();
    let mut batches_needed = Vec::new();
    let mut seq = 0u64;
    for n in 0..releases {
        if n > 0 {
            start_release(&c, &server, "revert-svc").await?;
        }
        // A unit the candidate serves.
        let mut unit = None;
        for k in 0..1000 {
            let u = format!("probe-{n}-{k}");
            if assigned(&c, &server, "revert-svc", &u).await? == "v2" {
                unit = Some(u);
                break;
            }
        }
        let unit = unit.ok_or_else(|| anyhow!("no unit on the candidate"))?;
        let assign_url = server.url(&format!("/v1/assign?service=revert-svc&unit={unit}"));
        // Small batches of a clear regression until one reverts.
        let mut found = None;
        for b in 1..=200 {
            let ts = rfc3339_now();
            let mut body = String::from("[");
            for i in 0..20 {
                if i > 0 {
                    body.push(',');
                }
                seq += 1;
                let candidate = i % 2 == 1;
                let fail = if candidate {
                    seq % 10 < 3
                } else {
                    seq.is_multiple_of(100)
                };
                let version = if candidate { "v2" } else { "v1" };
                event(
                    &mut body,
                    &ts,
                    "revert-svc",
                    version,
                    &format!("r{seq}"),
                    fail,
                );
            }
            body.push(']');
            post_json(&c, &server, body).await?;
            let acked = Instant::now();
            let v: serde_json::Value = c
                .get(&assign_url)
                .header("authorization", server.auth())
                .send()
                .await?
                .json()
                .await?;
            let answered = acked.elapsed();
            if v["version"] == "v1" {
                found = Some((answered, b));
                break;
            }
            not_yet_us.push(answered.as_secs_f64() * 1e6);
        }
        let (answered, b) = found.ok_or_else(|| anyhow!("release {n} never reverted"))?;
        revert_us.push(answered.as_secs_f64() * 1e6);
        batches_needed.push(b as f64);
        // Wait until the release record says so, then the next release.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = support::get_json(&c, &server, &format!("/v1/releases/revert-svc-{}", n + 1))
                .await?;
            if r["state"] == "rolled_back" {
                break;
            }
            if Instant::now() > deadline {
                bail!("release {} is {} after the revert", n + 1, r["state"]);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The same plain round trip, but right after a 202, as the decisive
    // assign is: it shows what the moment costs any request (a core that
    // slept through the commit's fsync wakes up), apart from the revert.
    let mut after_post = Vec::new();
    for k in 0..100 {
        let ts = rfc3339_now();
        let mut body = String::from("[");
        event(&mut body, &ts, "revert-svc", "v1", &format!("h{k}"), false);
        body.push(']');
        post_json(&c, &server, body).await?;
        let t = Instant::now();
        c.get(server.url("/healthz")).send().await?.bytes().await?;
        after_post.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let ratios: Vec<f64> = revert_us.iter().map(|r| r / rtt).collect();
    let tight: Vec<f64> = revert_us
        .iter()
        .map(|r| r / median(&back_to_back))
        .collect();
    let after_ratios: Vec<f64> = revert_us.iter().map(|r| r / median(&after_post)).collect();
    let max = |xs: &[f64]| xs.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "\n## Time to revert: 202 for the decisive batch → /v1/assign gives the baseline ({releases} releases)\n"
    );
    println!("| what | median | max |");
    println!("|---|---|---|");
    println!(
        "| loopback /healthz round trip, 300 back to back (µs) | {:.0} | {:.0} |",
        median(&back_to_back),
        max(&back_to_back)
    );
    println!(
        "| loopback /healthz round trip, interleaved with assigns (µs, 300 samples) | {:.0} | {:.0} |",
        rtt,
        max(&rtts)
    );
    println!(
        "| idle /v1/assign round trip (µs, 300 samples) | {:.0} | {:.0} |",
        median(&assign_rtts),
        max(&assign_rtts)
    );
    println!(
        "| /v1/assign right after a 202 that did not revert (µs, {} samples) | {:.0} | {:.0} |",
        not_yet_us.len(),
        median(&not_yet_us),
        max(&not_yet_us)
    );
    println!(
        "| time to revert (µs) | {:.0} | {:.0} |",
        median(&revert_us),
        max(&revert_us)
    );
    println!(
        "| time to revert / interleaved /healthz round trip | {:.2} | {:.2} |",
        median(&ratios),
        max(&ratios)
    );
    println!(
        "| time to revert / back-to-back /healthz round trip | {:.2} | {:.2} |",
        median(&tight),
        max(&tight)
    );
    println!(
        "| /healthz right after a 202 (µs, {} samples) | {:.0} | {:.0} |",
        after_post.len(),
        median(&after_post),
        max(&after_post)
    );
    println!(
        "| time to revert / round trip right after a 202 | {:.2} | {:.2} |",
        median(&after_ratios),
        max(&after_ratios)
    );
    println!(
        "| batches of 20 events until the revert | {:.0} | {:.0} |",
        median(&batches_needed),
        max(&batches_needed)
    );
    Ok(())
}

struct RestartRow {
    events: usize,
    units: usize,
    peak_mib: f64,
    restart_s: f64,
    db_mib: f64,
    snapshot_kib: f64,
}

/// Feeds a release `events` events, kills the server, and times a new one
/// on the same data until it serves.
async fn restart(quick: bool) -> anyhow::Result<()> {
    // `--events N`: one row of N events instead (e.g. 100,000,000: about
    // six minutes of ingest and 15 GB of store); `--units M`: the units
    // repeat every M events.
    let arg = |name: &str| {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
    };
    let one = arg("--events").map(|n| vec![n]);
    let sizes: Vec<usize> = match one {
        Some(n) => n,
        None if quick => vec![100_000],
        None => vec![100_000, 1_000_000, 10_000_000],
    };
    let units = arg("--units").unwrap_or(usize::MAX);
    let policy = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/conversational-agent/policy.yaml"),
    )?;
    let mut rows = Vec::new();
    for &events in &sizes {
        let dir = tempfile::tempdir()?;
        let mut server = Serve::start(Path::new(BIN), dir.path(), false).await?;
        let c = client()?;
        set_up_release(&c, &server, "support-bot", &policy, None).await?;
        // Stamped as sent: a long feed outlasts the lateness.
        for b in 0..events / BATCH {
            let body = batch_text(
                "support-bot",
                b % (units / BATCH).max(1),
                &rfc3339_now(),
                false,
            );
            post_json(&c, &server, body).await?;
        }
        let peak_mib = server.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
        server.kill9();
        let started = Instant::now();
        let server = Serve::start(Path::new(BIN), dir.path(), false).await?;
        let restart_s = started.elapsed().as_secs_f64();
        drop(server);
        let db = dir.path().join("ripcord.db");
        let snapshot = ripcord_store::SqlStore::open(&db)
            .await?
            .snapshot("support-bot")
            .await?;
        rows.push(RestartRow {
            events,
            units: events.min(units),
            peak_mib,
            restart_s,
            db_mib: dir_mib(dir.path()),
            snapshot_kib: snapshot.map_or(0.0, |s| s.body.len() as f64 / 1024.0),
        });
    }
    println!();
    println!("### Restart: kill -9 after N events, then a new process on the same data");
    println!();
    println!(
        "| events | distinct units | server peak RSS MiB | restart until serving s | store MiB | latest snapshot KiB |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {:.1} |",
            r.events, r.units, r.peak_mib, r.restart_s, r.db_mib, r.snapshot_kib
        );
    }
    Ok(())
}

/// The size of the files in `dir`, in MiB.
fn dir_mib(dir: &Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    bytes as f64 / (1024.0 * 1024.0)
}

/// Requests per second of GET `path(k)` from `connections` clients for
/// `run_for`, and the median latency in µs.
async fn hammer(
    server: &Serve,
    connections: usize,
    run_for: Duration,
    path: fn(usize) -> String,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let until = started + run_for;
    let tasks: Vec<_> = (0..connections)
        .map(|k| {
            let base = server.url("");
            let auth = server.auth();
            tokio::spawn(async move {
                let c = client()?;
                let mut latencies = Vec::new();
                let mut i = k;
                while Instant::now() < until {
                    let sent = Instant::now();
                    let r = c
                        .get(format!("{base}{}", path(i)))
                        .header("authorization", &auth)
                        .send()
                        .await?;
                    let status = r.status();
                    r.bytes().await?;
                    if !status.is_success() {
                        bail!("GET {}: {status}", path(i));
                    }
                    latencies.push(sent.elapsed().as_secs_f64() * 1e6);
                    i += connections;
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let per_s = latencies.len() as f64 / started.elapsed().as_secs_f64();
    Ok((per_s, median(&latencies)))
}

fn assign_path(k: usize) -> String {
    format!("/v1/assign?service=assign-svc&unit=user-{}", k % 100_000)
}

fn healthz_path(_: usize) -> String {
    "/healthz".into()
}

/// What one replica serves: `/v1/assign` against `/healthz`, alternating
/// per connection count so both see the same machine.
async fn assign_throughput(quick: bool) -> anyhow::Result<()> {
    let run_for = Duration::from_secs(if quick { 2 } else { 5 });
    let dir = tempfile::tempdir()?;
    let server = Serve::start(Path::new(BIN), dir.path(), false).await?;
    let c = client()?;
    set_up_release(&c, &server, "assign-svc", &quiet_policy("assign-svc"), None).await?;
    println!();
    println!("### Assignment throughput: one replica, loopback, {run_for:?} per cell");
    println!();
    println!(
        "| connections | /healthz req/s | /healthz p50 µs | /v1/assign req/s | /v1/assign p50 µs | assign / healthz throughput |"
    );
    println!("|---|---|---|---|---|---|");
    for connections in [1, 2, 4] {
        let (h, h50) = hammer(&server, connections, run_for, healthz_path).await?;
        let (a, a50) = hammer(&server, connections, run_for, assign_path).await?;
        println!(
            "| {connections} | {h:.0} | {h50:.0} | {a:.0} | {a50:.0} | {:.2} |",
            a / h
        );
    }
    Ok(())
}

/// Replicas on one PostgreSQL database (`--cluster`): take-over time
/// against the lease, durable ingest against SQLite with 1, 2 and 4
/// replicas, and assignment throughput per replica.
async fn cluster(quick: bool) -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--skip-failover") {
        failover(quick).await?;
    }
    replicated_ingest(quick).await?;
    replicated_assign(quick).await
}

/// `n` replicas of `ripcord serve` on `store` sharing `dir`; the first
/// leads. A release of `service` at 50% is set up on it.
async fn replicas(
    dir: &Path,
    store: &str,
    lease: &str,
    n: usize,
    service: &str,
) -> anyhow::Result<Vec<Serve>> {
    let args = ["--store", store, "--lease", lease];
    let mut out = vec![Serve::start_with(Path::new(BIN), dir, &args, false).await?];
    until_ready(&out[0], Duration::from_secs(30)).await?;
    for _ in 1..n {
        out.push(Serve::start_with(Path::new(BIN), dir, &args, false).await?);
    }
    let c = client()?;
    set_up_release(&c, &out[0], service, &quiet_policy(service), None).await?;
    // Followers assign once they have read the release.
    for r in &out[1..] {
        while assigned(&c, r, service, "u").await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(out)
}

/// Kill -9 of the leader → the follower answers `/readyz` (it leads and
/// has recovered), per lease period.
async fn failover(quick: bool) -> anyhow::Result<()> {
    let runs = if quick { 2 } else { 5 };
    let leases: &[(&str, f64)] = if quick {
        &[("500ms", 0.5), ("1s", 1.0)]
    } else {
        &[("500ms", 0.5), ("1s", 1.0), ("2s", 2.0), ("5s", 5.0)]
    };
    println!(
        "\n### Fail-over: kill -9 of the leader until the follower is ready, {runs} runs per lease\n"
    );
    println!("| lease | median s | max s | max / lease |");
    println!("|---|---|---|---|");
    for (lease, secs) in leases {
        let mut took = Vec::new();
        for _ in 0..runs {
            let db = ripcord_store::testing::TestDatabase::create().await;
            let dir = tempfile::tempdir()?;
            let mut fleet = replicas(dir.path(), &db.url, lease, 2, "fo-svc").await?;
            fleet[0].kill9();
            let t = until_ready(&fleet[1], Duration::from_secs(60)).await?;
            took.push(t.as_secs_f64());
        }
        let max = took.iter().copied().fold(0.0, f64::max);
        println!(
            "| {lease} | {:.2} | {max:.2} | {:.2} |",
            median(&took),
            max / secs
        );
    }
    Ok(())
}

/// Events per second for `run_for` from 2 connections per replica, each
/// posting batches of `BATCH` to its own replica (a follower forwards);
/// p50 and p99 ms, and how many 429s were retried.
async fn ingest_into(
    servers: &[Serve],
    service: &str,
    run_for: Duration,
) -> anyhow::Result<(f64, f64, f64, u64)> {
    let bodies = Arc::new(bodies(service, 16, false));
    let started = Instant::now();
    let until = started + run_for;
    let mut tasks = Vec::new();
    for (k, s) in servers.iter().flat_map(|s| [s, s]).enumerate() {
        let (url, auth, bodies) = (s.url("/v1/events"), s.auth(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let c = client()?;
            let (mut accepted, mut latencies, mut i, mut retried) = (0u64, Vec::new(), k, 0u64);
            while Instant::now() < until {
                let sent = Instant::now();
                let r = c
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(bodies[i % bodies.len()])
                    .send()
                    .await?;
                let (status, text) = (r.status(), r.text().await?);
                // One token shares the leader's per-token ingest slots
                // across every replica's clients: a busy answer (429, or
                // 503 from a follower whose forward the leader cut short
                // with its 429) is retried, as clients do.
                if status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                {
                    retried += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                if status != reqwest::StatusCode::ACCEPTED {
                    bail!("POST /v1/events: {status}: {text}");
                }
                latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                accepted += serde_json::from_str::<serde_json::Value>(&text)?["accepted"]
                    .as_u64()
                    .unwrap_or(0);
                i += 1;
            }
            Ok::<_, anyhow::Error>((accepted, latencies, retried))
        }));
    }
    let (mut accepted, mut latencies, mut retried) = (0, Vec::new(), 0);
    for t in tasks {
        let (a, l, r) = t.await??;
        accepted += a;
        latencies.extend(l);
        retried += r;
    }
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies
        .get(((latencies.len() as f64 - 1.0) * 0.99).round() as usize)
        .copied()
        .unwrap_or(0.0);
    let per_s = accepted as f64 / started.elapsed().as_secs_f64();
    Ok((per_s, median(&latencies), p99, retried))
}

/// Durable ingest: one SQLite server, then 1, 2 and 4 replicas on
/// PostgreSQL, 2 connections per server.
async fn replicated_ingest(quick: bool) -> anyhow::Result<()> {
    let run_for = Duration::from_secs(if quick { 2 } else { 10 });
    println!(
        "\n### Durable ingest: SQLite against PostgreSQL replicas, 2 connections per server, {run_for:?} per row\n"
    );
    println!("| store | replicas | events/s | p50 ms | p99 ms | 429/503 retried |");
    println!("|---|---|---|---|---|---|");
    {
        let dir = tempfile::tempdir()?;
        let server = Serve::start(Path::new(BIN), dir.path(), false).await?;
        set_up_release(&client()?, &server, "ri-svc", &quiet_policy("ri-svc"), None).await?;
        let (per_s, p50, p99, retried) =
            ingest_into(std::slice::from_ref(&server), "ri-svc", run_for).await?;
        println!("| SQLite | 1 | {per_s:.0} | {p50:.1} | {p99:.1} | {retried} |");
    }
    for n in [1, 2, 4] {
        let db = ripcord_store::testing::TestDatabase::create().await;
        let dir = tempfile::tempdir()?;
        let fleet = replicas(dir.path(), &db.url, "5s", n, "ri-svc").await?;
        let (per_s, p50, p99, retried) = ingest_into(&fleet, "ri-svc", run_for).await?;
        println!("| PostgreSQL | {n} | {per_s:.0} | {p50:.1} | {p99:.1} | {retried} |");
    }
    Ok(())
}

/// `/v1/assign` on the leader and on a follower of two replicas, each
/// against its own `/healthz` in the same run.
async fn replicated_assign(quick: bool) -> anyhow::Result<()> {
    let run_for = Duration::from_secs(if quick { 2 } else { 5 });
    let db = ripcord_store::testing::TestDatabase::create().await;
    let dir = tempfile::tempdir()?;
    let fleet = replicas(dir.path(), &db.url, "5s", 2, "assign-svc").await?;
    println!(
        "\n### Assignment throughput per replica: two replicas on PostgreSQL, 2 connections, {run_for:?} per cell\n"
    );
    println!(
        "| replica | /healthz req/s | /healthz p50 µs | /v1/assign req/s | /v1/assign p50 µs | assign / healthz |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, s) in [("leader", &fleet[0]), ("follower", &fleet[1])] {
        let (h, h50) = hammer(s, 2, run_for, healthz_path).await?;
        let (a, a50) = hammer(s, 2, run_for, assign_path).await?;
        println!(
            "| {name} | {h:.0} | {h50:.0} | {a:.0} | {a50:.0} | {:.2} |",
            a / h
        );
    }
    Ok(())
}

/// The NATS JetStream source's throughput: messages published while
/// ripcord is stopped, then consumed by a fresh start.
mod nats {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, bail};
    use async_nats::jetstream::{self, consumer::PullConsumer, stream};

    use super::support::{Serve, client, get_json, quiet_policy, set_up_release};
    use super::{BATCH, BIN, bodies};

    const URL: &str = "nats://127.0.0.1:4222";

    pub async fn ingest(quick: bool) -> anyhow::Result<()> {
        let messages = if quick { 200 } else { 1000 };
        let js = jetstream::new(
            async_nats::connect(URL)
                .await
                .map_err(|e| anyhow!("no NATS server on {URL}: {e}"))?,
        );
        let name = format!("RC_BENCH_{}", std::process::id());
        let subject = format!("rcbench.{name}");
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await?;
        let result = consume(&js, &name, &subject, messages).await;
        js.delete_stream(&name).await?;
        result
    }

    async fn consume(
        js: &jetstream::Context,
        name: &str,
        subject: &str,
        messages: usize,
    ) -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let args = ["--nats", URL, "--nats-stream", name];
        let mut server = Serve::start_with(Path::new(BIN), dir.path(), &args, false).await?;
        let c = client()?;
        let release =
            set_up_release(&c, &server, "bench-svc", &quiet_policy("bench-svc"), None).await?;
        let id = release["id"].as_str().unwrap_or_default().to_string();
        // The consumer exists once the source has bound it.
        let stream = js.get_stream(name).await?;
        let started = Instant::now();
        while stream
            .get_consumer::<jetstream::consumer::pull::Config>("ripcord")
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("ripcord never bound its consumer");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill9();
        let bodies = bodies("bench-svc", messages, true);
        for body in &bodies {
            js.publish(subject.to_string(), body.as_bytes().into())
                .await?
                .await?;
        }
        let server = Serve::start_with(Path::new(BIN), dir.path(), &args, false).await?;
        let started = Instant::now();
        let consumer: PullConsumer = stream
            .get_consumer("ripcord")
            .await
            .map_err(|e| anyhow!("the consumer: {e}"))?;
        until_acked(consumer).await?;
        let elapsed = started.elapsed();
        let r = get_json(&c, &server, &format!("/v1/releases/{id}")).await?;
        let stored = r["events"]["baseline"].as_u64().unwrap_or(0)
            + r["events"]["candidate"].as_u64().unwrap_or(0);
        let events = (messages * BATCH) as u64;
        if stored != events {
            bail!("{stored} events counted of {events} published");
        }
        println!(
            "\n## Ingest: NATS JetStream, {messages} messages of {BATCH} NDJSON lines, acked after commit\n"
        );
        println!(
            "| events | seconds (serving → last ack) | events/s | server peak RSS (VmHWM) MiB |"
        );
        println!("|---|---|---|---|");
        println!(
            "| {events} | {:.2} | {:.0} | {:.1} |",
            elapsed.as_secs_f64(),
            events as f64 / elapsed.as_secs_f64(),
            server.peak_rss_kib().unwrap_or(0) as f64 / 1024.0
        );
        Ok(())
    }

    /// Polls the consumer until nothing is pending or awaiting an ack.
    async fn until_acked(mut consumer: PullConsumer) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let info = consumer.info().await?;
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("not consumed within 2 minutes: {info:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// OTLP/HTTP: GenAI spans as protobuf exports.
mod otlp {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::bail;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::support::{Serve, client, get_json, now_ms, set_up_release};
    use super::{BATCH, BIN};

    const POLICY: &str = "service: otlp-svc
srm: off
signals:
  latency_ms: {category: operational, kind: latency, unit: ms}
  error: {category: operational, kind: rate, denominator: outputs}
criteria:
  latency_p95: {signal: latency_ms, quantile: 0.95, absolute: 1000000, min_samples: 1000000000, window: 10m}
  errors: {signal: error, absolute: 0.99, min_samples: 1000000000, window: 10m}
triggers:
  slow: {when: latency_p95, severity: minor, action: notify}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
";

    fn attr(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    /// Export `b`: `BATCH` GenAI spans, half per version, ending now.
    fn export(b: usize, now_ns: u64) -> Vec<u8> {
        let resource = |version: &str, half: usize| {
            let spans = (0..BATCH / 2)
                .map(|i| Span {
                    name: "chat".into(),
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    start_time_unix_nano: now_ns - 300_000_000,
                    end_time_unix_nano: now_ns,
                    attributes: vec![
                        attr("gen_ai.operation.name", "chat"),
                        attr("user.id", &format!("u{b}-{half}-{i}")),
                    ],
                    ..Default::default()
                })
                .collect();
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        attr("service.name", "otlp-svc"),
                        attr("service.version", version),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }
        };
        ExportTraceServiceRequest {
            resource_spans: vec![resource("v1", 0), resource("v2", 1)],
        }
        .encode_to_vec()
    }

    pub async fn ingest(quick: bool) -> anyhow::Result<()> {
        let run_for = Duration::from_secs(if quick { 2 } else { 10 });
        let dir = tempfile::tempdir()?;
        let server = Serve::start_with(Path::new(BIN), dir.path(), &[], false).await?;
        let c = client()?;
        let release = set_up_release(&c, &server, "otlp-svc", POLICY, None).await?;
        let id = release["id"].as_str().unwrap_or_default().to_string();
        let now_ns = now_ms() as u64 * 1_000_000;
        let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..16).map(|b| export(b, now_ns)).collect());
        let started = Instant::now();
        let until = started + run_for;
        let mut tasks = Vec::new();
        for k in 0..2 {
            let (url, auth, bodies) =
                (server.url("/otlp/v1/traces"), server.auth(), bodies.clone());
            tasks.push(tokio::spawn(async move {
                let c = client()?;
                let mut sent = 0u64;
                let mut i = k;
                while Instant::now() < until {
                    let r = c
                        .post(&url)
                        .header("authorization", &auth)
                        .header("content-type", "application/x-protobuf")
                        .body(bodies[i % bodies.len()].clone())
                        .send()
                        .await?;
                    let status = r.status();
                    let answer = r.bytes().await?;
                    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        continue;
                    }
                    if status != reqwest::StatusCode::OK || !answer.is_empty() {
                        bail!(
                            "POST /otlp/v1/traces: {status}, {} answer bytes",
                            answer.len()
                        );
                    }
                    sent += BATCH as u64;
                    i += 1;
                }
                Ok::<u64, anyhow::Error>(sent)
            }));
        }
        let mut spans = 0;
        for t in tasks {
            spans += t.await??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let r = get_json(&c, &server, &format!("/v1/releases/{id}")).await?;
        let stored = r["events"]["baseline"].as_u64().unwrap_or(0)
            + r["events"]["candidate"].as_u64().unwrap_or(0);
        if stored != spans {
            bail!("{stored} events counted of {spans} spans acknowledged");
        }
        println!(
            "\n## Ingest: OTLP/HTTP protobuf, {BATCH} GenAI spans per export, 2 connections, 200 after commit\n"
        );
        println!("| spans | seconds | spans/s | server peak RSS (VmHWM) MiB |");
        println!("|---|---|---|---|");
        println!(
            "| {spans} | {elapsed:.2} | {:.0} | {:.1} |",
            spans as f64 / elapsed,
            server.peak_rss_kib().unwrap_or(0) as f64 / 1024.0
        );
        Ok(())
    }
}
