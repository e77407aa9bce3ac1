//! `ripcord serve` and `ripcord demo` as a user runs them: the real binary,
//! real signals, real loopback HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Kills the server if a test fails before it stops it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.1 GET, with a bearer token if given; returns the status
/// line and the body.
fn get(addr: &str, path: &str, token: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[test]
fn serve_makes_a_private_token_loads_policies_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(
        repo("examples/conversational-agent/policy.yaml"),
        policies.join("support-bot.yaml"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--policies")
        .arg(&policies)
        .env_remove("RIPCORD_LISTEN")
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let mut stderr = BufReader::new(guard.0.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert_eq!(
        first.trim(),
        format!(
            "created the admin token in {} (mode 0600); send it as `Authorization: Bearer <token>`",
            data.join("admin.token").display()
        )
    );
    let mut key_line = String::new();
    stderr.read_line(&mut key_line).unwrap();
    assert!(
        key_line.starts_with("audit checkpoints are signed with key "),
        "{key_line}"
    );
    let mut second = String::new();
    stderr.read_line(&mut second).unwrap();
    let addr = second
        .trim()
        .strip_prefix("ripcord serving on http://")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{second}"))
        .to_string();
    assert_eq!(
        get(&addr, "/healthz", None),
        ("HTTP/1.1 200 OK".into(), "ok\n".into())
    );
    let (status, _) = get(&addr, "/v1/policies/support-bot", None);
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let (status, yaml) = get(&addr, "/v1/policies/support-bot", Some(token.trim()));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(yaml.starts_with("# support-bot"), "{yaml}");

    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = guard.0.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert_eq!(
        rest,
        "shutting down: finishing requests in flight\nstopped; everything acknowledged is stored\n"
    );
}

#[test]
fn the_demo_ends_with_the_candidate_rolled_back() {
    let output = Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "ramp → 5%",
        "ramp → 25%",
        "-- v2 regresses: moderation failures ×4 --",
        "criterion_breached moderation_rel",
        "trigger_fired safety_regression",
        "rollback_stage → ",
        "verified: the candidate served",
        "rollback_complete → 0%",
        "final: support-bot-1 is rolled_back, v2 serves 0% of users",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in\n{stdout}");
    }
    // Staged: the first stage leaves part of the candidate's users on it.
    let first_stage = stdout
        .lines()
        .find(|l| l.contains("rollback_stage → "))
        .unwrap();
    assert!(!first_stage.ends_with("→ 0%"), "{first_stage}");
}
