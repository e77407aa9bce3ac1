//! From a real incident on a live server to its artifacts: the evidence
//! bundle frozen when the incident opened (redacted as the policy says)
//! exported as an archive, and the post-incident report with its what-if
//! replayed from the server's own journal.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use serde_json::{Value, json};

const POLICY: &str = "\
service: art-svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.2, min_samples: 50, window: 30s, for: 0s}
triggers:
  safety:
    when: moderation_rel
    severity: critical
    action:
      rollback:
        stages:
          - {move_back: 1.0, verify_for: 1s}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
evidence:
  sample: 50
  redact: {drop: [prompt], hash: [unit]}
";

fn ripcord(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .output()
        .expect("ripcord runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn entries(archive: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(archive).expect("archive");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = BTreeMap::new();
    for entry in tar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        out.insert(name, bytes);
    }
    out
}

struct Client {
    clock: Clock,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Units 0..n; the candidate's fail moderation one time in three; each
    /// event carries a prompt the policy says to drop.
    async fn events(&self, n: usize, candidate_too: bool) {
        let ts = self.clock.now().to_rfc3339();
        let events: Vec<Value> = (0..n)
            .map(|i| {
                let candidate = candidate_too && i % 2 == 1;
                json!({"ts": ts, "service": "art-svc", "unit": format!("user-{i}"),
                       "version": if candidate { "v2" } else { "v1" },
                       "prompt": format!("secret question {i}"),
                       "values": {"outputs": 1, "moderation_fail": u8::from(candidate && i % 3 == 0)}})
            })
            .collect();
        self.send(
            reqwest::Method::POST,
            "/v1/events",
            Some(Value::Array(events)),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_leaves_a_redacted_evidence_archive_and_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ripcord_server::Config::new(
        dir.path().to_path_buf(),
        "127.0.0.1:0".parse().expect("addr"),
    );
    // A manual clock near the wall clock's time: the rollback's one-second
    // verification passes as the test moves it (100 ms per round of
    // traffic), with ticks and timers run by the test.
    let clock = Clock::manual(Time(ripcord_server::clock::wall_now().0 / 1000 * 1000));
    config.clock = clock.clone();
    config.tick = Duration::from_secs(3600);
    let server = ripcord_server::start(config).await.expect("server");
    let c = Client {
        clock,
        base: format!("http://{}", server.addr),
        token: std::fs::read_to_string(&server.token_path)
            .expect("token")
            .trim()
            .into(),
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
    };
    let r = c
        .http
        .put(format!("{}/v1/policies/art-svc", c.base))
        .bearer_auth(&c.token)
        .body(POLICY)
        .send()
        .await
        .expect("policy");
    assert_eq!(r.status(), 201);
    for v in ["v1", "v2"] {
        let body = json!({"version": v, "model_id": format!("model-{v}")});
        c.send(
            reqwest::Method::POST,
            "/v1/services/art-svc/versions",
            Some(body),
        )
        .await;
    }
    let start = json!({"service": "art-svc", "baseline": "v1", "candidate": "v2"});
    c.send(reqwest::Method::POST, "/v1/releases", Some(start))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = c.send(reqwest::Method::GET, "/v1/incidents", None).await;
        let opened = list["incidents"].as_array().is_some_and(|l| !l.is_empty());
        if opened && list["incidents"][0]["state"] == "mitigated" {
            break;
        }
        assert!(Instant::now() < deadline, "no mitigated incident: {list}");
        c.events(200, !opened).await;
        c.clock.advance(Dur(100));
        server.app.hub.tick_all().await;
        server.app.hub.run_timers().await;
    }
    let inc = c
        .send(reqwest::Method::GET, "/v1/incidents/inc-art-svc-1", None)
        .await;
    let address = inc["evidence"]
        .as_str()
        .expect("an evidence address")
        .to_string();
    server.shutdown().await.expect("shutdown");

    let data = dir.path().to_str().expect("utf-8 path");
    let archive = dir.path().join("evidence.tar.gz");
    let out = archive.to_str().expect("utf-8 path");
    let (code, text) = ripcord(&[
        "evidence",
        "export",
        "inc-art-svc-1",
        "--data-dir",
        data,
        "-o",
        out,
    ]);
    assert_eq!(code, 0, "{text}");
    let files = entries(&archive);
    let bundle: Value = serde_json::from_slice(&files["bundle.json"]).expect("bundle json");
    assert_eq!(
        ripcord_core::evidence::address(&files["bundle.json"]),
        address
    );
    assert_eq!(bundle["policy"]["version"], 1);
    let events = String::from_utf8_lossy(&files["events.ndjson"]).to_string();
    let sampled: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(sampled.len(), 50, "the policy's sample size");
    for e in &sampled {
        assert!(e.get("prompt").is_none(), "prompt dropped: {e}");
        assert!(
            e["unit"].as_str().is_some_and(|u| u.starts_with("sha256:")),
            "unit hashed: {e}"
        );
    }
    assert!(
        files.contains_key("provenance/v2.json"),
        "{:?}",
        files.keys()
    );

    // Into the temporary folder: a markdown report writes its SVG charts
    // beside itself, and the test must leave nothing in the source tree.
    let report = dir.path().join("report.md");
    let report_path = report.to_str().expect("utf-8 path");
    let (code, out) = ripcord(&[
        "report",
        "inc-art-svc-1",
        "--format",
        "md",
        "--data-dir",
        data,
        "--output",
        report_path,
    ]);
    assert_eq!(code, 0, "{out}");
    let md = std::fs::read_to_string(&report).expect("the report was written");
    assert!(
        dir.path().join("report-moderation_rel.svg").exists(),
        "its chart beside it"
    );
    for section in ["## Summary", "## Timeline", "## What-if", "## Review"] {
        assert!(md.contains(section), "{section} missing:\n{md}");
    }
    let whatif = md
        .split("## What-if")
        .nth(1)
        .and_then(|s| s.split("## Review").next())
        .unwrap_or("");
    let rows = whatif
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains('s'))
        .count();
    assert!(rows >= 6, "a grid of variants:\n{whatif}");
    assert!(
        whatif.contains("1.2"),
        "the current bound is in the table:\n{whatif}"
    );
    let (code, html) = ripcord(&[
        "report",
        "inc-art-svc-1",
        "--format",
        "html",
        "--data-dir",
        data,
    ]);
    assert_eq!(code, 0, "{html}");
    assert!(html.contains("<svg"), "a chart");
}
