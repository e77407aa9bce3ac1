//! The HTTP API against a real server on loopback with the real embedded
//! store: what clients rely on, asserted exactly.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = include_str!("../../../examples/conversational-agent/policy.yaml");

struct Harness {
    server: Option<ripcord_server::Server>,
    base: String,
    token: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        Harness::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut ripcord_server::Config)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            ripcord_server::Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
        config.tick = Duration::from_millis(100);
        adjust(&mut config);
        let server = ripcord_server::start(config).await.unwrap();
        let token = std::fs::read_to_string(&server.token_path)
            .unwrap()
            .trim()
            .to_string();
        Harness {
            base: format!("http://{}", server.addr),
            server: Some(server),
            token,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = req.bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    async fn put_text(&self, path: &str, body: &str) -> (StatusCode, Value) {
        self.send(self.http.put(self.url(path)).body(body.to_string()))
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    /// Policy, two versions, and a release with the given steps.
    async fn release(&self, steps: Value) -> Value {
        assert_eq!(
            self.put_text("/v1/policies/support-bot", POLICY).await.0,
            StatusCode::CREATED
        );
        for v in ["v1", "v2"] {
            let (status, _) = self
                .post(
                    "/v1/services/support-bot/versions",
                    json!({"version": v, "model_id": "m"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let (status, release) = self
            .post(
                "/v1/releases",
                json!({"service": "support-bot", "baseline": "v1", "candidate": "v2", "steps": steps}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{release}");
        release
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
    }
}

fn now() -> String {
    ripcord_server::clock::wall_now().to_rfc3339()
}

fn event(version: &str, unit: &str) -> Value {
    json!({
        "ts": now(), "service": "support-bot", "version": version, "unit": unit,
        "segment": {"locale": "en"},
        "values": {"outputs": 1, "moderation_fail": 0, "latency_ms": 700},
    })
}

/// The published formula, computed independently of the server.
fn bucket(unit: &str) -> u64 {
    let digest = Sha256::digest(format!("support-bot:{unit}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap()) % 10_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_a_token_and_the_admin_token_file_is_private() {
    let h = Harness::start().await;
    let mode = std::fs::metadata(h._dir.path().join("admin.token"))
        .unwrap()
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o600);
    let required = "Authorization: a bearer token is required (`ripcord token create`, or the \
                    admin token in <data-dir>/admin.token)";
    let unknown = "Authorization: the bearer token is not one this server issued";
    for (auth, message) in [
        (None, required),
        (Some("Bearer nope".to_string()), unknown),
        (Some(h.token.clone()), required),
    ] {
        let mut req = h.http.put(h.url("/v1/policies/support-bot")).body(POLICY);
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"ripcord\""
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], message);
    }
    assert_eq!(
        h.put_text("/v1/policies/support-bot", POLICY).await.0,
        StatusCode::CREATED
    );
    let (status, body) = {
        let r = h
            .http
            .post(h.url("/v1/events"))
            .header("authorization", format!("Bearer {}", h.token))
            .json(&json!([]))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Unknown paths are 404 and wrong methods 405, token or not, in the
    // error shape.
    let unknown = h.http.post(h.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let wrong = h.http.delete(h.url("/v1/assign")).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    // Reads need a token too.
    let anonymous = h
        .http
        .get(h.url("/v1/policies/support-bot"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.get("/v1/policies/support-bot").await.0, StatusCode::OK);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_keeps_every_valid_event_and_names_the_field_of_each_bad_one() {
    let h = Harness::start().await;
    h.release(json!([{"share": 0.5, "hold": "1h"}])).await;
    let mut bad_value = event("v1", "u-2");
    bad_value["values"]["latency_ms"] = json!("fast");
    let far_future = json!({"ts": "2099-01-01T00:00:00Z", "service": "support-bot",
        "version": "v1", "unit": "u-3", "values": {"outputs": 1}});
    let other =
        json!({"ts": now(), "service": "nobody", "version": "v1", "unit": "u", "values": {}});
    let batch = json!([
        event("v1", "u-1"),
        bad_value,
        far_future,
        other,
        event("v2", "u-4"),
        17
    ]);
    let (status, body) = h.post("/v1/events", batch).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 2);
    let rejected: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert_eq!(
        rejected[0],
        (
            1,
            "values.latency_ms: expected a number, got \"fast\"".into()
        )
    );
    assert_eq!(rejected[1].0, 2);
    assert!(
        rejected[1]
            .1
            .starts_with("ts: 2099-01-01T00:00:00.000Z is more than 5s ahead of the server clock"),
        "{}",
        rejected[1].1
    );
    assert_eq!(
        rejected[2],
        (
            3,
            "service: no policy for \"nobody\"; PUT /v1/policies/nobody first".into()
        )
    );
    assert_eq!(rejected[3].0, 5);

    // NDJSON, with a line that is not JSON at all: the others are kept.
    let ndjson = format!(
        "{}\n{{\"ts\": \n{}\n",
        event("v1", "u-5"),
        event("v2", "u-6")
    );
    let response = h
        .http
        .post(h.url("/v1/events"))
        .bearer_auth(&h.token)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 1);

    // Nothing valid: 400, with every problem listed.
    let (status, body) = h.post("/v1/events", json!([{"ts": "yesterday"}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["details"][0]["error"],
        "ts: invalid RFC 3339 timestamp \"yesterday\""
    );
    let (status, body) = h.post("/v1/events", json!({"not": "an array"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("body: expected a JSON array of events")
    );

    // An event from a clock five minutes behind is refused, and says why.
    let mut stale = event("v1", "u-7");
    stale["ts"] =
        json!((ripcord_server::clock::wall_now() - ripcord_core::Dur(300_000)).to_rfc3339());
    let (status, body) = h
        .post("/v1/events", json!([stale, event("v1", "u-8")]))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let error = body["rejected"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("is more than 30s behind this service's clock")
            && error.contains("from a clock in sync"),
        "{error}"
    );
    assert_eq!(body["accepted"], 1);

    // Every accepted event is counted on its side of the release.
    let (_, release) = h.get("/v1/releases/support-bot-1").await;
    assert_eq!(release["events"], json!({"baseline": 3, "candidate": 2}));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_overload_gets_429_with_retry_after() {
    let h = Harness::with(|c| c.ingest_slots = 1).await;
    h.release(json!([{"share": 0.5, "hold": "1h"}])).await;
    // A declared length over the limit is refused before the body is read:
    // a client that sends only the head (and then ends its side) gets the
    // 413 all the same.
    let mut huge = slow_upload(&h, "/v1/events", ripcord_server::http::BODY_LIMIT + 1).await;
    huge.shutdown().await.unwrap();
    let mut answer = String::new();
    huge.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"too_large\""), "{answer}");

    // A slow upload holds the only ingest slot; the next request is told
    // to come back later instead of queueing without bound.
    let rest = format!("{}]", event("v1", "u-1"));
    let mut slow = slow_upload(&h, "/v1/events", 1 + rest.len()).await;
    slow.write_all(b"[").await.unwrap();
    // Wait until the slow request holds the slot (not before: a request of
    // ours could take it first and the slow one would be the refused one).
    let app = h.server.as_ref().unwrap().app.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.ingest_slots.available_permits() > 0 {
        assert!(
            Instant::now() < deadline,
            "the slow upload never took the slot"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = h
        .http
        .post(h.url("/v1/events"))
        .bearer_auth(&h.token)
        .json(&json!([event("v1", "u-1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    slow.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    h.stop().await;
}

/// A client that sends the request head and then the body at its own pace.
async fn slow_upload(h: &Harness, path: &str, length: usize) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(h.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n",
        h.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// A client that sends a whole body a bit over the limit reads the 413:
/// the server answers before reading the body, then keeps reading (and
/// dropping) it, up to twice the limit, instead of closing on a client
/// that is still writing. Written by hand first, because whether reqwest
/// reports the broken pipe or the 413 of a server that closes early
/// depends on timing; a writer that must get its whole body out does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_writing_a_body_over_the_limit_reads_the_413() {
    let h = Harness::start().await;
    let over = vec![b' '; ripcord_server::http::BODY_LIMIT + 64 * 1024];
    let mut writer = slow_upload(&h, "/v1/events", over.len()).await;
    writer
        .write_all(&over)
        .await
        .expect("the server reads the whole body, not closing while it is written");
    let mut answer = String::new();
    writer.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"too_large\""), "{answer}");
    for path in ["/v1/events", "/v1/releases", "/v1/tokens"] {
        let response = h
            .http
            .post(h.url(path))
            .bearer_auth(&h.token)
            .header("content-type", "application/json")
            .body(over.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer read: {e:?}"));
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer,
            json!({"error": "too_large", "message": format!(
                "body: larger than the limit of {} bytes", ripcord_server::http::BODY_LIMIT)}),
            "{path}"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_body_times_out() {
    let h = Harness::with(|c| c.request_timeout = Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut slow = slow_upload(&h, "/v1/events", 1000).await;
    slow.write_all(b"[{\"ts\":").await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"timeout\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_checked_with_every_problem_and_every_change_is_a_version() {
    let h = Harness::start().await;
    let typo = POLICY
        .replace("max_ratio: 1.2", "max_ratoi: 1.2")
        .replace("absolute: 2%", "absolute: 2 percent");
    let (status, body) = h.put_text("/v1/policies/support-bot", &typo).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let details = body["details"].as_array().unwrap();
    let problems: Vec<(String, String)> = details
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_string(),
                d["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        problems
            .iter()
            .any(|(path, m)| path == "criteria.moderation_rel" && m.contains("max_ratoi")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|(path, _)| path == "criteria.errors.absolute"),
        "{problems:?}"
    );
    assert!(details.iter().all(|d| d["line"].as_u64().unwrap() > 0));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("support-bot.yaml:")
    );
    // Nothing of the refused policy was kept.
    assert_eq!(
        h.get("/v1/policies/support-bot").await.0,
        StatusCode::NOT_FOUND
    );

    let (status, body) = h.put_text("/v1/policies/other-bot", POLICY).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("service: the policy is for \"support-bot\"")
    );

    assert_eq!(
        h.put_text("/v1/policies/support-bot", POLICY).await,
        (
            StatusCode::CREATED,
            json!({"service": "support-bot", "version": 1, "changed": true})
        )
    );
    assert_eq!(
        h.put_text("/v1/policies/support-bot", POLICY).await,
        (
            StatusCode::OK,
            json!({"service": "support-bot", "version": 1, "changed": false})
        )
    );
    let stricter = POLICY.replace("max_ratio: 1.2", "max_ratio: 1.1");
    assert_eq!(
        h.put_text("/v1/policies/support-bot", &stricter).await.1["version"],
        2
    );
    let current = h
        .http
        .get(h.url("/v1/policies/support-bot"))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(current.headers()["ripcord-policy-version"], "2");
    assert_eq!(current.text().await.unwrap(), stricter);
    let (_, history) = h.get("/v1/policies/support-bot/versions").await;
    let versions: Vec<u64> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2]);
    assert_eq!(history["versions"][0]["yaml"], POLICY);
    let (status, body) = h.get("/v1/policies/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "service \"nobody\" has no policy");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_immutable_and_releases_need_registered_versions() {
    let h = Harness::start().await;
    h.put_text("/v1/policies/support-bot", POLICY).await;
    let v1 = json!({"version": "v1", "model_id": "llama", "weights_digest": "sha256:aa",
        "prompt_template_version": "41", "decoding": {"temperature": 0.7},
        "training_datasets": ["tickets-2026-10"], "evaluation_reports": ["evals/v1.html"]});
    let (status, body) = h
        .post("/v1/services/support-bot/versions", v1.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["decoding"]["temperature"], 0.7);
    assert_eq!(
        h.post("/v1/services/support-bot/versions", v1.clone())
            .await
            .0,
        StatusCode::OK
    );
    let mut changed = v1.clone();
    changed["weights_digest"] = json!("sha256:bb");
    let (status, body) = h.post("/v1/services/support-bot/versions", changed).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("versions are immutable")
    );
    let (_, stored) = h.get("/v1/services/support-bot/versions/v1").await;
    assert_eq!(stored["weights_digest"], "sha256:aa");
    let (status, body) = h
        .post(
            "/v1/services/support-bot/versions",
            json!({"version": "v3", "model_id": "m", "weights": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `weights`"),
        "{body}"
    );
    let (status, body) = h
        .post(
            "/v1/services/support-bot/versions",
            json!({"version": "v3", "model_id": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("model_id: invalid type"),
        "{body}"
    );

    let (status, body) = h
        .post(
            "/v1/releases",
            json!({"service": "support-bot", "baseline": "v1", "candidate": "v9"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("candidate: version \"v9\" of \"support-bot\" is not registered")
    );
    let (status, body) = h
        .post(
            "/v1/releases",
            json!({"service": "nobody", "baseline": "v1", "candidate": "v2"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("service \"nobody\" has no policy")
    );
    let (status, body) = h
        .post(
            "/v1/releases",
            json!({"service": "support-bot", "baseline": "v1", "candidate": "v1", "steps": []}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = h.get("/v1/releases/support-bot-7").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "release \"support-bot-7\" does not exist");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_is_sticky_ramping_only_adds_units_and_rollback_moves_all_back() {
    // A manual clock: the 1 s hold ends when the test moves it, never in
    // the middle of the thousand assignments at 10%.
    let clock = Clock::manual(Time(ripcord_server::clock::wall_now().0 / 1000 * 1000));
    let c = clock.clone();
    let h = Harness::with(move |config| config.clock = c).await;
    let release = h
        .release(json!([{"share": 0.1, "hold": "1s"}, {"share": 0.5, "hold": "1h"}]))
        .await;
    assert_eq!(release["share"], 0.1);
    let units: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let mut first = HashSet::new();
    for u in &units {
        let (_, a) = h
            .get(&format!("/v1/assign?service=support-bot&unit={u}"))
            .await;
        assert_eq!(a["bucket"].as_u64().unwrap(), bucket(u));
        let candidate = bucket(u) < 1000;
        assert_eq!(
            a["variant"],
            if candidate { "candidate" } else { "baseline" }
        );
        assert_eq!(a["version"], if candidate { "v2" } else { "v1" });
        assert_eq!(a["release"], "support-bot-1");
        if candidate {
            first.insert(u.clone());
        }
    }
    // 10% of 1000 units: binomial sd ≈ 9.5; ±40 is beyond 4 sd.
    assert!((60..=140).contains(&first.len()), "{}", first.len());
    clock.advance(Dur::from_secs(2));
    h.server.as_ref().unwrap().app.hub.tick_all().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.get("/v1/releases/support-bot-1").await.1["share"] != 0.5 {
        assert!(Instant::now() < deadline, "no ramp to 50%");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut second = HashSet::new();
    for u in &units {
        let (_, a) = h
            .get(&format!("/v1/assign?service=support-bot&unit={u}"))
            .await;
        assert_eq!(a["share"], 0.5);
        if a["variant"] == "candidate" {
            second.insert(u.clone());
        }
    }
    assert!(
        first.is_subset(&second),
        "ramping up took units off the candidate"
    );
    assert!((430..=570).contains(&second.len()), "{}", second.len());

    let (status, answer) = h
        .post(
            "/v1/releases/support-bot-1/actions",
            json!({"action": "rollback", "reason": "bad answers"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["release"]["share"], 0.0);
    for u in second.iter().take(50) {
        let (_, a) = h
            .get(&format!("/v1/assign?service=support-bot&unit={u}"))
            .await;
        assert_eq!(a["version"], "v1");
    }
    let (status, body) = h.get("/v1/assign?service=support-bot").await;
    assert_eq!(
        (status, body["message"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "unit: query parameter is required")
    );
    let (status, _) = h.get("/v1/assign?service=nobody&unit=u").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    h.stop().await;
}

/// A client sending a new key with every action cannot grow the server's
/// memory: the last 1024 keyed answers per service stay in memory, and an
/// older key is still answered, from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_answers_in_memory_are_bounded_and_older_ones_come_from_the_store() {
    let h = Harness::start().await;
    h.release(json!([{"share": 0.2, "hold": "1h"}])).await;
    let path = "/v1/releases/support-bot-1/actions";
    let mut first = Value::Null;
    for i in 0..1100 {
        let action = if i % 2 == 0 { "pause" } else { "resume" };
        let body = json!({"action": action, "idempotency_key": format!("k-{i}")});
        let (status, answer) = h.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{i}: {answer}");
        if i == 0 {
            first = answer;
        }
    }
    let app = h.server.as_ref().unwrap().app.clone();
    let service = app.hub.service("support-bot").unwrap();
    let kept = service.state.lock().await.answers.len();
    assert_eq!(kept, ripcord_server::hub::answer::ANSWERS_IN_MEMORY);
    let again = json!({"action": "pause", "idempotency_key": "k-0"});
    let (status, answer) = h.post(path, again).await;
    assert_eq!((status, answer), (StatusCode::OK, first));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_repeated_with_its_idempotency_key_returns_the_first_answer_and_changes_nothing()
{
    let h = Harness::start().await;
    h.release(json!([{"share": 0.2, "hold": "1h"}])).await;
    let pause = json!({"action": "pause", "reason": "looking", "idempotency_key": "op-1"});
    let (status, first) = h
        .post("/v1/releases/support-bot-1/actions", pause.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["release"]["state"], "paused");
    let log = |h: &Harness| {
        let url = h.url("/v1/decisions?service=support-bot");
        let http = h.http.clone();
        let token = h.token.clone();
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            r.text().await.unwrap()
        }
    };
    let before = log(&h).await;
    let (status, again) = h.post("/v1/releases/support-bot-1/actions", pause).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert_eq!(log(&h).await, before);
    // The same key for another action is a mistake, not a repeat.
    let (status, body) = h
        .post(
            "/v1/releases/support-bot-1/actions",
            json!({"action": "resume", "idempotency_key": "op-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("idempotency_key: already used for \"pause\""),
        "{body}"
    );

    let (status, resumed) = h
        .post(
            "/v1/releases/support-bot-1/actions",
            json!({"action": "resume"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resumed["release"]["state"], "ramping");
    // Rolling back twice (different keys) has the effect of once.
    for (key, changed) in [("rb-1", true), ("rb-2", false)] {
        let (status, answer) = h
            .post(
                "/v1/releases/support-bot-1/actions",
                json!({"action": "rollback", "idempotency_key": key}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["changed"], changed);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.get("/v1/releases/support-bot-1").await.1["state"] != "rolled_back" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rollbacks = log(&h)
        .await
        .matches("\"action\":\"rollback_stage\"")
        .count();
    assert_eq!(rollbacks, 1);

    // Re-release: a new, linked release of the same candidate.
    let (status, answer) = h
        .post(
            "/v1/releases/support-bot-1/actions",
            json!({"action": "re_release", "idempotency_key": "rr"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["release"]["id"], "support-bot-2");
    assert_eq!(answer["release"]["previous"], "support-bot-1");
    assert_eq!(answer["release"]["state"], "ramping");
    assert_eq!(answer["release"]["generation"], 2);
    let (_, old) = h.get("/v1/releases/support-bot-1").await;
    assert_eq!(
        (old["next"].as_str(), old["state"].as_str()),
        (Some("support-bot-2"), Some("rolled_back"))
    );
    let (status, body) = h
        .post(
            "/v1/releases/support-bot-1/actions",
            json!({"action": "pause"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["message"].as_str().unwrap().contains("superseded"));
    let (status, body) = h
        .post(
            "/v1/releases/support-bot-2/actions",
            json!({"action": "explode"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("action: \"explode\" is not one of")
    );
    let (status, body) = h
        .post(
            "/v1/releases/support-bot-2/actions",
            json!({"action": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["message"], "cannot approve a release that is ramping");
    let (_, list) = h.get("/v1/releases?service=support-bot").await;
    assert_eq!(list["releases"].as_array().unwrap().len(), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_log_is_in_the_replay_shape_with_since_and_a_cursor() {
    let h = Harness::start().await;
    h.release(json!([{"share": 0.2, "hold": "1h"}])).await;
    h.post(
        "/v1/releases/support-bot-1/actions",
        json!({"action": "pause"}),
    )
    .await;
    let response = h
        .http
        .get(h.url("/v1/decisions?service=support-bot"))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let cursor: i64 = response.headers()["ripcord-next-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let keys: Vec<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // serde_json sorts keys; the replay record has exactly these.
    assert_eq!(
        keys,
        [
            "action",
            "at",
            "explanation",
            "idempotency_key",
            "kind",
            "service",
            "share"
        ]
    );
    assert_eq!(lines[0]["explanation"]["release"], "support-bot:v1->v2#1");
    assert_eq!(lines[1]["action"], "pause");
    // The text of each line is the replay record byte for byte: field order
    // as `ripcord replay --format ndjson` writes it.
    assert!(text.starts_with("{\"at\":\""), "{text}");
    let after = h
        .http
        .get(h.url(&format!("/v1/decisions?service=support-bot&after={cursor}")))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(after, "");
    let (status, body) = h
        .get("/v1/decisions?service=support-bot&since=tuesday")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "since: \"tuesday\" is not an RFC 3339 instant"
    );
    let later = h
        .http
        .get(h.url("/v1/decisions?service=support-bot&since=2099-01-01T00:00:00Z"))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(later, "");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_ingest_evaluation_decisions_and_release_state() {
    // Metrics are per process and tests run side by side: this test has a
    // service of its own.
    let h = Harness::start().await;
    let policy = POLICY.replace("service: support-bot", "service: metrics-bot");
    assert_eq!(
        h.put_text("/v1/policies/metrics-bot", &policy).await.0,
        StatusCode::CREATED
    );
    for v in ["v1", "v2"] {
        h.post(
            "/v1/services/metrics-bot/versions",
            json!({"version": v, "model_id": "m"}),
        )
        .await;
    }
    let (status, _) = h
        .post(
            "/v1/releases",
            json!({"service": "metrics-bot", "baseline": "v1", "candidate": "v2",
            "steps": [{"share": 0.2, "hold": "1h"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut e = event("v1", "u-1");
    e["service"] = json!("metrics-bot");
    h.post("/v1/events", json!([e, {"bad": 1}])).await;
    let text = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "ripcord_events_accepted_total ",
        "ripcord_events_rejected_total ",
        "ripcord_evaluation_seconds_bucket",
        "ripcord_decisions_total{kind=\"action\",action=\"ramp\"}",
        "ripcord_release_state{service=\"metrics-bot\",state=\"ramping\"} 1",
        "ripcord_release_state{service=\"metrics-bot\",state=\"rolled_back\"} 0",
        "ripcord_candidate_share{service=\"metrics-bot\"} 0.2",
        "ripcord_webhook_outbox_pending ",
        "ripcord_http_responses_total{class=\"2xx\"}",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert_eq!(
        h.http.get(h.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        h.http.get(h.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    h.stop().await;
}

/// Garbage of every kind to every endpoint that takes a body: never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bodies_never_produce_a_server_error() {
    let h = Harness::start().await;
    h.release(json!([{"share": 0.2, "hold": "1h"}])).await;
    let valid = [
        json!([event("v1", "u-1")]).to_string(),
        json!({"version": "v9", "model_id": "m"}).to_string(),
        json!({"service": "support-bot", "baseline": "v1", "candidate": "v2"}).to_string(),
        json!({"action": "pause", "idempotency_key": "k"}).to_string(),
        json!({"sinks": [{"url": "http://127.0.0.1:9/hook"}]}).to_string(),
        json!({"context": {"targetingKey": "u-1"}}).to_string(),
        POLICY.to_string(),
    ];
    let targets: [(&str, &str); 8] = [
        ("POST", "/v1/events"),
        ("POST", "/v1/services/support-bot/versions"),
        ("POST", "/v1/releases"),
        ("POST", "/v1/releases/support-bot-1/actions"),
        ("PUT", "/v1/services/support-bot/webhooks"),
        ("POST", "/ofrep/v1/evaluate/flags/support-bot"),
        ("POST", "/ofrep/v1/evaluate/flags"),
        ("PUT", "/v1/policies/support-bot"),
    ];
    let mut rng = StdRng::seed_from_u64(4);
    let mut seen = std::collections::BTreeMap::new();
    for round in 0..120 {
        for (method, path) in targets {
            let body = garbage(&mut rng, &valid[round % valid.len()]);
            let req = match method {
                "PUT" => h.http.put(h.url(path)),
                _ => h.http.post(h.url(path)),
            };
            let ndjson = rng.random::<bool>();
            let req = if ndjson {
                req.header("content-type", "application/x-ndjson")
            } else {
                req
            };
            let response = req
                .bearer_auth(&h.token)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(
                status.as_u16() < 500,
                "{method} {path} answered {status} to {:?}: {text}",
                String::from_utf8_lossy(&body)
            );
            if status.is_client_error() && status != StatusCode::NOT_FOUND {
                let parsed: Value = serde_json::from_str(&text).unwrap();
                assert!(
                    parsed
                        .get("message")
                        .or(parsed.get("errorDetails"))
                        .is_some(),
                    "{text}"
                );
            }
            *seen.entry(status.as_u16()).or_insert(0) += 1;
        }
    }
    // The generator reaches both sides: some bodies are still valid.
    assert!(
        seen.keys().any(|s| *s < 300) && seen.keys().any(|s| *s >= 400),
        "{seen:?}"
    );
    assert_eq!(
        h.http.get(h.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    h.stop().await;
}

/// A mutation of a valid body: random bytes, truncation, byte flips,
/// wrong types spliced in, deep nesting, or huge numbers.
fn garbage(rng: &mut StdRng, valid: &str) -> Vec<u8> {
    let mut bytes = valid.as_bytes().to_vec();
    match rng.random_range(0..8) {
        0 => (0..rng.random_range(0..200))
            .map(|_| rng.random())
            .collect(),
        1 => {
            bytes.truncate(rng.random_range(0..=bytes.len()));
            bytes
        }
        2 => {
            for _ in 0..rng.random_range(1..6) {
                if !bytes.is_empty() {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] = rng.random();
                }
            }
            bytes
        }
        3 => valid
            .replacen("\"v1\"", "[1,{}]", 1)
            .replacen("\"u-1\"", "null", 1)
            .replacen("0.7", "\"x\"", 1)
            .into_bytes(),
        4 => format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        5 => valid.replace("1", "1e999").into_bytes(),
        6 => valid.replace(':', ": NaN, \"x\":").into_bytes(),
        _ => bytes,
    }
}
