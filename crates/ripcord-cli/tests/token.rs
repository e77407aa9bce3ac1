//! `ripcord token` as an operator runs it next to a running `ripcord serve`
//! on the same data dir: a created token works at once, a revoked one fails
//! on its next request, and the audit log stays one verifiable chain.

use std::path::Path;
use std::process::Command;

use crate::support::{Serve, client};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ripcord");

/// Runs `ripcord token …` on `dir` with its config; (exit code, stdout,
/// stderr).
fn token(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(dir.join("ripcord.yaml"))
        .env("USER", "tester")
        .env_remove("RIPCORD_DATA_DIR")
        .output()
        .expect("running ripcord token");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn status(s: &Serve, method: &str, path: &str, token: &str) -> (u16, String) {
    let c = client().expect("a client");
    let request = match method {
        "PUT" => c.put(s.url(path)).body(include_str!(
            "../../../examples/conversational-agent/policy.yaml"
        )),
        _ => c.get(s.url(path)),
    };
    let r = request.bearer_auth(token).send().await.expect("a response");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_by_the_cli_works_against_the_running_server_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    // `ripcord serve` runs in the data dir, so it reads this file too.
    std::fs::write(
        dir.path().join("ripcord.yaml"),
        "roles:\n  auditor: {inherits: viewer, permissions: [audit_read]}\n",
    )
    .unwrap();
    let server = Serve::start(Path::new(BIN), dir.path(), false)
        .await
        .unwrap();

    let (code, out, err) = token(
        dir.path(),
        &[
            "create",
            "--name",
            "ci",
            "--role",
            "service",
            "--person",
            "ana",
            "--service",
            "support-bot",
            "--service",
            "search",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the token alone: {out:?}");
    let ci = lines[0].to_string();
    assert!(ci.starts_with("rc_") && ci.len() == 67, "{ci}");
    assert_eq!(
        err,
        "token \"ci\" (role service, person ana, for support-bot, search) is valid until \
         revoked; it is shown only now (the store keeps its SHA-256): send it as \
         `Authorization: Bearer <token>`\n"
    );
    // The service role may ask for assignments of its services (404: no
    // such service yet), not of others (403), and may not read releases.
    let (code, body) = status(&server, "GET", "/v1/assign?service=search&unit=u", &ci).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = status(&server, "GET", "/v1/assign?service=nobody&unit=u", &ci).await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = status(&server, "GET", "/v1/releases", &ci).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("role \\\"service\\\" lacks permission \\\"read\\\""),
        "{body}"
    );

    // A custom role from the config, with an expiry.
    let (code, out, err) = token(
        dir.path(),
        &[
            "create",
            "--name",
            "audrey",
            "--role",
            "auditor",
            "--expires",
            "30d",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let audrey = out.trim().to_string();
    assert!(
        err.contains("(role auditor, person audrey, for every service) is valid until 20"),
        "{err}"
    );
    let (code, audit) = status(&server, "GET", "/v1/audit", &audrey).await;
    assert_eq!(code, 200, "{audit}");
    let created: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["action"] == "token.create")
        .map(|r| json!([r["principal"], r["subject"], r["detail"]["role"]]))
        .collect();
    assert_eq!(
        created,
        [
            json!(["local:tester", "ci", "service"]),
            json!(["local:tester", "audrey", "auditor"])
        ]
    );

    // Mistakes name the flag.
    let (code, _, err) = token(dir.path(), &["create", "--name", "x", "--role", "auditer"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: --role: unknown role \"auditer\"; did you mean \"auditor\"?"),
        "{err}"
    );
    let (code, _, err) = token(dir.path(), &["create", "--name", "ci", "--role", "viewer"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--name: a token named \"ci\" exists already"),
        "{err}"
    );
    let (code, _, err) = token(
        dir.path(),
        &[
            "create",
            "--name",
            "y",
            "--role",
            "viewer",
            "--expires",
            "soon",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--expires: invalid duration \"soon\""),
        "{err}"
    );

    let (code, out, err) = token(dir.path(), &["list"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME", "ROLE", "STATE", "CREATED", "EXPIRES", "REVOKED", "CREATED", "BY", "PERSON",
            "SERVICES"
        ]
    );
    assert_eq!(rows[1][..3], ["audrey", "auditor", "active"]);
    assert_eq!(rows[2][..3], ["ci", "service", "active"]);
    assert_eq!(rows[2][rows[2].len() - 2..], ["ana", "support-bot,search"]);
    assert_eq!(rows.len(), 3);
    assert!(
        !out.contains(&ci[3..]) && !out.contains(&audrey[3..]),
        "{out}"
    );

    // Revoked while the server runs: the very next request fails.
    let (code, _, err) = token(dir.path(), &["revoke", "ci"]);
    assert_eq!(code, 0, "{err}");
    let (code, body) = status(&server, "GET", "/v1/assign?service=nobody&unit=u", &ci).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("token revoked at "), "{body}");
    let (code, _, err) = token(dir.path(), &["revoke", "nobody"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--name: there is no token named \"nobody\""),
        "{err}"
    );

    // The server keeps writing to the chain the CLI wrote to.
    let (code, body) = status(&server, "PUT", "/v1/policies/support-bot", &server.token).await;
    assert_eq!(code, 201, "{body}");
    let out = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
