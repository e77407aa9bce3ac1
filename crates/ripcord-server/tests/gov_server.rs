//! The governance tests' server: service `gov-svc` with versions v1 and v2
//! under the test's policy, Slack (`chat`) and PagerDuty (`pager`)
//! channels pointed at the test's inbox, a signed audit log, and a manual
//! clock. Ticks and timers run when the test moves the clock
//! ([`GovServer::advance`]), so deadlines pass when the test says, not
//! while it sleeps.

use std::time::Duration;

use crate::support::{Result, client};
use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use serde_json::{Value, json};

pub struct GovServer {
    pub server: ripcord_server::Server,
    pub clock: Clock,
    pub base: String,
    pub admin: String,
    pub http: reqwest::Client,
    hooks: String,
    dirs: [tempfile::TempDir; 2],
    adjust: fn(&mut ripcord_server::Config),
}

impl GovServer {
    /// A server whose clock starts at `at`, with `policy` in force.
    pub async fn start(policy: &str, hooks: &str, at: Time) -> Result<GovServer> {
        GovServer::start_with(policy, hooks, at, |_| {}).await
    }

    /// [`GovServer::start`] with the config adjusted (at every start).
    pub async fn start_with(
        policy: &str,
        hooks: &str,
        at: Time,
        adjust: fn(&mut ripcord_server::Config),
    ) -> Result<GovServer> {
        let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
        let clock = Clock::manual(at);
        let gov = GovServer::boot(dirs, hooks.to_string(), clock, adjust).await?;
        let (status, body) = gov.put_policy(policy, "").await?;
        assert_eq!(status, 201, "{body}");
        for v in ["v1", "v2"] {
            let body = json!({"version": v, "model_id": "m"});
            gov.ok("post", "/v1/services/gov-svc/versions", None, Some(body))
                .await?;
        }
        Ok(gov)
    }

    async fn boot(
        dirs: [tempfile::TempDir; 2],
        hooks: String,
        clock: Clock,
        adjust: fn(&mut ripcord_server::Config),
    ) -> Result<GovServer> {
        let [data, keys] = &dirs;
        let mut config =
            ripcord_server::Config::new(data.path().to_path_buf(), "127.0.0.1:0".parse()?);
        config.tick = Duration::from_secs(3600);
        // Threshold reviews are built in the background, at no fixed point
        // of the recorded scenario; `tests/reviews.rs` covers them.
        config.reviews.releases = 0;
        config.checkpoint_every = Duration::from_secs(3600);
        config.audit_key = Some(keys.path().join("audit.key"));
        config.clock = clock.clone();
        config.channels = serde_saphyr::from_str(&format!(
            "chat: {{kind: slack, url: \"{hooks}/slack\"}}\n\
             pager: {{kind: pagerduty, url: \"{hooks}/pagerduty\", routing_key: R0UT1NGKEY0123456789012345678901}}\n"
        ))?;
        adjust(&mut config);
        let server = ripcord_server::start(config).await?;
        let admin = std::fs::read_to_string(&server.token_path)?
            .trim()
            .to_string();
        Ok(GovServer {
            base: format!("http://{}", server.addr),
            server,
            clock,
            admin,
            http: client()?,
            hooks,
            dirs,
            adjust,
        })
    }

    /// Stops the server, moves the clock by `down` while it is stopped,
    /// and starts it again on the same data.
    pub async fn restart(self, down: Dur) -> Result<GovServer> {
        let GovServer {
            server,
            clock,
            hooks,
            dirs,
            adjust,
            ..
        } = self;
        server.shutdown().await?;
        clock.advance(down);
        GovServer::boot(dirs, hooks, clock, adjust).await
    }

    /// `PUT /v1/policies/gov-svc` with `query` (e.g. `?answers=...`).
    pub async fn put_policy(&self, policy: &str, query: &str) -> Result<(u16, String)> {
        let r = self
            .http
            .put(format!("{}/v1/policies/gov-svc{query}", self.base))
            .bearer_auth(&self.admin)
            .body(policy.to_string())
            .send()
            .await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// A call as `token` (the admin by default): its status and its JSON
    /// answer (or the text, as a JSON string).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?;
        let url = format!("{}{path}", self.base);
        let token = token.unwrap_or(&self.admin);
        let (status, text) =
            crate::support::request(&self.http, method, &url, token, body.as_ref()).await?;
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, answer))
    }

    /// A call that must succeed; its answer.
    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value> {
        let (status, answer) = self.call(method, path, token, body).await?;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        Ok(answer)
    }

    /// A POST that must be refused with `status`.
    pub async fn refused(&self, status: u16, path: &str, token: &str) -> Result {
        let (got, answer) = self.call("post", path, Some(token), None).await?;
        assert_eq!(got, status, "{path}: {answer}");
        Ok(())
    }

    /// A new token's secret.
    pub async fn token(&self, name: &str, role: &str) -> Result<String> {
        let body = json!({"name": name, "role": role});
        let made = self.ok("post", "/v1/tokens", None, Some(body)).await?;
        Ok(made["token"].as_str().unwrap_or_default().to_string())
    }

    /// Starts the release v1 → v2.
    pub async fn release(&self) -> Result {
        let start = json!({"service": "gov-svc", "baseline": "v1", "candidate": "v2"});
        let (status, answer) = self.call("post", "/v1/releases", None, Some(start)).await?;
        assert_eq!(status, 201, "{answer}");
        Ok(())
    }

    /// `n` events stamped now: with the candidate, every second one goes to
    /// it and a third of those fail moderation; the baseline never fails.
    pub async fn send(&self, n: usize, candidate_too: bool) -> Result {
        let ts = self.clock.now().to_rfc3339();
        let events: Vec<Value> = (0..n)
            .map(|i| {
                let candidate = candidate_too && i % 2 == 1;
                let fail = candidate && i % 3 == 0;
                json!({"ts": ts, "service": "gov-svc",
                       "version": if candidate { "v2" } else { "v1" },
                       "unit": format!("u-{i}"),
                       "values": {"outputs": 1, "moderation_fail": u8::from(fail)}})
            })
            .collect();
        self.ok("post", "/v1/events", None, Some(Value::Array(events)))
            .await?;
        Ok(())
    }

    /// Moves the clock, then ticks the engines, runs due timers and moves
    /// the drills on, as the server's tick task does.
    pub async fn advance(&self, ms: i64) {
        self.clock.advance(Dur(ms));
        self.server.app.hub.tick_all().await;
        self.server.app.hub.run_timers().await;
        self.server.app.drills.run(&self.server.app.hub).await;
    }

    /// The service's incidents, oldest first.
    pub async fn incidents(&self) -> Result<Vec<Value>> {
        let list = self
            .ok("get", "/v1/incidents?service=gov-svc", None, None)
            .await?;
        Ok(list["incidents"].as_array().cloned().unwrap_or_default())
    }
}
