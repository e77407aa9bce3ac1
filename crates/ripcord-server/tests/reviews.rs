//! Threshold reviews on the live service: six releases on a manual clock,
//! five promoted with the candidate like the baseline and one where the
//! candidate fails moderation 1.8 times as often — under the current bound
//! (2.0), so people roll it back. Its settling asks for a review, which
//! replays all six from the journal: the suggested bound (tighter) catches
//! the regression and alarms on none of the others. Accepting it writes a
//! new policy version citing the review; everything is audited.

use std::time::{Duration, Instant};

use crate::support::{Result, Running, request, start_with};
use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use serde_json::{Value, json};

const POLICY: &str = "service: support-bot
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel:
    signal: moderation_fail
    max_ratio: 2.0   # agreed with the safety team
    min_samples: 300
    window: 5m
    for: 1m
triggers:
  safety_regression:
    when: moderation_rel
    severity: critical
    action: {rollback: {stages: [{move_back: 1.0, verify_for: 1m}]}}
rollout:
  steps:
    - {share: 0.5, hold: 10m}
  watch_after_promotion: 0s
";

const REGRESSED: usize = 4;

async fn tick(run: &Running, clock: &Clock, by: Dur) {
    clock.advance(by);
    run.server.app.hub.tick_all().await;
}

/// Ten seconds of traffic: 5000 outputs a side in ten events of 500;
/// 1% of the baseline's fail moderation, `flagged` per mille of the
/// candidate's (`None`: the candidate serves nobody, as after a rollback).
async fn traffic(run: &Running, clock: &Clock, flagged: Option<usize>) -> Result {
    let ts = clock.now().to_rfc3339();
    let sides = if flagged.is_some() { 20 } else { 10 };
    let flagged = flagged.unwrap_or(0);
    let events: Vec<Value> = (0..sides)
        .map(|i| {
            let version = if i < 10 { "v1" } else { "v2" };
            let fails = if version == "v1" { 5 } else { flagged / 2 };
            json!({"ts": ts, "service": "support-bot", "version": version,
                   "unit": format!("u-{i}"),
                   "values": {"outputs": 500, "moderation_fail": fails}})
        })
        .collect();
    let (status, body) = run.post("/v1/events", &Value::Array(events)).await?;
    assert_eq!(status, 202, "{body}");
    Ok(())
}

/// One release, run for 12 minutes of the clock (promoted after 10) or,
/// for the regression, rolled back by a person after 8.
async fn release(run: &Running, clock: &Clock, regressed: bool) -> Result<String> {
    let (status, body) = run
        .post(
            "/v1/releases",
            &json!({"service": "support-bot", "baseline": "v1", "candidate": "v2"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let mut flagged = Some(if regressed { 18 } else { 10 });
    for s in 0..72 {
        if regressed && s == 48 {
            let path = format!("/v1/releases/{id}/actions");
            let body = json!({"action": "rollback", "reason": "moderation complaints"});
            let (status, answer) = run.post(&path, &body).await?;
            assert!(status < 300, "{answer}");
            flagged = None;
        }
        traffic(run, clock, flagged).await?;
        tick(run, clock, Dur::from_secs(10)).await;
    }
    let view = run.get_json(&format!("/v1/releases/{id}")).await?;
    let want = if regressed { "rolled_back" } else { "promoted" };
    assert_eq!(view["state"], json!(want), "{view}");
    Ok(id)
}

async fn ready(run: &Running, id: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = run.get_json(&format!("/v1/reviews/{id}")).await?;
        if r["status"] != "pending" {
            return Ok(r);
        }
        if Instant::now() > deadline {
            return Err(format!("review {id} still pending: {r}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_release_is_reviewed_and_the_review_accepted_as_a_policy_version() -> Result {
    let clock = Clock::manual(Time(ripcord_server::clock::wall_now().0 / 1000 * 1000));
    let manual = clock.clone();
    let run = start_with(move |c| {
        c.clock = manual;
        c.tick = Duration::from_secs(3600);
    })
    .await?;
    run.put_policy("support-bot", POLICY.to_string()).await?;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(release(&run, &clock, i == REGRESSED).await?);
    }
    let review = ready(&run, &format!("review-{}", ids[REGRESSED])).await?;
    let doc = crate::openapi::document();
    crate::openapi::check(
        &doc,
        "/v1/reviews/{id}",
        "get",
        reqwest::StatusCode::OK,
        &review,
    );
    assert_eq!(review["status"], "ready", "{review}");
    assert_eq!(review["outcome"], "bad");
    assert_eq!(review["policy_version"], json!(2));
    let r = &review["review"];
    // The five releases before and this one: four promoted, this one bad.
    let names: Vec<&str> = r["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        names,
        ids[..=REGRESSED]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!((&r["good"], &r["bad"]), (&json!(4), &json!(1)));
    let c = &r["criteria"][0];
    assert_eq!(
        (&c["criterion"], &c["current"]),
        (&json!("moderation_rel"), &json!(2.0))
    );
    let current = c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["current"] == true)
        .unwrap();
    assert_eq!(
        current["breaches"],
        json!([null, null, null, null, null]),
        "{c}"
    );
    let s = &c["suggestion"];
    let to = s["to"].as_f64().unwrap();
    assert!(to < 2.0, "{s}");
    let proposed = c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["bound"] == json!(to))
        .unwrap();
    assert_eq!(
        (&proposed["false_alarms"], &proposed["detections"]),
        (&json!(0), &json!(1))
    );
    let breaches = proposed["breaches"].as_array().unwrap();
    assert!(
        breaches[..REGRESSED].iter().all(Value::is_null),
        "{proposed}"
    );
    // Detected while the regression ran (rolled back 8 minutes in).
    let at = breaches[REGRESSED].as_i64().unwrap();
    assert!(at > 60_000 && at <= 480_000, "{at}");
    // Each promoted release has its own review too.
    let list = run.get_json("/v1/services/support-bot/reviews").await?;
    assert_eq!(list["total"], json!(6), "{list}");
    assert_eq!(list["reviews"][0]["release"], json!(ids[5]));

    // Accept: a new policy version citing the review, the rest of the file kept.
    let id = review["id"].as_str().unwrap();
    let (status, body) = run
        .post(&format!("/v1/reviews/{id}/accept"), &json!({}))
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["policy"]["version"], json!(3), "{body}");
    assert_eq!(body["review"]["status"], "accepted");
    assert_eq!(body["review"]["accepted"]["policy_version"], json!(3));
    let (_, yaml) = request(
        &run.http,
        reqwest::Method::GET,
        &run.url("/v1/policies/support-bot"),
        &run.token,
        None,
    )
    .await?;
    let comment = format!(
        "# threshold review {id}: moderation_rel max_ratio 2 -> {to} (accepted by admin)\n"
    );
    assert_eq!(
        yaml,
        format!(
            "{comment}{}",
            POLICY.replace("max_ratio: 2.0   #", &format!("max_ratio: {to}   #"))
        )
    );
    // Once only; and a review of the old version cannot be accepted after.
    let (status, body) = run
        .post(&format!("/v1/reviews/{id}/accept"), &json!({}))
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("already accepted as policy version 3"),
        "{body}"
    );
    let (status, body) = run
        .post(
            &format!("/v1/reviews/review-{}/accept", ids[0]),
            &json!({"criteria": ["nope"]}),
        )
        .await?;
    assert!(status == 400 || status == 409, "{body}");
    let (status, _) = run
        .post("/v1/reviews/review-none/accept", &json!({}))
        .await?;
    assert_eq!(status, 404);

    // As `ripcord review show` prints it.
    let stored = ripcord_server::reviews::get(run.server.app.hub.store.as_ref(), id)
        .await
        .map_err(|e| e.message)?;
    let md = ripcord_server::reviews::to_markdown(&stored);
    let head = format!(
        "# Threshold review {id}\n\nsupport-bot release {} (rolled back), \
         policy version 2: accepted by admin at ",
        ids[REGRESSED]
    );
    assert!(md.starts_with(&head), "{md}");
    assert!(
        md.contains("5 releases replayed: 4 promoted, 1 rolled back.\n"),
        "{md}"
    );
    let suggested = format!("| {to} | 0 | 1 | {} | ← suggested |\n", Dur(at));
    assert!(md.contains(&suggested), "{md}");
    assert!(md.contains("| 2 | 0 | 0 | — | ← current |\n"), "{md}");
    let effect = format!("\nSuggested: {}\n", s["effect"].as_str().unwrap_or("?"));
    assert!(md.contains(&effect), "{md}");

    let (_, audit) = request(
        &run.http,
        reqwest::Method::GET,
        &run.url("/v1/audit?limit=1000"),
        &run.token,
        None,
    )
    .await?;
    let actions: Vec<(String, String)> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["subject"] == json!(id))
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("").to_string(),
                r["principal"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want = [
        ("review.requested", "ripcord"),
        ("review.created", "ripcord"),
        ("review.accepted", "admin"),
    ];
    assert_eq!(actions, want.map(|(a, p)| (a.to_string(), p.to_string())));
    Ok(())
}
