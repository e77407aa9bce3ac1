//! The OpenAPI document against the real server: it is OpenAPI 3.1 with
//! every `$ref` resolving, it lists exactly the routes the router has, every
//! status the server answers a probe with is documented, the security
//! claims hold, and real answers validate against their documented schemas.

use std::collections::BTreeSet;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The operations that need no token.
const OPEN: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/v1/cluster",
    "/metrics",
    "/openapi.json",
];

pub(crate) fn document() -> Value {
    ripcord_server::openapi::document()
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.push((at.to_string(), r.to_string()));
                }
                refs(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Follows one `$ref` (response or parameter objects) if there is one.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or(&Value::Null),
        None => value,
    }
}

/// A validator for `schema`, with the document's components reachable at
/// the same `#/components/...` pointers the document uses.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let wrapped = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&wrapped)
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

fn assert_valid(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let v = validator(doc, schema);
    let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{what}: {instance} does not match {schema}:\n{}",
        errors.join("\n")
    );
}

/// The documented JSON schema of one response.
fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let responses = &doc["paths"][path][method]["responses"];
    let response = deref(doc, &responses[status.to_string()]);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path}: no JSON schema documented for {status}"
    );
    schema
}

/// Checks an answer's status is documented and its body matches it.
pub(crate) fn check(doc: &Value, path: &str, method: &str, status: StatusCode, body: &Value) {
    let schema = response_schema(doc, path, method, status.as_u16());
    assert_valid(doc, schema, body, &format!("{method} {path} {status}"));
}

#[test]
fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "not OpenAPI 3.1: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(found.len() > 20, "suspiciously few $refs: {}", found.len());
    for (at, r) in &found {
        assert!(r.starts_with("#/"), "{at}: external $ref {r}");
        assert!(
            resolve(&doc, r).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }
    // Every schema compiles as JSON Schema 2020-12 (OpenAPI 3.1's dialect).
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for (name, schema) in schemas {
        let _ = validator(&doc, schema);
        assert!(
            jsonschema::meta::is_valid(schema),
            "components/schemas/{name} is not a valid JSON Schema"
        );
    }
    // Operations: unique ids, and every response has a description.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            for (status, r) in op["responses"].as_object().expect("responses") {
                assert!(
                    deref(&doc, r)["description"].is_string(),
                    "{method} {path} {status}: no description"
                );
            }
        }
    }
}

/// `(path, method)` of every `.route(...)` in the routers' sources: the
/// `routes()` of each module of `src/http/`, which the router merges (the
/// dashboard's pages under `src/http/ui/` are not API operations; its
/// routes have their own table, `auth::routes::UI_ROUTES`).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut source = String::new();
    for entry in std::fs::read_dir(dir).expect("src/http") {
        let path = entry.expect("an entry").path();
        // `ui/` is the dashboard: HTML pages, not API operations.
        if path.is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("a module");
        if let Some(from) = text.find("Router::new()") {
            let to = from + text[from..].find("\n}").expect("its end");
            source.push_str(&text[from..to]);
        }
    }
    let mut out = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).expect("a route path").to_string();
        let calls = chunk.replace(['\n', ' '], "");
        for method in METHODS {
            // `get(`, `.get(` and `,get(` — the method routers.
            if calls.contains(&format!(",{method}(")) || calls.contains(&format!(".{method}(")) {
                out.insert((path.clone(), method.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_route_of_the_router_is_documented() {
    let doc = document();
    let routes = routes_in_source();
    assert!(routes.len() >= 20, "parsed too few routes: {routes:?}");
    for (path, method) in &routes {
        assert!(
            doc["paths"][path.as_str()][method.as_str()].is_object(),
            "{} {path} is served but not documented",
            method.to_uppercase()
        );
    }
}

fn client() -> Client {
    Client::builder().no_proxy().build().expect("a client")
}

struct Api {
    base: String,
    token: String,
    client: Client,
}

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: bool,
        body: Option<(&str, String)>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String)> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if auth {
            request = request.bearer_auth(&self.token);
        }
        if let Some((content_type, text)) = body {
            request = request.header("content-type", content_type).body(text);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        Ok((status, headers, response.text().await?))
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let auth = !OPEN.contains(&path);
        let body = body.map(|b| ("application/json", b.to_string()));
        let (status, _, text) = self.send(method, path, auth, body).await?;
        let value = serde_json::from_str(&text)
            .map_err(|e| format!("{path}: {status} answered {text:?}: {e}"))?;
        Ok((status, value))
    }
}

fn event(version: &str, unit: &str, latency: Value) -> Value {
    json!({
        "ts": jiff::Timestamp::now().to_string(),
        "service": "support-bot",
        "version": version,
        "unit": unit,
        "segment": {"locale": "de"},
        "values": {"latency_ms": latency, "moderation_fail": 0, "hallucination": false},
        "extra": "ignored",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_as_documented() -> Result {
    let dir = tempfile::tempdir()?;
    let server = ripcord_server::start(ripcord_server::Config::new(
        dir.path().to_path_buf(),
        "127.0.0.1:0".parse()?,
    ))
    .await?;
    let api = Api {
        base: format!("http://{}", server.addr),
        token: std::fs::read_to_string(&server.token_path)?
            .trim()
            .to_string(),
        client: client(),
    };
    let doc = document();

    // The served document is this one.
    let (status, served) = api.json(Method::GET, "/openapi.json", None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, doc);

    answers_validate(&api, &doc).await?;
    every_documented_operation_exists(&api, &doc).await?;

    server.shutdown().await?;
    Ok(())
}

async fn answers_validate(api: &Api, doc: &Value) -> Result {
    let policy = include_str!("../../../examples/conversational-agent/policy.yaml");
    let path = "/v1/policies/{service}";

    // Policies: 201 new, 200 unchanged, 422 with diagnostics.
    let put_policy = |text: String| {
        api.send(
            Method::PUT,
            "/v1/policies/support-bot",
            true,
            Some(("application/yaml", text)),
        )
    };
    for expected in [StatusCode::CREATED, StatusCode::OK] {
        let (status, _, text) = put_policy(policy.to_string()).await?;
        assert_eq!(status, expected, "{text}");
        check(doc, path, "put", status, &serde_json::from_str(&text)?);
    }
    let (status, _, text) = put_policy(format!("{policy}\nnot_a_field: 1\n")).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    let body: Value = serde_json::from_str(&text)?;
    assert!(body["details"].as_array().is_some_and(|d| !d.is_empty()));
    check(doc, path, "put", status, &body);
    let (status, headers, text) = api
        .send(Method::GET, "/v1/policies/support-bot", true, None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/yaml");
    assert_eq!(headers["ripcord-policy-version"], "1");
    assert_eq!(text, policy);
    let (status, body) = api
        .json(Method::GET, "/v1/policies/support-bot/versions", None)
        .await?;
    check(doc, "/v1/policies/{service}/versions", "get", status, &body);

    // Versions: 201, 200 identical, 409 conflicting, 400 unknown field.
    let path = "/v1/services/{service}/versions";
    let url = "/v1/services/support-bot/versions";
    for (body, expected) in [
        (
            json!({"version": "v1", "model_id": "m"}),
            StatusCode::CREATED,
        ),
        (json!({"version": "v1", "model_id": "m"}), StatusCode::OK),
        (
            json!({"version": "v1", "model_id": "other"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"version": "v3", "model_id": "m", "modelid": "typo"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"version": "v2", "model_id": "m", "weights_digest": "sha256:00",
                   "decoding": {"temperature": 0.2}, "training_datasets": ["d1"]}),
            StatusCode::CREATED,
        ),
    ] {
        let (status, answer) = api.json(Method::POST, url, Some(body.clone())).await?;
        assert_eq!(status, expected, "{body} → {answer}");
        check(doc, path, "post", status, &answer);
    }
    let (status, body) = api.json(Method::GET, url, None).await?;
    check(doc, path, "get", status, &body);
    let (status, body) = api
        .json(Method::GET, "/v1/services/support-bot/versions/v2", None)
        .await?;
    check(
        doc,
        "/v1/services/{service}/versions/{version}",
        "get",
        status,
        &body,
    );

    // Webhooks (the sink's name does not resolve; delivery just retries).
    let path = "/v1/services/{service}/webhooks";
    let url = "/v1/services/support-bot/webhooks";
    let (status, body) = api
        .json(
            Method::PUT,
            url,
            Some(json!({"sinks": [{"url": "http://hooks.invalid/hook"}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    check(doc, path, "put", status, &body);
    let (status, body) = api.json(Method::GET, url, None).await?;
    check(doc, path, "get", status, &body);

    // Releases: 422 for an unregistered version, 201, 409 while one runs.
    let (status, body) = api
        .json(
            Method::POST,
            "/v1/releases",
            Some(json!({"service": "support-bot", "baseline": "v1", "candidate": "v9"})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    check(doc, "/v1/releases", "post", status, &body);
    let start = json!({"service": "support-bot", "baseline": "v1", "candidate": "v2"});
    let (status, release) = api
        .json(Method::POST, "/v1/releases", Some(start.clone()))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{release}");
    check(doc, "/v1/releases", "post", status, &release);
    let id = release["id"].as_str().expect("an id").to_string();
    let (status, body) = api.json(Method::POST, "/v1/releases", Some(start)).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    check(doc, "/v1/releases", "post", status, &body);
    let (status, body) = api
        .json(Method::GET, &format!("/v1/releases/{id}"), None)
        .await?;
    check(doc, "/v1/releases/{id}", "get", status, &body);
    // (`series.rs` checks an answer with points against the schema too.)
    let series = format!("/v1/releases/{id}/series");
    let (status, body) = api.json(Method::GET, &series, None).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    check(doc, "/v1/releases/{id}/series", "get", status, &body);
    let (status, body) = api
        .json(Method::GET, &format!("{series}?limit=0"), None)
        .await?;
    check(doc, "/v1/releases/{id}/series", "get", status, &body);
    let (status, body) = api
        .json(Method::GET, "/v1/releases?service=support-bot", None)
        .await?;
    assert_eq!(body["releases"].as_array().map(Vec::len), Some(1));
    check(doc, "/v1/releases", "get", status, &body);

    // Assignment, with the documented formula.
    let (status, body) = api
        .json(
            Method::GET,
            "/v1/assign?service=support-bot&unit=u-81",
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    check(doc, "/v1/assign", "get", status, &body);
    assert_eq!(body["bucket"], 2575, "SHA-256(\"support-bot:u-81\")");
    let share = body["share"].as_f64().expect("share");
    let candidate = 2575.0 < share * 10_000.0;
    assert_eq!(
        body["variant"],
        if candidate { "candidate" } else { "baseline" }
    );
    assert_eq!(body["version"], if candidate { "v2" } else { "v1" });
    let (status, body) = api
        .json(Method::GET, "/v1/assign?service=support-bot", None)
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    check(doc, "/v1/assign", "get", status, &body);

    // Events: 202 with a rejected item, NDJSON, 400 with details.
    let path = "/v1/events";
    let events = json!([
        event("v1", "u-1", json!(812)),
        event("v2", "u-2", json!(640.5)),
        event("v2", "u-3", json!("fast")),
    ]);
    let (status, body) = api.json(Method::POST, path, Some(events)).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 2);
    check(doc, path, "post", status, &body);
    let ndjson = format!(
        "{}\n\n{}\n",
        event("v1", "u-4", json!(1)),
        event("v2", "u-5", json!(2))
    );
    let (status, _, text) = api
        .send(
            Method::POST,
            path,
            true,
            Some(("application/x-ndjson", ndjson)),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    check(doc, path, "post", status, &serde_json::from_str(&text)?);
    let (status, body) = api
        .json(
            Method::POST,
            path,
            Some(json!([event("v1", "u-6", json!(null))])),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"][0]["index"], 0);
    check(doc, path, "post", status, &body);

    // OFREP: one flag, bulk with ETag / 304, errors.
    let ctx = json!({"context": {"targetingKey": "u-81"}});
    let path = "/ofrep/v1/evaluate/flags/{key}";
    let (status, body) = api
        .json(
            Method::POST,
            "/ofrep/v1/evaluate/flags/support-bot",
            Some(ctx.clone()),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    check(doc, path, "post", status, &body);
    let (status, body) = api
        .json(
            Method::POST,
            "/ofrep/v1/evaluate/flags/nobody",
            Some(ctx.clone()),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    check(doc, path, "post", status, &body);
    let (status, body) = api
        .json(
            Method::POST,
            "/ofrep/v1/evaluate/flags/support-bot",
            Some(json!({"context": []})),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    check(doc, path, "post", status, &body);
    let path = "/ofrep/v1/evaluate/flags";
    let (status, headers, text) = api
        .send(
            Method::POST,
            path,
            true,
            Some(("application/json", ctx.to_string())),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    check(doc, path, "post", status, &serde_json::from_str(&text)?);
    let etag = headers["etag"].to_str()?.to_string();
    let response = api
        .client
        .post(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .header("if-none-match", &etag)
        .json(&ctx)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert!(doc["paths"][path]["post"]["responses"]["304"].is_object());

    // An action, its idempotent repeat, and the decisions it logged.
    let path = "/v1/releases/{id}/actions";
    let url = format!("/v1/releases/{id}/actions");
    let pause = json!({"action": "pause", "reason": "checking a report", "idempotency_key": "k1"});
    let (status, first) = api.json(Method::POST, &url, Some(pause.clone())).await?;
    assert_eq!(status, StatusCode::OK, "{first}");
    check(doc, path, "post", status, &first);
    let (status, again) = api.json(Method::POST, &url, Some(pause)).await?;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    let (status, body) = api
        .json(Method::POST, &url, Some(json!({"action": "pause"})))
        .await?;
    assert_eq!((status, &body["changed"]), (StatusCode::OK, &json!(false)));
    check(doc, path, "post", status, &body);
    let (status, body) = api
        .json(Method::POST, &url, Some(json!({"action": "explode"})))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    check(doc, path, "post", status, &body);

    let (status, headers, text) = api
        .send(Method::GET, "/v1/decisions?service=support-bot", true, None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let next: i64 = headers["ripcord-next-after"].to_str()?.parse()?;
    let decision = json!({"$ref": "#/components/schemas/Decision"});
    let mut lines = 0;
    for line in text.lines() {
        assert_valid(doc, &decision, &serde_json::from_str(line)?, "a decision");
        lines += 1;
    }
    assert!(lines > 0 && next > 0, "no decisions logged: {text:?}");
    let (status, headers, text) = api
        .send(
            Method::GET,
            &format!("/v1/decisions?service=support-bot&after={next}&limit=5"),
            true,
            None,
        )
        .await?;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ""));
    assert_eq!(headers["ripcord-next-after"], next.to_string().as_str());
    // A limit outside the documented range is refused, in the documented
    // shape (it used to be clamped while the schema said minimum 1).
    for limit in ["0", "100001", "-3"] {
        let (status, body) = api
            .json(
                Method::GET,
                &format!("/v1/decisions?service=support-bot&limit={limit}"),
                None,
            )
            .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["message"],
            format!("limit: {limit} is outside 1–100000")
        );
        check(doc, "/v1/decisions", "get", status, &body);
        let (status, body) = api
            .json(Method::GET, &format!("/v1/audit?limit={limit}"), None)
            .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    // The largest cursor is the end of the log, not an overflow (found
    // by scripts/schemathesis.sh: it was a 500).
    let (status, _, text) = api
        .send(
            Method::GET,
            "/v1/audit?after=9223372036854775807",
            true,
            None,
        )
        .await?;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ""));
    // A 403's code, `forbidden`, is one the Error schema lists.
    let (status, made) = api
        .json(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "look", "role": "viewer"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let viewer = Api {
        base: api.base.clone(),
        token: made["token"].as_str().unwrap_or_default().to_string(),
        client: client(),
    };
    let (status, body) = viewer
        .json(Method::POST, "/v1/releases", Some(json!({})))
        .await?;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    check(doc, "/v1/releases", "post", status, &body);

    // Error bodies: 404, 401, the fallback.
    let (status, body) = api
        .json(Method::GET, "/v1/releases/no-such-release", None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    check(doc, "/v1/releases/{id}", "get", status, &body);
    let (status, _, text) = api
        .send(
            Method::POST,
            "/v1/releases",
            false,
            Some(("application/json", "{}".into())),
        )
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    check(
        doc,
        "/v1/releases",
        "post",
        status,
        &serde_json::from_str(&text)?,
    );
    let (status, body) = api.json(Method::GET, "/v2/nothing", None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error = json!({"$ref": "#/components/schemas/Error"});
    assert_valid(doc, &error, &body, "the fallback");
    assert!(is_fallback(status, &body.to_string()));

    // Plain-text endpoints.
    for (url, text) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let (status, _, body) = api.send(Method::GET, url, false, None).await?;
        assert_eq!((status, body.as_str()), (StatusCode::OK, text));
    }
    let (status, headers, body) = api.send(Method::GET, "/metrics", false, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str()?.starts_with("text/plain"));
    assert!(body.contains("ripcord_"), "{body}");
    Ok(())
}

fn is_fallback(status: StatusCode, body: &str) -> bool {
    status == StatusCode::NOT_FOUND
        && serde_json::from_str::<Value>(body).is_ok_and(|b| {
            b["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no such endpoint"))
        })
}

fn sample(name: &str) -> &'static str {
    match name {
        "service" | "key" => "support-bot",
        "version" => "v1",
        "id" => "support-bot-1",
        "unit" => "u-81",
        "name" => "nobody",
        "step" => "acknowledge",
        other => panic!("no sample value for parameter {other}"),
    }
}

/// Sends a request to every documented operation: the route must exist,
/// the status must be documented, and the security claim must hold. The
/// bodies are `{}`, which every mutating operation refuses, so nothing
/// changes.
async fn every_documented_operation_exists(api: &Api, doc: &Value) -> Result {
    let paths = doc["paths"].as_object().expect("paths");
    let mut probed = 0;
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let mut url = path.clone();
            let mut query = Vec::new();
            let params = item["parameters"]
                .as_array()
                .into_iter()
                .chain(op["parameters"].as_array())
                .flatten();
            for p in params {
                let p = deref(doc, p);
                let name = p["name"].as_str().expect("a parameter name");
                match p["in"].as_str() {
                    Some("path") => url = url.replace(&format!("{{{name}}}"), sample(name)),
                    Some("query") if p["required"] == json!(true) => {
                        query.push(format!("{name}={}", sample(name)))
                    }
                    _ => {}
                }
            }
            assert!(
                !url.contains('{'),
                "{path}: a path parameter is undocumented"
            );
            if !query.is_empty() {
                url = format!("{url}?{}", query.join("&"));
            }
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearerAuth").is_some()));
            let m = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let body = (op.get("requestBody").is_some()).then(|| ("application/json", "{}".into()));
            let (status, _, text) = api.send(m.clone(), &url, secured, body.clone()).await?;
            let what = format!("{} {url}", method.to_uppercase());
            assert!(
                !is_fallback(status, &text),
                "{what}: documented but not routed"
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{what}: not routed");
            assert!(
                op["responses"][status.as_str()].is_object(),
                "{what}: answered {status} ({text}), which is not documented"
            );
            if secured {
                assert!(
                    op["responses"]["401"].is_object(),
                    "{what}: 401 undocumented"
                );
                let (status, _, _) = api.send(m, &url, false, body).await?;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} without a token");
                assert!(
                    op["responses"]["403"].is_object(),
                    "{what}: 403 undocumented"
                );
                assert!(
                    op["x-ripcord-permission"].is_string()
                        || op["x-ripcord-permission"].is_object(),
                    "{what}: no x-ripcord-permission"
                );
            } else {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{what}: needs a token");
                assert!(
                    OPEN.contains(&path.as_str()),
                    "{what}: only {OPEN:?} go without bearerAuth"
                );
            }
            probed += 1;
        }
    }
    assert_eq!(probed, routes_in_source().len(), "operations probed");
    Ok(())
}
