//! Drills on a real server with a manual clock: an unattended drill (the
//! people's steps scripted) runs simulated traffic with a regression
//! through the real triggers, incident, pages and playbook, and is scored
//! line by line; the same drill with one step scripted late fails exactly
//! that line; a drill the server restarts under is marked interrupted and
//! frees its service.

use crate::gov_server::GovServer;
use crate::support::{Result, inbox};
use ripcord_core::Time;
use serde_json::{Value, json};

/// 2026-12-07T09:00:00Z.
const T0: Time = Time(1_796_634_000_000);

/// The trigger is `major`: `governance.rs` counts the process's critical
/// drill incidents in /metrics.
const POLICY: &str = "\
service: gov-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.5, min_samples: 200, window: 2m, for: 0s}
  moderation_abs: {signal: moderation_fail, absolute: 0.03, min_samples: 1000000000, window: 2m}
triggers:
  safety:
    when: moderation_rel
    severity: major
    action:
      rollback:
        stages:
          - {move_back: 1.0, verify_for: 5s}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
incidents:
  ack: {critical: 5m, major: 5m, minor: 1h}
  escalation:
    - {after: 0s, channels: [chat]}
    - {after: 30m, channels: [pager]}
playbooks:
  moderation:
    steps:
      - {name: tell, kind: communicate, owner: operator, within: 5m, template: stakeholders, channels: [chat]}
      - {name: integrity, kind: check, owner: operator, within: 10m, checks: [events_kept, baseline_assigned, store_integrity]}
      - {name: verify, kind: verify, owner: safety_lead, within: 30m, hold: 1m}
";

fn drill_file(integrity_after: &str) -> String {
    format!(
        "\
drill: moderation-spike
service: gov-svc
baseline: v1
candidate: v2
traffic:
  rate: 50/s
  users: 3000
  seed: 11
  base_rates: {{moderation_fail: 0.01}}
  regressions: [\"moderation_fail x5 from 2m\"]
timeout: 40m
expect: {{detect_within: 3m}}
script:
  - {{after: 2m, do: acknowledge, by: dana}}
  - {{after: 3m, do: step, step: tell, by: dana}}
  - {{after: {integrity_after}, do: step, step: integrity, by: sam}}
  - {{after: 6m, do: status, message: rolled back and verifying, by: dana}}
  - {{after: 8m, do: step, step: verify, by: sam}}
  - {{after: 13m, do: resolve, by: dana, note: drill over}}
"
    )
}

/// `POST /v1/drills` with `file`: the status and the answer.
async fn post_drill(gov: &GovServer, file: &str) -> Result<(u16, Value)> {
    let r = gov
        .http
        .post(format!("{}/v1/drills", gov.base))
        .bearer_auth(&gov.admin)
        .body(file.to_string())
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

/// Starts the drill and moves the clock 2 s at a time (ticks, timers and
/// drills, as the tick task does) until it is scored.
async fn run_drill(gov: &GovServer, file: &str) -> Result<Value> {
    let (status, started) = post_drill(gov, file).await?;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(started["state"], "running");
    assert_eq!(started["unattended"], true);
    for _ in 0..2000 {
        gov.advance(2000).await;
        let d = gov
            .ok("get", &format!("/v1/drills/{id}"), None, None)
            .await?;
        if d["state"] != "running" {
            return Ok(d);
        }
    }
    Err("the drill did not end in 66 minutes of its clock".into())
}

fn line<'a>(d: &'a Value, name: &str) -> &'a Value {
    let lines = d["scorecard"].as_array().expect("a scorecard");
    lines.iter().find(|l| l["name"] == name).expect(name)
}

fn failing(d: &Value) -> Vec<String> {
    d["scorecard"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["pass"] == false)
        .map(|l| l["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn an_unattended_drill_passes_and_the_same_drill_with_a_late_step_fails_that_line() -> Result
{
    let (hooks, inbox) = inbox().await?;
    let gov = GovServer::start(POLICY, &hooks, T0).await?;

    let d = run_drill(&gov, &drill_file("4m")).await?;
    assert_eq!(failing(&d), Vec::<String>::new(), "{d:#}");
    assert_eq!(d["state"], "passed");
    let names: Vec<&str> = d["scorecard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "detection",
            "acknowledgement",
            "step tell",
            "step integrity",
            "step verify",
            "communications",
            "rollback",
            "integrity"
        ]
    );
    let detection = line(&d, "detection");
    let ms = detection["evidence"]["detection_ms"].as_i64().unwrap();
    assert!((0..=180_000).contains(&ms), "{detection}");
    assert_eq!(detection["evidence"]["trigger"], "safety");
    let ack = line(&d, "acknowledgement");
    assert_eq!(ack["evidence"]["acknowledged_by"], "dana (drill)");
    assert_eq!(ack["got"], "acknowledged 2m after the page by dana (drill)");
    let rollback = line(&d, "rollback");
    assert_eq!(rollback["evidence"]["state"], "rolled_back");
    assert_eq!(
        rollback["evidence"]["baseline_assigned"]["detail"]["units_on_candidate"],
        0
    );
    assert_eq!(rollback["evidence"]["verify"]["ok"], true);
    let checks = &line(&d, "integrity")["evidence"];
    assert_eq!(checks[0]["check"], "events_kept");
    assert_eq!(checks[1]["check"], "store_integrity");
    // Every scripted step ran, none refused; nothing was left to clean up.
    for s in d["script"].as_array().unwrap() {
        assert_eq!(s["ok"], true, "{s}");
    }
    assert_eq!(d["cleanup"], json!([]));
    assert!(
        d["events_sent"].as_u64().unwrap() > 30_000,
        "{}",
        d["events_sent"]
    );

    // The incident is a drill: kept out of the real incidents and figures,
    // and its pages say so.
    let inc_id = d["incident"].as_str().unwrap();
    let inc = gov
        .ok("get", &format!("/v1/incidents/{inc_id}"), None, None)
        .await?;
    assert_eq!(inc["kind"], "drill");
    assert_eq!(inc["state"], "resolved");
    let real = gov.ok("get", "/v1/incidents?kind=real", None, None).await?;
    assert_eq!(real["total"], 0);
    let slack = inbox.received("slack");
    assert!(!slack.is_empty());
    for m in &slack {
        assert!(
            m["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("[DRILL]"),
            "{m}"
        );
    }

    // The same drill with the integrity check scripted 2 minutes after its
    // window: exactly that line fails, and says by how much.
    let late = run_drill(&gov, &drill_file("12m")).await?;
    assert_eq!(late["state"], "failed");
    assert_eq!(failing(&late), ["step integrity"]);
    let step = line(&late, "step integrity");
    assert_eq!(step["evidence"]["done_by"], "sam (drill)");
    assert!(
        step["got"].as_str().unwrap().ends_with(", 2m late"),
        "{step}"
    );

    // Counted apart from the real figures.
    let metrics = gov
        .http
        .get(format!("{}/metrics", gov.base))
        .send()
        .await?
        .text()
        .await?;
    for family in [
        "ripcord_drill_events_total ",
        "ripcord_drill_decisions_total{kind=\"action\",action=\"rollback_complete\"}",
        "ripcord_incidents_opened_total{kind=\"drill\",severity=\"major\"}",
    ] {
        assert!(metrics.contains(family), "{family}: {metrics}");
    }

    // History per service, newest first, and audited.
    let list = gov
        .ok("get", "/v1/drills?service=gov-svc", None, None)
        .await?;
    let states: Vec<&str> = list["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failed", "passed"]);
    let (_, audit) = gov.call("get", "/v1/audit", None, None).await?;
    let text = audit.as_str().unwrap_or_default();
    let actions: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .filter(|a| a.starts_with("drill.") && a != "drill.progress")
        .collect();
    assert!(ripcord_core::audit::verify(text).is_ok());
    assert_eq!(
        actions,
        ["drill.start", "drill.finish", "drill.start", "drill.finish"]
    );
    Ok(())
}

#[tokio::test]
async fn a_drill_serves_real_callers_the_baseline_and_a_restart_interrupts_it() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = GovServer::start(POLICY, &hooks, T0).await?;
    let (status, answer) = gov
        .call("post", "/v1/drills", None, Some(json!("drill: x")))
        .await?;
    assert_eq!(status, 400, "{answer}");
    let typo = drill_file("4m").replace("step: integrity", "step: integrty");
    let (status, e) = post_drill(&gov, &typo).await?;
    assert_eq!(status, 400);
    assert_eq!(
        e["message"],
        "script[2].step: \"integrty\" is no step of gov-svc's playbooks (known: integrity, tell, verify)"
    );

    let (status, started) = post_drill(&gov, &drill_file("4m")).await?;
    assert_eq!(status, 201, "{started}");
    for _ in 0..10 {
        gov.advance(2000).await;
    }
    // Half the simulated users are on the candidate; a real caller is not.
    let release = gov.ok("get", "/v1/releases/gov-svc-1", None, None).await?;
    assert_eq!(release["share"], 0.5);
    assert_eq!(release["drill"], true);
    for unit in ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6"] {
        let a = gov
            .ok(
                "get",
                &format!("/v1/assign?service=gov-svc&unit={unit}"),
                None,
                None,
            )
            .await?;
        assert_eq!(a["version"], "v1", "{a}");
    }
    let (status, again) = post_drill(&gov, &drill_file("4m")).await?;
    assert_eq!(status, 409, "{again}");
    assert_eq!(
        again["message"],
        "drill drill-gov-svc-1 is running on gov-svc"
    );

    let gov = gov.restart(ripcord_core::Dur(1000)).await?;
    gov.advance(1000).await;
    // The rollback's one stage holds for 5 s.
    gov.advance(6000).await;
    let id = started["id"].as_str().unwrap();
    let d = gov
        .ok("get", &format!("/v1/drills/{id}"), None, None)
        .await?;
    assert_eq!(d["state"], "interrupted");
    assert_eq!(
        d["cleanup"],
        json!([
            "ended unscored: the server restarted, or another replica took the lead, while it ran",
            "rolled gov-svc-1 back"
        ])
    );
    let release = gov.ok("get", "/v1/releases/gov-svc-1", None, None).await?;
    assert_eq!(release["state"], "rolled_back");
    Ok(())
}

/// The example drill (`examples/drills/`) against the example policy, its
/// service, versions and channels renamed to this server's: it passes.
#[tokio::test]
async fn the_example_drill_passes_against_the_example_policy() -> Result {
    let root = crate::support::repo_root();
    let policy = std::fs::read_to_string(root.join("examples/conversational-agent/policy.yaml"))?
        .replace("service: support-bot", "service: gov-svc")
        .replace("oncall-slack", "chat")
        .replace("leads-email", "chat");
    let file = std::fs::read_to_string(root.join("examples/drills/moderation-spike.yaml"))?
        .replace("service: support-bot", "service: gov-svc")
        .replace("baseline: v12", "baseline: v1")
        .replace("candidate: v13", "candidate: v2");
    let (hooks, _inbox) = inbox().await?;
    let gov = GovServer::start(&policy, &hooks, T0).await?;
    let d = run_drill(&gov, &file).await?;
    assert_eq!(failing(&d), Vec::<String>::new(), "{:#}", d["scorecard"]);
    assert_eq!(d["state"], "passed");
    Ok(())
}

/// Once the drill's release is settled someone may start a real one; the
/// drill then ends at once, scored as it stands, and its simulated users
/// send the real release nothing.
#[tokio::test]
async fn a_real_release_after_the_drills_ends_the_drill_and_gets_none_of_its_traffic() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = GovServer::start(POLICY, &hooks, T0).await?;
    let (status, started) = post_drill(&gov, &drill_file("4m")).await?;
    assert_eq!(status, 201, "{started}");
    for _ in 0..5 {
        gov.advance(2000).await;
    }
    let stop = json!({"action": "rollback", "reason": "not now"});
    gov.ok("post", "/v1/releases/gov-svc-1/actions", None, Some(stop))
        .await?;
    gov.advance(6000).await;
    let drill = gov
        .ok("get", "/v1/drills/drill-gov-svc-1", None, None)
        .await?;
    assert_eq!(drill["state"], "running");
    gov.release().await?;
    for _ in 0..3 {
        gov.advance(2000).await;
    }
    let drill = gov
        .ok("get", "/v1/drills/drill-gov-svc-1", None, None)
        .await?;
    assert_eq!(drill["state"], "failed", "{drill}");
    assert_eq!(
        line(&drill, "rollback")["got"],
        "the drill's release is no longer the service's"
    );
    let real = gov.ok("get", "/v1/releases/gov-svc-2", None, None).await?;
    assert_eq!(real["drill"], false);
    assert_eq!(real["events"], json!({"baseline": 0, "candidate": 0}));
    Ok(())
}

/// A token runs two drills at most; another token may run a third.
#[tokio::test]
async fn a_token_runs_two_drills_at_most() -> Result {
    let (hooks, _inbox) = inbox().await?;
    let gov = GovServer::start(POLICY, &hooks, T0).await?;
    for service in ["s-2", "s-3"] {
        let r = gov
            .http
            .put(format!("{}/v1/policies/{service}", gov.base))
            .bearer_auth(&gov.admin)
            .body(POLICY.replace("service: gov-svc", &format!("service: {service}")))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 201);
        for v in ["v1", "v2"] {
            let body = json!({"version": v, "model_id": "m"});
            let path = format!("/v1/services/{service}/versions");
            gov.ok("post", &path, None, Some(body)).await?;
        }
    }
    let on = |service: &str| {
        drill_file("4m").replace("service: gov-svc", &format!("service: {service}"))
    };
    for service in ["gov-svc", "s-2"] {
        let (status, d) = post_drill(&gov, &on(service)).await?;
        assert_eq!(status, 201, "{d}");
    }
    let (status, refused) = post_drill(&gov, &on("s-3")).await?;
    assert_eq!(status, 409);
    assert_eq!(
        refused["message"],
        "admin already runs 2 drills; wait for one to end"
    );
    let manager = gov.token("rita", "release_manager").await?;
    let r = gov
        .http
        .post(format!("{}/v1/drills", gov.base))
        .bearer_auth(&manager)
        .body(on("s-3"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    Ok(())
}
