//! `ripcord report` end to end on the hand-made incident fixture: markdown
//! with its charts written beside it, HTML with the charts inline.

use std::process::Command;

const INCIDENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/incident.json");
const DECISIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/decisions.ndjson"
);

fn ripcord(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `ripcord report` of the fixture incident with `decisions`, and `rest`.
fn report(decisions: &str, rest: &[&str]) -> (i32, String, String) {
    let head = [
        "report",
        "inc-20261120-1",
        "--incident-file",
        INCIDENT,
        "--decisions",
        decisions,
    ];
    ripcord(&[&head[..], rest].concat())
}

#[test]
fn markdown_links_charts_written_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("review.md");
    let (code, _, err) = report(DECISIONS, &["--format", "md", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("![moderation_rel](review-moderation_rel.svg)"),
        "{text}"
    );
    // The other release's decision (09:00) is not this incident's: the
    // release start is the 10:00 ramp.
    assert!(
        text.contains("| Time to detect | 2026-11-20T10:00:00.000Z |"),
        "{text}"
    );
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "review-hallucination_rel.svg",
            "review-moderation_rel.svg",
            "review.md"
        ]
    );
    let svg = std::fs::read_to_string(dir.path().join("review-moderation_rel.svg")).unwrap();
    assert!(roxmltree::Document::parse(&svg).is_ok());
}

#[test]
fn markdown_on_stdout_writes_charts_only_into_the_dir_it_is_given() {
    let cwd = tempfile::tempdir().unwrap();
    let charts = tempfile::tempdir().unwrap();
    let args = [
        "report",
        "inc-20261120-1",
        "--incident-file",
        INCIDENT,
        "--decisions",
        DECISIONS,
        "--format",
        "md",
    ];
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ripcord"))
            .args(args)
            .args(extra)
            .current_dir(cwd.path())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--charts-dir"));
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing in the working directory"
    );
    let out = run(&["--charts-dir", charts.path().to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        charts
            .path()
            .join("inc-20261120-1-moderation_rel.svg")
            .exists()
    );
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

#[test]
fn html_goes_to_stdout_with_the_charts_inline() {
    let (code, out, err) = report(DECISIONS, &["--format", "html"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("<!doctype html>"));
    assert_eq!(out.matches("<svg ").count(), 2);
}

#[test]
fn a_missing_incident_or_store_is_an_error_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = ripcord(&[
        "report",
        "inc-1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no store here"), "{err}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"incident": {"id": "x"}}"#).unwrap();
    let (code, _, err) = ripcord(&[
        "report",
        "x",
        "--incident-file",
        bad.to_str().unwrap(),
        "--decisions",
        DECISIONS,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("incident document: incident: missing field `kind`"),
        "{err}"
    );
}

#[test]
fn a_decision_file_line_that_is_not_json_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("decisions.ndjson");
    let mut text = std::fs::read_to_string(DECISIONS).unwrap();
    text.push_str("{\"at\": \"2026-11-20T10:30:00Z\", oops\n");
    std::fs::write(&bad, &text).unwrap();
    let line = text.lines().count();
    let (code, _, err) = report(bad.to_str().unwrap(), &["--format", "md"]);
    assert_eq!(code, 2, "{err}");
    let at = format!("{}:{line}: not a JSON decision", bad.display());
    assert!(err.contains(&at), "{err}");
}
