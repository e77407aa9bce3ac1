//! Decision rights without back doors: a release's own rollout plan cannot
//! skip the approvals the policy asks for, and one principal cannot pile
//! up requests.

mod common;

use common::{Result, Running};
use serde_json::{Value, json};

/// A token of `role` issued by the admin; the token text.
async fn token(app: &Running, name: &str, role: &str) -> Result<String> {
    let (status, made) = app
        .post("/v1/tokens", &json!({"name": name, "role": role}))
        .await?;
    assert_eq!(status, 201, "{made}");
    Ok(made["token"].as_str().unwrap_or_default().to_string())
}

/// A JSON POST as `token`.
async fn post_as(app: &Running, token: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

/// The example policy's `rights.promote` asks two approvals of release
/// managers or safety leads. A release manager's one-step plan at 100%
/// held for a second would promote without them: it is refused, and the
/// release it may start runs the policy's plan, where a promotion is a
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steps_override_needs_the_right_to_change_the_policy() -> Result {
    let app = common::start().await?;
    let rm = token(&app, "rm-1", "release_manager").await?;
    let shortcut = json!({"service": "support-bot", "baseline": "v1", "candidate": "v2",
                          "steps": [{"share": 1.0, "hold": "1s"}]});
    let (status, refused) = post_as(&app, &rm, "/v1/releases", &shortcut).await?;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(
        refused["message"],
        "role \"release_manager\" lacks permission \"policy_write\", which a \"steps\" \
         override of the policy's rollout plan needs"
    );
    let listed = app.get_json("/v1/releases?service=support-bot").await?;
    assert_eq!(listed["releases"], json!([]), "nothing started: {listed}");

    let plain = json!({"service": "support-bot", "baseline": "v1", "candidate": "v2"});
    let (status, started) = post_as(&app, &rm, "/v1/releases", &plain).await?;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["share"], json!(0.05), "the policy's first step");
    let id = started["id"].as_str().unwrap_or_default().to_string();
    let promote = json!({"action": "promote"});
    let path = format!("/v1/releases/{id}/actions");
    let (status, asked) = post_as(&app, &rm, &path, &promote).await?;
    assert_eq!(status, 202, "{asked}");
    assert_eq!(asked["request"]["state"], "pending");
    assert_eq!(asked["request"]["quorum"], 2);
    assert_eq!(asked["release"]["share"], json!(0.05));
    assert_eq!(asked["release"]["state"], "ramping");

    // An admin may change the policy, so it may change the plan too.
    let released = app.post(&path, &json!({"action": "rollback"})).await?;
    assert_eq!(released.0, 200, "{}", released.1);
    app.wait_release(&id, std::time::Duration::from_secs(10), |r| {
        r["state"] == "rolled_back"
    })
    .await?;
    let (status, fast) = app.post("/v1/releases", &shortcut).await?;
    assert_eq!(status, 201, "{fast}");
    assert_eq!(fast["share"], json!(1.0));
    Ok(())
}

/// Asking again for what already waits for approval is not a new request:
/// 3,000 promote requests from two release managers leave one pending
/// request (and one timer), and every answer names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_join_the_pending_one() -> Result {
    let app = common::start().await?;
    let rm = token(&app, "rm-1", "release_manager").await?;
    let other = token(&app, "rm-2", "release_manager").await?;
    let plain = json!({"service": "support-bot", "baseline": "v1", "candidate": "v2"});
    let (status, started) = post_as(&app, &rm, "/v1/releases", &plain).await?;
    assert_eq!(status, 201, "{started}");
    let path = format!(
        "/v1/releases/{}/actions",
        started["id"].as_str().unwrap_or("")
    );
    let promote = json!({"action": "promote", "reason": "looks fine"});
    let (status, first) = post_as(&app, &rm, &path, &promote).await?;
    assert_eq!(status, 202, "{first}");
    let id = first["request"]["id"].clone();
    for n in 1..3_000 {
        let who = if n % 2 == 0 { &rm } else { &other };
        let (status, again) = post_as(&app, who, &path, &promote).await?;
        assert_eq!(status, 202, "{again}");
        assert_eq!(again["request"]["id"], id, "request {n}: {again}");
        assert_eq!(again["existing"], true);
    }
    let pending = app
        .get_json("/v1/requests?service=support-bot&state=pending")
        .await?;
    assert_eq!(pending["total"], 1, "{pending}");
    assert_eq!(pending["requests"][0]["id"], id);
    assert_eq!(pending["requests"][0]["requested_by"], "rm-1");
    Ok(())
}

/// Lists are paged: `limit` (1–1000, 100 by default) and `offset`, with
/// `next_offset` while more remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paged() -> Result {
    let app = common::start().await?;
    for n in 0..5 {
        let drill = json!({"service": "support-bot", "kind": "drill", "severity": "minor",
                           "title": format!("drill {n}")});
        let (status, body) = app.post("/v1/incidents", &drill).await?;
        assert_eq!(status, 201, "{body}");
    }
    let first = app
        .get_json("/v1/incidents?service=support-bot&limit=2")
        .await?;
    assert_eq!(first["total"], 5);
    assert_eq!(first["next_offset"], 2);
    let titles = |page: &Value| -> Vec<String> {
        page["incidents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| i["title"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(titles(&first), ["drill 0", "drill 1"]);
    let last = app
        .get_json("/v1/incidents?service=support-bot&limit=2&offset=4")
        .await?;
    assert_eq!(titles(&last), ["drill 4"]);
    assert_eq!(last.get("next_offset"), None, "{last}");
    for (query, message) in [
        ("limit=0", "limit: must be between 1 and 1000, got 0"),
        ("limit=1001", "limit: must be between 1 and 1000, got 1001"),
        ("offset=-1", "offset: must be 0 or more, got -1"),
    ] {
        for list in ["/v1/incidents", "/v1/requests", "/v1/releases"] {
            let r = app
                .http
                .get(app.url(&format!("{list}?{query}")))
                .bearer_auth(&app.token)
                .send()
                .await?;
            assert_eq!(r.status(), 400, "{list}?{query}");
            let answer: Value = r.json().await?;
            assert_eq!(answer["message"], message, "{list}?{query}");
        }
    }
    Ok(())
}
