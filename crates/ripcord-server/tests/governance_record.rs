//! The governance scenario, recorded: a fired trigger opens an incident that
//! pages, escalates, is acknowledged, worked through its playbook, resolved,
//! reviewed and cited by the next policy, all on a manual clock with ticks
//! and timers driven by the test. Its decision log, audit log and
//! notifications (minus what is random by design: token secrets, hashes,
//! signatures, delivery ids and the wall-clock times of deliveries) must
//! equal `fixtures/governance_record.txt` byte for byte, so that a change
//! to the service's insides cannot change what it does unnoticed.
//!
//! `RIPCORD_BLESS=1 cargo test -p ripcord-server --test governance_record`
//! rewrites the file after an intended change; review its diff.

use std::time::{Duration, Instant};

use crate::gov_server::GovServer;
use crate::support::{Inbox, Result, inbox};
use ripcord_core::Time;
use serde_json::{Value, json};

const POLICY: &str = "\
service: gov-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.2, min_samples: 50, window: 30s, for: 0s}
  moderation_abs: {signal: moderation_fail, absolute: 0.2, min_samples: 1000000000, window: 30s}
triggers:
  safety:
    when: moderation_rel
    severity: critical
    action:
      rollback:
        stages:
          - {move_back: 0.5, verify_for: 1s}
          - {move_back: 1.0, verify_for: 1s}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
incidents:
  ack: {critical: 2s, major: 1h, minor: 1h}
  status_every: 30s
  escalation:
    - {after: 0s, channels: [chat], template: oncall}
    - {after: 1h, channels: [pager]}
playbooks:
  moderation:
    steps:
      - {name: look, kind: manual, owner: operator, within: 1h}
      - {name: integrity, kind: check, owner: operator, within: 1h, checks: [events_kept, baseline_assigned, store_integrity]}
      - {name: verify, kind: verify, owner: safety_lead, within: 1h, hold: 1s}
";

/// 2026-01-01T00:00:00Z.
const T0: Time = Time(1_767_225_600_000);

/// The first incident's state, or `none`.
async fn incident_state(s: &GovServer) -> Result<String> {
    let incidents = s.incidents().await?;
    let state = incidents.first().and_then(|i| i["state"].as_str());
    Ok(state.unwrap_or("none").to_string())
}

/// The lines of an NDJSON log.
async fn lines(s: &GovServer, path: &str) -> Result<Vec<Value>> {
    let text = s.ok("get", path, None, None).await?;
    Ok(text
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The scenario, step by step; everything it does lands in the logs.
async fn play(s: &GovServer) -> Result {
    let operator = s.token("olga", "operator").await?;
    let manager = s.token("max", "release_manager").await?;
    let safety = s.token("sam", "safety_lead").await?;
    s.ok(
        "post",
        "/v1/releases",
        None,
        Some(json!({"service": "gov-svc", "baseline": "v1", "candidate": "v2"})),
    )
    .await?;
    for _ in 0..60 {
        let state = incident_state(s).await?;
        if state == "mitigated" {
            break;
        }
        s.send(200, state == "none").await?;
        s.advance(1000).await;
    }
    assert_eq!(incident_state(s).await?, "mitigated");
    // Baseline traffic in the second after the rollback, which `verify` reads.
    s.send(100, false).await?;
    // Nobody acknowledges within 2 s: level 1 pages; a status update is due.
    s.advance(3000).await;
    let inc = "/v1/incidents/inc-gov-svc-1";
    s.ok("post", &format!("{inc}/acknowledge"), Some(&operator), None)
        .await?;
    s.refused(409, &format!("{inc}/acknowledge"), &operator)
        .await?;
    s.ok(
        "post",
        &format!("{inc}/status"),
        Some(&operator),
        Some(json!({"message": "rolled back; looking at the answers"})),
    )
    .await?;
    s.refused(403, &format!("{inc}/steps/look"), &safety)
        .await?;
    s.ok(
        "post",
        &format!("{inc}/steps/look"),
        Some(&operator),
        Some(json!({"note": "dashboards checked"})),
    )
    .await?;
    s.ok(
        "post",
        &format!("{inc}/steps/integrity"),
        Some(&operator),
        None,
    )
    .await?;
    s.send(100, false).await?;
    s.advance(1100).await;
    s.send(100, false).await?;
    s.ok("post", &format!("{inc}/steps/verify"), Some(&safety), None)
        .await?;
    // The next status update is missed: it escalates.
    s.advance(31_000).await;
    let note = json!({"note": "v2 withdrawn"});
    let (status, _) = s
        .call(
            "post",
            &format!("{inc}/resolve"),
            Some(&manager),
            Some(note.clone()),
        )
        .await?;
    assert_eq!(status, 403);
    s.ok("post", &format!("{inc}/resolve"), Some(&safety), Some(note))
        .await?;
    let review = json!({"summary": "ratio bound held",
                        "action_items": [{"text": "add a golden set", "owner": "sam"}]});
    s.ok(
        "post",
        &format!("{inc}/review"),
        Some(&safety),
        Some(review),
    )
    .await?;
    let stricter = POLICY.replace("max_ratio: 1.2", "max_ratio: 1.1");
    let (status, body) = s.put_policy(&stricter, "?answers=inc-gov-svc-1").await?;
    assert_eq!(status, 201, "{body}");
    Ok(())
}

/// Keys whose values are random or wall-clock by design.
const RANDOM: [&str; 8] = [
    "hash",
    "prev",
    "token",
    "token_sha256",
    "signature",
    "dedup_key_nonce",
    "webhook_id",
    "sent_at",
];

fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if RANDOM.contains(&k.as_str()) {
                    *x = json!("*");
                } else {
                    scrub(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

fn section(out: &mut String, title: &str, items: impl IntoIterator<Item = Value>) {
    out.push_str(&format!("## {title}\n"));
    for mut item in items {
        scrub(&mut item);
        // Tokens are issued on the wall clock (their expiry is real time).
        if item["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("token."))
        {
            item["at"] = json!("*");
        }
        out.push_str(&item.to_string());
        out.push('\n');
    }
}

/// What the notification sinks received, once the outbox has drained:
/// per sink in arrival order (sinks are delivered independently).
async fn notifications(inbox: &Inbox) -> Result<Vec<(String, Value)>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = inbox.got.lock().map(|g| g.clone()).unwrap_or_default();
        if got.len() == last || Instant::now() > deadline {
            let mut got = got;
            got.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(got);
        }
        last = got.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_governance_scenario_decides_audits_and_notifies_as_recorded() -> Result {
    let (hooks, inbox) = inbox().await?;
    let s = GovServer::start(POLICY, &hooks, T0).await?;
    play(&s).await?;
    let mut out = String::new();
    section(
        &mut out,
        "decisions",
        lines(&s, "/v1/decisions?service=gov-svc&limit=1000").await?,
    );
    let audit = lines(&s, "/v1/audit?limit=1000").await?;
    let audit = audit
        .into_iter()
        .filter(|r| r["action"] != "audit.checkpoint");
    section(&mut out, "audit", audit);
    let sent = notifications(&inbox).await?;
    for sink in ["pagerduty", "slack"] {
        let of_sink = sent
            .iter()
            .filter(|(p, _)| p == sink)
            .map(|(_, v)| v.clone());
        section(&mut out, sink, of_sink);
    }
    s.server.shutdown().await?;
    // Links name the server's port, a free one.
    let out = out.replace(&s.base, "http://ripcord");
    let path = crate::support::repo_root()
        .join("crates/ripcord-server/tests/fixtures/governance_record.txt");
    if std::env::var_os("RIPCORD_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(&path, &out)?;
    }
    let recorded = std::fs::read_to_string(&path)?;
    assert!(
        recorded == out,
        "the governance record changed; diff {} against:\n{out}",
        path.display()
    );
    Ok(())
}
