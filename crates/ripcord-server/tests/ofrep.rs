//! OFREP against a real server on loopback: the PyPI OpenFeature SDK with
//! its OFREP provider agrees with `/v1/assign` on every unit, and the
//! protocol's errors, ETag and 304 behave as the OFREP OpenAPI document
//! (open-feature/protocol, service/openapi.yaml) says.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{Result, Running, repo_root, require_python, start};
use serde_json::{Value, json};

const UNITS: usize = 500;

/// Share of candidates among `UNITS` units at a 30% release: the expected
/// fraction ± 6.5 percentage points. The binomial standard deviation is
/// sqrt(0.3·0.7/500) ≈ 2.05 pp, so this is ≈ ±3.2 σ. The bucketing is a
/// deterministic hash, so a given build either always passes or always
/// fails; the tolerance only says how far from 30% a sound hash may land.
const TOLERANCE_PP: f64 = 6.5;

/// POSTs to an OFREP endpoint (as the admin; evaluations need the
/// `assign` permission); the status, headers and body.
async fn ofrep(
    run: &Running,
    path: &str,
    body: &str,
    if_none_match: Option<&str>,
) -> Result<(u16, reqwest::header::HeaderMap, String)> {
    let mut request = run
        .http
        .post(run.url(path))
        .bearer_auth(&run.token)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let r = request.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Ok((status, headers, r.text().await?))
}

async fn ofrep_json(run: &Running, path: &str, body: &str) -> Result<(u16, Value)> {
    let (status, _, text) = ofrep(run, path, body, None).await?;
    let value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}: {text:?}"))?;
    Ok((status, value))
}

async fn assign(run: &Running, unit: &str) -> Result<Value> {
    run.get_json(&format!("/v1/assign?service=support-bot&unit={unit}"))
        .await
}

/// An OFREP error body: exactly `errorCode`, a non-empty `errorDetails` and,
/// for single-flag evaluations, the `key`.
fn assert_failure(body: &Value, key: Option<&str>, code: &str) {
    assert_eq!(body["errorCode"], json!(code), "{body}");
    assert!(
        body["errorDetails"].as_str().is_some_and(|d| !d.is_empty()),
        "errorDetails: {body}"
    );
    let fields = body.as_object().map_or(0, |o| o.len());
    match key {
        Some(k) => {
            assert_eq!(body["key"], json!(k), "{body}");
            assert_eq!(fields, 3, "{body}");
        }
        None => assert_eq!(fields, 2, "{body}"),
    }
}

/// A new token with the `service` role.
/// What the PyPI OpenFeature OFREP provider resolves, by unit, when
/// `ofrep_client.py` runs with `args` and `token`.
async fn python_client(args: &[&str], token: &str) -> Result<BTreeMap<String, Value>> {
    let script = repo_root().join("crates/ripcord-server/tests/ofrep_client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .env("RIPCORD_TOKEN", token)
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    assert!(
        output.status.success(),
        "{} failed ({}): {}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

async fn service_token(run: &Running) -> Result<String> {
    let (status, body) = run
        .post(
            "/v1/tokens",
            &json!({"name": "ofrep-client", "role": "service"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    Ok(body["token"].as_str().unwrap_or_default().to_string())
}

/// A token scoped to other services asks for `support-bot`: the flag does
/// not exist for it. The answer is the protocol's own `FLAG_NOT_FOUND`
/// (not ripcord's error shape), so the OpenFeature SDK gives that one flag
/// its default value and the error code, and goes on serving the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_outside_the_tokens_scope_is_the_protocols_flag_not_found() -> Result {
    require_python("openfeature, openfeature.contrib.provider.ofrep");
    let run = start().await?;
    run.release_at_30().await?;
    let (status, made) = run
        .post(
            "/v1/tokens",
            &json!({"name": "elsewhere", "role": "service", "services": ["other-bot"]}),
        )
        .await?;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap_or_default().to_string();
    let r = run
        .http
        .post(run.url("/ofrep/v1/evaluate/flags/support-bot"))
        .bearer_auth(&token)
        .json(&json!({"context": {"targetingKey": "user-1"}}))
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await?;
    assert_failure(&body, Some("support-bot"), "FLAG_NOT_FOUND");
    assert_eq!(
        body["errorDetails"],
        "service: token \"elsewhere\" is scoped to other-bot; it may not act on \"support-bot\""
    );

    let resolved = python_client(&[&run.base, "3", "support-bot"], &token).await?;
    assert_eq!(resolved.len(), 3);
    for (unit, got) in &resolved {
        assert_eq!(got["value"], "DEFAULT", "{unit}: {got}");
        assert_eq!(got["error_code"], "FLAG_NOT_FOUND", "{unit}: {got}");
    }
    run.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_openfeature_client_agrees_with_assign_on_every_unit() -> Result {
    require_python("openfeature, openfeature.contrib.provider.ofrep");
    let run = start().await?;
    run.release_at_30().await?;

    // A producer's token: the `service` role may evaluate flags.
    let token = service_token(&run).await?;
    let resolved = python_client(&[&run.base, &UNITS.to_string()], &token).await?;
    assert_eq!(resolved.len(), UNITS);

    let mut candidates = 0usize;
    for i in 0..UNITS {
        let unit = format!("user-{i}");
        let got = &resolved[&unit];
        let want = assign(&run, &unit).await?;
        assert_eq!(got.get("error_code"), None, "{unit}: {got}");
        assert_eq!(got["value"], want["version"], "{unit}: {got} vs {want}");
        assert_eq!(got["variant"], want["variant"], "{unit}: {got} vs {want}");
        assert_eq!(got["reason"], json!("SPLIT"), "{unit}: {got}");
        let expected_version = if want["variant"] == json!("candidate") {
            candidates += 1;
            "v2"
        } else {
            "v1"
        };
        assert_eq!(got["value"], json!(expected_version), "{unit}: {got}");
    }
    let share = candidates as f64 / UNITS as f64;
    eprintln!(
        "OFREP via the Python SDK: {candidates}/{UNITS} units on the candidate ({:.1}%), \
         all {UNITS} equal to /v1/assign",
        share * 100.0
    );
    assert!(
        (share - 0.3).abs() * 100.0 <= TOLERANCE_PP,
        "{candidates}/{UNITS} = {:.1}% on the candidate, outside 30% ± {TOLERANCE_PP} pp",
        share * 100.0
    );
    run.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_etag_and_not_modified() -> Result {
    let run = start().await?;
    let single = "/ofrep/v1/evaluate/flags/support-bot";
    let bulk = "/ofrep/v1/evaluate/flags";
    let user = r#"{"context":{"targetingKey":"user-7","locale":"de"}}"#;

    // A service without a release is no flag yet; the bulk answer omits it.
    let (status, body) = ofrep_json(&run, single, user).await?;
    assert_eq!(status, 404, "{body}");
    assert_failure(&body, Some("support-bot"), "FLAG_NOT_FOUND");
    let (status, body) = ofrep_json(&run, bulk, user).await?;
    assert_eq!((status, body), (200, json!({"flags": []})));

    let release = run.release_at_30().await?;

    // A single evaluation: exactly the protocol's success shape, and the
    // same answer as /v1/assign.
    let want = assign(&run, "user-7").await?;
    let (status, body) = ofrep_json(&run, single, user).await?;
    assert_eq!(status, 200, "{body}");
    let expected = json!({
        "key": "support-bot",
        "value": want["version"],
        "variant": want["variant"],
        "reason": "SPLIT",
        "metadata": {"release": release, "share": 0.3, "bucket": want["bucket"]},
    });
    assert_eq!(body, expected);

    // Errors: 400 with the protocol's codes, 404 for an unknown flag.
    for (request, code) in [
        (r#"{"context":{}}"#, "TARGETING_KEY_MISSING"),
        (
            r#"{"context":{"targetingKey":""}}"#,
            "TARGETING_KEY_MISSING",
        ),
        (r#"{}"#, "TARGETING_KEY_MISSING"),
        ("", "TARGETING_KEY_MISSING"),
        (r#"{"context":{"targetingKey":7}}"#, "INVALID_CONTEXT"),
        (r#"{"context":"user-7"}"#, "INVALID_CONTEXT"),
        (r#"{"context":{"targetingKey":"user-7""#, "PARSE_ERROR"),
        ("not json", "PARSE_ERROR"),
        (r#"["user-7"]"#, "PARSE_ERROR"),
    ] {
        let (status, body) = ofrep_json(&run, single, request).await?;
        assert_eq!(status, 400, "{request:?}: {body}");
        assert_failure(&body, Some("support-bot"), code);
        let (status, body) = ofrep_json(&run, bulk, request).await?;
        assert_eq!(status, 400, "bulk {request:?}: {body}");
        assert_failure(&body, None, code);
    }
    let (status, body) = ofrep_json(&run, "/ofrep/v1/evaluate/flags/no-such-flag", user).await?;
    assert_eq!(status, 404, "{body}");
    assert_failure(&body, Some("no-such-flag"), "FLAG_NOT_FOUND");

    // Bulk: the same evaluation, with an ETag.
    let (status, headers, text) = ofrep(&run, bulk, user, None).await?;
    assert_eq!(status, 200, "{text}");
    let etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .ok_or("bulk evaluation without an ETag")?
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text)?,
        json!({"flags": [expected]})
    );

    // Unchanged: 304 with no body, for the tag itself, its weak form and a
    // list containing it; another tag gets the full answer again.
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let (status, headers, text) = ofrep(&run, bulk, user, Some(&tag)).await?;
        assert_eq!(status, 304, "If-None-Match: {tag}");
        assert_eq!(text, "");
        assert_eq!(
            headers.get("etag").and_then(|v| v.to_str().ok()),
            Some(etag.as_str())
        );
    }
    let (status, _, _) = ofrep(&run, bulk, user, Some("\"other\"")).await?;
    assert_eq!(status, 200);

    // A rollback changes the answer, so the ETag changes and the old tag
    // no longer gets a 304.
    let (status, body) = run
        .post(
            &format!("/v1/releases/{release}/actions"),
            &json!({"action": "rollback", "idempotency_key": "ofrep-test"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, headers, text) = ofrep(&run, bulk, user, Some(&etag)).await?;
    assert_eq!(status, 200, "after the rollback: {text}");
    let new_etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .ok_or("no ETag after the rollback")?
        .to_string();
    assert_ne!(new_etag, etag);
    let body: Value = serde_json::from_str(&text)?;
    assert_eq!(body["flags"][0]["value"], json!("v1"), "{body}");
    assert_eq!(body["flags"][0]["variant"], json!("baseline"), "{body}");
    assert_eq!(body["flags"][0]["reason"], json!("STATIC"), "{body}");
    assert_eq!(body["flags"][0]["metadata"]["share"], json!(0.0), "{body}");
    let (status, _, _) = ofrep(&run, bulk, user, Some(&new_etag)).await?;
    assert_eq!(status, 304);

    run.server.shutdown().await?;
    Ok(())
}
