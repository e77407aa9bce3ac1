//! `ripcord drill run` against a real server on loopback, in real time:
//! three drills side by side (one per service). Two are unattended, the
//! same file but for one step, which the second scripts after its window:
//! the first exits 0 with every line passed, the second exits 1 with
//! exactly that line failed. In the third, people act: the test plays
//! them with `ripcord incident`, and it passes. `drill list` shows all.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ripcord");

/// Seconds-long windows, so that a whole drill takes about 15 s.
fn policy(service: &str) -> String {
    format!(
        "\
service: {service}
srm: off
signals:
  moderation_fail: {{category: safety, kind: rate, denominator: outputs}}
criteria:
  moderation_rel: {{signal: moderation_fail, max_ratio: 1.5, min_samples: 200, window: 20s, for: 0s}}
  moderation_abs: {{signal: moderation_fail, absolute: 0.03, min_samples: 1000000000, window: 20s}}
triggers:
  safety:
    when: moderation_rel
    severity: major
    action: {{rollback: {{stages: [{{move_back: 1.0, verify_for: 1s}}]}}}}
rollout:
  steps:
    - {{share: 0.5, hold: 1h}}
incidents:
  ack: {{critical: 10s, major: 10s, minor: 1m}}
  escalation:
    - {{after: 0s, channels: [chat]}}
playbooks:
  moderation:
    steps:
      - {{name: integrity, kind: check, owner: operator, within: 6s, checks: [events_kept, baseline_assigned, store_integrity]}}
      - {{name: verify, kind: verify, owner: safety_lead, within: 30s, hold: 2s}}
"
    )
}

fn drill(service: &str, integrity_after: &str) -> String {
    format!(
        "\
drill: moderation-spike
service: {service}
baseline: v1
candidate: v2
traffic:
  rate: 400/s
  seed: 5
  base_rates: {{moderation_fail: 0.01}}
  regressions: [\"moderation_fail x6 from 2s\"]
timeout: 2m
expect: {{detect_within: 20s}}
script:
  - {{after: 1s, do: acknowledge, by: dana}}
  - {{after: {integrity_after}, do: step, step: integrity, by: sam}}
  - {{after: 6s, do: step, step: verify, by: sam}}
  - {{after: 12s, do: resolve, by: dana, note: drill over}}
"
    )
}

/// A Slack-shaped inbox on loopback that accepts everything.
async fn inbox() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/slack")
}

async fn ripcord(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("RIPCORD_TOKEN")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattended_drill_exits_0_only_when_every_line_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        ripcord_server::Config::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.channels = serde_saphyr::from_str(&format!(
        "chat: {{kind: slack, url: \"{}\"}}",
        inbox().await
    ))
    .unwrap();
    let server = ripcord_server::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let token = server.token_path.to_str().unwrap().to_string();
    let admin = std::fs::read_to_string(&server.token_path).unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for service in ["drill-ok", "drill-late", "drill-people"] {
        let r = http
            .put(format!("{base}/v1/policies/{service}"))
            .bearer_auth(admin.trim())
            .body(policy(service))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        for v in ["v1", "v2"] {
            let r = http
                .post(format!("{base}/v1/services/{service}/versions"))
                .bearer_auth(admin.trim())
                .json(&serde_json::json!({"version": v, "model_id": "m"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let file = dir.path().join(format!("{service}.yaml"));
        let text = match service {
            "drill-late" => drill(service, "9s"),
            "drill-people" => drill(service, "2s")
                .split("script:")
                .next()
                .unwrap()
                .to_string(),
            _ => drill(service, "2s"),
        };
        std::fs::write(&file, text).unwrap();
    }
    let run = |service: &'static str| {
        let file = dir.path().join(format!("{service}.yaml"));
        let (base, token) = (base.clone(), token.clone());
        async move {
            let file = file.to_str().unwrap().to_string();
            let args = [
                "drill",
                "run",
                &file,
                "--server",
                &base,
                "--token-file",
                &token,
            ];
            tokio::time::timeout(Duration::from_secs(150), ripcord(&args))
                .await
                .unwrap()
        }
    };
    // A token runs two drills at most: the third is a release manager's.
    let r = http
        .post(format!("{base}/v1/tokens"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"name": "rm-1", "role": "release_manager"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let manager = dir.path().join("rm.token");
    std::fs::write(&manager, made["token"].as_str().unwrap()).unwrap();
    let people_file = dir.path().join("drill-people.yaml");
    let (ok, late, people) = tokio::join!(
        run("drill-ok"),
        run("drill-late"),
        people_act(
            &http,
            &base,
            admin.trim(),
            (manager.to_str().unwrap(), &token),
            &people_file
        )
    );

    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        out.starts_with(
            "drill drill-drill-ok-1 (moderation-spike) on drill-ok: PASSED, all 7 lines"
        ),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");

    let out = String::from_utf8_lossy(&late.stdout);
    assert_eq!(late.status.code(), Some(1), "{out}");
    assert!(out.contains("FAILED, 1 of 7 lines failed"), "{out}");
    let failed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FAIL  "))
        .collect();
    assert_eq!(failed, ["step integrity"], "{out}");

    let out = String::from_utf8_lossy(&people.stdout);
    assert_eq!(people.status.code(), Some(0), "{out}");
    assert!(
        out.contains("on drill-people: PASSED, all 7 lines"),
        "{out}"
    );

    let list = ripcord(&["drill", "list", "--server", &base, "--token-file", &token]).await;
    assert_eq!(list.status.code(), Some(0));
    let list = String::from_utf8_lossy(&list.stdout);
    let ids: Vec<(&str, &str)> = list
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0], cols[3])
        })
        .collect();
    assert_eq!(ids.len(), 3, "{list}");
    assert!(ids.contains(&("drill-drill-people-1", "passed")), "{list}");
    assert!(ids.contains(&("drill-drill-ok-1", "passed")), "{list}");
    assert!(ids.contains(&("drill-drill-late-1", "failed")), "{list}");
    assert!(list.contains("failed: step integrity"), "{list}");
    server.shutdown().await.unwrap();
}

/// The drill without a script, and its people: `ripcord drill run` waits
/// while the on-call engineer acknowledges the page, runs the integrity
/// check, verifies the rollback and resolves the incident with `ripcord
/// incident`, each as soon as it can be done. `drill run` (as `starter`)'s
/// output; the engineer acts with `token`.
async fn people_act(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    (starter, token): (&str, &str),
    file: &Path,
) -> Output {
    let file = file.to_str().unwrap();
    let args = [
        "drill",
        "run",
        file,
        "--server",
        base,
        "--token-file",
        starter,
    ];
    let run = ripcord(&args);
    let act = async {
        let listed = "/v1/incidents?service=drill-people";
        let incident = poll(http, base, admin, listed, |v| {
            v["incidents"][0]["id"].as_str().map(str::to_string)
        })
        .await;
        let cli = |args: &[&str]| {
            let mut all: Vec<String> = ["incident"]
                .iter()
                .chain(args)
                .map(|a| a.to_string())
                .collect();
            all.extend(["--server", base, "--token-file", token].map(str::to_string));
            async move {
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                let out = ripcord(&refs).await;
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(0), "{refs:?}: {err}");
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        let shown = cli(&["ack", &incident]).await;
        assert!(shown.contains("(drill, major)"), "{shown}");
        // The checks and the verification wait for the rollback; the
        // verification watches the baseline for 2 s after it.
        let one = format!("/v1/incidents/{incident}");
        poll(http, base, admin, &one, |v| {
            v["mitigated_at"].as_str().map(str::to_string)
        })
        .await;
        cli(&["step", &incident, "integrity", "--note", "checked by hand"]).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        cli(&["step", &incident, "verify"]).await;
        cli(&["resolve", &incident, "--note", "drill over"]).await;
    };
    let (out, ()) = tokio::join!(run, act);
    out
}

/// Polls `path` until `found` finds something (30 s at most).
async fn poll<T>(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    path: &str,
    found: impl Fn(&Value) -> Option<T>,
) -> T {
    for _ in 0..150 {
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        if let Some(t) = found(&r.json::<Value>().await.unwrap()) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("nothing at {path} within 30 s");
}
