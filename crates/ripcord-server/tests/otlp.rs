//! OTLP/HTTP into ripcord: the real OpenTelemetry Python SDK's exporter
//! (protobuf), OTLP/JSON and gzip, GenAI spans and evaluation events, and
//! bad input refused per item with reasons.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Value, json};

use crate::support::{Result, Running, repo_root, require_python, start};

const POLICY: &str = "srm: off
signals:
  hallucination: {category: safety, kind: rate, denominator: judged}
  latency_ms: {category: operational, kind: latency, unit: ms}
  error: {category: operational, kind: rate, denominator: outputs}
criteria:
  hallucination_rel: {signal: hallucination, max_ratio: 1.2, min_samples: 100, window: 10m, for: 0s}
triggers:
  safety: {when: hallucination_rel, severity: critical, action: pause}
rollout:
  steps:
    - {share: 0.5, hold: 1h}
";

async fn service(h: &Running, name: &str) -> Result<String> {
    h.put_policy(name, format!("service: {name}\n{POLICY}"))
        .await?;
    h.register_versions(name, &[("v1", "m-1"), ("v2", "m-2")])
        .await?;
    let (status, body) = h
        .post(
            "/v1/releases",
            &json!({"service": name, "baseline": "v1", "candidate": "v2"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    Ok(body["id"].as_str().unwrap_or_default().to_string())
}

async fn post(
    h: &Running,
    path: &str,
    kind: &str,
    body: Vec<u8>,
    gzip: bool,
) -> Result<reqwest::Response> {
    let mut r = h
        .http
        .post(h.url(path))
        .bearer_auth(&h.token)
        .header("content-type", kind);
    if gzip {
        r = r.header("content-encoding", "gzip");
    }
    Ok(r.body(body).send().await?)
}

async fn breached(h: &Running, service: &str) -> Result<bool> {
    let text = h
        .http
        .get(h.url(&format!("/v1/decisions?service={service}")))
        .bearer_auth(&h.token)
        .send()
        .await?
        .text()
        .await?;
    Ok(text.contains("\"criterion_breached\""))
}

#[tokio::test]
async fn the_python_sdks_exports_count_and_decide_like_the_same_data_as_ndjson() -> Result {
    require_python("opentelemetry.exporter.otlp.proto.http");
    let h = start().await?;
    let otel = service(&h, "otel-svc").await?;
    let twin = service(&h, "ndjson-svc").await?;
    let script = repo_root().join("crates/ripcord-server/tests/otlp_client.py");
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .args(["otel-svc", "ndjson-svc", "600"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", h.url("/otlp"))
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("Authorization=Bearer%20{}", h.token),
        )
        .env("NO_PROXY", "127.0.0.1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await??;
    assert!(
        out.status.success(),
        "otlp_client.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ndjson = out.stdout;
    let sent = post(&h, "/v1/events", "application/x-ndjson", ndjson, false).await?;
    assert_eq!(sent.status(), 202, "{}", sent.text().await?);
    let a = h.get_json(&format!("/v1/releases/{otel}")).await?;
    let b = h.get_json(&format!("/v1/releases/{twin}")).await?;
    // 600 spans and 600 judgements per version.
    assert_eq!(
        a["events"],
        json!({"baseline": 1200, "candidate": 1200}),
        "{a}"
    );
    assert_eq!(a["events"], b["events"]);
    // The comparison decides once the generation bucket of these outputs
    // closes, on a tick of the server's clock.
    for (service, how) in [("otel-svc", "OTLP"), ("ndjson-svc", "NDJSON")] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !breached(&h, service).await? {
            assert!(
                std::time::Instant::now() < deadline,
                "{how}: v2's judge failures did not breach"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let a = h.get_json(&format!("/v1/releases/{otel}")).await?;
    let b = h.get_json(&format!("/v1/releases/{twin}")).await?;
    assert_eq!(a["state"], "paused");
    assert_eq!(b["state"], "paused");
    Ok(())
}

/// An OTLP/JSON export: one GenAI span, one without a version, one that is
/// not GenAI.
fn json_spans(now_ns: u64) -> Value {
    let span = |name: &str, gen_ai: bool| {
        let mut attributes = vec![json!({"key": "user.id", "value": {"stringValue": "u1"}})];
        if gen_ai {
            attributes
                .push(json!({"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}));
        }
        json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": name, "kind": 1,
            "startTimeUnixNano": (now_ns - 200_000_000).to_string(),
            "endTimeUnixNano": now_ns.to_string(),
            "attributes": attributes,
        })
    };
    let resource = |version: Option<&str>| {
        let mut attributes =
            vec![json!({"key": "service.name", "value": {"stringValue": "otel-svc"}})];
        if let Some(v) = version {
            attributes.push(json!({"key": "service.version", "value": {"stringValue": v}}));
        }
        json!({"attributes": attributes})
    };
    json!({"resourceSpans": [
        {"resource": resource(Some("v2")), "scopeSpans": [{"spans": [span("chat", true), span("GET /health", false)]}]},
        {"resource": resource(None), "scopeSpans": [{"spans": [span("chat", true)]}]},
    ]})
}

fn now_ns() -> u64 {
    ripcord_server::clock::wall_now().0 as u64 * 1_000_000
}

#[tokio::test]
async fn otlp_json_and_gzip_are_read_and_bad_items_are_refused_with_reasons() -> Result {
    let h = start().await?;
    let otel = service(&h, "otel-svc").await?;
    let body = serde_json::to_vec(&json_spans(now_ns()))?;
    let r = post(
        &h,
        "/otlp/v1/traces",
        "application/json",
        body.clone(),
        false,
    )
    .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let answer: Value = r.json().await?;
    let partial = &answer["partialSuccess"];
    assert_eq!(
        partial["rejectedSpans"].to_string().trim_matches('"'),
        "1",
        "{answer}"
    );
    let message = partial["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("resource_spans[1] span 0 (chat): attribute service.version: missing"),
        "{message}"
    );
    let release = h.get_json(&format!("/v1/releases/{otel}")).await?;
    assert_eq!(
        release["events"],
        json!({"baseline": 0, "candidate": 1}),
        "only the GenAI span with a version"
    );

    // The same body gzipped.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &serde_json::to_vec(&json_spans(now_ns()))?)?;
    let r = post(
        &h,
        "/otlp/v1/traces",
        "application/json",
        gz.finish()?,
        true,
    )
    .await?;
    assert_eq!(r.status(), 200);
    let release = h.get_json(&format!("/v1/releases/{otel}")).await?;
    assert_eq!(release["events"]["candidate"], 2);

    // Not OTLP at all.
    let r = post(
        &h,
        "/otlp/v1/traces",
        "application/x-protobuf",
        b"\xff\xff\xff".to_vec(),
        false,
    )
    .await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("not an OTLP protobuf message"));
    let r = post(
        &h,
        "/otlp/v1/traces",
        "text/plain",
        b"hello".to_vec(),
        false,
    )
    .await?;
    assert_eq!(r.status(), 415);
    let r = post(
        &h,
        "/otlp/v1/logs",
        "application/json",
        b"{\"resourceLogs\": 7}".to_vec(),
        false,
    )
    .await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("not OTLP/JSON"));
    // Without a token, 401 like every ingest.
    let r = h
        .http
        .post(h.url("/otlp/v1/traces"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    Ok(())
}

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_evaluation_without_a_usable_score_is_refused_and_the_rest_kept() -> Result {
    let h = start().await?;
    let otel = service(&h, "otel-svc").await?;
    let text = |s: &str| any_value::Value::StringValue(s.into());
    let record = |name: &str, score: any_value::Value| LogRecord {
        time_unix_nano: now_ns(),
        event_name: "gen_ai.evaluation.result".into(),
        attributes: vec![
            attr("gen_ai.evaluation.name", text(name)),
            attr("gen_ai.evaluation.score.label", score),
            attr("user.id", text("u7")),
        ],
        ..Default::default()
    };
    let export = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    attr("service.name", text("otel-svc")),
                    attr("service.version", text("v1")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record("hallucination", text("fail")),
                    record("hallucination", any_value::Value::DoubleValue(f64::NAN)),
                    record("toxicity", text("fail")),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = post(
        &h,
        "/otlp/v1/logs",
        "application/x-protobuf",
        export.encode_to_vec(),
        false,
    )
    .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let answer =
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
            r.bytes().await?,
        )?;
    let partial = answer.partial_success.unwrap_or_default();
    assert_eq!(partial.rejected_log_records, 2);
    assert!(
        partial.error_message.contains(
            "log record 1 (gen_ai.evaluation.result): gen_ai.evaluation.score.label: missing"
        ) && partial
            .error_message
            .contains("\"toxicity\" is not a signal of otel-svc's policy"),
        "{}",
        partial.error_message
    );
    let release = h.get_json(&format!("/v1/releases/{otel}")).await?;
    assert_eq!(release["events"], json!({"baseline": 1, "candidate": 0}));
    Ok(())
}
