//! Two replicas on one PostgreSQL store: one leads, the other follows. The
//! follower answers assignments and OFREP from the stored releases (the
//! same answers as the leader's, and a rollback reaches it within its
//! refresh), forwards reads and writes to the leader with the caller's
//! token, is not ready, and takes over when the leader hands the lease on.

use std::time::{Duration, Instant};

use ripcord_server::cluster::Cluster;
use ripcord_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::support::{Result, client, start_with};

const LEASE: Duration = Duration::from_millis(900);

fn clustered(config: &mut ripcord_server::Config, db: &TestDatabase) {
    config.store = Some(db.url.parse().expect("a store URL"));
    config.cluster = Some(Cluster {
        node: String::new(),
        lease: LEASE,
    });
}

/// `GET {base}{path}` with `token` (none when empty): status, headers, JSON
/// body (or the text as a string).
async fn get(
    base: &str,
    path: &str,
    token: &str,
) -> Result<(u16, reqwest::header::HeaderMap, Value)> {
    let mut request = client()?.get(format!("{base}{path}"));
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    let r = request.send().await?;
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, headers, body))
}

async fn post(
    base: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> Result<(u16, reqwest::header::HeaderMap, Value)> {
    let r = client()?
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    Ok((status, headers, r.json().await?))
}

/// The versions `units` get at `base` (null where it has none).
async fn versions(base: &str, token: &str, units: &[String]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for unit in units {
        let path = format!("/v1/assign?service=support-bot&unit={unit}");
        out.push(get(base, &path, token).await?.2["version"].clone());
    }
    Ok(out)
}

/// Polls until `done` holds for `GET {base}{path}`, up to `within`.
async fn until(
    base: &str,
    path: &str,
    token: &str,
    within: Duration,
    done: impl Fn(u16, &Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        let (status, _, body) = get(base, path, token).await?;
        if done(status, &body) {
            return Ok(body);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "GET {base}{path} never settled within {within:?}: {status} {body}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_assigns_like_the_leader_forwards_the_rest_and_takes_over() -> Result {
    let db = TestDatabase::create().await;
    let leader = start_with(|c| clustered(c, &db)).await?;
    let (a, token) = (leader.base.clone(), leader.token.clone());

    // The second replica shares the data directory (admin token, keys).
    let mut config = leader.config.clone();
    config.listen = "127.0.0.1:0".parse()?;
    let starting = ripcord_server::bind(config).await?;
    let b = format!("http://{}", starting.addr);
    let taking_over = tokio::spawn(starting.lead());

    let cluster = until(&b, "/v1/cluster", "", Duration::from_secs(5), |s, v| {
        s == 200
            && v["role"] == "follower"
            && v["leader"].is_object()
            && v["assignments_read_at"].is_string()
    })
    .await?;
    assert_eq!(cluster["node"], json!(b));
    assert_eq!(cluster["leader"]["node"], json!(a), "{cluster}");
    assert_eq!(cluster["leader"]["epoch"], 1, "{cluster}");
    assert_eq!(cluster["lease_ms"], 900);
    let (_, _, on_a) = get(&a, "/v1/cluster", "").await?;
    assert_eq!(
        (&on_a["role"], &on_a["leader"]["node"]),
        (&json!("leader"), &json!(a))
    );

    // Ready: the leader only; the follower's 503 names the leader.
    assert_eq!(get(&a, "/readyz", "").await?.0, 200);
    let (status, headers, body) = get(&b, "/readyz", "").await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["ripcord-leader"], a.as_str());
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(get(&b, "/healthz", "").await?.0, 200);

    // A write sent to the follower reaches the leader, token and all.
    let start = json!({"service": "support-bot", "baseline": "v1", "candidate": "v2",
                       "steps": [{"share": 0.3, "hold": "1h"}]});
    let (status, headers, release) = post(&b, "/v1/releases", &token, &start).await?;
    assert_eq!(status, 201, "{release}");
    assert_eq!(headers["ripcord-leader"], a.as_str());
    let id = release["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        post(&b, "/v1/releases", "rc_not_a_token", &start).await?.0,
        401
    );
    // So does a read, and the answer is the leader's.
    let path = format!("/v1/releases/{id}");
    assert_eq!(
        get(&b, &path, &token).await?.2,
        get(&a, &path, &token).await?.2
    );

    // Assignments: the follower's own, the same as the leader's once its
    // refresh has read the release.
    let units: Vec<String> = (0..60).map(|i| format!("u-{i}")).collect();
    let on_leader = versions(&a, &token, &units).await?;
    assert!(on_leader.contains(&json!("v2")) && on_leader.contains(&json!("v1")));
    let deadline = Instant::now() + Duration::from_secs(3);
    while versions(&b, &token, &units).await? != on_leader {
        assert!(
            Instant::now() < deadline,
            "the follower never assigned like the leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, _) = get(&b, "/v1/assign?service=support-bot&unit=u-1", "").await?;
    assert_eq!(status, 401, "the follower checks tokens too");
    let (s_a, _, flag_a) = post(
        &a,
        "/ofrep/v1/evaluate/flags/support-bot",
        &token,
        &json!({"context": {"targetingKey": "u-7"}}),
    )
    .await?;
    let (s_b, headers, flag_b) = post(
        &b,
        "/ofrep/v1/evaluate/flags/support-bot",
        &token,
        &json!({"context": {"targetingKey": "u-7"}}),
    )
    .await?;
    assert_eq!((s_a, &flag_a), (s_b, &flag_b));
    assert_eq!(s_a, 200, "{flag_a}");
    assert!(
        !headers.contains_key("ripcord-leader"),
        "OFREP is answered by the follower itself"
    );

    // A rollback on the leader reaches the follower's assignments.
    let (status, _, answer) = post(
        &b,
        &format!("{path}/actions"),
        &token,
        &json!({"action": "rollback", "reason": "bad answers"}),
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    let rolled_back = Instant::now();
    while versions(&b, &token, &units)
        .await?
        .iter()
        .any(|v| v != "v1")
    {
        assert!(
            rolled_back.elapsed() < Duration::from_secs(2),
            "the follower kept assigning v2"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The rollback's one stage verifies for 0 s and completes on the
    // leader's next tick: wait for it, so that what the successor serves
    // is compared with a settled release, not one a tick away from it.
    let settling = Instant::now();
    while get(&a, &path, &token).await?.2["state"] != json!("rolled_back") {
        assert!(
            settling.elapsed() < Duration::from_secs(3),
            "the rollback did not complete"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The leader hands the lease on as it stops; the follower leads.
    let before = get(&a, &path, &token).await?.2;
    let stopped = Instant::now();
    leader.server.shutdown().await?;
    let successor = tokio::time::timeout(2 * LEASE, taking_over).await???;
    let took = stopped.elapsed();
    let (_, _, cluster) = get(&b, "/v1/cluster", "").await?;
    assert_eq!(
        (&cluster["role"], &cluster["leader"]["epoch"]),
        (&json!("leader"), &json!(2)),
        "{cluster}"
    );
    assert_eq!(get(&b, "/readyz", "").await?.0, 200);
    assert_eq!(get(&b, &path, &token).await?.2, before);
    eprintln!("the follower led {took:?} after the leader stopped");
    successor.shutdown().await?;
    Ok(())
}
