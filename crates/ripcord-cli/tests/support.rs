//! Running the real `ripcord serve` process for the recovery tests and the
//! serve benchmark: start it on a data dir, find its address, kill it with
//! SIGKILL, and talk to it over loopback HTTP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// A running `ripcord serve`. Dropping it kills the process, so a failing
/// test never leaves a server behind.
pub struct Serve {
    child: Option<Child>,
    pub pid: u32,
    pub base: String,
    pub token: String,
}

impl Serve {
    /// Starts `bin serve` on `dir` (an ephemeral loopback port) and waits
    /// until it says where it serves.
    pub async fn start(bin: &Path, dir: &Path, echo: bool) -> anyhow::Result<Serve> {
        Serve::start_on(bin, dir, None, echo).await
    }

    /// Like [`Serve::start`], on the store `store` names (`--store`);
    /// `dir` still holds the admin token and the keys.
    pub async fn start_on(
        bin: &Path,
        dir: &Path,
        store: Option<&str>,
        echo: bool,
    ) -> anyhow::Result<Serve> {
        let args: Vec<&str> = match store {
            Some(store) => vec!["--store", store],
            None => vec![],
        };
        Serve::start_with(bin, dir, &args, echo).await
    }

    /// Like [`Serve::start`], with more arguments; waits until it says
    /// where it serves or, with `--lease`, where it follows.
    pub async fn start_with(
        bin: &Path,
        dir: &Path,
        args: &[&str],
        echo: bool,
    ) -> anyhow::Result<Serve> {
        // One of several replicas (`--lease`) answers as soon as it follows;
        // a server alone, once it serves (on PostgreSQL it takes the lease
        // first).
        let follows = args.contains(&"--lease");
        let mut command = Command::new(bin);
        command.arg("serve").args(args);
        let mut child = command
            .arg("--data-dir")
            .arg(dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            // Test sinks listen on loopback.
            .arg("--webhooks-allow")
            .arg("loopback")
            // No stray ripcord.yaml from the working directory.
            .current_dir(dir)
            .env_remove("RIPCORD_CONFIG")
            .env_remove("RIPCORD_POLICIES")
            .env_remove("RIPCORD_STORE")
            .env_remove("RIPCORD_NATS")
            .env_remove("RIPCORD_NATS_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Keeps draining stderr for the life of the process.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let rest = line.strip_prefix("ripcord serving on http://").or_else(|| {
                    follows.then(|| line.strip_prefix("ripcord following on http://"))?
                });
                if let Some(rest) = rest {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                if echo {
                    eprintln!("[ripcord {pid}] {line}");
                }
            }
        });
        let mut serve = Serve {
            child: Some(child),
            pid,
            base: String::new(),
            token: String::new(),
        };
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await?
            .map_err(|_| anyhow!("ripcord serve (pid {pid}) never said where it serves"))?;
        serve.base = format!("http://{addr}");
        serve.token = std::fs::read_to_string(dir.join("admin.token"))
            .context("reading admin.token")?
            .trim()
            .to_string();
        Ok(serve)
    }

    /// Whether the process has exited by itself (it is then reaped).
    #[allow(dead_code)]
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().is_ok_and(|status| status.is_some()))
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process's peak resident set (VmHWM), in KiB (for the serve
    /// bench; the tests do not measure memory).
    #[allow(dead_code)]
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `server` answers `/readyz` with 200 (it leads and has
/// recovered); how long that took. An error after `within`.
#[allow(dead_code)]
pub async fn until_ready(server: &Serve, within: Duration) -> anyhow::Result<Duration> {
    let c = client()?;
    let started = std::time::Instant::now();
    loop {
        let ready = c.get(server.url("/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            bail!("{} was not ready within {within:?}", server.base);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn rfc3339_now() -> String {
    ripcord_core::Time(now_ms()).to_rfc3339()
}

async fn check(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{what}: {status}: {text}");
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: {text}"))
}

pub async fn get_json(c: &reqwest::Client, s: &Serve, path: &str) -> anyhow::Result<Value> {
    let response = c
        .get(s.url(path))
        .header("authorization", s.auth())
        .send()
        .await?;
    check(response, path).await
}

/// The policy of `tests/fixtures/quiet-policy.yaml` (nothing fires) for
/// `service`.
pub fn quiet_policy(service: &str) -> String {
    format!(
        "service: {service}\n{}",
        include_str!("fixtures/quiet-policy.yaml")
    )
}

/// Policy, two versions (`v1`, `v2`), optional webhook sink, and a release
/// of `v2` at 50%; returns the release.
pub async fn set_up_release(
    c: &reqwest::Client,
    s: &Serve,
    service: &str,
    policy: &str,
    sink: Option<&str>,
) -> anyhow::Result<Value> {
    check(
        c.put(s.url(&format!("/v1/policies/{service}")))
            .header("authorization", s.auth())
            .body(policy.to_string())
            .send()
            .await?,
        "PUT policy",
    )
    .await?;
    for v in ["v1", "v2"] {
        check(
            c.post(s.url(&format!("/v1/services/{service}/versions")))
                .header("authorization", s.auth())
                .json(&serde_json::json!({"version": v, "model_id": format!("model-{v}")}))
                .send()
                .await?,
            "POST version",
        )
        .await?;
    }
    if let Some(url) = sink {
        check(
            c.put(s.url(&format!("/v1/services/{service}/webhooks")))
                .header("authorization", s.auth())
                .json(&serde_json::json!({"sinks": [{"url": url}]}))
                .send()
                .await?,
            "PUT webhooks",
        )
        .await?;
    }
    check(
        c.post(s.url("/v1/releases"))
            .header("authorization", s.auth())
            .json(&serde_json::json!({
                "service": service, "baseline": "v1", "candidate": "v2",
                "steps": [{"share": 0.5, "hold": "1h"}],
            }))
            .send()
            .await?,
        "POST release",
    )
    .await
}

/// The decision log of a service, one line per decision.
pub async fn decisions(
    c: &reqwest::Client,
    s: &Serve,
    service: &str,
) -> anyhow::Result<Vec<String>> {
    let response = c
        .get(s.url(&format!("/v1/decisions?service={service}")))
        .header("authorization", s.auth())
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("GET decisions: {}", response.status());
    }
    Ok(response
        .text()
        .await?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Which version `/v1/assign` gives a unit.
pub async fn assigned(
    c: &reqwest::Client,
    s: &Serve,
    service: &str,
    unit: &str,
) -> anyhow::Result<String> {
    let v = get_json(c, s, &format!("/v1/assign?service={service}&unit={unit}")).await?;
    v["version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("assign answered without a version: {v}"))
}

/// One event as a JSON object.
pub fn event(out: &mut String, ts: &str, service: &str, version: &str, unit: &str, fail: bool) {
    use std::fmt::Write;
    let _ = write!(
        out,
        r#"{{"ts":"{ts}","service":"{service}","version":"{version}","unit":"{unit}","segment":{{"locale":"de"}},"values":{{"outputs":1,"moderation_fail":{}}}}}"#,
        u8::from(fail)
    );
}
