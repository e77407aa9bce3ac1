//! `ripcord drill run` against a real server on loopback, in real time:
//! two unattended drills side by side (one per service), the same file
//! but for one step, which the second scripts after its window. The first
//! exits 0 with every line passed, the second exits 1 with exactly that
//! line failed; `drill list` shows both.

use std::process::Output;
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
    for service in ["drill-ok", "drill-late"] {
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
        let late = if service == "drill-late" { "9s" } else { "2s" };
        std::fs::write(&file, drill(service, late)).unwrap();
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
    let (ok, late) = tokio::join!(run("drill-ok"), run("drill-late"));

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
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&("drill-drill-ok-1", "passed")), "{list}");
    assert!(ids.contains(&("drill-drill-late-1", "failed")), "{list}");
    assert!(list.contains("failed: step integrity"), "{list}");
    server.shutdown().await.unwrap();
}
