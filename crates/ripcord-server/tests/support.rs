//! Shared set-up for the server's integration tests: a real server on
//! loopback with the `support-bot` policy, two versions and (optionally) a
//! release at 30%.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub struct Running {
    pub server: ripcord_server::Server,
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    /// What the server was started with (for [`Running::restart`]).
    pub config: ripcord_server::Config,
    pub dir: tempfile::TempDir,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()?)
}

/// Starts a server with the example policy and versions v1 and v2.
pub async fn start() -> Result<Running> {
    start_with(|_| {}).await
}

/// Like [`start`], with the config adjusted first (a manual clock, limits).
pub async fn start_with(adjust: impl FnOnce(&mut ripcord_server::Config)) -> Result<Running> {
    let dir = tempfile::tempdir()?;
    let mut config = ripcord_server::Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse()?);
    // Test sinks listen on loopback, which the server refuses by default.
    config.webhooks.allowed =
        ripcord_server::sinks::Allowed::with(&[ripcord_server::sinks::Range::Loopback]);
    adjust(&mut config);
    let server = ripcord_server::start(config.clone()).await?;
    let token = std::fs::read_to_string(&server.token_path)?
        .trim()
        .to_string();
    let base = format!("http://{}", server.addr);
    let running = Running {
        server,
        base,
        token,
        http: client()?,
        config,
        dir,
    };
    let policy =
        std::fs::read_to_string(repo_root().join("examples/conversational-agent/policy.yaml"))?;
    running.put_policy("support-bot", policy).await?;
    running
        .register_versions("support-bot", &[("v1", "m-1"), ("v2", "m-2")])
        .await?;
    Ok(running)
}

impl Running {
    /// Stores `policy` for `service` with the admin token; it must be
    /// accepted (201).
    pub async fn put_policy(&self, service: &str, policy: String) -> Result {
        let r = self
            .http
            .put(self.url(&format!("/v1/policies/{service}")))
            .bearer_auth(&self.token)
            .body(policy)
            .send()
            .await?;
        assert_eq!(r.status(), 201, "PUT policy: {}", r.text().await?);
        Ok(())
    }

    /// Registers each `(version, model_id)` of `service`; each must be 201.
    pub async fn register_versions(&self, service: &str, versions: &[(&str, &str)]) -> Result {
        for (version, model) in versions {
            let (status, body) = self
                .post(
                    &format!("/v1/services/{service}/versions"),
                    &json!({"version": version, "model_id": model}),
                )
                .await?;
            assert_eq!(status, 201, "register {version}: {body}");
        }
        Ok(())
    }

    /// Stops the server and starts it again on the same data directory
    /// (and the same clock).
    pub async fn restart(self) -> Result<Running> {
        let Running {
            server,
            token,
            http,
            config,
            dir,
            ..
        } = self;
        server.shutdown().await?;
        let server = ripcord_server::start(config.clone()).await?;
        let base = format!("http://{}", server.addr);
        Ok(Running {
            server,
            base,
            token,
            http,
            config,
            dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authorized JSON POST; the status and the body as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// An authorized JSON PUT.
    pub async fn put(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let (status, text) =
            request(&self.http, method, &self.url(path), &self.token, Some(body)).await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await?;
        assert_eq!(r.status(), 200, "GET {path}");
        Ok(r.json().await?)
    }

    /// Starts v1 → v2 with one step at 30% held for an hour.
    pub async fn release_at_30(&self) -> Result<String> {
        let (status, body) = self
            .post(
                "/v1/releases",
                &json!({
                    "service": "support-bot",
                    "baseline": "v1",
                    "candidate": "v2",
                    "steps": [{"share": 0.3, "hold": "1h"}],
                }),
            )
            .await?;
        assert_eq!(status, 201, "start release: {body}");
        assert_eq!(body["share"], json!(0.3), "{body}");
        Ok(body["id"].as_str().unwrap_or_default().to_string())
    }

    /// Polls the release until `done` holds, up to `within`.
    pub async fn wait_release(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let release = self.get_json(&format!("/v1/releases/{id}")).await?;
            if done(&release) {
                return Ok(release);
            }
            if Instant::now() > deadline {
                return Err(
                    format!("release {id} did not settle within {within:?}: {release}").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Fails (never skips) when python3 or the named modules are missing:
/// `scripts/test` provides them (a virtual environment first on PATH).
pub fn require_python(modules: &str) {
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    match probe {
        Err(e) => panic!(
            "python3 is required for this test and could not be run ({e}); \
             install Python 3 and run the tests with scripts/test"
        ),
        Ok(out) if !out.status.success() => panic!(
            "python3 cannot import {modules}: {}\nrun the tests with scripts/test, which \
             installs the Python peers into target/py",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {}
    }
}

/// A notification sink on loopback: every POST to `/{path}` is kept with
/// its path and its JSON body, in arrival order.
#[derive(Default)]
pub struct Inbox {
    pub got: std::sync::Mutex<Vec<(String, Value)>>,
}

impl Inbox {
    /// The bodies received on `path` so far, in arrival order.
    pub fn received(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .map(|g| {
                g.iter()
                    .filter(|(p, _)| p == path)
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn receive(
    axum::extract::State(inbox): axum::extract::State<std::sync::Arc<Inbox>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    body: axum::body::Bytes,
) {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut got) = inbox.got.lock() {
        got.push((path, value));
    }
}

/// Starts an [`Inbox`]; its base URL (`http://127.0.0.1:PORT`).
pub async fn inbox() -> Result<(String, std::sync::Arc<Inbox>)> {
    let inbox = std::sync::Arc::new(Inbox::default());
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(receive))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((base, inbox))
}

/// One request with a bearer token and an optional JSON body: the status
/// and the body's text.
pub async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, String)> {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}
