//! The dashboard in a real browser: `ripcord serve` started for real, and
//! `dashboard.py` driving Debian's Chromium through Playwright against it
//! (both installed by `scripts/test`). The screenshots of the main pages,
//! at 1280×800, are kept in `target/artifacts/dashboard/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::Serve;

const BIN: &str = env!("CARGO_BIN_EXE_ripcord");

/// The custom role the scenario's release manager holds: a release
/// manager who is also on call (pauses, acknowledges, posts updates) and
/// reads the audit log, which the built-in `release_manager` does not.
const CONFIG: &str = "roles:\n  release_manager_on_call:\n    inherits: release_manager\n    permissions: [release_pause, incident_ack, incident_update, audit_read]\n";

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("artifacts/dashboard")
}

#[tokio::test]
async fn a_release_manager_watches_a_rollback_and_acts_from_the_dashboard() -> anyhow::Result<()> {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: run the tests with scripts/test, which installs it"
    );
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("ripcord.yaml");
    std::fs::write(&config, CONFIG)?;
    let config = config.to_string_lossy().to_string();
    // A series point a second: the story lasts seconds, not hours.
    let args = ["--config", &config, "--series-every", "1s"];
    let serve = Serve::start_with(Path::new(BIN), dir.path(), &args, false).await?;
    let out = artifacts();
    std::fs::create_dir_all(&out)?;
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let run = tokio::process::Command::new("python3")
        .arg(here.join("dashboard.py"))
        .env("RIPCORD_URL", &serve.base)
        .env("RIPCORD_ADMIN", &serve.token)
        .env(
            "RIPCORD_POLICY",
            here.join("fixtures/dashboard-policy.yaml"),
        )
        .env("RIPCORD_ARTIFACTS", &out)
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "dashboard.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for page in [
        "login",
        "releases-viewer",
        "releases",
        "release-before",
        "release-rolled-back",
        "release-timeline",
        "release-paused",
        "incident-open",
        "incident-acknowledged",
        "report",
        "audit",
        "policy-diff",
    ] {
        let png = out.join(format!("{page}.png"));
        let bytes = std::fs::read(&png)?;
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{} is not a screenshot",
            png.display()
        );
    }
    Ok(())
}
