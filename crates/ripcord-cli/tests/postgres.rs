//! The `ripcord` commands on a PostgreSQL store: a real `ripcord serve
//! --store postgres://…` process stores a policy, dies (SIGKILL) and
//! finds it again on restart; `ripcord token` and `ripcord audit` with
//! the same `--store` (or `RIPCORD_STORE`) work beside it on the same
//! database, and the audit log stays one verifiable chain.

use std::path::Path;
use std::process::Command;

use crate::support::{Serve, client};
use ripcord_store::testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_ripcord");

/// Runs `ripcord <args>` with `RIPCORD_STORE` set to `store`; (exit code,
/// stdout, stderr).
pub(crate) fn ripcord(store: &str, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RIPCORD_STORE", store)
        .env("USER", "tester")
        .env_remove("RIPCORD_DATA_DIR")
        .env_remove("RIPCORD_CONFIG")
        .output()
        .expect("running ripcord");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn status(s: &Serve, method: reqwest::Method, path: &str, token: &str) -> u16 {
    let c = client().expect("a client");
    let mut request = c.request(method.clone(), s.url(path)).bearer_auth(token);
    if method == reqwest::Method::PUT {
        request = request.body(include_str!(
            "../../../examples/conversational-agent/policy.yaml"
        ));
    }
    request.send().await.expect("a response").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_token_and_audit_share_one_postgres_store_across_a_kill() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(BIN);
    let mut server = Serve::start_on(bin, dir.path(), Some(&db.url), false)
        .await
        .unwrap();
    assert!(
        !dir.path().join("ripcord.db").exists(),
        "no SQLite file beside a PostgreSQL store"
    );
    let path = "/v1/policies/support-bot";
    assert_eq!(
        status(&server, reqwest::Method::PUT, path, &server.token).await,
        201
    );

    // A token made by the CLI (through RIPCORD_STORE) works at once.
    let data_dir = dir.path().to_str().unwrap();
    let (code, out, err) = ripcord(
        &db.url,
        dir.path(),
        &[
            "token",
            "create",
            "--name",
            "viewer-1",
            "--role",
            "viewer",
            "--data-dir",
            data_dir,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let viewer = out.trim().to_string();
    assert_eq!(
        status(&server, reqwest::Method::GET, path, &viewer).await,
        200
    );

    // Killed and started again: the policy and the token are where they were.
    server.kill9();
    let server = Serve::start_on(bin, dir.path(), Some(&db.url), false)
        .await
        .unwrap();
    assert_eq!(
        status(&server, reqwest::Method::GET, path, &viewer).await,
        200
    );
    drop(server);

    // The flag works as the environment does, and the log verifies.
    let (code, out, err) = ripcord("", dir.path(), &["token", "list", "--store", &db.url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("viewer-1"), "{out}");
    let (code, out, err) = ripcord("", dir.path(), &["audit", "verify", "--store", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
    let (code, out, err) = ripcord(&db.url, dir.path(), &["audit", "export"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.contains("\"token.create\"")), "{out}");
}

/// A store that cannot be reached is an error naming it, without the
/// password; a spec of an unknown kind names what is expected.
#[test]
fn an_unreachable_or_unknown_store_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = ripcord(
        "postgres://ana:s3cret@127.0.0.1:1/ripcord",
        dir.path(),
        &["token", "list"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot open the store postgres://ana:***@127.0.0.1:1/ripcord"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    let (code, _, err) = ripcord("mysql://x", dir.path(), &["audit", "export"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("expected postgres://USER@HOST:PORT/DB or sqlite://PATH"),
        "{err}"
    );
}
