//! Decision rights without back doors: a release's own rollout plan cannot
//! skip the approvals the policy asks for, and one principal cannot pile
//! up requests.

use crate::support::{Result, Running};
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
    let app = crate::support::start().await?;
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
    let app = crate::support::start().await?;
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

/// Durable timers of the server's store (one per pending request, besides
/// the incidents').
async fn timers(app: &Running) -> Result<usize> {
    Ok(app.server.app.hub.store.timers().await?.len())
}

/// One principal may hold at most 16 pending requests (each with its
/// timer) on a service. A playbook of 17 `pause` steps, each a distinct
/// request under `rights.pause`, lets one operator try for 17: the 17th is
/// refused, adding neither a request nor a timer. Asking for what another
/// person already asked is not a new request, so it is answered with the
/// pending one even at the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_principal_holds_at_most_16_pending_requests() -> Result {
    let app = crate::support::start().await?;
    let policy = std::fs::read_to_string(
        crate::support::repo_root().join("examples/conversational-agent/policy.yaml"),
    )?;
    let steps: String = (1..=17)
        .map(|n| {
            format!(
                "      - {{name: pause-{n}, kind: action, owner: operator, within: 1h, \
                 action: pause}}\n"
            )
        })
        .collect();
    let policy = policy
        .replace(
            "rights:\n",
            "rights:\n  pause: {roles: [safety_lead], quorum: 1, within: 1h, on_timeout: hold}\n",
        )
        .replace(
            "playbooks:\n",
            &format!("playbooks:\n  hold-everything:\n    steps:\n{steps}"),
        );
    app.put_policy("support-bot", policy).await?;
    let release = app.release_at_30().await?;
    let drill = json!({"service": "support-bot", "kind": "drill", "severity": "minor",
                       "title": "hold everything"});
    let (status, incident) = app.post("/v1/incidents", &drill).await?;
    assert_eq!(status, 201, "{incident}");
    let steps_path = format!(
        "/v1/incidents/{}/steps",
        incident["id"].as_str().unwrap_or("")
    );
    let olga = token(&app, "olga", "operator").await?;
    let oscar = token(&app, "oscar", "operator").await?;

    // Another operator's pause request on the release itself.
    let actions = format!("/v1/releases/{release}/actions");
    let pause = json!({"action": "pause"});
    let (status, theirs) = post_as(&app, &oscar, &actions, &pause).await?;
    assert_eq!(status, 202, "{theirs}");
    for n in 1..=16 {
        let (status, ran) =
            post_as(&app, &olga, &format!("{steps_path}/pause-{n}"), &json!({})).await?;
        assert_eq!(status, 200, "step {n}: {ran}");
        assert_eq!(ran["steps"][n - 1]["status"], "requested", "step {n}");
    }
    let before = timers(&app).await?;
    let (status, refused) =
        post_as(&app, &olga, &format!("{steps_path}/pause-17"), &json!({})).await?;
    assert_eq!(
        (status, refused),
        (
            409,
            json!({"error": "conflict", "message": "\"olga\" already has 16 pending requests on \
                   \"support-bot\" (at most 16); wait until they are decided or expire"})
        )
    );
    // At the cap, the same request as oscar's is answered with his.
    let (status, same) = post_as(&app, &olga, &actions, &pause).await?;
    assert_eq!(status, 202, "{same}");
    assert_eq!(same["existing"], true);
    assert_eq!(same["request"]["id"], theirs["request"]["id"]);
    assert_eq!(same["request"]["requested_by"], "oscar");
    assert_eq!(
        timers(&app).await?,
        before,
        "no timer for a refused or joined request"
    );
    let pending = app
        .get_json("/v1/requests?service=support-bot&state=pending")
        .await?;
    assert_eq!(pending["total"], 17, "16 of olga's and oscar's: {pending}");
    Ok(())
}

/// Lists are paged: `limit` (1–1000, 100 by default) and `offset`, with
/// `next_offset` while more remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paged() -> Result {
    let app = crate::support::start().await?;
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
