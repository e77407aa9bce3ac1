//! Retention, legal holds and purges through the running server: each
//! class goes when its period has passed unless a hold keeps it, a purge
//! erases one person from the journal, the samples and the evidence
//! bundles (except what a hold keeps), and what is left still verifies.

use std::collections::BTreeMap;

use crate::gov_server::GovServer;
use crate::support::{Result, inbox};
use ripcord_core::evidence;
use ripcord_core::{Dur, Time};
use ripcord_server::hub::snapshot::ServiceSnapshot;
use ripcord_store::{Batch, Snapshot, Store};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

/// A candidate that fails moderation opens a critical incident (with an
/// evidence bundle) and rolls back.
const POLICY: &str = "\
service: gov-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.2, min_samples: 50, window: 30s, for: 0s}
triggers:
  safety:
    when: moderation_rel
    severity: critical
    action:
      rollback:
        stages:
          - {move_back: 1.0, verify_for: 1s}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
incidents:
  ack: {critical: 1h, major: 1h, minor: 1h}
  escalation:
    - {after: 0s, channels: [chat]}
";

/// A release that regressed: its incident open, its bundle frozen, a
/// minute of traffic after (so that a snapshot covers the journal).
async fn regressed() -> Result<(GovServer, Value)> {
    let (hooks, _inbox) = inbox().await?;
    let near = Time(ripcord_server::clock::wall_now().0 / 1000 * 1000);
    let gov = GovServer::start(POLICY, &hooks, near).await?;
    gov.release().await?;
    for _ in 0..40 {
        if !gov.incidents().await?.is_empty() {
            break;
        }
        gov.send(200, true).await?;
        gov.advance(1000).await;
    }
    for _ in 0..3 {
        gov.send(20, false).await?;
        gov.advance(61_000).await;
    }
    let incident = gov
        .incidents()
        .await?
        .first()
        .cloned()
        .ok_or("no incident")?;
    assert!(incident["evidence"].is_string(), "{incident}");
    Ok((gov, incident))
}

async fn run_retention(gov: &GovServer) -> Result<BTreeMap<String, (u64, u64)>> {
    let report = gov.ok("post", "/v1/retention/run", None, None).await?;
    let by_class = report["classes"]
        .as_array()
        .ok_or("no classes")?
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap_or(u64::MAX);
            (
                c["class"].as_str().unwrap_or("?").to_string(),
                (n("deleted"), n("held")),
            )
        })
        .collect();
    Ok(by_class)
}

fn store(gov: &GovServer) -> std::sync::Arc<dyn Store> {
    gov.server.app.hub.store.clone()
}

/// Journal entries by kind.
async fn journal_kinds(store: &dyn Store) -> Result<BTreeMap<String, usize>> {
    let mut kinds = BTreeMap::new();
    for e in store.journal("gov-svc", 0, 1_000_000).await? {
        *kinds.entry(e.kind).or_default() += 1;
    }
    Ok(kinds)
}

fn verify(text: &str) -> Result<ripcord_core::audit::Verified> {
    ripcord_core::audit::verify(text).map_err(|b| b.to_string().into())
}

async fn audit_text(store: &dyn Store) -> Result<String> {
    let lines = store.audit(0, 1_000_000).await?;
    Ok(lines.iter().map(|l| format!("{}\n", l.line)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_class_goes_after_its_period_unless_a_hold_keeps_it() -> Result {
    let (gov, incident) = regressed().await?;
    let store = store(&gov);
    let address = incident["evidence"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let snap = store.snapshot("gov-svc").await?.ok_or("no snapshot")?;
    let before = store.journal("gov-svc", 0, 1_000_000).await?;
    let deletable = before
        .iter()
        .filter(|e| e.kind != "start" && e.seq <= snap.journal_seq)
        .count() as u64;
    let decisions = store.decisions("gov-svc", 0, 0, 1_000_000).await?.len() as u64;
    // Series points go with the decisions they chart.
    let release = incident["release"].as_str().unwrap_or_default();
    let points = store.series(release, i64::MIN, 1_000_000).await?.len() as u64;
    assert!(deletable > 0 && decisions > 0 && points > 0);

    // Nothing is old enough yet.
    let nothing = run_retention(&gov).await?;
    assert!(nothing.values().all(|(d, _)| *d == 0), "{nothing:?}");

    let hold = json!({"incident": incident["id"], "reason": "litigation LIT-7"});
    let placed = gov.ok("post", "/v1/holds", None, Some(hold)).await?;
    // Past every default period: raw events 30 d … audit 6 years.
    gov.clock.advance(Dur(2200 * DAY));
    let held = run_retention(&gov).await?;
    assert_eq!(held["raw_events"], (0, deletable));
    assert_eq!(held["decisions"], (0, decisions + points));
    assert_eq!(held["evidence"], (0, 1));
    assert!(store.blob(&address).await?.is_some());
    // The audit log loses only the records before the first about the held
    // incident's release.
    let audit = audit_text(&*store).await?;
    let verified = verify(&audit)?;
    let first: Value = serde_json::from_str(audit.lines().next().unwrap_or("{}"))?;
    assert_eq!(first["subject"], incident["release"], "{first}");
    assert_eq!(
        verified.pruned_through + 1,
        first["seq"].as_i64().unwrap_or(0)
    );

    let id = placed["id"].as_str().unwrap_or_default();
    let lift = json!({"reason": "case closed"});
    gov.ok("post", &format!("/v1/holds/{id}/lift"), None, Some(lift))
        .await?;
    let freed = run_retention(&gov).await?;
    assert_eq!(freed["raw_events"], (deletable, 0));
    assert_eq!(freed["decisions"], (decisions + points, 0));
    assert_eq!(store.series(release, i64::MIN, 10).await?, []);
    assert_eq!(freed["evidence"], (1, 0));
    assert_eq!(store.blob(&address).await?, None);
    // Release starts and the tail a restart replays stay.
    let kinds = journal_kinds(&*store).await?;
    assert_eq!(kinds.get("start"), Some(&1), "{kinds:?}");
    let left = store.journal("gov-svc", 0, 1_000_000).await?;
    assert!(
        left.iter()
            .all(|e| e.kind == "start" || e.seq > snap.journal_seq)
    );
    // What is left of the audit log verifies, and says what went.
    let audit = audit_text(&*store).await?;
    let verified = verify(&audit)?;
    assert!(verified.pruned_through > 0);
    let expired = audit.matches("\"action\":\"retention.expired\"").count();
    assert!(expired >= 1, "{audit}");
    // The report is kept for GET /v1/retention.
    let status = gov.ok("get", "/v1/retention", None, None).await?;
    assert_eq!(status["keep_ms"]["raw_events"], json!(30 * DAY));
    assert_eq!(
        status["deleted_since_start"]["decisions"],
        json!(decisions + points)
    );
    Ok(())
}

/// Lines of an NDJSON text naming `unit`.
fn naming(lines: &[String], unit: &str) -> usize {
    let u = ripcord_core::purge::Unit::new(unit);
    lines.iter().filter(|l| u.named_by(l)).count()
}

async fn journal_lines(store: &dyn Store) -> Result<Vec<String>> {
    let entries = store.journal("gov-svc", 0, 1_000_000).await?;
    Ok(entries
        .iter()
        .filter(|e| e.kind == "events")
        .flat_map(|e| e.body.lines().map(str::to_string).collect::<Vec<_>>())
        .collect())
}

async fn bundle(store: &dyn Store, address: &str) -> Result<evidence::Bundle> {
    let bytes = store.blob(address).await?.ok_or("no bundle")?;
    Ok(evidence::open(address, &bytes)?)
}

async fn live_sample(gov: &GovServer) -> Result<Vec<String>> {
    let service = gov.server.app.hub.service("gov-svc").ok_or("no service")?;
    let state = service.state.lock().await;
    Ok(state
        .evidence
        .sample
        .as_ref()
        .map(|s| s.lines().to_vec())
        .unwrap_or_default())
}

async fn stored_sample(store: &dyn Store) -> Result<Vec<String>> {
    let snap = store.snapshot("gov-svc").await?.ok_or("no snapshot")?;
    let body = ServiceSnapshot::decode(&snap.body)?;
    Ok(body.sample.map(|s| s.lines().to_vec()).unwrap_or_default())
}

/// A unit the bundle sampled.
fn sampled_unit(bundle: &evidence::Bundle) -> Result<String> {
    let line: Value = serde_json::from_str(bundle.events.first().ok_or("empty sample")?)?;
    Ok(line["unit"].as_str().ok_or("no unit")?.to_string())
}

/// A regressed release, one of the units its bundle sampled, and where
/// that unit's lines are before a purge.
struct Before {
    gov: GovServer,
    incident: Value,
    store: std::sync::Arc<dyn Store>,
    address: String,
    old: evidence::Bundle,
    unit: String,
    in_journal: usize,
    in_bundle: usize,
    in_live: usize,
}

async fn before_purge() -> Result<Before> {
    let (gov, incident) = regressed().await?;
    let store = store(&gov);
    let address = incident["evidence"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let old = bundle(&*store, &address).await?;
    let unit = sampled_unit(&old)?;
    let in_journal = naming(&journal_lines(&*store).await?, &unit);
    let in_bundle = naming(&old.events, &unit);
    let in_live = naming(&live_sample(&gov).await?, &unit);
    Ok(Before {
        gov,
        incident,
        store,
        address,
        old,
        unit,
        in_journal,
        in_bundle,
        in_live,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_erases_one_person_everywhere_and_is_audited_by_key_only() -> Result {
    let Before {
        gov,
        incident: _,
        store,
        address,
        old,
        unit,
        in_journal,
        in_bundle,
        in_live,
    } = before_purge().await?;
    let in_stored = naming(&stored_sample(&*store).await?, &unit);
    assert!(in_journal > 1 && in_bundle > 0);

    let body = json!({"unit": unit, "reason": "erasure request DSR-42"});
    let purged = gov.ok("post", "/v1/purge", None, Some(body)).await?;
    assert_eq!(purged["journal_lines"], json!(in_journal));
    assert_eq!(purged["bundle_lines"], json!(in_bundle));
    assert_eq!(purged["bundles"], json!(1));
    assert_eq!(purged["sample_lines"], json!(in_live + in_stored));
    assert_eq!(purged["held_lines"], json!(0));

    assert_eq!(naming(&journal_lines(&*store).await?, &unit), 0);
    assert_eq!(naming(&live_sample(&gov).await?, &unit), 0);
    assert_eq!(naming(&stored_sample(&*store).await?, &unit), 0);
    // The bundle was replaced by a purged copy, and the incident points at it.
    assert_eq!(store.blob(&address).await?, None);
    let now = gov
        .incidents()
        .await?
        .first()
        .cloned()
        .ok_or("no incident")?;
    let new = now["evidence"].as_str().unwrap_or_default();
    assert_ne!(new, address);
    let copy = bundle(&*store, new).await?;
    assert_eq!(naming(&copy.events, &unit), 0);
    assert_eq!(copy.events_purged, in_bundle as u64);
    assert_eq!(copy.events.len() + in_bundle, old.events.len());
    // The audit log names the person by key only, and verifies.
    let audit = audit_text(&*store).await?;
    verify(&audit)?;
    let key = ripcord_core::purge::Unit::new(&unit).key();
    let purges: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"purge."))
        .collect();
    assert_eq!(
        purges.len(),
        4,
        "journal, stored snapshot, bundle, the purge: {purges:?}"
    );
    assert!(
        purges
            .iter()
            .all(|l| l.contains(&key) && !l.contains(&format!("\"{unit}\"")))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_keeps_a_person_s_data_from_a_purge() -> Result {
    let Before {
        gov,
        incident,
        store,
        address,
        old,
        unit,
        in_journal,
        in_bundle,
        in_live,
    } = before_purge().await?;
    let hold = json!({"release": incident["release"], "reason": "regulator inquiry"});
    gov.ok("post", "/v1/holds", None, Some(hold)).await?;

    let body = json!({"unit": unit, "reason": "erasure request DSR-43"});
    let purged = gov.ok("post", "/v1/purge", None, Some(body)).await?;
    assert_eq!(purged["journal_lines"], json!(0));
    assert_eq!(purged["bundles"], json!(0));
    assert_eq!(purged["held_bundles"], json!(1));
    // The journal's, the bundle's and the samples' lines (live and stored).
    let in_stored = naming(&stored_sample(&*store).await?, &unit);
    assert_eq!(
        purged["held_lines"],
        json!(in_journal + in_bundle + in_live + in_stored)
    );
    assert_eq!(naming(&journal_lines(&*store).await?, &unit), in_journal);
    assert_eq!(bundle(&*store, &address).await?, old);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_made_on_the_store_reaches_the_running_server_s_sample() -> Result {
    let (gov, _incident) = regressed().await?;
    let store = store(&gov);
    let live = live_sample(&gov).await?;
    let line: Value = serde_json::from_str(live.first().ok_or("empty sample")?)?;
    let unit = line["unit"].as_str().ok_or("no unit")?.to_string();
    let request = ripcord_server::purge::Request {
        unit: &unit,
        reason: "by the CLI",
        by: "local:ops",
        now: gov.clock.now(),
    };
    ripcord_server::purge::purge_store(&*store, &request, &Default::default()).await?;
    assert!(naming(&live_sample(&gov).await?, &unit) > 0);
    let report = gov.ok("post", "/v1/retention/run", None, None).await?;
    assert_eq!(report["purges_applied"], json!(1));
    assert_eq!(naming(&live_sample(&gov).await?, &unit), 0);
    assert_eq!(naming(&stored_sample(&*store).await?, &unit), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_will_not_replay_a_release_whose_journal_retention_cut() -> Result {
    let (gov, _incident) = regressed().await?;
    gov.clock.advance(Dur(31 * DAY));
    let report = run_retention(&gov).await?;
    assert!(report["raw_events"].0 > 0, "{report:?}");
    // The snapshot that stands for the deleted entries becomes unusable.
    let store = store(&gov);
    let snap = store.snapshot("gov-svc").await?.ok_or("no snapshot")?;
    let damaged = Snapshot {
        body: b"not a snapshot".to_vec(),
        ..snap
    };
    let batch = Batch {
        snapshots: vec![damaged],
        ..Batch::default()
    };
    store.commit(&[batch]).await?;
    drop(store);
    let Err(e) = gov.restart(Dur(1000)).await else {
        return Err("the restart replayed a cut journal".into());
    };
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        chain = format!("{chain}: {inner}");
        source = inner.source();
    }
    assert!(
        chain.contains("retention deleted journal entries"),
        "{chain}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_need_a_target_a_reason_and_the_retention_permission() -> Result {
    let (gov, incident) = regressed().await?;
    let viewer = gov.token("vic", "viewer").await?;
    for (body, status) in [
        (json!({"reason": "x"}), 400),
        (
            json!({"release": "gov-svc-1", "incident": "x", "reason": "x"}),
            400,
        ),
        (json!({"release": "gov-svc-1", "reason": " "}), 400),
        (json!({"release": "gov-svc-9", "reason": "x"}), 404),
        (
            json!({"release": "gov-svc-1", "reason": "x", "extra": 1}),
            400,
        ),
    ] {
        let (got, answer) = gov.call("post", "/v1/holds", None, Some(body)).await?;
        assert_eq!(got, status, "{answer}");
    }
    let body = json!({"incident": incident["id"], "reason": "x"});
    let (got, _) = gov
        .call("post", "/v1/holds", Some(&viewer), Some(body))
        .await?;
    assert_eq!(got, 403);
    let body = json!({"unit": "u-1", "reason": "x"});
    let (got, _) = gov
        .call("post", "/v1/purge", Some(&viewer), Some(body))
        .await?;
    assert_eq!(got, 403);
    let placed = gov
        .ok(
            "post",
            "/v1/holds",
            None,
            Some(json!({"release": "gov-svc-1", "reason": "x"})),
        )
        .await?;
    let lift = format!(
        "/v1/holds/{}/lift",
        placed["id"].as_str().unwrap_or_default()
    );
    gov.ok("post", &lift, None, Some(json!({"reason": "done"})))
        .await?;
    let (got, _) = gov
        .call("post", &lift, None, Some(json!({"reason": "again"})))
        .await?;
    assert_eq!(got, 409);
    let listed = gov.ok("get", "/v1/holds", Some(&viewer), None).await?;
    assert_eq!(listed["holds"][0]["lifted"]["reason"], "done");
    Ok(())
}

/// The store's bytes on disk (the file and its write-ahead log).
fn disk(dir: &std::path::Path) -> u64 {
    ["ripcord.db", "ripcord.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Ten days of a live release at a steady rate with raw events kept a
/// day: the journal and the file stop growing once retention catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retention_on_the_store_stops_growing_under_steady_traffic() -> Result {
    use crate::support::start_with;
    use ripcord_server::clock::Clock;
    let clock = Clock::manual(Time(ripcord_server::clock::wall_now().0 / 1000 * 1000));
    let manual = clock.clone();
    let run = start_with(move |c| {
        c.clock = manual;
        c.tick = std::time::Duration::from_secs(3600);
        c.retention
            .keep
            .insert(ripcord_store::DataClass::RawEvents, Dur(DAY));
    })
    .await?;
    run.release_at_30().await?;
    let store = run.server.app.hub.store.clone();
    let mut rows = Vec::new();
    let mut bytes = Vec::new();
    for day in 0..10 {
        for hour in 0..24 {
            let ts = clock.now().to_rfc3339();
            let events: Vec<Value> = (0..400)
                .map(|i| {
                    json!({"ts": ts, "service": "support-bot",
                           "version": if i % 3 == 0 { "v2" } else { "v1" },
                           "unit": format!("user-{day}-{hour}-{i}"),
                           "prompt": "a question of a realistic length about an order",
                           "values": {"outputs": 1, "moderation_fail": 0, "latency_ms": 700}})
                })
                .collect();
            let (status, body) = run.post("/v1/events", &Value::Array(events)).await?;
            assert_eq!(status, 202, "{body}");
            clock.advance(Dur(3_600_000));
            run.server.app.hub.tick_all().await;
        }
        let (status, _) = run.post("/v1/retention/run", &json!({})).await?;
        assert_eq!(status, 200);
        rows.push(store.journal("support-bot", 0, 10_000_000).await?.len());
        bytes.push(disk(run.dir.path()));
    }
    eprintln!("journal entries per day: {rows:?}\nstore bytes per day: {bytes:?}");
    // A day and a bit of entries at most (48 per day, and the start).
    assert!(rows[3..].iter().all(|&r| r <= 2 * 48 + 1), "{rows:?}");
    assert_eq!(rows[9], rows[5], "{rows:?}");
    // Freed pages are reused: the file grows no more after the first days.
    assert!(bytes[9] <= bytes[4] + bytes[4] / 10, "{bytes:?}");
    Ok(())
}
