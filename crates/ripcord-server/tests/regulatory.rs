//! Regulatory incident reports on a real server: classifying an incident
//! schedules its reporting deadline (reminders at 50% and 90%, an
//! escalation at the deadline) as durable timers that fire after a
//! restart; filed reports (initial, update, final) are kept, audited and
//! contain every field the EU AI Act's Article 73 report needs.

use std::time::{Duration, Instant};

use crate::gov_server::GovServer;
use crate::support::{Inbox, Result, inbox};
use ripcord_core::{Dur, Time};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

/// Nothing fires on its own; escalation goes from Slack to PagerDuty.
const QUIET: &str = "\
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
incidents:
  ack: {critical: 1h, major: 1h, minor: 1h}
  escalation:
    - {after: 0s, channels: [chat]}
    - {after: 30d, channels: [pager]}
";

/// A safety trigger that rolls back, with a verify step.
const FIRING: &str = "\
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
  ack: {critical: 1h, major: 1h, minor: 1h}
  escalation:
    - {after: 0s, channels: [chat]}
playbooks:
  moderation:
    steps:
      - {name: verify, kind: verify, owner: safety_lead, within: 1h, hold: 1s}
";

/// Waits (in real time, the clock still) for webhook deliveries.
async fn delivered(gov: &GovServer, inbox: &Inbox, path: &str, n: usize) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let got = inbox.received(path);
        if got.len() >= n {
            return Ok(got);
        }
        gov.advance(0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("fewer than {n} deliveries to {path}").into())
}

/// The Slack message of the first reminder, once delivered.
async fn reminder(gov: &GovServer, inbox: &Inbox) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let found = inbox
            .received("slack")
            .iter()
            .map(Value::to_string)
            .find(|t| t.contains("reminder: 50%"));
        if let Some(text) = found {
            return Ok(text);
        }
        gov.advance(0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("no reminder on Slack".into())
}

/// The dashboard's page `path`, logged in with the admin token.
async fn dashboard_page(gov: &GovServer, path: &str) -> Result<String> {
    use reqwest::header::{COOKIE, SET_COOKIE};
    let cookie = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .unwrap_or_default()
            .to_string()
    };
    let url = |p: &str| format!("{}{p}", gov.base);
    // The session cookie comes with the login's redirect.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = http.get(url("/ui/login")).send().await?;
    let login = cookie(&form, "ripcord_login");
    let text = form.text().await?;
    let csrf = text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", csrf.as_str()),
            ("token", gov.admin.as_str()),
            ("next", "/ui/"),
        ])
        .finish();
    let r = http
        .post(url("/ui/login"))
        .header(COOKIE, login)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let session = cookie(&r, "ripcord_session");
    let page = gov
        .http
        .get(url(path))
        .header(COOKIE, session)
        .send()
        .await?;
    assert_eq!(page.status(), 200, "{path}");
    Ok(page.text().await?)
}

async fn start(policy: &str, hooks: &str) -> Result<GovServer> {
    let near = Time(ripcord_server::clock::wall_now().0 / 1000 * 1000);
    GovServer::start_with(policy, hooks, near, provider).await
}

fn provider(config: &mut ripcord_server::Config) {
    let r = &mut config.regulatory;
    r.provider.name = "Example AI GmbH".into();
    r.provider.address = "Hauptstr. 1, 10115 Berlin".into();
    r.provider.contact = "compliance@example.eu".into();
    let system = ripcord_server::report::regulatory::SystemId {
        name: "Support assistant".into(),
        registration: "EU-DB-0042".into(),
    };
    r.systems.insert("gov-svc".into(), system);
}

fn entries(inc: &Value, kind: &str) -> Vec<String> {
    inc["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|e| e["kind"] == kind)
                .filter_map(|e| e["summary"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The service's timers: id and due time.
async fn timers(gov: &GovServer) -> Result<Vec<(String, i64)>> {
    let all = gov.server.app.hub.store.timers().await?;
    Ok(all
        .into_iter()
        .filter(|t| t.id.contains("/report/"))
        .map(|t| (t.id, t.due_ms))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporting_deadlines_remind_and_escalate_after_a_restart() -> Result {
    let (hooks, inbox) = inbox().await?;
    let gov = start(QUIET, &hooks).await?;
    gov.release().await?;
    let declare = json!({"service": "gov-svc", "kind": "real", "severity": "critical",
                         "title": "harmful advice reported by users"});
    let inc = gov.ok("post", "/v1/incidents", None, Some(declare)).await?;
    let id = inc["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/incidents/{id}");
    gov.ok("post", &format!("{path}/acknowledge"), None, None)
        .await?;
    let opened =
        Time::parse_rfc3339(inc["opened_at"].as_str().unwrap_or_default()).ok_or("opened_at")?;
    // Bad input names the field.
    let classify = format!("{path}/classify");
    for (body, message) in [
        (
            json!({"class": "minor"}),
            "class: \"minor\" is not one of widespread_infringement, critical_infrastructure, death, serious_incident (EU AI Act Article 73)",
        ),
        (
            json!({"class": "death", "aware_at": "yesterday"}),
            "aware_at: \"yesterday\" is not an RFC 3339 time",
        ),
    ] {
        let (status, answer) = gov.call("post", &classify, None, Some(body)).await?;
        assert_eq!((status, answer["message"].as_str()), (400, Some(message)));
    }
    let (status, answer) = gov
        .call(
            "post",
            &format!("{path}/regulatory-reports"),
            None,
            Some(json!({"stage": "initial"})),
        )
        .await?;
    assert_eq!(status, 409, "{answer}");
    // Classified widespread: two days from awareness (the opening).
    let body = json!({"class": "widespread_infringement", "affected": 1200,
                      "harm": "misleading medical advice"});
    let inc = gov.ok("post", &classify, None, Some(body)).await?;
    let reg = &inc["regulatory"];
    assert_eq!(reg["class"], "widespread_infringement");
    assert_eq!(reg["framework"], "EU AI Act Article 73");
    assert_eq!(reg["aware_at"], inc["opened_at"]);
    assert_eq!(reg["due_at"], (opened + Dur(2 * DAY)).to_rfc3339());
    assert_eq!(
        (&reg["affected"], &reg["classified_by"]),
        (&json!(1200), &json!("admin"))
    );
    assert_eq!(
        timers(&gov).await?,
        [
            (format!("{id}/report/100"), opened.0 + 2 * DAY),
            (format!("{id}/report/50"), opened.0 + DAY),
            (format!("{id}/report/90"), opened.0 + 2 * DAY / 100 * 90),
        ]
    );
    // Down across the 50% mark: the reminder fires once it is back.
    let gov = gov.restart(Dur(DAY + 1000)).await?;
    gov.advance(0).await;
    let (_, inc) = gov.call("get", &path, None, None).await?;
    let reg_entries = entries(&inc, "regulatory");
    let due = (opened + Dur(2 * DAY)).to_rfc3339();
    assert_eq!(
        reg_entries.last().map(String::as_str),
        Some(format!("reminder: 50% of the reporting period has passed; the widespread_infringement regulatory report (EU AI Act Article 73) is due by {due}").as_str()),
        "{reg_entries:?}"
    );
    let text = reminder(&gov, &inbox).await?;
    assert!(text.contains("reminder: 50%"), "{text}");
    assert!(
        text.contains(&format!("Regulatory: widespread_infringement under EU AI Act Article 73, aware at {}; report due by {due}", reg["aware_at"].as_str().unwrap_or_default())),
        "{text}"
    );
    assert_eq!(inc["escalation_level"], 0);
    // The deadline passes with nothing filed: escalated to PagerDuty.
    gov.advance(DAY).await;
    let (_, inc) = gov.call("get", &path, None, None).await?;
    assert_eq!(inc["escalation_level"], 1);
    let escalations = entries(&inc, "escalation");
    assert_eq!(
        escalations.last().map(String::as_str),
        Some(format!("the widespread_infringement regulatory report (EU AI Act Article 73) was due by {due} and none is filed; escalated to level 1").as_str())
    );
    let reminders = entries(&inc, "regulatory");
    assert!(
        reminders.iter().any(|r| r.starts_with("reminder: 90%")),
        "{reminders:?}"
    );
    let pages = delivered(&gov, &inbox, "pagerduty", 1).await?;
    assert_eq!(pages[0]["event_action"], "trigger");
    assert!(timers(&gov).await?.is_empty());
    // The late initial report says the deadline was missed.
    let reports = format!("{path}/regulatory-reports");
    let initial =
        json!({"stage": "initial", "description": "users were told to stop a medication"});
    let (status, filed) = gov.call("post", &reports, None, Some(initial)).await?;
    assert_eq!(status, 201, "{filed}");
    assert_eq!(filed["id"], format!("{id}/report-1"));
    let (_, inc) = gov.call("get", &path, None, None).await?;
    assert_eq!(inc["regulatory"]["deadline_met"], false);
    assert_eq!(inc["regulatory"]["reports"][0]["stage"], "initial");
    gov.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_filed_in_time_stops_the_reminders_and_follows_the_stages() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = start(QUIET, &hooks).await?;
    gov.release().await?;
    let declare = json!({"service": "gov-svc", "kind": "real", "severity": "major", "title": "t"});
    let inc = gov.ok("post", "/v1/incidents", None, Some(declare)).await?;
    let path = format!("/v1/incidents/{}", inc["id"].as_str().unwrap_or_default());
    // Aware a day before the incident was declared: death, 10 days.
    let now = gov.clock.now();
    let aware = (now - Dur(DAY)).to_rfc3339();
    let body = json!({"class": "death", "aware_at": aware});
    let inc = gov
        .ok("post", &format!("{path}/classify"), None, Some(body))
        .await?;
    assert_eq!(
        inc["regulatory"]["due_at"],
        (now + Dur(9 * DAY)).to_rfc3339()
    );
    let reports = format!("{path}/regulatory-reports");
    let file = |stage: &str, extra: Value| {
        let mut body = json!({"stage": stage});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        gov.call("post", &reports, None, Some(body))
    };
    let page = dashboard_page(&gov, "/ui/incidents/inc-gov-svc-1").await?;
    let due = (now + Dur(9 * DAY)).to_rfc3339();
    let line = format!(
        "data-regulatory=\"death\">death under EU AI Act Article 73; aware at <time>{aware}</time>; report due by <time>{due}</time>; 0 report(s) filed"
    );
    assert!(page.contains(&line), "{page}");
    let (status, answer) = file("update", json!({})).await?;
    assert_eq!(
        (status, answer["message"].as_str().unwrap_or_default()),
        (
            409,
            "incident inc-gov-svc-1 has no initial regulatory report to update"
        )
    );
    let (status, answer) = file("later", json!({})).await?;
    assert_eq!(
        (status, answer["message"].as_str().unwrap_or_default()),
        (400, "stage: \"later\" is not one of initial, update, final")
    );
    let (status, answer) = file("initial", json!({"occurred_at": "yesterday"})).await?;
    assert_eq!(
        (status, answer["message"].as_str().unwrap_or_default()),
        (400, "occurred_at: \"yesterday\" is not an RFC 3339 time")
    );
    let (status, answer) = file("initial", json!({"severity": "low"})).await?;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("severity"),
        "{answer}"
    );
    let (status, _) = file("initial", json!({})).await?;
    assert_eq!(status, 201);
    assert!(timers(&gov).await?.is_empty(), "the deadline is met");
    let (status, _) = file("update", json!({"affected": 3})).await?;
    assert_eq!(status, 201);
    let (status, answer) = file("final", json!({})).await?;
    assert_eq!(
        (status, answer["message"].as_str().unwrap_or_default()),
        (
            400,
            "causal_analysis: the final report needs the causal analysis people wrote"
        )
    );
    let (status, last) = file("final", json!({"causal_analysis": "a prompt change"})).await?;
    assert_eq!(status, 201, "{last}");
    assert_eq!(
        last["follows"],
        json!(["inc-gov-svc-1/report-1", "inc-gov-svc-1/report-2"])
    );
    let (status, _) = file("update", json!({})).await?;
    assert_eq!(status, 409);
    let (status, _) = gov
        .call(
            "post",
            &format!("{path}/classify"),
            None,
            Some(json!({"class": "serious_incident"})),
        )
        .await?;
    assert_eq!(status, 409);
    // Kept: all three, in order; audited, each with its hash.
    let list = gov.ok("get", &reports, None, None).await?;
    let stages: Vec<&Value> = list["reports"]
        .as_array()
        .map(|r| r.iter().map(|x| &x["stage"]).collect())
        .unwrap_or_default();
    assert_eq!(
        stages,
        [&json!("initial"), &json!("update"), &json!("final")]
    );
    assert_eq!(list["regulatory"]["deadline_met"], true);
    assert_eq!(list["reports"][1]["affected"]["persons"], 3);
    let audit = gov.server.app.hub.store.audit(1, 10_000).await?;
    let filed: Vec<(String, String)> = audit
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l.line).ok())
        .filter(|x| x["action"] == "incident.regulatory_report")
        .filter(|x| {
            x["subject"]
                .as_str()
                .is_some_and(|s| s.contains("/report-"))
        })
        .map(|x| {
            let subject = x["subject"].as_str().unwrap_or_default().to_string();
            (
                subject,
                x["detail"]["sha256"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let classified = audit
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l.line).ok())
        .find(|x| x["action"] == "incident.classify");
    let classified = classified.ok_or("no incident.classify audit record")?;
    assert_eq!(classified["subject"], "inc-gov-svc-1");
    assert_eq!(classified["detail"]["last"]["detail"]["class"], "death");
    let subjects: Vec<&String> = filed.iter().map(|(s, _)| s).collect();
    assert_eq!(
        subjects,
        [
            "inc-gov-svc-1/report-1",
            "inc-gov-svc-1/report-2",
            "inc-gov-svc-1/report-3"
        ],
        "{audit:?}"
    );
    let hashes: Vec<&String> = filed.iter().map(|(_, h)| h).collect();
    assert!(hashes.iter().all(|h| h.len() == 64), "{hashes:?}");
    gov.server.shutdown().await?;
    Ok(())
}

/// Every field of the report, non-empty where the record has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regulatory_report_of_a_rolled_back_incident_has_every_field() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = start(FIRING, &hooks).await?;
    gov.release().await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let opened = !gov.incidents().await?.is_empty();
        gov.send(200, !opened).await?;
        let inc = gov.incidents().await?;
        if inc.first().is_some_and(|i| i["state"] == "mitigated") {
            break;
        }
        assert!(Instant::now() < deadline, "no rollback");
        gov.advance(100).await;
    }
    // The rollback completes after its 1 s verify hold; the playbook
    // verifies a second of baseline traffic.
    gov.send(100, false).await?;
    gov.advance(1100).await;
    gov.send(10, false).await?;
    gov.advance(100).await;
    let path = "/v1/incidents/inc-gov-svc-1";
    gov.ok("post", &format!("{path}/steps/verify"), None, None)
        .await?;
    let body = json!({"class": "serious_incident", "affected": 40, "harm": "unsafe answers shown"});
    gov.ok("post", &format!("{path}/classify"), None, Some(body))
        .await?;
    let narrative = json!({"stage": "final", "causal_analysis": "v2's safety filter was disabled",
                           "corrective_actions": ["re-enable the filter in CI"]});
    let r = gov
        .ok(
            "post",
            &format!("{path}/regulatory-reports"),
            None,
            Some(narrative),
        )
        .await?;
    for field in [
        "id",
        "incident",
        "stage",
        "filed_at",
        "filed_by",
        "framework",
        "provider",
        "system",
        "versions",
        "classification",
        "description",
        "dates",
        "affected",
        "causal_analysis",
        "corrective_actions",
        "evidence",
    ] {
        let v = &r[field];
        assert!(
            !v.is_null() && v != "" && v != &json!([]),
            "{field} is empty: {r}"
        );
    }
    assert_eq!(
        r["provider"],
        json!({"name": "Example AI GmbH", "address": "Hauptstr. 1, 10115 Berlin", "contact": "compliance@example.eu"})
    );
    assert_eq!(
        (&r["system"]["name"], &r["system"]["registration"]),
        (&json!("Support assistant"), &json!("EU-DB-0042"))
    );
    assert_eq!(r["system"]["release"], "gov-svc-1");
    let versions: Vec<(&Value, &Value, &Value)> = r["versions"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|x| (&x["role"], &x["version"], &x["provenance"]["model_id"]))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        versions,
        [
            (&json!("baseline"), &json!("v1"), &json!("m")),
            (&json!("candidate"), &json!("v2"), &json!("m"))
        ]
    );
    assert!(r["versions"][1]["registered_at"].is_string());
    let c = &r["classification"];
    assert_eq!(
        (&c["class"], &c["deadline_days"], &c["deadline_met"]),
        (&json!("serious_incident"), &json!(15.0), &json!(true))
    );
    let d = &r["dates"];
    for k in [
        "occurred_at",
        "detected_at",
        "opened_at",
        "aware_at",
        "classified_at",
        "mitigated_at",
    ] {
        assert!(d[k].is_string(), "dates.{k}: {d}");
    }
    assert_eq!(d["aware_at"], d["opened_at"]);
    assert_eq!(
        (&r["affected"]["persons"], &r["affected"]["harm"]),
        (&json!(40), &json!("unsafe answers shown"))
    );
    assert_eq!(r["affected"]["exposed_share"], 0.5);
    assert!(
        r["affected"]["candidate_events"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{r}"
    );
    assert_eq!(r["causal_analysis"], "v2's safety filter was disabled");
    let rollback = &r["corrective_actions"]["rollback"];
    assert!(rollback["started_at"].is_string(), "{rollback}");
    assert!(rollback["completed_at"].is_string(), "{rollback}");
    let verification: Vec<(&Value, &Value)> = r["corrective_actions"]["verification"]
        .as_array()
        .map(|v| v.iter().map(|x| (&x["by"], &x["status"])).collect())
        .unwrap_or_default();
    assert_eq!(
        verification,
        [
            (&json!("engine"), &json!("done")),
            (&json!("verify"), &json!("done"))
        ]
    );
    assert_eq!(
        r["corrective_actions"]["other"],
        json!(["re-enable the filter in CI"])
    );
    let address = r["evidence"]["address"].as_str().unwrap_or_default();
    assert_eq!(address.len(), 64, "{r}");
    assert_eq!(
        r["evidence"]["export"],
        "ripcord evidence export inc-gov-svc-1"
    );
    // The draft reads the same record; as markdown, every section.
    let (status, md) = gov
        .call(
            "get",
            &format!("{path}/regulatory-reports/draft?format=markdown"),
            None,
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let md = md.as_str().unwrap_or_default();
    for section in [
        "## Provider and system",
        "## Versions",
        "## Classification and deadline",
        "## Description",
        "## Dates",
        "## Affected people and harm",
        "## Causal analysis",
        "## Corrective actions",
        "## Evidence",
    ] {
        assert!(md.contains(section), "{section}: {md}");
    }
    assert!(md.contains(&format!("Bundle `{address}`")), "{md}");
    gov.server.shutdown().await?;
    Ok(())
}
