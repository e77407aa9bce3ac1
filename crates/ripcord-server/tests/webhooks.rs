//! Webhooks against a real receiver on loopback. The receiver checks every
//! delivery's Standard Webhooks signature with its own implementation
//! (written here from the specification, not the server's `sign`), fails
//! the first two attempts of every message with 500 and accepts the third
//! with 204. One delivery is also verified with the reference library
//! (PyPI `standardwebhooks`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{Result, Running, repo_root, require_python, start};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// Failures the receiver answers before it accepts a message.
const FAILURES: usize = 2;
/// Largest distance between `webhook-timestamp` and the receiver's clock.
const TOLERANCE_S: i64 = 5 * 60;

/// One HTTP request the receiver got.
#[derive(Clone, Debug)]
struct Attempt {
    at: Instant,
    id: String,
    headers: BTreeMap<String, String>,
    body: String,
    /// Why the signature check failed, if it did.
    rejected: Option<String>,
    answered: u16,
}

struct Receiver {
    key: Vec<u8>,
    attempts: Mutex<Vec<Attempt>>,
}

/// Standard Webhooks verification, from the specification: the signed
/// content is `{webhook-id}.{webhook-timestamp}.{body}`, the key is the
/// base64-decoded secret after `whsec_`, the header is a space-separated
/// list of `v1,<base64 HMAC-SHA256>`; timestamps more than five minutes
/// off are refused.
fn verify(
    key: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> std::result::Result<(), String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("{name}: missing"))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|e| format!("webhook-timestamp {timestamp:?}: {e}"))?;
    if (now - seconds).abs() > TOLERANCE_S {
        return Err(format!(
            "webhook-timestamp {seconds} is {}s off",
            now - seconds
        ));
    }
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    for candidate in signatures.split(' ') {
        let Some(("v1", encoded)) = candidate.split_once(',') else {
            continue;
        };
        let Ok(given) = STANDARD.decode(encoded) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
        mac.update(&signed);
        if mac.verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(format!("no v1 signature in {signatures:?} matches"))
}

async fn hook(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let rejected = verify(&rx.key, &headers, &body, now).err();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Ok(mut attempts) = rx.attempts.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let before = attempts.iter().filter(|a| a.id == id).count();
    let status = if rejected.is_some() {
        StatusCode::UNAUTHORIZED
    } else if before < FAILURES {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    attempts.push(Attempt {
        at: Instant::now(),
        id,
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        rejected,
        answered: status.as_u16(),
    });
    status
}

/// Starts the receiver; its `/hook` URL.
async fn receiver(key: Vec<u8>) -> Result<(Arc<Receiver>, String)> {
    let rx = Arc::new(Receiver {
        key,
        attempts: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((rx, url))
}

fn attempts(rx: &Receiver) -> Vec<Attempt> {
    rx.attempts.lock().map(|a| a.clone()).unwrap_or_default()
}

/// The decision log, one JSON value per line.
async fn decisions(run: &Running) -> Result<Vec<Value>> {
    let r = run
        .http
        .get(run.url("/v1/decisions?service=support-bot"))
        .bearer_auth(&run.token)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let text = r.text().await?;
    Ok(text
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?)
}

/// Deliveries still waiting in this server's outbox (read from its store:
/// the `/metrics` gauge is process-wide, shared with other tests' servers).
async fn pending(run: &Running) -> Result<i64> {
    Ok(run.server.app.hub.store.outbox_counts().await?.pending)
}

/// The receiver's check itself, on the specification's test vector.
#[test]
fn receiver_check_follows_the_specification() -> Result {
    let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    let body = br#"{"test": 2432232314}"#;
    let headers = |signature: &str| -> Result<HeaderMap> {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".parse()?);
        h.insert("webhook-timestamp", "1614265330".parse()?);
        h.insert("webhook-signature", signature.parse()?);
        Ok(h)
    };
    let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let at = 1614265330;
    assert_eq!(verify(&key, &headers(good)?, body, at), Ok(()));
    assert_eq!(
        verify(&key, &headers(good)?, body, at + TOLERANCE_S),
        Ok(())
    );
    assert_eq!(
        verify(&key, &headers(&format!("v1,bm9wZQ== {good}"))?, body, at),
        Ok(())
    );
    assert!(verify(&key, &headers(good)?, body, at + TOLERANCE_S + 1).is_err());
    assert!(verify(&key, &headers(good)?, body, at - TOLERANCE_S - 1).is_err());
    assert!(verify(&key, &headers(good)?, br#"{"test": 2432232315}"#, at).is_err());
    assert!(verify(&key[1..], &headers(good)?, body, at).is_err());
    assert!(verify(&key, &headers(&good.replace("v1,", "v2,"))?, body, at).is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sink_secrets_are_refused_naming_the_field() -> Result {
    let run = start().await?;
    let good = format!("whsec_{}", STANDARD.encode([7u8; 32]));
    for (sinks, field) in [
        (
            json!([{"url": "http://127.0.0.1:9/hook", "secret": "whsec_not base64!"}]),
            "sinks[0].secret",
        ),
        (
            json!([{"url": "http://127.0.0.1:9/hook", "secret": "whsec_"}]),
            "sinks[0].secret",
        ),
        (
            json!([{"url": "http://127.0.0.1:9/hook", "secret": "whsec_c2hvcnQ="}]),
            "sinks[0].secret",
        ),
        (
            json!([{"url": "http://127.0.0.1:9/hook", "secret": STANDARD.encode([7u8; 32])}]),
            "sinks[0].secret",
        ),
        (
            json!([
                {"url": "http://127.0.0.1:9/a", "secret": good},
                {"url": "http://127.0.0.1:9/b", "secret": "whsec_%%%"},
            ]),
            "sinks[1].secret",
        ),
    ] {
        let (status, body) = run
            .put(
                "/v1/services/support-bot/webhooks",
                &json!({"sinks": sinks}),
            )
            .await?;
        assert_eq!(status, 400, "{sinks}: {body}");
        assert_eq!(body["error"], json!("bad_request"), "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{sinks}: {body}"
        );
    }
    // Nothing was stored by the refused requests.
    let sinks = run.get_json("/v1/services/support-bot/webhooks").await?;
    assert_eq!(sinks["sinks"], json!([]), "{sinks}");

    // Without a secret, one is generated, and it passes the same check.
    let (status, body) = run
        .put(
            "/v1/services/support-bot/webhooks",
            &json!({"sinks": [{"url": "http://127.0.0.1:9/hook"}]}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let generated = body["sinks"][0]["secret"].as_str().unwrap_or_default();
    let key = STANDARD.decode(generated.strip_prefix("whsec_").unwrap_or("!"))?;
    assert_eq!(key.len(), 32, "{generated}");
    run.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_delivered_signed_with_retries_and_backoff() -> Result {
    require_python("standardwebhooks");
    let key: Vec<u8> = (1..=32).collect();
    let secret = format!("whsec_{}", STANDARD.encode(&key));
    let (rx, url) = receiver(key).await?;
    let run = start().await?;
    let (status, body) = run
        .put(
            "/v1/services/support-bot/webhooks",
            &json!({"sinks": [{"url": url, "secret": secret}]}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    // A secret the caller chose is not echoed back.
    assert_eq!(body["sinks"], json!([{"url": url}]));

    let release = run.release_at_30().await?;
    let (status, body) = run
        .post(
            &format!("/v1/releases/{release}/actions"),
            &json!({"action": "rollback", "idempotency_key": "rollback-1"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    run.wait_release(&release, Duration::from_secs(10), |r| {
        r["state"] == json!("rolled_back")
    })
    .await?;

    // Every decision delivered: wait until the outbox is empty (a
    // delivered entry is never sent again), with a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pending(&run).await? > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox did not drain: {:#?}",
            attempts(&rx)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = decisions(&run).await?;
    let got = attempts(&rx);

    // Group the attempts by webhook-id, in arrival order.
    let mut by_id: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for a in &got {
        assert_eq!(a.rejected, None, "signature check failed: {a:#?}");
        by_id.entry(a.id.as_str()).or_default().push(a);
    }
    assert!(
        log.len() >= 3,
        "start, rollback stage, rollback complete: {log:#?}"
    );
    assert_eq!(
        by_id.len(),
        log.len(),
        "one message per decision (and one webhook-id per message): {log:#?}\n{got:#?}"
    );

    let mut gaps = Vec::new();
    for decision in &log {
        // The message carrying this decision.
        let (id, tries) = by_id
            .iter()
            .find(|(_, tries)| {
                serde_json::from_str::<Value>(&tries[0].body).is_ok_and(|b| b["data"] == *decision)
            })
            .ok_or_else(|| format!("decision never delivered: {decision}"))?;
        assert!(
            id.starts_with("msg_") && id.ends_with("_0"),
            "webhook-id {id}"
        );
        // Exactly three attempts of the same message: 500, 500, 204.
        let answers: Vec<u16> = tries.iter().map(|a| a.answered).collect();
        assert_eq!(answers, [500, 500, 204], "{id}");
        let body: Value = serde_json::from_str(&tries[0].body)?;
        for t in tries.iter() {
            assert_eq!(
                t.body, tries[0].body,
                "{id}: the body changed between attempts"
            );
            assert_eq!(
                t.headers.get("content-type").map(String::as_str),
                Some("application/json")
            );
        }
        let key = body["idempotency_key"]
            .as_str()
            .ok_or_else(|| format!("{id}: no idempotency_key in {body}"))?;
        assert!(!key.is_empty());
        if let Some(own) = decision.get("idempotency_key") {
            assert_eq!(body["idempotency_key"], *own, "{id}");
        }
        for t in tries.iter() {
            assert_eq!(
                t.headers.get("idempotency-key").map(String::as_str),
                Some(key),
                "{id}"
            );
        }
        assert!(
            body["type"].is_string() && body["timestamp"].is_string(),
            "{body}"
        );
        // Backoff: 1 s after the first failure, 2 s after the second (the
        // worker polls every 200 ms, so allow that much late plus slack).
        let first = tries[1].at - tries[0].at;
        let second = tries[2].at - tries[1].at;
        gaps.push((first, second));
        assert!(
            first >= Duration::from_millis(950) && first < Duration::from_millis(1900),
            "{id}: first retry after {first:?}"
        );
        assert!(
            second >= Duration::from_millis(1950) && second < Duration::from_millis(3900),
            "{id}: second retry after {second:?}"
        );
    }
    eprintln!(
        "webhooks: {} decisions, {} attempts, retry gaps {:?}",
        log.len(),
        got.len(),
        gaps
    );
    assert_eq!(got.len(), 3 * log.len());
    let counts = run.server.app.hub.store.outbox_counts().await?;
    assert_eq!((counts.pending, counts.delivered), (0, log.len() as i64));

    // The reference implementation accepts a delivery too.
    let accepted = got
        .iter()
        .find(|a| a.answered == 204)
        .ok_or("no accepted delivery")?;
    let dir = tempfile::tempdir()?;
    let capture = dir.path().join("delivery.json");
    std::fs::write(
        &capture,
        serde_json::to_vec(&json!({
            "secret": secret,
            "headers": accepted.headers,
            "body": accepted.body,
        }))?,
    )?;
    let script = repo_root().join("crates/ripcord-server/tests/webhook_verify.py");
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&capture)
        .kill_on_drop(true)
        .output()
        .await?;
    assert!(
        output.status.success() && output.stdout == b"verified\n",
        "standardwebhooks refused the delivery: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    run.server.shutdown().await?;
    Ok(())
}

/// Every signed audit checkpoint is also sent, signed, to the channels
/// named by `audit_checkpoint_channels`, carrying the checkpoint record's
/// export line. Appended to a file, those lines are what `ripcord audit
/// verify --checkpoints` reads: with them, a log cut off before the
/// checkpoint is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_signed_checkpoint_is_published_to_the_named_channels() -> Result {
    use ripcord_core::audit::{Expect, parse_published, unhex, verify_signed};
    let key = [5u8; 32];
    let (rx, url) = receiver(key.to_vec()).await?;
    let channel = ripcord_server::notify::ChannelConfig::Webhook {
        url,
        secret: format!("whsec_{}", STANDARD.encode(key)),
    };
    // `start_with` changes the policy and registers versions: the first
    // period's checkpoint signs those records.
    let run = crate::support::start_with(|c| {
        c.channels.insert("witness".into(), channel);
        c.audit_checkpoint_channels = vec!["witness".into()];
        c.checkpoint_every = Duration::from_millis(200);
    })
    .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let accepted = loop {
        let done = attempts(&rx).into_iter().find(|a| a.answered == 204);
        if let Some(done) = done {
            break done;
        }
        assert!(Instant::now() < deadline, "no checkpoint delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        attempts(&rx).iter().all(|a| a.rejected.is_none()),
        "every delivery is signed with the channel's secret"
    );
    let message: Value = serde_json::from_str(&accepted.body)?;
    let seq = message["data"]["seq"].as_i64().unwrap_or_default();
    assert_eq!(message["type"], "audit.checkpoint");
    assert_eq!(
        message["idempotency_key"],
        format!("audit/checkpoint/{seq}")
    );
    assert_eq!(message["data"]["upto"], seq - 1);
    let published = format!("{}\n", message["data"]["line"].as_str().unwrap_or(""));

    // The line is the stored checkpoint record, byte for byte.
    let r = run
        .http
        .get(run.url("/v1/audit"))
        .bearer_auth(&run.token)
        .send()
        .await?;
    let log = r.text().await?;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        format!("{}\n", lines[seq as usize - 1]),
        published,
        "record {seq}"
    );
    let public = unhex::<32>(&run.server.audit_public_key).ok_or("the public key")?;
    let checkpoints = parse_published(&published, &public)?;
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0].seq, seq);
    let expect = Expect {
        key: public,
        published: &checkpoints,
        period_ms: 60_000,
        grace_ms: 10_000,
        now_ms: SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64,
    };
    let verified = verify_signed(&log, &expect).map_err(|b| b.to_string())?;
    assert!(verified.records >= seq, "{verified:?}");
    let cut: String = lines[..seq as usize - 1]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    let refused = verify_signed(&cut, &expect).map(|_| ()).unwrap_err();
    assert!(
        refused.to_string().ends_with("records were cut off"),
        "{refused}"
    );
    run.server.shutdown().await?;
    Ok(())
}
