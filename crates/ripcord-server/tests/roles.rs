//! Who may call what: every documented operation × every built-in role, a
//! custom role from the config and no token at all, against a real server.
//! The expected matrix is written out here, independently of the server's
//! route table, so that a wrong entry there fails here.

use std::collections::BTreeMap;

use crate::support::{Result, client, repo_root};
use reqwest::{Method, StatusCode};
use ripcord_server::auth::{RoleSpec, Roles};
use serde_json::{Value, json};

const ROLES: [&str; 7] = [
    "viewer",
    "service",
    "operator",
    "release_manager",
    "safety_lead",
    "admin",
    "auditor",
];

/// Everyone with a token that may read.
const READERS: &[&str] = &[
    "viewer",
    "operator",
    "release_manager",
    "safety_lead",
    "admin",
    "auditor",
];
const PRODUCERS: &[&str] = &["service", "admin"];
const ADMIN_ONLY: &[&str] = &["admin"];
const OPEN: &[&str] = &["anyone"];
/// Acknowledge, post status updates, run playbook steps.
const OPERATORS: &[&str] = &["operator", "safety_lead", "admin"];

/// Mitigate, resolve and review.
const CLOSERS: &[&str] = &["release_manager", "safety_lead", "admin"];
const APPROVERS: &[&str] = &["release_manager", "safety_lead", "admin"];

/// One row: the permission the operation needs ("-": none), method,
/// documented path, request body, and the roles allowed.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<Value>,
    &'static [&'static str],
);

/// The actions endpoint has one row per action: its permission depends on
/// the body.
fn expected() -> Vec<Row> {
    let action = |name: &str| Some(json!({"action": name}));
    vec![
        ("-", "get", "/healthz", None, OPEN),
        ("-", "get", "/readyz", None, OPEN),
        ("-", "get", "/v1/cluster", None, OPEN),
        ("-", "get", "/metrics", None, OPEN),
        ("-", "get", "/openapi.json", None, OPEN),
        ("ingest", "post", "/v1/events", Some(json!([])), PRODUCERS),
        (
            "ingest",
            "post",
            "/otlp/v1/traces",
            Some(json!({})),
            PRODUCERS,
        ),
        (
            "ingest",
            "post",
            "/otlp/v1/logs",
            Some(json!({})),
            PRODUCERS,
        ),
        (
            "policy_write",
            "put",
            "/v1/policies/{service}",
            Some(json!({})),
            ADMIN_ONLY,
        ),
        ("read", "get", "/v1/policies/{service}", None, READERS),
        (
            "read",
            "get",
            "/v1/policies/{service}/versions",
            None,
            READERS,
        ),
        (
            "manage",
            "post",
            "/v1/services/{service}/versions",
            Some(json!({})),
            ADMIN_ONLY,
        ),
        (
            "read",
            "get",
            "/v1/services/{service}/versions",
            None,
            READERS,
        ),
        (
            "read",
            "get",
            "/v1/services/{service}/versions/{version}",
            None,
            READERS,
        ),
        (
            "manage",
            "put",
            "/v1/services/{service}/webhooks",
            Some(json!({})),
            ADMIN_ONLY,
        ),
        (
            "read",
            "get",
            "/v1/services/{service}/webhooks",
            None,
            READERS,
        ),
        (
            "release_start",
            "post",
            "/v1/releases",
            Some(json!({})),
            &["release_manager", "admin"],
        ),
        ("read", "get", "/v1/releases", None, READERS),
        (
            "release_start",
            "post",
            "/v1/drills",
            Some(json!({})),
            &["release_manager", "admin"],
        ),
        ("read", "get", "/v1/drills", None, READERS),
        ("read", "get", "/v1/drills/{id}", None, READERS),
        ("read", "get", "/v1/releases/{id}", None, READERS),
        ("read", "get", "/v1/releases/{id}/series", None, READERS),
        (
            "release_pause",
            "post",
            "/v1/releases/{id}/actions",
            action("pause"),
            &["operator", "safety_lead", "admin"],
        ),
        (
            "release_pause",
            "post",
            "/v1/releases/{id}/actions",
            action("resume"),
            &["operator", "safety_lead", "admin"],
        ),
        (
            "release_request",
            "post",
            "/v1/releases/{id}/actions",
            action("promote"),
            &["release_manager", "admin"],
        ),
        (
            "release_request",
            "post",
            "/v1/releases/{id}/actions",
            action("re_release"),
            &["release_manager", "admin"],
        ),
        (
            "approve",
            "post",
            "/v1/releases/{id}/actions",
            action("approve"),
            &["release_manager", "safety_lead", "admin"],
        ),
        (
            "approve",
            "post",
            "/v1/releases/{id}/actions",
            action("reject"),
            &["release_manager", "safety_lead", "admin"],
        ),
        // Last of the actions: it ends the release.
        (
            "release_request",
            "post",
            "/v1/releases/{id}/actions",
            action("rollback"),
            &["release_manager", "admin"],
        ),
        ("assign", "get", "/v1/assign", None, PRODUCERS),
        ("read", "get", "/v1/decisions", None, READERS),
        (
            "assign",
            "post",
            "/ofrep/v1/evaluate/flags/{key}",
            Some(json!({"context": {"targetingKey": "u-1"}})),
            PRODUCERS,
        ),
        (
            "assign",
            "post",
            "/ofrep/v1/evaluate/flags",
            Some(json!({"context": {"targetingKey": "u-1"}})),
            PRODUCERS,
        ),
        ("read", "get", "/v1/incidents", None, READERS),
        (
            "incident_update",
            "post",
            "/v1/incidents",
            Some(json!({})),
            OPERATORS,
        ),
        ("read", "get", "/v1/incidents/{id}", None, READERS),
        (
            "read",
            "get",
            "/v1/services/{service}/reviews",
            None,
            READERS,
        ),
        ("read", "get", "/v1/reviews/{id}", None, READERS),
        (
            "policy_write",
            "post",
            "/v1/reviews/{id}/accept",
            Some(json!({})),
            ADMIN_ONLY,
        ),
        (
            "incident_ack",
            "post",
            "/v1/incidents/{id}/acknowledge",
            Some(json!({})),
            OPERATORS,
        ),
        (
            "incident_update",
            "post",
            "/v1/incidents/{id}/status",
            Some(json!({})),
            OPERATORS,
        ),
        (
            "incident_close",
            "post",
            "/v1/incidents/{id}/mitigate",
            Some(json!({})),
            CLOSERS,
        ),
        (
            "incident_close",
            "post",
            "/v1/incidents/{id}/resolve",
            Some(json!({})),
            CLOSERS,
        ),
        (
            "incident_close",
            "post",
            "/v1/incidents/{id}/review",
            Some(json!({})),
            CLOSERS,
        ),
        (
            "incident_update",
            "post",
            "/v1/incidents/{id}/steps/{step}",
            Some(json!({})),
            OPERATORS,
        ),
        (
            "incident_update",
            "post",
            "/v1/incidents/{id}/classify",
            Some(json!({"class": "serious_incident"})),
            OPERATORS,
        ),
        (
            "read",
            "get",
            "/v1/incidents/{id}/regulatory-reports",
            None,
            READERS,
        ),
        (
            "incident_update",
            "post",
            "/v1/incidents/{id}/regulatory-reports",
            Some(json!({"stage": "initial"})),
            OPERATORS,
        ),
        (
            "read",
            "get",
            "/v1/incidents/{id}/regulatory-reports/draft",
            None,
            READERS,
        ),
        ("read", "get", "/v1/requests", None, READERS),
        ("read", "get", "/v1/requests/{id}", None, READERS),
        (
            "approve",
            "post",
            "/v1/requests/{id}/approve",
            Some(json!({})),
            APPROVERS,
        ),
        (
            "approve",
            "post",
            "/v1/requests/{id}/reject",
            Some(json!({})),
            APPROVERS,
        ),
        (
            "token_manage",
            "post",
            "/v1/tokens",
            Some(json!({})),
            ADMIN_ONLY,
        ),
        ("token_manage", "get", "/v1/tokens", None, ADMIN_ONLY),
        (
            "token_manage",
            "delete",
            "/v1/tokens/{name}",
            None,
            ADMIN_ONLY,
        ),
        (
            "audit_read",
            "get",
            "/v1/audit",
            None,
            &["admin", "auditor"],
        ),
        ("read", "get", "/v1/retention", None, READERS),
        ("retention", "post", "/v1/retention/run", None, ADMIN_ONLY),
        ("read", "get", "/v1/holds", None, READERS),
        (
            "retention",
            "post",
            "/v1/holds",
            Some(json!({})),
            ADMIN_ONLY,
        ),
        (
            "retention",
            "post",
            "/v1/holds/{id}/lift",
            Some(json!({})),
            ADMIN_ONLY,
        ),
        (
            "retention",
            "post",
            "/v1/purge",
            Some(json!({})),
            ADMIN_ONLY,
        ),
    ]
}

fn concrete(path: &str) -> String {
    let path = path
        .replace("{service}", "support-bot")
        .replace("{key}", "support-bot")
        .replace("{version}", "v1")
        .replace("{id}", "support-bot-1")
        .replace("{name}", "nobody")
        .replace("{step}", "acknowledge");
    match path.as_str() {
        "/v1/assign" => format!("{path}?service=support-bot&unit=u-1"),
        "/v1/decisions" => format!("{path}?service=support-bot"),
        _ => path,
    }
}

/// The policy with its `rights:` section (up to the next blank line) cut.
fn without_rights(policy: &str) -> String {
    let Some(start) = policy.find("\nrights:") else {
        return policy.to_string();
    };
    let end = policy[start + 1..]
        .find("\n\n")
        .map_or(policy.len(), |e| start + 1 + e);
    format!("{}{}", &policy[..start], &policy[end..])
}

/// The config's custom role: a viewer who may also read the audit log.
fn roles() -> Roles {
    let specs: BTreeMap<String, RoleSpec> =
        serde_saphyr::from_str("auditor: {inherits: viewer, permissions: [audit_read]}").unwrap();
    Roles::with_custom(&specs).unwrap()
}

struct Api {
    base: String,
    http: reqwest::Client,
    admin: String,
    server: ripcord_server::Server,
    dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Result<Api> {
        let dir = tempfile::tempdir()?;
        let mut config =
            ripcord_server::Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse()?);
        config.roles = roles();
        let server = ripcord_server::start(config).await?;
        let admin = std::fs::read_to_string(&server.token_path)?
            .trim()
            .to_string();
        Ok(Api {
            base: format!("http://{}", server.addr),
            http: client()?,
            admin,
            server,
            dir,
        })
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn as_admin(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let (status, answer) = self
            .call(method, path, Some(&self.admin), Some(&body))
            .await?;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        Ok(answer)
    }

    /// A new token for `role`, made through the API.
    async fn token(&self, name: &str, role: &str) -> Result<String> {
        let made = self
            .as_admin("post", "/v1/tokens", json!({"name": name, "role": role}))
            .await?;
        assert_eq!(made["role"], role, "{made}");
        Ok(made["token"].as_str().unwrap_or_default().to_string())
    }

    /// Policy, versions v1 and v2, and a release of v2 at 30%.
    async fn release(&self) -> Result {
        let example =
            std::fs::read_to_string(repo_root().join("examples/conversational-agent/policy.yaml"))?;
        // Without its decision rights: an action they put under approval
        // is refused to some roles by the policy, not by the route table
        // this test is about (tests/governance.rs covers the rights).
        let policy = without_rights(&example);
        let r = self
            .http
            .put(format!("{}/v1/policies/support-bot", self.base))
            .bearer_auth(&self.admin)
            .body(policy)
            .send()
            .await?;
        assert_eq!(r.status(), 201);
        for v in ["v1", "v2"] {
            let path = "/v1/services/support-bot/versions";
            self.as_admin("post", path, json!({"version": v, "model_id": "m"}))
                .await?;
        }
        let start = json!({"service": "support-bot", "baseline": "v1", "candidate": "v2",
                           "steps": [{"share": 0.3, "hold": "1h"}]});
        self.as_admin("post", "/v1/releases", start).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_by_every_role() -> Result {
    let api = Api::start().await?;
    api.release().await?;
    let mut tokens = BTreeMap::new();
    for role in ROLES {
        let token = match role {
            "admin" => api.admin.clone(),
            _ => api.token(&format!("{role}-1"), role).await?,
        };
        tokens.insert(role, token);
    }
    let table = expected();
    // Every documented operation has a row, and every row is documented.
    let doc = ripcord_server::openapi::document();
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.to_string(), path.clone()));
            }
        }
    }
    for (method, path) in &documented {
        assert!(
            table.iter().any(|(_, m, p, _, _)| m == method && p == path),
            "{method} {path} is documented but has no row in this test's table"
        );
    }
    for (_, m, p, _, _) in &table {
        assert!(
            documented.iter().any(|(dm, dp)| dm == m && dp == p),
            "{m} {p} is in the table but not documented"
        );
    }

    let mut checked = 0;
    for (permission, method, path, body, allowed) in &table {
        let url = concrete(path);
        let what = format!(
            "{} {url} {}",
            method.to_uppercase(),
            body.clone().unwrap_or_default()
        );
        let (status, answer) = api.call(method, &url, None, body.as_ref()).await?;
        if *allowed == OPEN {
            assert!(
                status.is_success(),
                "{what} without a token: {status} {answer}"
            );
        } else {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what} without a token: {answer}"
            );
            assert_eq!(answer["error"], "unauthorized", "{what}: {answer}");
        }
        for role in ROLES {
            let (status, answer) = api
                .call(method, &url, Some(&tokens[role]), body.as_ref())
                .await?;
            let may = *allowed == OPEN || allowed.contains(&role);
            if may {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{what} as {role} should be allowed: {status} {answer}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {role}: {answer}");
                let message = answer["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(&format!("role \"{role}\"")),
                    "{what} as {role}: the message does not name the role: {message}"
                );
                assert!(
                    message.contains(permission),
                    "{what} as {role}: the message does not name {permission}: {message}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, table.len() * ROLES.len());
    api.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_403_names_the_role_and_the_permission_exactly() -> Result {
    let api = Api::start().await?;
    api.release().await?;
    let viewer = api.token("vera", "viewer").await?;
    let (status, answer) = api
        .call(
            "put",
            "/v1/services/support-bot/webhooks",
            Some(&viewer),
            Some(&json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer,
        json!({"error": "forbidden", "message":
            "role \"viewer\" lacks permission \"manage\", which PUT /v1/services/{service}/webhooks needs"})
    );
    let operator = api.token("otto", "operator").await?;
    let (status, answer) = api
        .call(
            "post",
            "/v1/releases/support-bot-1/actions",
            Some(&operator),
            Some(&json!({"action": "rollback"})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer["message"],
        "role \"operator\" lacks permission \"release_request\", which the action \"rollback\" needs"
    );
    api.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_fails_on_the_very_next_call_and_an_expired_one_fails() -> Result {
    let api = Api::start().await?;
    api.release().await?;
    let token = api.token("temp", "viewer").await?;
    let (status, _) = api.call("get", "/v1/releases", Some(&token), None).await?;
    assert_eq!(status, StatusCode::OK);
    let revoked = api
        .as_admin("delete", "/v1/tokens/temp", json!(null))
        .await?;
    assert_eq!(revoked["state"], "revoked");
    let (status, answer) = api.call("get", "/v1/releases", Some(&token), None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Authorization: token revoked at ")
            && message.ends_with("(token \"temp\")"),
        "{message}"
    );
    // Revoking again answers with the first revocation.
    let again = api
        .as_admin("delete", "/v1/tokens/temp", json!(null))
        .await?;
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    // An expired token, stored as `ripcord token create --expires` would
    // have stored it an hour ago.
    let plain = "rc_expired-token-for-the-test";
    let now = ripcord_server::clock::wall_now().0;
    let record = ripcord_store::TokenRecord {
        name: "old".into(),
        role: "viewer".into(),
        hash: ripcord_core::audit::hex(&ripcord_server::auth::digest(plain)),
        created_at_ms: now - 7_200_000,
        expires_at_ms: Some(now - 3_600_000),
        revoked_at_ms: None,
        created_by: "admin".into(),
        person: "old".into(),
        services: Vec::new(),
    };
    let audit = ripcord_server::hub::audit(
        ripcord_core::Time(now),
        "admin",
        "token.create",
        "old",
        json!({}),
    );
    assert!(api.server.app.hub.store.put_token(&record, &audit).await?);
    let (status, answer) = api.call("get", "/v1/releases", Some(plain), None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let expected = format!(
        "Authorization: token expired at {} (token \"old\")",
        ripcord_core::Time(now - 3_600_000).to_rfc3339()
    );
    assert_eq!(answer["message"], expected);
    let list = api.as_admin("get", "/v1/tokens", json!(null)).await?;
    let states: Vec<(&str, &str)> = list["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or(""),
                t["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(states, [("old", "expired"), ("temp", "revoked")]);
    assert!(
        !list.to_string().contains(&record.hash),
        "the list shows a hash: {list}"
    );
    api.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_holds_no_token_only_its_digest() -> Result {
    let api = Api::start().await?;
    let tokens = [
        api.token("ci", "service").await?,
        api.token("ops", "operator").await?,
    ];
    let data = api.dir.path().to_path_buf();
    api.server.shutdown().await?;
    // The database and whatever its write-ahead log still holds. The last
    // connection closes in the background and may remove the log while
    // this looks: a file gone between listing and reading was checkpointed
    // into the database, so read again until a pass sees every file.
    let mut bytes = Vec::new();
    for _ in 0..50 {
        bytes.clear();
        let mut complete = true;
        for entry in std::fs::read_dir(&data)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if name.starts_with("ripcord.db") {
                match std::fs::read(&path) {
                    Ok(b) => bytes.extend(b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => complete = false,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if complete {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for token in &tokens {
        assert!(token.starts_with("rc_") && token.len() == 67, "{token}");
        assert!(!contains(token), "the token itself is in the store");
        assert!(
            !contains(&token[3..]),
            "the token's random part is in the store"
        );
        let digest = ripcord_core::audit::hex(&ripcord_server::auth::digest(token));
        assert!(
            contains(&digest),
            "the digest should be stored (the search works)"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_who_changed_the_policy_started_and_paused_the_release() -> Result {
    let api = Api::start().await?;
    api.release().await?;
    let alice = api.token("alice", "admin").await?;
    let auditor = api.token("audrey", "auditor").await?;
    let otto = api.token("otto", "operator").await?;
    let (status, answer) = api
        .call(
            "post",
            "/v1/releases/support-bot-1/actions",
            Some(&otto),
            Some(&json!({"action": "pause", "reason": "checking a report"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let policy =
        std::fs::read_to_string(repo_root().join("examples/conversational-agent/policy.yaml"))?;
    let changed = format!("{policy}\n# tightened after review\n");
    let r = api
        .http
        .put(format!("{}/v1/policies/support-bot", api.base))
        .bearer_auth(&alice)
        .body(changed)
        .send()
        .await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    let r = api
        .http
        .get(format!("{}/v1/audit", api.base))
        .bearer_auth(&auditor)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let text = r.text().await?;
    ripcord_core::audit::verify(&text).map_err(|b| format!("{b:?}"))?;
    let records: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?;
    let puts: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["action"] == "policy.put")
        .map(|r| {
            (
                r["principal"].as_str().unwrap_or(""),
                r["subject"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(puts, [("admin", "support-bot"), ("alice", "support-bot")]);
    let made: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["action"] == "token.create")
        .map(|r| {
            (
                r["principal"].as_str().unwrap_or(""),
                r["subject"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        made,
        [("admin", "alice"), ("admin", "audrey"), ("admin", "otto")]
    );
    let started = records.iter().find(|r| r["action"] == "release.start");
    assert_eq!(started.map(|r| &r["principal"]), Some(&json!("admin")));
    let paused = records
        .iter()
        .find(|r| r["action"] == "command.pause")
        .ok_or("no command.pause record")?;
    assert_eq!(
        (
            &paused["principal"],
            &paused["subject"],
            &paused["detail"]["reason"]
        ),
        (
            &json!("otto"),
            &json!("support-bot-1"),
            &json!("checking a report")
        )
    );
    api.server.shutdown().await?;
    Ok(())
}

/// A route the table does not list is refused, even to the admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_missing_from_the_table_is_refused() -> Result {
    let api = Api::start().await?;
    let app = api.server.app.clone();
    let router = axum::Router::new()
        .route("/v1/unlisted", axum::routing::get(|| async { "open?" }))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            ripcord_server::http::authorize::authorize::<ripcord_server::http::Shared>,
        ))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let r = api
        .http
        .get(format!("http://{addr}/v1/unlisted"))
        .bearer_auth(&api.admin)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await?;
    assert_eq!(
        body["message"],
        "no permission is defined for this route (GET /v1/unlisted); refused until one is"
    );
    api.server.shutdown().await?;
    Ok(())
}
