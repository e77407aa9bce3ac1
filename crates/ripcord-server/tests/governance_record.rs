//! The governance scenario, recorded: a fired trigger opens an incident that
//! pages, escalates, is acknowledged, worked through its playbook, resolved,
//! reviewed and cited by the next policy, all on a manual clock with ticks
//! and timers driven by the test. Its decision log, audit log and
//! notifications (minus what is random by design: token secrets, hashes,
//! signatures, delivery ids and the wall-clock times of deliveries) must
//! equal `fixtures/governance_record.txt` byte for byte, so that a change
//! to the service's insides cannot change what it does unnoticed.
//!
//! `RIPCORD_BLESS=1 cargo test -p ripcord-server --test governance_record`
//! rewrites the file after an intended change; review its diff.

use std::time::{Duration, Instant};

use crate::support::{Inbox, Result, client, inbox};
use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use serde_json::{Value, json};

const POLICY: &str = "\
service: gov-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.2, min_samples: 50, window: 30s, for: 0s}
  moderation_abs: {signal: moderation_fail, absolute: 0.2, min_samples: 1000000000, window: 30s}
triggers:
  safety:
    when: moderation_rel
    severity: critical
    action:
      rollback:
        stages:
          - {move_back: 0.5, verify_for: 1s}
          - {move_back: 1.0, verify_for: 1s}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
incidents:
  ack: {critical: 2s, major: 1h, minor: 1h}
  status_every: 30s
  escalation:
    - {after: 0s, channels: [chat], template: oncall}
    - {after: 1h, channels: [pager]}
playbooks:
  moderation:
    steps:
      - {name: look, kind: manual, owner: operator, within: 1h}
      - {name: integrity, kind: check, owner: operator, within: 1h, checks: [events_kept, baseline_assigned, store_integrity]}
      - {name: verify, kind: verify, owner: safety_lead, within: 1h, hold: 1s}
";

/// 2026-01-01T00:00:00Z.
const T0: Time = Time(1_767_225_600_000);

struct Scenario {
    server: ripcord_server::Server,
    clock: Clock,
    base: String,
    admin: String,
    http: reqwest::Client,
    _dirs: [tempfile::TempDir; 2],
}

impl Scenario {
    async fn start(hooks: &str) -> Result<Scenario> {
        let dir = tempfile::tempdir()?;
        let keys = tempfile::tempdir()?;
        let clock = Clock::manual(T0);
        let mut config =
            ripcord_server::Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse()?);
        // Ticks and timers run when the test says, at the manual clock's time.
        config.tick = Duration::from_secs(3600);
        config.checkpoint_every = Duration::from_secs(3600);
        config.audit_key = Some(keys.path().join("audit.key"));
        config.clock = clock.clone();
        config.channels = serde_saphyr::from_str(&format!(
            "chat: {{kind: slack, url: \"{hooks}/slack\"}}\n\
             pager: {{kind: pagerduty, url: \"{hooks}/pagerduty\", routing_key: R0UT1NGKEY0123456789012345678901}}\n"
        ))?;
        let server = ripcord_server::start(config).await?;
        let admin = std::fs::read_to_string(&server.token_path)?
            .trim()
            .to_string();
        let s = Scenario {
            base: format!("http://{}", server.addr),
            server,
            clock,
            admin,
            http: client()?,
            _dirs: [dir, keys],
        };
        let (status, body) = s.put_policy(POLICY, "").await?;
        assert_eq!(status, 201, "{body}");
        for v in ["v1", "v2"] {
            let body = json!({"version": v, "model_id": "m"});
            s.ok("post", "/v1/services/gov-svc/versions", None, Some(body))
                .await?;
        }
        Ok(s)
    }

    async fn put_policy(&self, policy: &str, query: &str) -> Result<(u16, String)> {
        let r = self
            .http
            .put(format!("{}/v1/policies/gov-svc{query}", self.base))
            .bearer_auth(&self.admin)
            .body(policy.to_string())
            .send()
            .await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, String)> {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?;
        let url = format!("{}{path}", self.base);
        let token = token.unwrap_or(&self.admin);
        crate::support::request(&self.http, method, &url, token, body.as_ref()).await
    }

    /// A call that must succeed; its JSON answer.
    async fn ok(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value> {
        let (status, text) = self.call(method, path, token, body).await?;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A call that must be refused with `status`.
    async fn refused(&self, status: u16, path: &str, token: &str) -> Result {
        let (got, text) = self.call("post", path, Some(token), None).await?;
        assert_eq!(got, status, "{path}: {text}");
        Ok(())
    }

    async fn token(&self, name: &str, role: &str) -> Result<String> {
        let made = self
            .ok(
                "post",
                "/v1/tokens",
                None,
                Some(json!({"name": name, "role": role})),
            )
            .await?;
        Ok(made["token"].as_str().unwrap_or_default().to_string())
    }

    /// `n` events stamped now: with the candidate, every second one goes to
    /// it and a third of those fail moderation; the baseline never fails.
    async fn send(&self, n: usize, candidate_too: bool) -> Result {
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

    /// Moves the clock, then ticks the engines and runs due timers, as the
    /// server's tick task does.
    async fn advance(&self, ms: i64) {
        self.clock.advance(Dur(ms));
        self.server.app.hub.tick_all().await;
        self.server.app.hub.run_timers().await;
    }

    async fn incident_state(&self) -> Result<String> {
        let list = self
            .ok("get", "/v1/incidents?service=gov-svc", None, None)
            .await?;
        Ok(list["incidents"][0]["state"]
            .as_str()
            .unwrap_or("none")
            .to_string())
    }

    async fn lines(&self, path: &str) -> Result<Vec<Value>> {
        let text = self.ok("get", path, None, None).await?;
        Ok(text
            .as_str()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// The scenario, step by step; everything it does lands in the logs.
async fn play(s: &Scenario) -> Result {
    let operator = s.token("olga", "operator").await?;
    let manager = s.token("max", "release_manager").await?;
    let safety = s.token("sam", "safety_lead").await?;
    s.ok(
        "post",
        "/v1/releases",
        None,
        Some(json!({"service": "gov-svc", "baseline": "v1", "candidate": "v2"})),
    )
    .await?;
    for _ in 0..60 {
        let state = s.incident_state().await?;
        if state == "mitigated" {
            break;
        }
        s.send(200, state == "none").await?;
        s.advance(1000).await;
    }
    assert_eq!(s.incident_state().await?, "mitigated");
    // Baseline traffic in the second after the rollback, which `verify` reads.
    s.send(100, false).await?;
    // Nobody acknowledges within 2 s: level 1 pages; a status update is due.
    s.advance(3000).await;
    let inc = "/v1/incidents/inc-gov-svc-1";
    s.ok("post", &format!("{inc}/acknowledge"), Some(&operator), None)
        .await?;
    s.refused(409, &format!("{inc}/acknowledge"), &operator)
        .await?;
    s.ok(
        "post",
        &format!("{inc}/status"),
        Some(&operator),
        Some(json!({"message": "rolled back; looking at the answers"})),
    )
    .await?;
    s.refused(403, &format!("{inc}/steps/look"), &safety)
        .await?;
    s.ok(
        "post",
        &format!("{inc}/steps/look"),
        Some(&operator),
        Some(json!({"note": "dashboards checked"})),
    )
    .await?;
    s.ok(
        "post",
        &format!("{inc}/steps/integrity"),
        Some(&operator),
        None,
    )
    .await?;
    s.send(100, false).await?;
    s.advance(1100).await;
    s.send(100, false).await?;
    s.ok("post", &format!("{inc}/steps/verify"), Some(&safety), None)
        .await?;
    // The next status update is missed: it escalates.
    s.advance(31_000).await;
    let note = json!({"note": "v2 withdrawn"});
    let (status, _) = s
        .call(
            "post",
            &format!("{inc}/resolve"),
            Some(&manager),
            Some(note.clone()),
        )
        .await?;
    assert_eq!(status, 403);
    s.ok("post", &format!("{inc}/resolve"), Some(&safety), Some(note))
        .await?;
    let review = json!({"summary": "ratio bound held",
                        "action_items": [{"text": "add a golden set", "owner": "sam"}]});
    s.ok(
        "post",
        &format!("{inc}/review"),
        Some(&safety),
        Some(review),
    )
    .await?;
    let stricter = POLICY.replace("max_ratio: 1.2", "max_ratio: 1.1");
    let (status, body) = s.put_policy(&stricter, "?answers=inc-gov-svc-1").await?;
    assert_eq!(status, 201, "{body}");
    Ok(())
}

/// Keys whose values are random or wall-clock by design.
const RANDOM: [&str; 8] = [
    "hash",
    "prev",
    "token",
    "token_sha256",
    "signature",
    "dedup_key_nonce",
    "webhook_id",
    "sent_at",
];

fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if RANDOM.contains(&k.as_str()) {
                    *x = json!("*");
                } else {
                    scrub(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

fn section(out: &mut String, title: &str, items: impl IntoIterator<Item = Value>) {
    out.push_str(&format!("## {title}\n"));
    for mut item in items {
        scrub(&mut item);
        // Tokens are issued on the wall clock (their expiry is real time).
        if item["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("token."))
        {
            item["at"] = json!("*");
        }
        out.push_str(&item.to_string());
        out.push('\n');
    }
}

/// What the notification sinks received, once the outbox has drained:
/// per sink in arrival order (sinks are delivered independently).
async fn notifications(inbox: &Inbox) -> Result<Vec<(String, Value)>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = inbox.got.lock().map(|g| g.clone()).unwrap_or_default();
        if got.len() == last || Instant::now() > deadline {
            let mut got = got;
            got.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(got);
        }
        last = got.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_governance_scenario_decides_audits_and_notifies_as_recorded() -> Result {
    let (hooks, inbox) = inbox().await?;
    let s = Scenario::start(&hooks).await?;
    play(&s).await?;
    let mut out = String::new();
    section(
        &mut out,
        "decisions",
        s.lines("/v1/decisions?service=gov-svc&limit=1000").await?,
    );
    let audit = s.lines("/v1/audit?limit=1000").await?;
    let audit = audit
        .into_iter()
        .filter(|r| r["action"] != "audit.checkpoint");
    section(&mut out, "audit", audit);
    let sent = notifications(&inbox).await?;
    for sink in ["pagerduty", "slack"] {
        let of_sink = sent
            .iter()
            .filter(|(p, _)| p == sink)
            .map(|(_, v)| v.clone());
        section(&mut out, sink, of_sink);
    }
    s.server.shutdown().await?;
    // Links name the server's port, a free one.
    let out = out.replace(&s.base, "http://ripcord");
    let path = crate::support::repo_root()
        .join("crates/ripcord-server/tests/fixtures/governance_record.txt");
    if std::env::var_os("RIPCORD_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(&path, &out)?;
    }
    let recorded = std::fs::read_to_string(&path)?;
    assert!(
        recorded == out,
        "the governance record changed; diff {} against:\n{out}",
        path.display()
    );
    Ok(())
}
