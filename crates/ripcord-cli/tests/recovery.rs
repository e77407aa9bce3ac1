//! kill -9 recovery of the real `ripcord serve` process: during ingest, and
//! in the middle of a staged rollback's verification.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{
    Serve, client, decisions, event, get_json, quiet_policy, rfc3339_now, set_up_release,
    until_ready,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ripcord_store::testing::TestDatabase;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ripcord");

/// Fires quickly on 30% vs 1% moderation failures and rolls back in two
/// stages, each verified for a few seconds.
pub(crate) const ROLLBACK_POLICY: &str = "\
service: rb-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.2, min_samples: 50, window: 10s, for: 0s}
triggers:
  safety:
    when: moderation_rel
    severity: critical
    action:
      rollback:
        stages:
          - {move_back: 0.5, verify_for: 3s}
          - {move_back: 1.0, verify_for: 3s}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
";

/// Per-side event counts of one batch (or a sum of batches).
pub(crate) type Sides = (u64, u64);

/// A batch of `n` events for `service`, versions picked at random; each
/// side's events fail moderation with its own probability.
pub(crate) fn batch(
    rng: &mut StdRng,
    service: &str,
    n: usize,
    fail: (f64, f64),
) -> (String, Sides) {
    let ts = rfc3339_now();
    let mut body = String::with_capacity(n * 170 + 2);
    let mut sides = (0, 0);
    body.push('[');
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        let candidate = rng.random_bool(0.5);
        let (version, p) = if candidate {
            sides.1 += 1;
            ("v2", fail.1)
        } else {
            sides.0 += 1;
            ("v1", fail.0)
        };
        let unit = format!("u{}", rng.random_range(0..100_000u32));
        event(&mut body, &ts, service, version, &unit, rng.random_bool(p));
    }
    body.push(']');
    (body, sides)
}

/// A batch of `n` healthy events (1% failures on both sides) from random
/// units, each on the version the assignment gives it at `share` — a
/// rollback stage verifies that clients follow the assignment.
fn following(rng: &mut StdRng, service: &str, n: usize, share: f64) -> String {
    let ts = rfc3339_now();
    let mut body = String::from("[");
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        let unit = format!("u{}", rng.random_range(0..100_000u32));
        let candidate = ripcord_core::assign::is_candidate(service, &unit, share);
        let version = if candidate { "v2" } else { "v1" };
        event(
            &mut body,
            &ts,
            service,
            version,
            &unit,
            rng.random_bool(0.01),
        );
    }
    body.push(']');
    body
}

/// What the senders saw: batches acknowledged with 202, and batches whose
/// request failed (in flight at a kill: stored or not).
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) acked: Sides,
    pub(crate) in_flight: Vec<Sides>,
}

/// Sends batches until `stop`, or until a request fails (the server died).
pub(crate) async fn sender(
    base: String,
    token: String,
    seed: u64,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let c = client().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::SeqCst) {
        let n = rng.random_range(150..=250);
        let (body, sides) = batch(&mut rng, "ingest-svc", n, (0.01, 0.01));
        let result = c
            .post(format!("{base}/v1/events"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                // The server answered 202, so everything in it is durable;
                // every event here is valid, so all of it was accepted.
                assert_eq!(v["accepted"], n as u64, "{v}");
                let mut l = ledger.lock().unwrap();
                l.acked.0 += sides.0;
                l.acked.1 += sides.1;
            }
            // Retryable: the server is going (a lost leader), or a
            // follower could not reach the leader, which may have stored
            // the batch before it died.
            Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                ledger.lock().unwrap().in_flight.push(sides);
                return;
            }
            Ok(r) => panic!(
                "POST /v1/events: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => {
                ledger.lock().unwrap().in_flight.push(sides);
                return;
            }
        }
    }
}

/// Every per-side sum of a subset of `batches`.
pub(crate) fn subset_sums(batches: &[Sides]) -> BTreeSet<Sides> {
    let mut sums = BTreeSet::from([(0, 0)]);
    for b in batches {
        let more: Vec<Sides> = sums.iter().map(|s| (s.0 + b.0, s.1 + b.1)).collect();
        sums.extend(more);
    }
    sums
}

/// Acknowledged events are all stored, and what is stored beyond them is
/// some of the batches whose answer never came (batches are atomic).
pub(crate) fn accounted(stored: Sides, ledger: &Ledger) {
    let extra = stored
        .0
        .checked_sub(ledger.acked.0)
        .zip(stored.1.checked_sub(ledger.acked.1));
    let Some(extra) = extra else {
        panic!(
            "acknowledged events were lost: stored {stored:?}, acknowledged {:?}",
            ledger.acked
        );
    };
    assert!(
        subset_sums(&ledger.in_flight).contains(&extra),
        "stored {stored:?} = acknowledged {:?} + {extra:?}, no set of the batches in flight {:?}",
        ledger.acked,
        ledger.in_flight
    );
}

pub(crate) fn no_duplicates(lines: &[String]) {
    let mut seen = HashSet::new();
    for l in lines {
        assert!(seen.insert(l), "duplicate decision line: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ingest_keeps_every_acknowledged_event_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let c = client().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED_0001);
    let mut server = Serve::start(Path::new(BIN), dir.path(), true)
        .await
        .unwrap();
    let release = set_up_release(&c, &server, "ingest-svc", &quiet_policy("ingest-svc"), None)
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap().to_string();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let cycles = 4;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        // Two connections, so that group commit puts several requests in
        // one transaction.
        let senders: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(sender(
                    server.base.clone(),
                    server.token.clone(),
                    rng.random(),
                    stop.clone(),
                    ledger.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..900))).await;
        let before = get_json(&c, &server, &format!("/v1/releases/{id}"))
            .await
            .unwrap();
        let log_before = decisions(&c, &server, "ingest-svc").await.unwrap();
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for s in senders {
            s.await.unwrap();
        }
        server = Serve::start(Path::new(BIN), dir.path(), true)
            .await
            .unwrap();

        let after = get_json(&c, &server, &format!("/v1/releases/{id}"))
            .await
            .unwrap();
        assert_eq!(after["state"], before["state"], "cycle {cycle}: {after}");
        assert_eq!(after["share"], before["share"], "cycle {cycle}: {after}");
        let log_after = decisions(&c, &server, "ingest-svc").await.unwrap();
        no_duplicates(&log_after);
        assert!(
            log_after.starts_with(&log_before),
            "cycle {cycle}: the decision log lost or changed lines\nbefore: {log_before:#?}\nafter: {log_after:#?}"
        );

        let stored = (
            after["events"]["baseline"].as_u64().unwrap(),
            after["events"]["candidate"].as_u64().unwrap(),
        );
        let l = ledger.lock().unwrap();
        assert!(
            l.acked.0 + l.acked.1 > 0,
            "cycle {cycle}: nothing was acknowledged"
        );
        accounted(stored, &l);
        eprintln!(
            "cycle {cycle}: acknowledged {:?}, in flight at kills {:?}, stored {stored:?}",
            l.acked, l.in_flight
        );
    }

    // The restarted server keeps counting from where the store left off.
    let before = get_json(&c, &server, &format!("/v1/releases/{id}"))
        .await
        .unwrap();
    let (body, sides) = batch(&mut rng, "ingest-svc", 200, (0.01, 0.01));
    let r = c
        .post(server.url("/v1/events"))
        .header("authorization", server.auth())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let after = get_json(&c, &server, &format!("/v1/releases/{id}"))
        .await
        .unwrap();
    assert_eq!(
        after["events"]["baseline"].as_u64().unwrap(),
        before["events"]["baseline"].as_u64().unwrap() + sides.0
    );
    assert_eq!(
        after["events"]["candidate"].as_u64().unwrap(),
        before["events"]["candidate"].as_u64().unwrap() + sides.1
    );
    assert_eq!(after["state"], "ramping");
    assert_eq!(after["share"], 0.5);
}

/// A loopback webhook sink: records every delivery's `webhook-id` and body.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    use axum::http::HeaderMap;
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let store = store.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                store.lock().unwrap().push((id, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got)
}

/// Posts one batch; true on 202.
pub(crate) async fn post(c: &reqwest::Client, base: &str, token: &str, body: String) -> bool {
    c.post(format!("{base}/v1/events"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED)
}

fn count_actions(log: &[String], action: &str) -> Vec<String> {
    log.iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d["action"] == action)
        .map(|d| {
            d["idempotency_key"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The servers a staged-rollback test drives, and what replaces the one
/// it kills.
trait Fleet {
    /// The server that takes requests now.
    fn serving(&self) -> &Serve;
    /// Kills the serving process (SIGKILL) and returns once its
    /// replacement takes requests.
    async fn kill_and_replace(&mut self);
}

/// One process on an SQLite file, started again on it.
struct Restarted {
    dir: tempfile::TempDir,
    server: Serve,
}

impl Fleet for Restarted {
    fn serving(&self) -> &Serve {
        &self.server
    }

    async fn kill_and_replace(&mut self) {
        self.server.kill9();
        self.server = Serve::start(Path::new(BIN), self.dir.path(), true)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_staged_rollback_completes_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(Path::new(BIN), dir.path(), true)
        .await
        .unwrap();
    let mut fleet = Restarted { dir, server };
    let log = staged_rollback_across_kills(&mut fleet, 0x5EED_0002).await;
    eprintln!("{} decisions", log.len());
}

/// The lease of the replicas below: a follower must lead within two.
pub(crate) const LEASE: Duration = Duration::from_secs(1);

/// Two `ripcord serve` on one PostgreSQL database, sharing a data
/// directory (the admin token and keys): the leader takes requests. A
/// kill hands over to the follower, and a new follower is started.
struct Replicas {
    dir: tempfile::TempDir,
    store: String,
    leader: Serve,
    follower: Serve,
    /// From each kill until the follower was ready (it leads, recovered).
    takeovers: Vec<Duration>,
}

impl Replicas {
    async fn start(store: String) -> Replicas {
        let dir = tempfile::tempdir().unwrap();
        let leader = replica(dir.path(), &store).await;
        until_ready(&leader, Duration::from_secs(10)).await.unwrap();
        let follower = replica(dir.path(), &store).await;
        until_following(&follower, &leader).await;
        Replicas {
            dir,
            store,
            leader,
            follower,
            takeovers: Vec::new(),
        }
    }
}

impl Fleet for Replicas {
    fn serving(&self) -> &Serve {
        &self.leader
    }

    async fn kill_and_replace(&mut self) {
        self.leader.kill9();
        let killed = Instant::now();
        until_ready(&self.follower, 3 * LEASE).await.unwrap();
        self.takeovers.push(killed.elapsed());
        let next = replica(self.dir.path(), &self.store).await;
        until_following(&next, &self.follower).await;
        self.leader = std::mem::replace(&mut self.follower, next);
    }
}

pub(crate) async fn replica(dir: &Path, store: &str) -> Serve {
    let args = ["--store", store, "--lease", "1s"];
    Serve::start_with(Path::new(BIN), dir, &args, true)
        .await
        .unwrap()
}

/// Waits until `follower` names `leader` as the leader.
pub(crate) async fn until_following(follower: &Serve, leader: &Serve) {
    let c = client().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cluster: Value = c
            .get(follower.url("/v1/cluster"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if cluster["role"] == "follower" && cluster["leader"]["node"] == leader.base.as_str() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never followed {}: {cluster}",
            leader.base
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_during_a_staged_rollback_hands_it_to_a_follower() {
    let db = TestDatabase::create().await;
    let mut fleet = Replicas::start(db.url.clone()).await;
    staged_rollback_across_kills(&mut fleet, 0x5EED_0003).await;
    let takeovers = fleet.takeovers.clone();
    assert_eq!(takeovers.len(), 2, "{takeovers:?}");
    for took in &takeovers {
        assert!(
            *took < 2 * LEASE,
            "a follower took {took:?} to lead: {takeovers:?}"
        );
    }
    // The follower assigns as the leader does: everybody on v1.
    let c = client().unwrap();
    for unit in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let version = crate::support::assigned(&c, &fleet.follower, "rb-svc", unit)
            .await
            .unwrap();
        assert_eq!(version, "v1");
    }
    eprintln!("takeovers after kill -9 of the leader: {takeovers:?} (lease {LEASE:?})");
}

/// Drives `rb-svc` into its staged rollback and kills the serving process
/// in the middle of each stage's verification; the rollback completes
/// once, every decision is delivered, and nothing happens twice. The
/// decision log.
async fn staged_rollback_across_kills(fleet: &mut impl Fleet, seed: u64) -> Vec<String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(45);
    let c = client().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let (sink, deliveries) = receiver().await;
    let release = set_up_release(&c, fleet.serving(), "rb-svc", ROLLBACK_POLICY, Some(&sink))
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap().to_string();
    let release_path = format!("/v1/releases/{id}");

    // A clear regression until the trigger fires.
    loop {
        assert!(Instant::now() < deadline, "the trigger never fired");
        let (body, _) = batch(&mut rng, "rb-svc", 200, (0.01, 0.30));
        assert!(post(&c, &fleet.serving().base, &fleet.serving().token, body).await);
        let r = get_json(&c, fleet.serving(), &release_path).await.unwrap();
        if r["state"] == "rolling_back" {
            break;
        }
        assert_eq!(r["state"], "ramping", "{r}");
    }

    // From now on, healthy traffic that follows the assignment, across
    // restarts.
    let target: Arc<Mutex<(String, String)>> = Arc::new(Mutex::new((
        fleet.serving().base.clone(),
        fleet.serving().token.clone(),
    )));
    let stop = Arc::new(AtomicBool::new(false));
    let healthy = {
        let (target, stop) = (target.clone(), stop.clone());
        let mut rng = StdRng::seed_from_u64(rng.random());
        let release_path = release_path.clone();
        tokio::spawn(async move {
            let c = client().unwrap();
            while !stop.load(Ordering::SeqCst) {
                let (base, token) = target.lock().unwrap().clone();
                let share = c
                    .get(format!("{base}{release_path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .ok()
                    .map(|r| r.json::<Value>());
                let share = match share {
                    Some(f) => f.await.ok().and_then(|v| v["share"].as_f64()),
                    None => None,
                };
                let Some(share) = share else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let body = following(&mut rng, "rb-svc", 100, share);
                if !post(&c, &base, &token, body).await {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Kill in the middle of each stage's verification (3 s each): 1.2 s in.
    let mut killed_in = Vec::new();
    let mut last_stage = None;
    loop {
        assert!(Instant::now() < deadline, "the rollback never completed");
        let r = get_json(&c, fleet.serving(), &release_path).await.unwrap();
        if r["state"] == "rolled_back" {
            break;
        }
        assert_eq!(r["state"], "rolling_back", "{r}");
        let stage = r["stage"].clone();
        if last_stage.as_ref() != Some(&stage) {
            last_stage = Some(stage.clone());
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let r = get_json(&c, fleet.serving(), &release_path).await.unwrap();
            if r["state"] != "rolling_back" || r["stage"] != stage {
                continue;
            }
            let log_before = decisions(&c, fleet.serving(), "rb-svc").await.unwrap();
            fleet.kill_and_replace().await;
            *target.lock().unwrap() = (fleet.serving().base.clone(), fleet.serving().token.clone());
            let log_after = decisions(&c, fleet.serving(), "rb-svc").await.unwrap();
            no_duplicates(&log_after);
            assert!(
                log_after.starts_with(&log_before),
                "the restart lost decisions"
            );
            let r = get_json(&c, fleet.serving(), &release_path).await.unwrap();
            assert_eq!(r["state"], "rolling_back", "right after the restart: {r}");
            assert_eq!(r["stage"], stage, "right after the restart: {r}");
            killed_in.push(stage);
            continue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        killed_in.len(),
        2,
        "expected a kill in each of the two stages: {killed_in:?}"
    );

    // Let a couple more ticks pass: nothing may happen again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::SeqCst);
    healthy.await.unwrap();

    let r = get_json(&c, fleet.serving(), &release_path).await.unwrap();
    assert_eq!(r["state"], "rolled_back", "{r}");
    assert_eq!(r["share"], 0.0, "{r}");
    for unit in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        assert_eq!(
            crate::support::assigned(&c, fleet.serving(), "rb-svc", unit)
                .await
                .unwrap(),
            "v1"
        );
    }
    let log = decisions(&c, fleet.serving(), "rb-svc").await.unwrap();
    no_duplicates(&log);
    let stages = count_actions(&log, "rollback_stage");
    let complete = count_actions(&log, "rollback_complete");
    let engine_release = r["engine_release"].as_str().unwrap();
    assert_eq!(
        stages,
        vec![
            format!("{engine_release}/rollback_stage/1"),
            format!("{engine_release}/rollback_stage/2")
        ],
        "{log:#?}"
    );
    assert_eq!(complete.len(), 1, "{log:#?}");

    // Every decision is delivered (at least once), under one webhook-id
    // per decision, and no delivery is for a decision not in the log.
    let expected: BTreeMap<String, usize> = log.iter().fold(BTreeMap::new(), |mut m, l| {
        let v: Value = serde_json::from_str(l).unwrap();
        *m.entry(v.to_string()).or_default() += 1;
        m
    });
    let by_id = loop {
        let got = deliveries.lock().unwrap().clone();
        let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
        for (wid, body) in &got {
            if let Some(first) = by_id.get(wid) {
                assert_eq!(first, body, "webhook {wid} was delivered with two bodies");
            }
            by_id.insert(wid.clone(), body.clone());
        }
        if by_id.len() >= log.len() {
            break by_id;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "only {} of {} decisions were delivered",
            by_id.len(),
            log.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let delivered: BTreeMap<String, usize> = by_id.values().fold(BTreeMap::new(), |mut m, b| {
        *m.entry(b["data"].to_string()).or_default() += 1;
        m
    });
    assert_eq!(delivered, expected, "the deliveries are not the decisions");
    let total = deliveries.lock().unwrap().len();
    eprintln!(
        "{} decisions, {} distinct webhook ids, {total} deliveries, kills in stages {killed_in:?}, {:?}",
        log.len(),
        by_id.len(),
        started.elapsed()
    );
    log
}
