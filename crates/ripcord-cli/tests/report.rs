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

/// The fixture incident classified under Article 73's 15-day class.
fn classified(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(INCIDENT).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["incident"]["regulatory"] = serde_json::json!({
        "framework": "EU AI Act Article 73", "class": "serious_incident",
        "class_description": "any other serious incident", "deadline_ms": 15 * 86_400_000_i64,
        "aware_at": "2026-11-20T10:30:00.000Z", "due_at": "2026-12-05T10:30:00.000Z",
        "classified_at": "2026-11-20T11:00:00.000Z", "classified_by": "sam",
        "affected": 12, "harm": "unsafe replies", "reports": []
    });
    let path = dir.join("incident.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path.to_string_lossy().to_string()
}

#[test]
fn the_regulatory_report_is_written_as_markdown_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let incident = classified(dir.path());
    let config = dir.path().join("ripcord.yaml");
    std::fs::write(
        &config,
        "regulatory:\n  provider: {name: Example AI GmbH, address: Berlin, contact: c@example.eu}\n  systems:\n    support-bot: {name: Support assistant, registration: EU-DB-7}\n",
    )
    .unwrap();
    let out = dir.path().join("art73.md");
    let args = [
        "report",
        "inc-20261120-1",
        "--format",
        "regulatory",
        "--incident-file",
        &incident,
        "--decisions",
        DECISIONS,
        "--config",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let (code, _, err) = ripcord(&args);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("art73.json")).unwrap())
            .unwrap();
    assert_eq!(json["id"], "inc-20261120-1/draft");
    assert_eq!(json["stage"], serde_json::Value::Null);
    assert_eq!(json["provider"]["name"], "Example AI GmbH");
    assert_eq!(json["system"]["registration"], "EU-DB-7");
    assert_eq!(json["classification"]["deadline_days"], 15.0);
    assert_eq!(json["dates"]["aware_at"], "2026-11-20T10:30:00.000Z");
    assert_eq!(json["affected"]["persons"], 12);
    assert!(
        json["corrective_actions"]["rollback"]["started_at"].is_string(),
        "{json}"
    );
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(
        md.starts_with("# Regulatory incident report: inc-20261120-1 (draft)"),
        "{md}"
    );
    assert!(md.contains("| registration | EU-DB-7 |"), "{md}");
    assert!(md.contains("| period | 15 days from awareness |"), "{md}");
    // On standard output: the markdown, then the JSON.
    let (code, stdout, err) = ripcord(&args[..args.len() - 2]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.starts_with(&md), "{stdout}");
    assert!(
        stdout.contains("## Machine-readable form\n\n```json\n{"),
        "{stdout}"
    );
}
