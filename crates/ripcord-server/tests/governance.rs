//! Governance on a real server: a fired trigger opens an incident that
//! pages (Slack, then PagerDuty on escalation), is acknowledged, mitigated
//! by the rollback, checked and verified by its playbook, resolved by the
//! safety lead and reviewed; approvals with quorum and separation of
//! duties; escalation timers that survive a restart; drills.
//!
//! The server ([`GovServer`]) runs on a manual clock that the test moves:
//! [`until`] moves it 100 ms per poll and ticks the engines and timers, so
//! deadlines and verification windows pass when the test says, not while
//! it sleeps.

use std::time::{Duration, Instant};

use crate::gov_server::GovServer;
use crate::support::{Result, inbox};
use ripcord_core::{Dur, Time};
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
          - {move_back: 1.0, verify_for: 1s}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
incidents:
  ack: {critical: 2s, major: 1h, minor: 1h}
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

/// A quiet policy (nothing fires) whose rollback needs two approvers and
/// whose promotion request expires in a second.
const RIGHTS_POLICY: &str = "\
service: gov-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 100, min_samples: 1000000000, window: 10m}
triggers:
  safety: {when: moderation_rel, severity: critical, action: rollback}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
rights:
  rollback: {roles: [release_manager, safety_lead], quorum: 2, separation: true, within: 1h, on_timeout: hold}
  promote: {roles: [release_manager], quorum: 1, within: 1s, on_timeout: hold}
incidents:
  ack: {critical: 1s, major: 1h, minor: 1h}
  escalation:
    - {after: 0s, channels: [chat]}
    - {after: 1h, channels: [pager]}
";

/// A server whose clock starts near the wall clock, so that tokens and
/// stored times stay plausible.
async fn start(policy: &str, hooks: &str) -> Result<GovServer> {
    let near = Time(ripcord_server::clock::wall_now().0 / 1000 * 1000);
    GovServer::start(policy, hooks, near).await
}

/// Polls `check`, moving the server's clock 100 ms per poll; the real
/// wait between polls is for deliveries (webhooks) to arrive.
async fn until<F, Fut>(gov: &GovServer, what: &str, mut check: F) -> Result
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        gov.advance(100).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("timed out waiting for {what}").into())
}

fn kinds(inc: &Value) -> Vec<String> {
    let mut k: Vec<String> = inc["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|e| e["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    k.sort();
    k.dedup();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fired_trigger_opens_an_incident_that_is_paged_handled_and_reviewed() -> Result {
    let (hooks, inbox) = inbox().await?;
    let gov = start(POLICY, &hooks).await?;
    let operator = gov.token("olga", "operator").await?;
    let manager = gov.token("max", "release_manager").await?;
    let safety = gov.token("sam", "safety_lead").await?;
    gov.release().await?;
    until(&gov, "the rollback", || async {
        // Clients follow the assignment: once the rollback starts, only
        // the baseline is served.
        let opened = !gov.incidents().await?.is_empty();
        gov.send(200, !opened).await?;
        let inc = gov.incidents().await?;
        Ok(inc.first().is_some_and(|i| i["state"] == "mitigated"))
    })
    .await?;
    let inc = gov.incidents().await?.remove(0);
    let id = inc["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id, "inc-gov-svc-1");
    assert_eq!(
        (
            &inc["kind"],
            &inc["severity"],
            &inc["categories"],
            &inc["trigger"]["name"]
        ),
        (
            &json!("real"),
            &json!("critical"),
            &json!(["safety"]),
            &json!("safety")
        )
    );
    assert_eq!(inc["release"], "gov-svc-1");
    assert!(inc["mitigated_at"].is_string());
    // Level 0 was paged on Slack when it opened.
    let slack = inbox.received("slack");
    assert!(!slack.is_empty(), "{}", inc["timeline"]);
    let section = slack[0]["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        section.starts_with("safety (critical) on gov-svc\nIncident inc-gov-svc-1: critical, open"),
        "{section}"
    );
    // Nobody acknowledged within 2 s: escalated to level 1 (PagerDuty).
    until(&gov, "the escalation", || async {
        Ok(!inbox.received("pagerduty").is_empty())
    })
    .await?;
    let page = &inbox.received("pagerduty")[0];
    assert_eq!(page["event_action"], "trigger");
    assert_eq!(page["dedup_key"], "gov-svc-1/safety");
    let path = format!("/v1/incidents/{id}");
    let (_, now) = gov.call("get", &path, None, None).await?;
    assert_eq!(now["escalation_level"], 1);
    // Acknowledge once; twice is a conflict; the page is acknowledged.
    let ack = format!("{path}/acknowledge");
    let (status, acked) = gov
        .call("post", &ack, Some(&operator), Some(json!({})))
        .await?;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], "olga");
    let (status, again) = gov.call("post", &ack, Some(&operator), None).await?;
    assert_eq!(
        (status, again["message"].as_str()),
        (
            409,
            Some("incident inc-gov-svc-1 was already acknowledged by olga")
        )
    );
    until(&gov, "the acknowledge event", || async {
        Ok(inbox
            .received("pagerduty")
            .iter()
            .any(|p| p["event_action"] == "acknowledge"))
    })
    .await?;
    // The playbook: a step owned by the operator is refused to others.
    let step = |name: &str| format!("{path}/steps/{name}");
    let (status, refused) = gov.call("post", &step("look"), Some(&safety), None).await?;
    assert_eq!(
        (status, refused["message"].as_str()),
        (
            403,
            Some("step look is owned by role operator; sam has role safety_lead")
        )
    );
    let (status, done) = gov
        .call(
            "post",
            &step("look"),
            Some(&operator),
            Some(json!({"note": "dashboards checked"})),
        )
        .await?;
    assert_eq!(status, 200, "{done}");
    let (status, checked) = gov
        .call("post", &step("integrity"), Some(&operator), None)
        .await?;
    assert_eq!(status, 200, "{checked}");
    let integrity = checked["steps"][1].clone();
    assert_eq!(integrity["status"], "done", "{integrity}");
    let results: Vec<(&str, bool)> = integrity["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|c| (c["check"].as_str().unwrap_or(""), c["ok"] == true))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        results,
        [
            ("events_kept", true),
            ("baseline_assigned", true),
            ("store_integrity", true)
        ]
    );
    // Verification needs a second of baseline traffic after the rollback.
    gov.send(100, false).await?;
    gov.advance(1100).await;
    let (status, verified) = gov
        .call("post", &step("verify"), Some(&safety), None)
        .await?;
    assert_eq!(status, 200, "{verified}");
    let verify = &verified["steps"][2];
    assert_eq!(
        (&verify["status"], &verify["result"]["ok"]),
        (&json!("done"), &json!(true)),
        "{verify}"
    );
    // A safety incident is the safety lead's to resolve.
    let resolve = format!("{path}/resolve");
    let note = json!({"note": "v2 withdrawn"});
    let (status, refused) = gov
        .call("post", &resolve, Some(&manager), Some(note.clone()))
        .await?;
    assert_eq!(status, 403, "{refused}");
    let (status, resolved) = gov
        .call("post", &resolve, Some(&safety), Some(note))
        .await?;
    assert_eq!(
        (status, &resolved["state"]),
        (200, &json!("resolved")),
        "{resolved}"
    );
    until(&gov, "the resolve event", || async {
        Ok(inbox
            .received("pagerduty")
            .iter()
            .any(|p| p["event_action"] == "resolve"))
    })
    .await?;
    let review = json!({"summary": "ratio bound held", "action_items": [{"text": "add a golden set", "owner": "sam"}]});
    let (status, reviewed) = gov
        .call(
            "post",
            &format!("{path}/review"),
            Some(&safety),
            Some(review),
        )
        .await?;
    assert_eq!(
        (status, &reviewed["state"]),
        (200, &json!("reviewed")),
        "{reviewed}"
    );
    assert_eq!(reviewed["review"]["signed_off_by"], "sam");
    assert_eq!(
        kinds(&reviewed),
        [
            "acknowledgement",
            "action",
            "escalation",
            "evidence",
            "notification",
            "playbook",
            "signal",
            "state"
        ]
    );
    // The next policy version cites the incident it answers.
    let stricter = POLICY.replace("max_ratio: 1.2", "max_ratio: 1.1");
    let (typo, _) = gov.put_policy(&stricter, "?answers=inc-gov-svc-9").await?;
    assert_eq!(typo, 422);
    let (cited, _) = gov.put_policy(&stricter, "?answers=inc-gov-svc-1").await?;
    assert_eq!(cited, 201);
    let (_, reviewed) = gov.call("get", &path, None, None).await?;
    assert_eq!(reviewed["policy_changes"], json!([2]));
    // The release's share history names who moved it and why.
    let (_, release) = gov
        .call("get", "/v1/releases/gov-svc-1", None, None)
        .await?;
    let moves: Vec<(f64, f64, &str)> = release["moves"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| {
                    (
                        x["from"].as_f64().unwrap_or(-1.0),
                        x["to"].as_f64().unwrap_or(-1.0),
                        x["by"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(moves, [(0.0, 0.5, "admin"), (0.5, 0.0, "engine")]);
    // Every change is in the audit log, chained.
    let (_, audit) = gov.call("get", "/v1/audit", None, None).await?;
    let text = audit.as_str().unwrap_or_default().to_string();
    for action in [
        "incident.open",
        "incident.acknowledge",
        "incident.step",
        "incident.resolve",
        "incident.review",
    ] {
        assert!(
            text.contains(&format!("\"action\":\"{action}\"")),
            "{action} missing"
        );
    }
    assert!(ripcord_core::audit::verify(&text).is_ok());
    gov.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_request_needs_a_quorum_without_its_requester() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = start(RIGHTS_POLICY, &hooks).await?;
    let ann = gov.token("ann", "release_manager").await?;
    let bob = gov.token("bob", "release_manager").await?;
    let sam = gov.token("sam", "safety_lead").await?;
    let olga = gov.token("olga", "operator").await?;
    gov.release().await?;
    let act = "/v1/releases/gov-svc-1/actions";
    let (status, asked) = gov
        .call(
            "post",
            act,
            Some(&ann),
            Some(json!({"action": "rollback", "reason": "bad answers"})),
        )
        .await?;
    assert_eq!(status, 202, "{asked}");
    let req = asked["request"].clone();
    assert_eq!(
        (&req["state"], &req["quorum"], &req["requested_by"]),
        (&json!("pending"), &json!(2), &json!("ann"))
    );
    assert_eq!(asked["release"]["share"], 0.5);
    let approve = format!(
        "/v1/requests/{}/approve",
        req["id"].as_str().unwrap_or_default()
    );
    let (status, own) = gov.call("post", &approve, Some(&ann), None).await?;
    assert_eq!(
        (status, own["message"].as_str()),
        (
            403,
            Some("separation of duties: ann requested this rollback and cannot approve it")
        )
    );
    // An operator may not approve at all (the route needs `approve`).
    let (status, _) = gov.call("post", &approve, Some(&olga), None).await?;
    assert_eq!(status, 403);
    let (status, one) = gov
        .call(
            "post",
            &approve,
            Some(&bob),
            Some(json!({"note": "seen it"})),
        )
        .await?;
    assert_eq!(
        (status, &one["request"]["state"], &one["changed"]),
        (200, &json!("pending"), &json!(false)),
        "{one}"
    );
    let (status, twice) = gov.call("post", &approve, Some(&bob), None).await?;
    assert_eq!(
        (status, twice["message"].as_str()),
        (409, Some("bob has already voted on request req-gov-svc-1"))
    );
    let (status, two) = gov.call("post", &approve, Some(&sam), None).await?;
    assert_eq!(status, 200, "{two}");
    assert_eq!(two["request"]["state"], "approved");
    assert_eq!(two["request"]["outcome"], "approved by bob, sam");
    assert_eq!(two["release"]["share"], 0.0, "{two}");
    let (_, release) = gov
        .call("get", "/v1/releases/gov-svc-1", None, None)
        .await?;
    let last = &release["moves"][1];
    assert_eq!(
        (&last["by"], &last["to"], &last["policy_version"]),
        (&json!("sam"), &json!(0.0), &json!(1))
    );
    gov.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_approves_expires_as_the_policy_says() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = start(RIGHTS_POLICY, &hooks).await?;
    let ann = gov.token("ann", "release_manager").await?;
    gov.release().await?;
    let (status, asked) = gov
        .call(
            "post",
            "/v1/releases/gov-svc-1/actions",
            Some(&ann),
            Some(json!({"action": "promote"})),
        )
        .await?;
    assert_eq!(status, 202, "{asked}");
    let path = format!(
        "/v1/requests/{}",
        asked["request"]["id"].as_str().unwrap_or_default()
    );
    until(&gov, "the expiry", || async {
        let (_, r) = gov.call("get", &path, None, None).await?;
        Ok(r["state"] == "expired")
    })
    .await?;
    let (_, r) = gov.call("get", &path, None, None).await?;
    assert!(
        r["outcome"]
            .as_str()
            .unwrap_or_default()
            .ends_with("the action is dropped as the policy says"),
        "{r}"
    );
    let (_, release) = gov
        .call("get", "/v1/releases/gov-svc-1", None, None)
        .await?;
    assert_eq!(
        (&release["state"], &release["share"]),
        (&json!("ramping"), &json!(0.5)),
        "{release}"
    );
    gov.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_timers_survive_a_restart_and_drills_stay_out_of_real_figures() -> Result {
    let (hooks, inbox) = inbox().await?;
    let gov = start(RIGHTS_POLICY, &hooks).await?;
    gov.release().await?;
    let drill = json!({"service": "gov-svc", "kind": "drill", "severity": "critical", "title": "rehearsal"});
    let (status, inc) = gov.call("post", "/v1/incidents", None, Some(drill)).await?;
    assert_eq!(status, 201, "{inc}");
    assert_eq!(
        (&inc["kind"], &inc["escalation_level"]),
        (&json!("drill"), &json!(0))
    );
    // Stop before the 1 s acknowledgement deadline, move the clock past it
    // while the server is down, start again.
    let gov = gov.restart(Dur(1500)).await?;
    until(&gov, "the escalation after restart", || async {
        let (_, i) = gov
            .call("get", "/v1/incidents/inc-gov-svc-1", None, None)
            .await?;
        Ok(i["escalation_level"] == 1)
    })
    .await?;
    let (_, i) = gov
        .call("get", "/v1/incidents/inc-gov-svc-1", None, None)
        .await?;
    let escalations: Vec<&str> = i["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|e| e["kind"] == "escalation")
                .filter_map(|e| e["summary"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        escalations[1],
        "not acknowledged within the critical deadline; escalated to level 1"
    );
    until(&gov, "the page", || async {
        Ok(!inbox.received("pagerduty").is_empty())
    })
    .await
    .map_err(|e| format!("{e}: {}", i["timeline"]))?;
    // Drills stay out of the real figures.
    let (_, real) = gov
        .call("get", "/v1/incidents?kind=real", None, None)
        .await?;
    assert_eq!(real["incidents"], json!([]));
    let (_, drills) = gov
        .call("get", "/v1/incidents?kind=drill", None, None)
        .await?;
    assert_eq!(drills["incidents"].as_array().map(Vec::len), Some(1));
    let metrics = gov
        .http
        .get(format!("{}/metrics", gov.base))
        .send()
        .await?
        .text()
        .await?;
    // The recorder is the process's: other tests' drills count here too.
    let drills: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ripcord_incidents_opened_total{kind=\"drill\",severity=\"critical\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(drills >= 1.0, "{metrics}");
    gov.server.shutdown().await?;
    Ok(())
}

/// Status updates are due every second and a playbook step within one:
/// missing both escalates, each with its reason; an update resets the clock.
const LATE_POLICY: &str = "\
service: gov-svc
srm: off
signals:
  moderation_fail: {category: quality, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 100, min_samples: 1000000000, window: 10m}
triggers:
  quality: {when: moderation_rel, severity: major, action: pause}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
incidents:
  ack: {critical: 1h, major: 1h, minor: 1h}
  status_every: 1s
  escalation:
    - {after: 0s, channels: [chat]}
    - {after: 1h, channels: [pager]}
playbooks:
  any:
    steps:
      - {name: page-owner, kind: manual, owner: operator, within: 1s}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_status_updates_and_overdue_steps_escalate() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = start(LATE_POLICY, &hooks).await?;
    gov.release().await?;
    let declare = json!({"service": "gov-svc", "kind": "real", "severity": "major", "title": "users report loops"});
    let (status, inc) = gov
        .call("post", "/v1/incidents", None, Some(declare))
        .await?;
    assert_eq!(status, 201, "{inc}");
    let path = "/v1/incidents/inc-gov-svc-1";
    let summaries = |inc: &Value| -> Vec<String> {
        inc["timeline"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter(|e| e["kind"] == "escalation")
                    .filter_map(|e| e["summary"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    until(&gov, "both escalations", || async {
        let (_, i) = gov.call("get", path, None, None).await?;
        let s = summaries(&i);
        Ok(s.iter().any(|x| x.starts_with("status update missed"))
            && s.iter()
                .any(|x| x.starts_with("playbook step page-owner is overdue")))
    })
    .await?;
    let (_, i) = gov.call("get", path, None, None).await?;
    assert_eq!(i["steps"][0]["status"], "overdue");
    assert_eq!(i["escalation_level"], 1);
    // A status update sets the next one's time an hour ahead.
    let update = json!({"message": "looking into it", "next_update_in": "1h"});
    let (status, after) = gov
        .call("post", &format!("{path}/status"), None, Some(update))
        .await?;
    assert_eq!(status, 200, "{after}");
    let next = after["next_update_by"]
        .as_str()
        .and_then(ripcord_core::Time::parse_rfc3339);
    let now = gov.clock.now();
    assert!(
        next.is_some_and(|n| (n.0 - now.0 - 3_600_000).abs() < 60_000),
        "{after}"
    );
    gov.server.shutdown().await?;
    Ok(())
}

/// A major trigger waits for two approvers; a critical one fires while it
/// waits and rolls back at once.
const OVERRIDE_POLICY: &str = "\
service: gov-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  early: {signal: moderation_fail, max_ratio: 1.1, min_samples: 50, window: 30s, for: 0s}
  late: {signal: moderation_fail, max_ratio: 1.5, min_samples: 600, window: 30s, for: 0s}
triggers:
  looks_bad:
    when: early
    severity: major
    action: rollback
    approval: {role: release_manager, within: 1h, on_timeout: hold, quorum: 2}
  is_bad:
    when: late
    severity: critical
    action: rollback
rollout:
  steps:
    - {share: 0.5, hold: 1h}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_breach_overrides_a_pending_approval_and_the_record_says_so() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = start(OVERRIDE_POLICY, &hooks).await?;
    let bob = gov.token("bob", "release_manager").await?;
    gov.release().await?;
    until(&gov, "the approval request", || async {
        gov.send(60, true).await?;
        let (_, r) = gov
            .call("get", "/v1/requests?service=gov-svc", None, None)
            .await?;
        Ok(r["requests"].as_array().is_some_and(|l| !l.is_empty()))
    })
    .await?;
    let (_, r) = gov
        .call("get", "/v1/requests/req-gov-svc-1", None, None)
        .await?;
    assert_eq!(
        (&r["state"], &r["trigger"], &r["requested_by"], &r["quorum"]),
        (
            &json!("pending"),
            &json!("looks_bad"),
            &json!("engine"),
            &json!(2)
        )
    );
    // One approval of two: still waiting, still at 50%.
    let approve = "/v1/requests/req-gov-svc-1/approve";
    let (status, one) = gov.call("post", approve, Some(&bob), None).await?;
    assert_eq!(
        (status, &one["request"]["state"]),
        (200, &json!("pending")),
        "{one}"
    );
    let (_, release) = gov
        .call("get", "/v1/releases/gov-svc-1", None, None)
        .await?;
    assert_eq!(
        (&release["state"], &release["share"]),
        (&json!("awaiting_approval"), &json!(0.5))
    );
    until(&gov, "the critical override", || async {
        gov.send(200, true).await?;
        let (_, r) = gov
            .call("get", "/v1/requests/req-gov-svc-1", None, None)
            .await?;
        Ok(r["state"] == "superseded")
    })
    .await?;
    let (_, r) = gov
        .call("get", "/v1/requests/req-gov-svc-1", None, None)
        .await?;
    let outcome = r["outcome"].as_str().unwrap_or_default();
    assert!(
        outcome.contains("critical trigger is_bad overrides the pending approval"),
        "{outcome}"
    );
    let (_, release) = gov
        .call("get", "/v1/releases/gov-svc-1", None, None)
        .await?;
    assert_eq!(release["share"], 0.0, "{release}");
    // Both triggers are in the one incident of the release, raised to critical.
    let inc = gov.incidents().await?;
    assert_eq!(inc.len(), 1);
    assert_eq!(
        (&inc[0]["triggers"], &inc[0]["severity"]),
        (&json!(["looks_bad", "is_bad"]), &json!("critical"))
    );
    gov.server.shutdown().await?;
    Ok(())
}

/// Separation of duties counts persons: ann's second token (another
/// name, the same person) neither approves ann's request nor gives bob a
/// second vote through his.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separation_of_duties_counts_persons_not_token_names() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = start(RIGHTS_POLICY, &hooks).await?;
    let mut tokens = Vec::new();
    for (name, role, person) in [
        ("ann-laptop", "release_manager", "ann"),
        ("ann-ci", "release_manager", "ann"),
        ("bob-1", "release_manager", "bob"),
        ("bob-2", "safety_lead", "bob"),
    ] {
        let body = json!({"name": name, "role": role, "person": person});
        let (status, made) = gov.call("post", "/v1/tokens", None, Some(body)).await?;
        assert_eq!(status, 201, "{made}");
        tokens.push(made["token"].as_str().unwrap_or_default().to_string());
    }
    let [ann_laptop, ann_ci, bob_1, bob_2] = &tokens[..] else {
        unreachable!()
    };
    gov.release().await?;
    let (status, asked) = gov
        .call(
            "post",
            "/v1/releases/gov-svc-1/actions",
            Some(ann_laptop.as_str()),
            Some(json!({"action": "rollback", "reason": "bad answers"})),
        )
        .await?;
    assert_eq!(status, 202, "{asked}");
    assert_eq!(
        (
            &asked["request"]["requested_by"],
            &asked["request"]["requested_by_person"]
        ),
        (&json!("ann-laptop"), &json!("ann"))
    );
    let approve = "/v1/requests/req-gov-svc-1/approve";
    let (status, own) = gov
        .call("post", approve, Some(ann_ci.as_str()), None)
        .await?;
    assert_eq!(
        (status, own["message"].as_str()),
        (
            403,
            Some(
                "separation of duties: ann (token ann-ci) requested this rollback and cannot \
                 approve it"
            )
        )
    );
    let (status, one) = gov
        .call("post", approve, Some(bob_1.as_str()), None)
        .await?;
    assert_eq!((status, &one["request"]["state"]), (200, &json!("pending")));
    assert_eq!(one["vote"]["person"], "bob");
    let (status, again) = gov
        .call("post", approve, Some(bob_2.as_str()), None)
        .await?;
    assert_eq!(
        (status, again["message"].as_str()),
        (
            409,
            Some("bob (token bob-2) has already voted on request req-gov-svc-1")
        )
    );
    gov.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_stored_incident_is_an_error_that_names_it_not_a_gap() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = start(RIGHTS_POLICY, &hooks).await?;
    let broken = ripcord_store::Doc {
        kind: "incident".into(),
        id: "inc-gov-svc-7".into(),
        service: "gov-svc".into(),
        created_ms: 0,
        body: json!({"id": "inc-gov-svc-7", "state": "melted"}),
    };
    let batch = ripcord_store::Batch {
        docs: vec![broken],
        ..Default::default()
    };
    let written = gov.server.app.hub.writer.submit(batch).await.await?;
    assert_eq!(written, Ok(()));
    for path in ["/v1/incidents", "/v1/incidents/inc-gov-svc-7"] {
        let (status, answer) = gov.call("get", path, None, None).await?;
        assert_eq!(status, 503, "{path}: {answer}");
        assert_eq!(
            answer,
            json!({"error": "unavailable", "message": "incident inc-gov-svc-7 is unreadable: \
                unknown variant `melted`, expected one of `open`, `mitigated`, `resolved`, `reviewed`"}),
            "{path}"
        );
    }
    gov.server.shutdown().await?;
    Ok(())
}
