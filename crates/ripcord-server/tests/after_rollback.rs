//! Data rules after a rollback (`after_rollback:`): the rolled-back
//! candidate's raw events are purged from the journal and the samples once
//! the policy's `keep` has passed, while the baseline's stay; a legal hold
//! or the evidence hold (an incident of the release still being worked
//! on) blocks the purge; both outcomes are in the audit log.

use crate::gov_server::GovServer;
use crate::support::{Inbox, Result, inbox};
use ripcord_core::{Dur, Time};
use ripcord_server::hub::snapshot::ServiceSnapshot;
use ripcord_store::Store;
use serde_json::{Value, json};
use std::sync::Arc;

const DAY: i64 = 86_400_000;

/// A candidate that fails moderation opens a critical incident and rolls
/// back; its raw events are kept 7 days after the rollback.
fn policy(evidence_hold: &str, export: &str) -> String {
    format!(
        "\
service: gov-svc
srm: off
signals:
  moderation_fail: {{category: safety, kind: rate, denominator: outputs}}
criteria:
  moderation_rel: {{signal: moderation_fail, max_ratio: 1.2, min_samples: 50, window: 30s, for: 0s}}
triggers:
  safety:
    when: moderation_rel
    severity: critical
    action:
      rollback:
        stages:
          - {{move_back: 1.0, verify_for: 1s}}
rollout:
  steps:
    - {{share: 0.5, hold: 1h}}
incidents:
  ack: {{critical: 1h, major: 1h, minor: 1h}}
  escalation:
    - {{after: 0s, channels: [chat]}}
after_rollback:
  raw_events: {{keep: 7d}}
  evidence: {{hold: {evidence_hold}}}
{export}"
    )
}

/// A release that regressed and rolled back, then a few minutes of
/// baseline traffic (so that a snapshot covers the journal); its incident.
async fn rolled_back(evidence_hold: &str) -> Result<(GovServer, Value)> {
    let (gov, incident, _inbox) = rolled_back_with(&policy(evidence_hold, ""), |_| {}).await?;
    Ok((gov, incident))
}

async fn rolled_back_with(
    policy: &str,
    adjust: fn(&mut ripcord_server::Config),
) -> Result<(GovServer, Value, Arc<Inbox>)> {
    let (hooks, inbox) = inbox().await?;
    let near = Time(ripcord_server::clock::wall_now().0 / 1000 * 1000);
    let gov = GovServer::start_with(policy, &hooks, near, adjust).await?;
    gov.release().await?;
    for _ in 0..60 {
        let release = gov.ok("get", "/v1/releases/gov-svc-1", None, None).await?;
        if release["state"] == "rolled_back" {
            break;
        }
        let opened = !gov.incidents().await?.is_empty();
        gov.send(200, !opened).await?;
        gov.advance(1000).await;
    }
    for _ in 0..3 {
        gov.send(20, false).await?;
        gov.advance(61_000).await;
    }
    let release = gov.ok("get", "/v1/releases/gov-svc-1", None, None).await?;
    assert_eq!(release["state"], "rolled_back", "{release}");
    let incident = gov
        .incidents()
        .await?
        .first()
        .cloned()
        .ok_or("no incident")?;
    Ok((gov, incident, inbox))
}

fn store(gov: &GovServer) -> std::sync::Arc<dyn Store> {
    gov.server.app.hub.store.clone()
}

/// The journal's raw event lines of `version`.
async fn journal_lines(store: &dyn Store, version: &str) -> Result<u64> {
    let needle = format!("\"version\":\"{version}\"");
    let entries = store.journal("gov-svc", 0, 1_000_000).await?;
    Ok(entries
        .iter()
        .filter(|e| e.kind == "events")
        .flat_map(|e| e.body.lines())
        .filter(|l| l.contains(&needle))
        .count() as u64)
}

/// The lines of `version` in the stored snapshot's sample and in the
/// service's live sample.
async fn sample_lines(gov: &GovServer, version: &str) -> Result<(usize, usize)> {
    let needle = format!("\"version\":\"{version}\"");
    let stored = store(gov).snapshot("gov-svc").await?.ok_or("no snapshot")?;
    let body = ServiceSnapshot::decode(&stored.body).map_err(|e| e.to_string())?;
    let of = |lines: &[String]| lines.iter().filter(|l| l.contains(&needle)).count();
    let in_store = body.sample.as_ref().map_or(0, |s| of(s.lines()));
    let service = gov.server.app.hub.service("gov-svc").ok_or("no service")?;
    let state = service.state.lock().await;
    let live = state.evidence.sample.as_ref().map_or(0, |s| of(s.lines()));
    Ok((in_store, live))
}

async fn run_retention(gov: &GovServer) -> Result<Value> {
    gov.ok("post", "/v1/retention/run", None, None).await
}

/// The audit records of `action`, oldest first.
async fn audited(store: &dyn Store, action: &str) -> Result<Vec<Value>> {
    let mut found = Vec::new();
    for line in store.audit(0, 1_000_000).await? {
        let record: Value = serde_json::from_str(&line.line)?;
        if record["action"] == action {
            found.push(record);
        }
    }
    Ok(found)
}

async fn the_rule(gov: &GovServer) -> Result<Value> {
    let status = gov.ok("get", "/v1/retention", None, None).await?;
    let rules = status["after_rollback"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rules.len(), 1, "{status}");
    Ok(rules[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candidates_raw_events_go_when_the_keep_has_passed_and_the_baselines_stay() -> Result {
    let (gov, _incident) = rolled_back("none").await?;
    let store = store(&gov);
    let rule = the_rule(&gov).await?;
    assert_eq!(
        (&rule["release"], &rule["version"], &rule["baseline"]),
        (&json!("gov-svc-1"), &json!("v2"), &json!("v1"))
    );
    assert_eq!(
        (&rule["state"], &rule["keep_ms"]),
        (&json!("waiting"), &json!(7 * DAY))
    );
    assert_eq!(audited(&*store, "after_rollback.rule").await?.len(), 1);
    let candidate = journal_lines(&*store, "v2").await?;
    let baseline = journal_lines(&*store, "v1").await?;
    assert!(candidate > 0 && baseline > 0);
    let (stored, live) = sample_lines(&gov, "v2").await?;
    assert!(stored > 0 && live > 0);

    // Six days on, the rule is not due.
    gov.clock.advance(Dur(6 * DAY));
    let report = run_retention(&gov).await?;
    assert_eq!(report["after_rollback"], json!([]));
    assert_eq!(journal_lines(&*store, "v2").await?, candidate);

    // Past the seven days: the candidate's lines go, the baseline's stay
    // (the raw events class keeps them 30 days).
    gov.clock.advance(Dur(2 * DAY));
    let report = run_retention(&gov).await?;
    let outcome = &report["after_rollback"][0];
    assert_eq!(
        (
            &outcome["release"],
            &outcome["state"],
            &outcome["kept_lines"]
        ),
        (&json!("gov-svc-1"), &json!("purged"), &json!(0)),
        "{report}"
    );
    assert_eq!(journal_lines(&*store, "v2").await?, 0);
    assert_eq!(journal_lines(&*store, "v1").await?, baseline);
    assert_eq!(sample_lines(&gov, "v2").await?, (0, 0));
    assert!(sample_lines(&gov, "v1").await?.0 > 0);

    let purged = audited(&*store, "after_rollback.purged").await?;
    assert_eq!(purged.len(), 1);
    let detail = &purged[0]["detail"];
    assert_eq!(purged[0]["subject"], "gov-svc-1");
    assert_eq!(
        (
            &detail["version"],
            &detail["what"],
            &detail["journal_lines"]
        ),
        (&json!("v2"), &json!("raw_events"), &json!(candidate)),
        "{detail}"
    );
    assert_eq!(detail["sample_lines"], json!(live));
    let pages = audited(&*store, "after_rollback.purge_journal").await?;
    let lines: u64 = pages
        .iter()
        .map(|r| r["detail"]["journal_lines"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(lines, candidate);
    assert!(audited(&*store, "after_rollback.held").await?.is_empty());
    let rule = the_rule(&gov).await?;
    assert_eq!(rule["state"], "purged");
    assert_eq!(rule["purged"]["journal_lines"], json!(candidate));

    // A purged rule is done: the next pass does nothing with it.
    let report = run_retention(&gov).await?;
    assert_eq!(report["after_rollback"], json!([]));
    assert_eq!(audited(&*store, "after_rollback.purged").await?.len(), 1);
    // The audit log still verifies.
    let text: String = store
        .audit(0, 1_000_000)
        .await?
        .iter()
        .map(|l| format!("{}\n", l.line))
        .collect();
    ripcord_core::audit::verify(&text).map_err(|b| b.to_string())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_hold_blocks_the_purge_until_it_is_lifted() -> Result {
    let (gov, _incident) = rolled_back("none").await?;
    let store = store(&gov);
    let candidate = journal_lines(&*store, "v2").await?;
    let hold = json!({"release": "gov-svc-1", "reason": "litigation LIT-9"});
    let placed = gov.ok("post", "/v1/holds", None, Some(hold)).await?;
    let hold_id = placed["id"].as_str().unwrap_or_default().to_string();

    gov.clock.advance(Dur(8 * DAY));
    let report = run_retention(&gov).await?;
    let outcome = &report["after_rollback"][0];
    assert_eq!(
        (
            &outcome["state"],
            &outcome["purged_lines"],
            &outcome["kept_lines"]
        ),
        (&json!("held"), &json!(0), &json!(candidate)),
        "{report}"
    );
    assert_eq!(
        outcome["blocked_by"],
        json!({"holds": [hold_id], "incidents": []})
    );
    assert_eq!(journal_lines(&*store, "v2").await?, candidate);
    assert!(sample_lines(&gov, "v2").await?.1 > 0);
    let held = audited(&*store, "after_rollback.held").await?;
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0]["detail"],
        json!({"release": "gov-svc-1", "version": "v2", "what": "raw_events",
               "journal_lines": candidate, "holds": [hold_id], "incidents": []})
    );
    assert!(audited(&*store, "after_rollback.purged").await?.is_empty());
    // The next pass is held by the same hold: not audited again.
    run_retention(&gov).await?;
    assert_eq!(audited(&*store, "after_rollback.held").await?.len(), 1);
    assert_eq!(the_rule(&gov).await?["state"], "held");

    let lift = json!({"reason": "case closed"});
    gov.ok(
        "post",
        &format!("/v1/holds/{hold_id}/lift"),
        None,
        Some(lift),
    )
    .await?;
    let report = run_retention(&gov).await?;
    assert_eq!(report["after_rollback"][0]["state"], "purged", "{report}");
    assert_eq!(journal_lines(&*store, "v2").await?, 0);
    assert_eq!(audited(&*store, "after_rollback.purged").await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_hold_keeps_everything_while_the_incident_is_worked_on() -> Result {
    let (gov, incident) = rolled_back("while_incident_open").await?;
    let store = store(&gov);
    let id = incident["id"].as_str().unwrap_or_default().to_string();
    let address = incident["evidence"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!address.is_empty(), "{incident}");
    let candidate = journal_lines(&*store, "v2").await?;

    // Past the rule's keep: the incident is still mitigated, not
    // resolved, so the candidate's raw events stay.
    gov.clock.advance(Dur(8 * DAY));
    let report = run_retention(&gov).await?;
    let outcome = &report["after_rollback"][0];
    assert_eq!(outcome["state"], "held", "{report}");
    assert_eq!(
        outcome["blocked_by"],
        json!({"holds": [], "incidents": [id]})
    );
    assert_eq!(journal_lines(&*store, "v2").await?, candidate);
    let held = audited(&*store, "after_rollback.held").await?;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["detail"]["incidents"], json!([id]));
    assert_eq!(held[0]["detail"]["journal_lines"], json!(candidate));

    // Past the evidence class's year too: the hold keeps the bundle and
    // the release's raw events from the retention classes as well.
    gov.clock.advance(Dur(400 * DAY));
    let report = run_retention(&gov).await?;
    let class = |name: &str| {
        report["classes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["class"] == name))
            .map(|c| (c["deleted"].clone(), c["held"].clone()))
    };
    assert_eq!(class("evidence"), Some((json!(0), json!(1))), "{report}");
    assert_eq!(class("raw_events").map(|c| c.0), Some(json!(0)), "{report}");
    assert!(store.blob(&address).await?.is_some());
    assert_eq!(journal_lines(&*store, "v2").await?, candidate);
    // Still the same incident: not audited again.
    assert_eq!(audited(&*store, "after_rollback.held").await?.len(), 1);

    let note = json!({"note": "v2 withdrawn"});
    let resolved = gov
        .ok(
            "post",
            &format!("/v1/incidents/{id}/resolve"),
            None,
            Some(note),
        )
        .await?;
    assert_eq!(resolved["state"], "resolved");
    // Resolved, the hold ends: the retention classes take what is past
    // their periods (both versions' raw events, the bundle) and the rule
    // is done.
    let report = run_retention(&gov).await?;
    assert_eq!(report["after_rollback"][0]["state"], "purged", "{report}");
    assert_eq!(journal_lines(&*store, "v2").await?, 0);
    assert_eq!(store.blob(&address).await?, None);
    assert_eq!(audited(&*store, "after_rollback.purged").await?.len(), 1);
    Ok(())
}

const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Adds `safety-hook`, a webhook channel to the test's inbox (`/export`).
fn with_export_channel(config: &mut ripcord_server::Config) {
    use ripcord_server::notify::ChannelConfig;
    let Some(ChannelConfig::Slack { url }) = config.channels.get("chat").cloned() else {
        return;
    };
    let base = url.trim_end_matches("/slack").to_string();
    let hook = ChannelConfig::Webhook {
        url: format!("{base}/export"),
        secret: SECRET.into(),
    };
    config.channels.insert("safety-hook".into(), hook);
}

/// What the inbox received at `path`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exports_deliver_evidence_and_decisions_to_the_named_team() -> Result {
    let export = "  export:
    - {to: safety-team, what: [evidence, decisions], channel: safety-hook}
    - {to: legal, what: [decisions], channel: chat}
    - {to: vendor, what: [evidence], channel: nowhere}
";
    let policy = policy("none", export);
    let (gov, incident, inbox) = rolled_back_with(&policy, with_export_channel).await?;
    let store = store(&gov);
    let rule = the_rule(&gov).await?;
    let states: Vec<&Value> = rule["exports"]
        .as_array()
        .map_or(vec![], |e| e.iter().map(|e| &e["state"]).collect());
    assert_eq!(states, [&json!("pending"); 3], "{rule}");

    run_retention(&gov).await?;
    let mut got = Vec::new();
    for _ in 0..200 {
        got = inbox.received("export");
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), 1, "{got:?}");
    let sent = &got[0];
    assert_eq!(
        (
            &sent["type"],
            &sent["to"],
            &sent["release"],
            &sent["version"],
            &sent["baseline"]
        ),
        (
            &json!("ripcord.after_rollback.export"),
            &json!("safety-team"),
            &json!("gov-svc-1"),
            &json!("v2"),
            &json!("v1")
        )
    );
    let evidence = sent["evidence"].as_array().cloned().unwrap_or_default();
    assert_eq!(evidence.len(), 1, "{sent}");
    assert_eq!(evidence[0]["incident"], incident["id"]);
    assert_eq!(evidence[0]["address"], incident["evidence"]);
    // The bundle itself, as stored under its address.
    let address = incident["evidence"].as_str().unwrap_or_default();
    let bytes = store.blob(address).await?.ok_or("no bundle")?;
    assert_eq!(
        evidence[0]["bundle"],
        serde_json::from_slice::<Value>(&bytes)?
    );
    // Every decision of the release, and only those.
    let release = gov.ok("get", "/v1/releases/gov-svc-1", None, None).await?;
    let decisions = sent["decisions"].as_array().cloned().unwrap_or_default();
    let stored = store.decisions("gov-svc", 0, 0, 1_000_000).await?;
    assert!(!decisions.is_empty());
    assert_eq!(decisions.len(), stored.len());
    assert!(
        decisions
            .iter()
            .all(|d| d["explanation"]["release"] == release["engine_release"])
    );
    assert_eq!(sent["decisions_truncated"], json!(false));

    let exported = audited(&*store, "after_rollback.export").await?;
    assert_eq!(exported.len(), 1);
    assert_eq!(
        (
            &exported[0]["detail"]["to"],
            &exported[0]["detail"]["bundles"],
            &exported[0]["detail"]["decisions"]
        ),
        (&json!("safety-team"), &json!(1), &json!(decisions.len()))
    );
    let refused = audited(&*store, "after_rollback.export_refused").await?;
    let whys: Vec<&Value> = refused.iter().map(|r| &r["detail"]["why"]).collect();
    assert_eq!(
        whys,
        [
            &json!("channel `chat` is a slack channel; exports go to webhook channels"),
            &json!("no channel `nowhere` in the server's configuration")
        ]
    );
    let rule = the_rule(&gov).await?;
    let states: Vec<&Value> = rule["exports"]
        .as_array()
        .map_or(vec![], |e| e.iter().map(|e| &e["state"]).collect());
    assert_eq!(
        states,
        [&json!("sent"), &json!("refused"), &json!("refused")]
    );

    // Done once: the next pass sends nothing again.
    run_retention(&gov).await?;
    assert_eq!(audited(&*store, "after_rollback.export").await?.len(), 1);
    assert_eq!(
        audited(&*store, "after_rollback.export_refused")
            .await?
            .len(),
        2
    );
    Ok(())
}
