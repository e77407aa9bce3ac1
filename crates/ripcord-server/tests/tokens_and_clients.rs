//! Abuse by slow clients and by tokens (issue 12): header and body
//! timeouts, per-token ingest slots, token scope, reserved and dotted
//! names, the data dir's modes and the metrics text, each against a real
//! server on loopback.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::support::{Result, Running, start, start_with};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn now() -> String {
    ripcord_server::clock::wall_now().to_rfc3339()
}

fn event(service: &str, unit: &str) -> Value {
    json!({
        "ts": now(), "service": service, "version": "v1", "unit": unit,
        "values": {"outputs": 1, "moderation_fail": 0, "latency_ms": 700},
    })
}

/// A call with `token`: the status and the body as JSON.
async fn call(
    h: &Running,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut r = h.http.request(method, h.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A token made through the API (by the admin).
async fn make_token(h: &Running, body: Value) -> Result<String> {
    let (status, made) = call(h, "POST", "/v1/tokens", &h.token, Some(body)).await?;
    assert_eq!(status, 201, "{made}");
    Ok(made["token"].as_str().unwrap_or_default().to_string())
}

/// A second service, `other-bot`: the example policy under another name,
/// with versions v1 and v2.
async fn other_service(h: &Running) -> Result {
    let policy = std::fs::read_to_string(
        crate::support::repo_root().join("examples/conversational-agent/policy.yaml"),
    )?
    .replace("service: support-bot", "service: other-bot");
    h.put_policy("other-bot", policy).await?;
    h.register_versions("other-bot", &[("v1", "m"), ("v2", "m")])
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_trickling_header_lines_is_closed_within_the_timeout() -> Result {
    let h = start_with(|c| c.header_read_timeout = Duration::from_millis(500)).await?;
    let mut slow = TcpStream::connect(h.server.addr).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let began = Instant::now();
    let mut closed_after = None;
    // One header line every 100 ms, never the blank line that ends them.
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let line = format!("X-Drip-{i}: 1\r\n");
        let mut buf = [0u8; 256];
        let readable = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await;
        if matches!(readable, Ok(Ok(0)) | Ok(Err(_)))
            || slow.write_all(line.as_bytes()).await.is_err()
        {
            closed_after = Some(began.elapsed());
            break;
        }
    }
    let closed_after = closed_after.ok_or("the trickling connection was never closed")?;
    assert!(
        closed_after >= Duration::from_millis(400) && closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}; the timeout is 500 ms"
    );
    // The server answers others all along.
    let r = h.http.get(h.url("/healthz")).send().await?;
    assert_eq!((r.status().as_u16(), r.text().await?), (200, "ok\n".into()));
    h.server.shutdown().await?;
    Ok(())
}

/// Starts an upload that declares 100 000 bytes and sends 10.
async fn slow_upload(h: &Running, token: &str) -> Result<TcpStream> {
    let mut s = TcpStream::connect(h.server.addr).await?;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n{{\"ts\": \"2"
    );
    s.write_all(head.as_bytes()).await?;
    Ok(s)
}

/// Reads an HTTP response whose body is one JSON object (or up to EOF).
async fn response(s: &mut TcpStream) -> Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await?;
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if n == 0 || (text.contains("\r\n\r\n") && text.ends_with('}')) {
            return Ok(text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tokens_slow_uploads_leave_ingest_slots_for_another_token() -> Result {
    let h = start_with(|c| {
        c.ingest_slots = 4;
        c.ingest_slots_per_token = 2;
        c.ingest_body_rate = ripcord_server::slow::BodyRate {
            grace: Duration::from_secs(8),
            bytes_per_sec: 1000,
        };
    })
    .await?;
    let slow = make_token(&h, json!({"name": "slow", "role": "service"})).await?;
    let fast = make_token(&h, json!({"name": "fast", "role": "service"})).await?;
    let mut uploads = vec![slow_upload(&h, &slow).await?, slow_upload(&h, &slow).await?];
    // Once both hold their slots (watched on the server, not guessed), a
    // third from the same token is refused…
    let body = json!([event("support-bot", "u1")]);
    let deadline = Instant::now() + Duration::from_secs(8);
    while h.server.app.ingest_slots.available_permits() > 2 {
        assert!(
            Instant::now() < deadline,
            "the slow uploads never took their slots"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, refused) = call(&h, "POST", "/v1/events", &slow, Some(body.clone())).await?;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(
        refused["message"],
        "token \"slow\" already has 2 ingest requests in flight (at most 2 per token); \
         retry after the delay in Retry-After"
    );
    // … while another token's ingest goes through, and health answers.
    let (status, answer) = call(&h, "POST", "/v1/events", &fast, Some(body.clone())).await?;
    assert_eq!((status, &answer["accepted"]), (202, &json!(1)), "{answer}");
    let r = h.http.get(h.url("/healthz")).send().await?;
    assert_eq!(r.status(), 200);
    // The trickling uploads are answered 408 once the grace has passed.
    for upload in &mut uploads {
        let answer = tokio::time::timeout(Duration::from_secs(20), response(upload)).await??;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("slower than the minimum of 1000 bytes/s"),
            "{answer}"
        );
    }
    // Their slots are back: the slow token may send again.
    let (status, _) = call(&h, "POST", "/v1/events", &slow, Some(body)).await?;
    assert_eq!(status, 202);
    h.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_ingests_assigns_and_evaluates_only_its_services() -> Result {
    let h = start().await?;
    other_service(&h).await?;
    h.release_at_30().await?;
    let (status, body) = h
        .post(
            "/v1/releases",
            &json!({"service": "other-bot", "baseline": "v1", "candidate": "v2",
                    "steps": [{"share": 0.3, "hold": "1h"}]}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let token = make_token(
        &h,
        json!({"name": "bot-ingest", "role": "service", "person": "ops-team",
               "services": ["support-bot"]}),
    )
    .await?;
    let (_, listed) = call(&h, "GET", "/v1/tokens", &h.token, None).await?;
    let mine = listed["tokens"]
        .as_array()
        .and_then(|all| all.iter().find(|t| t["name"] == "bot-ingest"))
        .ok_or("token not listed")?;
    assert_eq!(
        (&mine["person"], &mine["services"]),
        (&json!("ops-team"), &json!(["support-bot"]))
    );

    // Ingest: its own service is accepted, another refused per item…
    let mixed = json!([event("support-bot", "u1"), event("other-bot", "u2")]);
    let (status, answer) = call(&h, "POST", "/v1/events", &token, Some(mixed)).await?;
    let scope_error =
        "service: token \"bot-ingest\" is scoped to support-bot; it may not act on \"other-bot\"";
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 1, "rejected": [{"index": 1, "error": scope_error}], "rejected_count": 1})
    );
    // … and a request only for another service is 403.
    let only_other = json!([event("other-bot", "u2")]);
    let (status, answer) = call(&h, "POST", "/v1/events", &token, Some(only_other)).await?;
    assert_eq!(
        (status, &answer["error"]),
        (403, &json!("forbidden")),
        "{answer}"
    );
    assert_eq!(answer["message"], scope_error);

    // Assignment and OFREP answer for support-bot only.
    let (status, _) = call(
        &h,
        "GET",
        "/v1/assign?service=support-bot&unit=u",
        &token,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (status, answer) = call(
        &h,
        "GET",
        "/v1/assign?service=other-bot&unit=u",
        &token,
        None,
    )
    .await?;
    assert_eq!((status, &answer["message"]), (403, &json!(scope_error)));
    let ctx = json!({"context": {"targetingKey": "u"}});
    let (status, _) = call(
        &h,
        "POST",
        "/ofrep/v1/evaluate/flags/support-bot",
        &token,
        Some(ctx.clone()),
    )
    .await?;
    assert_eq!(status, 200);
    // A flag outside the scope does not exist for this token: OFREP's own
    // error shape, as bulk evaluation leaves the flag out.
    let (status, answer) = call(
        &h,
        "POST",
        "/ofrep/v1/evaluate/flags/other-bot",
        &token,
        Some(ctx.clone()),
    )
    .await?;
    assert_eq!(
        (status, answer),
        (
            404,
            json!({"key": "other-bot", "errorCode": "FLAG_NOT_FOUND", "errorDetails": scope_error})
        )
    );
    let (status, bulk) = call(
        &h,
        "POST",
        "/ofrep/v1/evaluate/flags",
        &token,
        Some(ctx.clone()),
    )
    .await?;
    assert_eq!(status, 200);
    let keys: Vec<&Value> = bulk["flags"]
        .as_array()
        .ok_or("flags")?
        .iter()
        .map(|f| &f["key"])
        .collect();
    assert_eq!(keys, [&json!("support-bot")]);
    // The admin token (no scope) sees both.
    let (_, bulk) = call(&h, "POST", "/ofrep/v1/evaluate/flags", &h.token, Some(ctx)).await?;
    assert_eq!(bulk["flags"].as_array().map(Vec::len), Some(2));

    // A scoped viewer may not read another service's routes.
    let viewer = make_token(
        &h,
        json!({"name": "bot-viewer", "role": "viewer", "services": ["support-bot"]}),
    )
    .await?;
    let (status, _) = call(
        &h,
        "GET",
        "/v1/services/support-bot/versions",
        &viewer,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (status, answer) =
        call(&h, "GET", "/v1/services/other-bot/versions", &viewer, None).await?;
    assert_eq!(status, 403, "{answer}");
    h.server.shutdown().await?;
    Ok(())
}

/// A release manager scoped to support-bot neither sees nor touches
/// other-bot's releases: starting one, reading or acting on one by id, and
/// listing them by name are 403 in the API's error shape; the unnamed list
/// holds its own service's releases only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_starts_reads_and_acts_on_only_its_services_releases() -> Result {
    let h = start().await?;
    other_service(&h).await?;
    let own = h.release_at_30().await?;
    let start_other = json!({"service": "other-bot", "baseline": "v1", "candidate": "v2"});
    let (status, other) = h.post("/v1/releases", &start_other).await?;
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().ok_or("release id")?.to_string();
    let rm = make_token(
        &h,
        json!({"name": "bot-rm", "role": "release_manager", "services": ["support-bot"]}),
    )
    .await?;
    let refused = json!({
        "error": "forbidden",
        "message": "service: token \"bot-rm\" is scoped to support-bot; it may not act on \"other-bot\"",
    });
    let rollback = json!({"action": "rollback", "reason": "not yours"});
    let other_path = format!("/v1/releases/{other}");
    let other_actions = format!("{other_path}/actions");
    for (method, path, body) in [
        ("POST", "/v1/releases", Some(start_other.clone())),
        ("GET", other_path.as_str(), None),
        ("POST", other_actions.as_str(), Some(rollback.clone())),
        ("GET", "/v1/releases?service=other-bot", None),
    ] {
        let (status, answer) = call(&h, method, path, &rm, body).await?;
        assert_eq!((status, &answer), (403, &refused), "{method} {path}");
    }
    // Nothing happened to other-bot: one release, still ramping.
    let others = h.get_json("/v1/releases?service=other-bot").await?;
    assert_eq!(others["total"], 1, "{others}");
    assert_eq!(others["releases"][0]["state"], "ramping", "{others}");

    let (status, listed) = call(&h, "GET", "/v1/releases", &rm, None).await?;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["releases"][0]["id"], json!(own));
    let (_, all) = call(&h, "GET", "/v1/releases", &h.token, None).await?;
    assert_eq!(all["total"], 2, "the admin token has no scope: {all}");
    let own_actions = format!("/v1/releases/{own}/actions");
    let (status, rolled) = call(&h, "POST", &own_actions, &rm, Some(rollback)).await?;
    assert_eq!(
        (status, &rolled["changed"]),
        (200, &json!(true)),
        "{rolled}"
    );
    h.server.shutdown().await?;
    Ok(())
}

/// The same for incidents and approval requests: a safety lead scoped to
/// support-bot cannot declare, read, acknowledge or list other-bot's
/// incidents, nor read, list or vote on its requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_sees_and_acts_on_only_its_services_incidents_and_requests() -> Result {
    let h = start().await?;
    other_service(&h).await?;
    h.release_at_30().await?;
    let (status, other) = h
        .post(
            "/v1/releases",
            &json!({"service": "other-bot", "baseline": "v1", "candidate": "v2"}),
        )
        .await?;
    assert_eq!(status, 201, "{other}");
    let promote = format!(
        "/v1/releases/{}/actions",
        other["id"].as_str().unwrap_or("")
    );
    let (status, asked) = h.post(&promote, &json!({"action": "promote"})).await?;
    assert_eq!(status, 202, "{asked}");
    let request = asked["request"]["id"]
        .as_str()
        .ok_or("request id")?
        .to_string();
    let mut incidents = Vec::new();
    for service in ["support-bot", "other-bot"] {
        let drill = json!({"service": service, "kind": "drill", "severity": "minor",
                           "title": format!("{service} drill")});
        let (status, declared) = h.post("/v1/incidents", &drill).await?;
        assert_eq!(status, 201, "{declared}");
        incidents.push(declared["id"].as_str().unwrap_or("").to_string());
    }
    let lead = make_token(
        &h,
        json!({"name": "bot-lead", "role": "safety_lead", "services": ["support-bot"]}),
    )
    .await?;
    let refused = json!({
        "error": "forbidden",
        "message": "service: token \"bot-lead\" is scoped to support-bot; it may not act on \"other-bot\"",
    });
    let other_incident = format!("/v1/incidents/{}", incidents[1]);
    let acknowledge = format!("{other_incident}/acknowledge");
    let other_request = format!("/v1/requests/{request}");
    let approve = format!("{other_request}/approve");
    let declare = json!({"service": "other-bot", "kind": "drill", "severity": "minor",
                         "title": "not mine"});
    for (method, path, body) in [
        ("POST", "/v1/incidents", Some(declare)),
        ("GET", "/v1/incidents?service=other-bot", None),
        ("GET", other_incident.as_str(), None),
        ("POST", acknowledge.as_str(), Some(json!({}))),
        ("GET", "/v1/requests?service=other-bot", None),
        ("GET", other_request.as_str(), None),
        ("POST", approve.as_str(), Some(json!({}))),
    ] {
        let (status, answer) = call(&h, method, path, &lead, body).await?;
        assert_eq!((status, &answer), (403, &refused), "{method} {path}");
    }
    let (_, listed) = call(&h, "GET", "/v1/incidents", &lead, None).await?;
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["incidents"][0]["id"], json!(incidents[0]));
    let (_, listed) = call(&h, "GET", "/v1/requests", &lead, None).await?;
    assert_eq!(listed["total"], 0, "{listed}");
    // Nothing happened to other-bot's incident and request.
    let inc = h.get_json(&other_incident).await?;
    assert_eq!(inc["acknowledged_by"], Value::Null, "{inc}");
    let req = h.get_json(&other_request).await?;
    assert_eq!(
        (&req["state"], &req["votes"]),
        (&json!("pending"), &json!([])),
        "{req}"
    );
    h.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_principal_names_in_any_case_and_dotted_names_are_refused() -> Result {
    let h = start().await?;
    for name in [
        "engine",
        "policies-dir",
        "ADMIN",
        "Engine",
        "Ripcord",
        "Policies-Dir",
    ] {
        let (status, answer) = call(
            &h,
            "POST",
            "/v1/tokens",
            &h.token,
            Some(json!({"name": name, "role": "viewer"})),
        )
        .await?;
        assert_eq!(status, 400, "{name}: {answer}");
        assert_eq!(
            answer["message"],
            format!(
                "name: \"{name}\" is reserved for the server's own principals (admin, ripcord, \
                 engine, policies-dir); pick another"
            )
        );
    }
    let (status, answer) = call(
        &h,
        "POST",
        "/v1/tokens",
        &h.token,
        Some(json!({"name": "ann", "role": "viewer", "person": "admin"})),
    )
    .await?;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("person: \"admin\" is reserved")
    );
    for (body, message) in [
        (
            json!({"name": "...", "role": "viewer"}),
            "name: \"...\" must be 1–64 characters of letters, digits, '-', '_', '.' or '@', and not only dots",
        ),
        (
            json!({"name": "ann", "role": "viewer", "services": [".."]}),
            "services[0]: \"..\" must be 1–128 characters of letters, digits, '-', '_' or '.', and not only dots",
        ),
    ] {
        let (status, answer) = call(&h, "POST", "/v1/tokens", &h.token, Some(body)).await?;
        assert_eq!((status, answer["message"].as_str()), (400, Some(message)));
    }
    // Versions and services: three dots (two would be normalised away by
    // the client before it reaches the server).
    let (status, answer) = h
        .post(
            "/v1/services/support-bot/versions",
            &json!({"version": "...", "model_id": "m"}),
        )
        .await?;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["message"],
        "version: \"...\" must be 1–128 characters of letters, digits, '-', '_' or '.', and not only dots"
    );
    let (status, answer) = h.put("/v1/policies/...", &json!("service: ...")).await?;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("service: \"...\"")
    );
    h.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_is_private_to_its_owner() -> Result {
    let h = start().await?;
    // A write, so that the WAL file exists.
    h.release_at_30().await?;
    let dir = h.dir.path();
    let mode = |name: &str| -> Result<u32> {
        Ok(std::fs::metadata(dir.join(name))?.permissions().mode() & 0o777)
    };
    assert_eq!(mode("")?, 0o700);
    for file in [
        "ripcord.db",
        "ripcord.db-wal",
        "ripcord.db-shm",
        "admin.token",
        "secrets.key",
    ] {
        assert_eq!(mode(file)?, 0o600, "{file}");
    }
    h.server.shutdown().await?;
    Ok(())
}

/// `promtool check metrics` on `/metrics` after traffic that touches every
/// metric family we can reach cheaply, and our own check that every
/// family has HELP and TYPE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_pass_promtool_and_every_family_has_help_and_type() -> Result {
    let h = start().await?;
    h.release_at_30().await?;
    let (status, _) = h
        .post("/v1/events", &json!([event("support-bot", "u1")]))
        .await?;
    assert_eq!(status, 202);
    let text = h.http.get(h.url("/metrics")).send().await?.text().await?;
    assert!(text.contains("ripcord_events_accepted_total"), "{text}");

    let mut help = std::collections::BTreeSet::new();
    let mut typed = std::collections::BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.splitn(4, ' ').collect();
        match words[..] {
            ["#", "HELP", name, ..] => {
                help.insert(name.to_string());
            }
            ["#", "TYPE", name, kind] => {
                typed.insert(name.to_string(), kind.to_string());
            }
            _ => {}
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let sample = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| sample.strip_suffix(s).filter(|f| typed.contains_key(*f)))
            .unwrap_or(sample);
        assert!(typed.contains_key(family), "no TYPE for {family}");
        assert!(help.contains(family), "no HELP for {family}");
    }

    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "promtool is required (Debian: apt-get install prometheus; scripts/test does): {e}"
            )
        })?;
    let mut promtool = promtool;
    if let Some(mut stdin) = promtool.stdin.take() {
        std::io::Write::write_all(&mut stdin, text.as_bytes())?;
    }
    let out = promtool.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
    h.server.shutdown().await?;
    Ok(())
}

/// Webhook secrets are sealed in the sinks and outbox rows: the database
/// file and its WAL hold no secret, the key lives in its own file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_are_not_in_the_database_files() -> Result {
    let h = start().await?;
    let key = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, body) = h
        .put(
            "/v1/services/support-bot/webhooks",
            &json!({"sinks": [{"url": "http://127.0.0.1:9/hook", "secret": format!("whsec_{key}")}]}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    // A release start queues a delivery to the sink in the outbox.
    h.release_at_30().await?;
    let dir = h.dir.path();
    let mut stored = std::fs::read(dir.join("ripcord.db"))?;
    stored.extend(std::fs::read(dir.join("ripcord.db-wal"))?);
    assert!(
        stored
            .windows(b"sealed:v1:".len())
            .any(|w| w == b"sealed:v1:"),
        "no sealed secret in the store"
    );
    assert!(
        !stored.windows(key.len()).any(|w| w == key.as_bytes()),
        "the secret is in the database files"
    );
    let pending = h.get_json("/v1/services/support-bot/webhooks").await?;
    assert_eq!(pending["sinks"][0]["url"], "http://127.0.0.1:9/hook");
    assert!(dir.join("secrets.key").exists());
    h.server.shutdown().await?;
    Ok(())
}

/// Token expiry is read on the server's clock, so a manual clock governs it
/// as it governs the engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expires_on_the_server_clock() -> Result {
    let clock = ripcord_server::clock::Clock::manual(ripcord_core::Time(1_800_000_000_000));
    let c = clock.clone();
    let h = start_with(move |config| config.clock = c).await?;
    let body = json!({"name": "brief", "role": "operator", "expires": "1h"});
    let token = make_token(&h, body).await?;
    let (status, answer) = call(&h, "GET", "/v1/releases", &token, None).await?;
    assert_eq!(status, 200, "{answer}");
    clock.advance(ripcord_core::Dur(2 * 3_600_000));
    let (status, answer) = call(&h, "GET", "/v1/releases", &token, None).await?;
    assert_eq!(status, 401, "{answer}");
    h.server.shutdown().await?;
    Ok(())
}
