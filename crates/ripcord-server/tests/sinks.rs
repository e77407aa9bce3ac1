//! Webhook sinks as a hostile user would set them: a slow sink, a sink
//! that redirects, URLs that aim at the server's own network.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Result, Running, repo_root};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;

/// When each request reached a receiver.
#[derive(Default)]
struct Hits(Mutex<Vec<Instant>>);

impl Hits {
    fn count(&self) -> usize {
        self.0.lock().map_or(0, |h| h.len())
    }

    fn first(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|h| h.first().copied())
    }

    fn hit(&self) {
        if let Ok(mut h) = self.0.lock() {
            h.push(Instant::now());
        }
    }
}

/// What a receiver answers.
#[derive(Clone)]
enum Answer {
    /// 204 at once.
    Fast,
    /// Nothing for a minute (the server's timeout cuts it).
    Silent,
    /// 307 to this URL.
    Redirect(String),
}

async fn receiver(answer: Answer) -> Result<(String, Arc<Hits>)> {
    let hits = Arc::new(Hits::default());
    let handler = move |State(hits): State<Arc<Hits>>| {
        let answer = answer.clone();
        async move {
            hits.hit();
            match answer {
                Answer::Fast => StatusCode::NO_CONTENT.into_response(),
                Answer::Silent => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    StatusCode::NO_CONTENT.into_response()
                }
                Answer::Redirect(to) => {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response()
                }
            }
        }
    };
    let app = Router::new()
        .route("/hook", post(handler))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, hits))
}

/// Waits until `hits` has at least `n` requests, up to `within`.
async fn wait_hits(hits: &Hits, n: usize, within: Duration) -> Result {
    let deadline = Instant::now() + within;
    while hits.count() < n {
        if Instant::now() > deadline {
            return Err(format!("{} hits, not {n}, within {within:?}", hits.count()).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A second service with the example policy, versions v1 and v2.
async fn second_service(app: &Running, name: &str) -> Result {
    let text =
        std::fs::read_to_string(repo_root().join("examples/conversational-agent/policy.yaml"))?;
    let policy = text.replace("service: support-bot", &format!("service: {name}"));
    let r = app
        .http
        .put(app.url(&format!("/v1/policies/{name}")))
        .bearer_auth(&app.token)
        .body(policy)
        .send()
        .await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    for v in ["v1", "v2"] {
        let path = format!("/v1/services/{name}/versions");
        let (status, body) = app
            .post(&path, &json!({"version": v, "model_id": "m"}))
            .await?;
        assert_eq!(status, 201, "{body}");
    }
    Ok(())
}

async fn sink(app: &Running, service: &str, url: &str) -> Result {
    let path = format!("/v1/services/{service}/webhooks");
    let (status, body) = app.put(&path, &json!({"sinks": [{"url": url}]})).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

async fn release(app: &Running, service: &str) -> Result {
    let start = json!({"service": service, "baseline": "v1", "candidate": "v2",
                       "steps": [{"share": 0.3, "hold": "1h"}]});
    let (status, body) = app.post("/v1/releases", &start).await?;
    assert_eq!(status, 201, "{body}");
    Ok(())
}

/// A sink that never answers holds its own deliveries only: another
/// service's sink gets its release's decision within a second, while the
/// silent one is still waiting (the server's per-attempt timeout is 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_sink_does_not_delay_another_sinks_deliveries() -> Result {
    let app = crate::support::start().await?;
    second_service(&app, "other-bot").await?;
    let (silent_url, silent) = receiver(Answer::Silent).await?;
    let (fast_url, fast) = receiver(Answer::Fast).await?;
    sink(&app, "support-bot", &silent_url).await?;
    sink(&app, "other-bot", &fast_url).await?;
    release(&app, "support-bot").await?;
    wait_hits(&silent, 1, Duration::from_secs(5)).await?;
    let asked = Instant::now();
    release(&app, "other-bot").await?;
    wait_hits(&fast, 1, Duration::from_secs(15)).await?;
    let waited = fast.first().map_or(Duration::MAX, |t| t - asked);
    assert!(
        waited < Duration::from_secs(1),
        "the fast sink waited {waited:?} behind the silent one"
    );
    assert_eq!(
        silent.count(),
        1,
        "the silent sink is still on its first attempt"
    );
    Ok(())
}

/// A 307 is a failed delivery: the signed body is not POSTed again to
/// where it points, and the entry is retried at the sink's own URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() -> Result {
    let app = crate::support::start().await?;
    let (elsewhere_url, elsewhere) = receiver(Answer::Fast).await?;
    let (redirect_url, redirect) = receiver(Answer::Redirect(elsewhere_url)).await?;
    sink(&app, "support-bot", &redirect_url).await?;
    release(&app, "support-bot").await?;
    // The first retry comes a second after the first attempt.
    wait_hits(&redirect, 2, Duration::from_secs(10)).await?;
    assert_eq!(elsewhere.count(), 0, "the redirect was followed");
    Ok(())
}

/// Sink URLs are parsed and their addresses checked; the error names the
/// field. This server has the default config: no loopback, private or
/// link-local sinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sink_urls_are_refused_naming_the_field() -> Result {
    let dir = tempfile::tempdir()?;
    let server = ripcord_server::start(ripcord_server::Config::new(
        dir.path().to_path_buf(),
        "127.0.0.1:0".parse()?,
    ))
    .await?;
    let token = std::fs::read_to_string(&server.token_path)?;
    let http = crate::support::client()?;
    let base = format!("http://{}", server.addr);
    let policy =
        std::fs::read_to_string(repo_root().join("examples/conversational-agent/policy.yaml"))?;
    let r = http
        .put(format!("{base}/v1/policies/support-bot"))
        .bearer_auth(token.trim())
        .body(policy)
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    let cases = [
        (
            "http:///etc/passwd",
            "sinks[0].url: must name a host (http://host/…)",
        ),
        (
            "http://hooks.example.com/a\r\nX-Injected: 1",
            "sinks[0].url: must not contain control characters (CR, LF, tab…)",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "sinks[0].url: 169.254.169.254 is a link_local address, which the server's \
             config does not allow (webhooks.allow)",
        ),
        (
            "http://127.0.0.1:9/hook",
            "sinks[0].url: 127.0.0.1 is a loopback address, which the server's config does \
             not allow (webhooks.allow)",
        ),
        (
            "http://admin:pw@hooks.example.com/",
            "sinks[0].url: must not carry a user name or password (put secrets in `secret`)",
        ),
    ];
    for (url, message) in cases {
        let r = http
            .put(format!("{base}/v1/services/support-bot/webhooks"))
            .bearer_auth(token.trim())
            .json(&json!({"sinks": [{"url": url}]}))
            .send()
            .await?;
        assert_eq!(r.status(), 400, "{url}");
        let answer: serde_json::Value = r.json().await?;
        assert_eq!(answer["message"], message, "{url}");
    }
    // The same URL twice is the caller's mistake, not a storage failure
    // (schemathesis found a 503 from the database's unique constraint).
    let r = http
        .put(format!("{base}/v1/services/support-bot/webhooks"))
        .bearer_auth(token.trim())
        .json(&json!({"sinks": [
            {"url": "https://hooks.example.com/a"},
            {"url": "https://hooks.example.com/b"},
            {"url": "https://hooks.example.com/a"},
        ]}))
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let answer: serde_json::Value = r.json().await?;
    assert_eq!(
        answer["message"],
        "sinks[2].url: https://hooks.example.com/a is already sinks[0]"
    );
    let r = http
        .get(format!("{base}/v1/services/support-bot/webhooks"))
        .bearer_auth(token.trim())
        .send()
        .await?;
    let stored: serde_json::Value = r.json().await?;
    assert_eq!(stored["sinks"], json!([]), "nothing was stored");
    server.shutdown().await?;
    Ok(())
}
