//! The `ripcord` binary as a user runs it: real files, real exit codes.

use std::io::Write;
use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn ripcord() -> Command {
    Command::cargo_bin("ripcord").unwrap()
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

const POLICY: &str = "examples/conversational-agent/policy.yaml";
const STREAM: &str = "examples/conversational-agent/regression.ndjson.gz";

/// `ripcord replay --policy <example policy> --events <events> <flags>`.
fn replay(events: impl AsRef<std::ffi::OsStr>, flags: &[&str]) -> Command {
    let mut cmd = ripcord();
    cmd.arg("replay")
        .args(flags)
        .arg("--policy")
        .arg(repo(POLICY))
        .arg("--events")
        .arg(events);
    cmd
}

#[test]
fn replaying_the_example_regression_rolls_back_and_fails_the_pipeline() {
    replay(repo(STREAM), &[])
        .args(["--fail-on", "rollback"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "+28m      2026-11-20T10:28:00.114Z  criterion_breached moderation_rel",
        ))
        .stdout(predicate::str::contains("rollback_complete → 0%"))
        .stdout(predicate::str::contains(
            "release support-bot:v12->v13#1: rolled_back, candidate share 0%",
        ));
}

#[test]
fn without_fail_on_a_rollback_still_exits_zero() {
    replay(repo(STREAM), &[]).assert().code(0);
}

#[test]
fn ndjson_decisions_have_exactly_the_documented_fields() {
    let out = replay(repo(STREAM), &["--format", "ndjson"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            let kind = l["kind"].as_str().unwrap();
            match l["action"].as_str() {
                Some(a) => format!("{kind}:{a}"),
                None => kind.to_string(),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "action:ramp",
            "criterion_breached",
            "trigger_fired",
            "action:rollback_stage",
            "action:rollback_stage",
            "action:rollback_complete"
        ]
    );
    let stage = &lines[3];
    let mut keys: Vec<&str> = stage
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "at",
            "explanation",
            "idempotency_key",
            "kind",
            "service",
            "severity",
            "share",
            "trigger"
        ]
    );
    assert_eq!(stage["at"], "2026-11-20T10:28:00.114Z");
    assert_eq!(stage["share"], 0.1);
    assert_eq!(stage["severity"], "critical");
    assert_eq!(
        stage["idempotency_key"],
        "support-bot:v12->v13#1/rollback_stage/1"
    );
    assert_eq!(stage["explanation"]["release"], "support-bot:v12->v13#1");
    assert_eq!(lines[1]["explanation"]["criterion"], "moderation_rel");
    let evidence = &stage["explanation"]["evidence"][0];
    assert_eq!(evidence["criterion"], "moderation_rel");
    assert_eq!(evidence["bound"], "candidate ≤ 1.2 × baseline");
    assert_eq!(evidence["threshold"], 60.0);
    assert_eq!(evidence["confidence"], 0.95);
    assert_eq!(evidence["window"], "5m");
    assert!(evidence["statistic"].as_f64().unwrap() >= 60.0);
    assert!(evidence["samples"]["candidate"]["n"].as_f64().unwrap() > 500.0);
    assert!(evidence["interval"][0].as_f64().unwrap() > 1.2);
    assert!(evidence["interval"][1].is_null());
}

fn write_temp(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f
}

const GOOD: &str = r#"{"ts":"2026-11-20T10:00:00.120Z","service":"support-bot","version":"v13","unit":"u-81","segment":{"locale":"de"},"values":{"outputs":1,"moderation_fail":0,"latency_ms":812.0}}"#;
const RELEASE: &str = r#"{"ts":"2026-11-20T10:00:00Z","release":{"service":"support-bot","baseline":"v12","candidate":"v13","share":0.05}}"#;

#[test]
fn a_malformed_line_stops_replay_with_its_line_and_field() {
    let bad = GOOD.replace("812.0", "\"fast\"");
    let events = write_temp(&format!("{RELEASE}\n{GOOD}\n{bad}\n{GOOD}\n"));
    replay(events.path(), &[])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "error: line 3: values.latency_ms: expected a number, got \"fast\"",
        ));
}

#[test]
fn skip_invalid_goes_on_and_counts_what_it_skipped() {
    let bad = GOOD.replace("812.0", "\"fast\"");
    let events = write_temp(&format!("{RELEASE}\n{GOOD}\n{bad}\nnot json\n{GOOD}\n"));
    replay(events.path(), &["--skip-invalid"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "lines 5, events 2 (used 2), release lines 1",
        ))
        .stdout(predicate::str::contains(
            "not counted: 2 malformed (skipped)",
        ))
        .stdout(predicate::str::contains(
            "  line 3: values.latency_ms: expected a number, got \"fast\"",
        ))
        .stdout(predicate::str::contains(
            "  line 4: malformed JSON at column 2: expected ident",
        ));
}

#[test]
fn replay_reads_gzip_from_stdin_with_the_release_on_the_command_line() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(format!("{GOOD}\n{GOOD}\n").as_bytes())
        .unwrap();
    let bytes = gz.finish().unwrap();
    replay(
        "-",
        &["--baseline", "v12", "--candidate", "v13", "--share", "0.05"],
    )
    .write_stdin(bytes)
    .assert()
    .code(0)
    .stdout(predicate::str::contains(
        "lines 2, events 2 (used 2), release lines 0",
    ))
    .stdout(predicate::str::contains(
        "release support-bot:v12->v13#1: ramping",
    ));
}

const BROKEN_POLICY: &str = "service: support-bot
scenario: conversational-agent
criteria:
  moderation_rel: {signal: moderation_fial, max_ratio: 1.2, windw: 10m}
rollout:
  steps: [{share: 0.05}, {share: 1.5}]
";

#[test]
fn policy_check_reports_every_problem_and_exits_one() {
    let file = write_temp(BROKEN_POLICY);
    let name = file.path().display().to_string();
    let out = ripcord()
        .args(["policy", "check"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&name, "policy.yaml");
    assert_eq!(
        stderr,
        "\
policy.yaml:4:28: error: unknown signal `moderation_fial`
  |
4 |   moderation_rel: {signal: moderation_fial, max_ratio: 1.2, windw: 10m}
  |                            ^
  = at: criteria.moderation_rel.signal
  = help: did you mean `moderation_fail`?

policy.yaml:4:61: error: unknown field `windw`
  |
4 |   moderation_rel: {signal: moderation_fial, max_ratio: 1.2, windw: 10m}
  |                                                             ^
  = at: criteria.moderation_rel
  = help: did you mean `window`?

policy.yaml:6:34: error: must be in (0, 1], got 1.5
  |
6 |   steps: [{share: 0.05}, {share: 1.5}]
  |                                  ^
  = at: rollout.steps[1].share
policy.yaml: 3 problem(s)
"
    );
}

#[test]
fn policy_check_passes_the_examples() {
    ripcord()
        .args(["policy", "check"])
        .arg(repo("examples/conversational-agent/policy.yaml"))
        .arg(repo("examples/image-generator/policy.yaml"))
        .arg(repo("examples/data-augmentation/policy.yaml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "ok — service support-bot, 6 signals, 12 criteria, 6 triggers, 3 rollout steps",
        ));
}

#[test]
fn policy_schema_is_a_json_schema() {
    let out = ripcord().args(["policy", "schema"]).output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["required"], serde_json::json!(["service"]));
}

#[test]
fn simulate_is_deterministic_and_every_line_reads_back() {
    let run = || {
        ripcord()
            .args([
                "simulate",
                "--duration",
                "5m",
                "--rate",
                "20/s",
                "--seed",
                "3",
                "--regression",
                "moderation_fail x3 from 1m",
            ])
            .output()
            .unwrap()
    };
    let (a, b) = (run(), run());
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().contains(
        r#""release":{"service":"support-bot","baseline":"v12","candidate":"v13","share":0.05}"#
    ));
    let mut n = 0;
    for line in lines {
        assert!(matches!(
            ripcord_core::ndjson::parse_line(line.as_bytes()),
            Ok(ripcord_core::ndjson::Line::Event(_))
        ));
        n += 1;
    }
    assert!(n > 4000 && n < 8000, "{n} events for 5 min at 20/s");
}

#[test]
fn simulate_refuses_a_bad_regression_clearly() {
    ripcord()
        .args(["simulate", "--regression", "moderation_fail x3 after 40m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected `from`, got \"after\""));
}

#[test]
fn policy_tests_pass_and_fail_with_exit_codes() {
    ripcord()
        .arg("test")
        .arg(repo("examples/data-augmentation/policy.test.yaml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "PASS  a 2-minute spike does not roll back",
        ))
        .stdout(predicate::str::contains("4 passed, 0 failed"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("examples/data-augmentation/policy.yaml"),
        dir.path().join("policy.yaml"),
    )
    .unwrap();
    let tests = dir.path().join("t.yaml");
    std::fs::write(
        &tests,
        "policy: policy.yaml\ntests:\n  - name: wrongly expects a rollback\n    duration: 10m\n    rate: 30/s\n    expect:\n      - {action: rollback_stage}\n",
    )
    .unwrap();
    ripcord()
        .arg("test")
        .arg(&tests)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL  wrongly expects a rollback"))
        .stdout(predicate::str::contains(
            "- expected action rollback_stage: none happened",
        ))
        .stdout(predicate::str::contains("0 passed, 1 failed"));
}

#[test]
fn every_example_policy_passes_its_own_tests() {
    ripcord()
        .arg("test")
        .arg(repo("examples/conversational-agent/policy.test.yaml"))
        .arg(repo("examples/image-generator/policy.test.yaml"))
        .arg(repo("examples/data-augmentation/policy.test.yaml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("13 passed, 0 failed"));
}

#[test]
fn an_overlong_line_is_refused_without_losing_the_lines_around_it() {
    let huge = format!(
        r#"{{"ts":"2026-11-20T10:00:01Z","pad":"{}"}}"#,
        "x".repeat(3 << 20)
    );
    let events = write_temp(&format!("{RELEASE}\n{GOOD}\n{huge}\n{GOOD}\n"));
    replay(events.path(), &["--skip-invalid"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "lines 4, events 2 (used 2), release lines 1",
        ))
        .stdout(predicate::str::contains(
            "  line 3: longer than 1 MiB; skipped unread",
        ));
}

#[test]
fn replaying_twice_prints_the_same_bytes() {
    let run = || {
        replay(repo(STREAM), &["--format", "ndjson"])
            .output()
            .unwrap()
            .stdout
    };
    let first = run();
    assert!(!first.is_empty());
    assert_eq!(first, run());
}

#[test]
fn the_detection_benchmark_prints_its_tables() {
    let out = ripcord()
        .current_dir(repo(""))
        .args([
            "bench",
            "detect",
            "--quick",
            "--only",
            "others",
            "--runs",
            "1",
            "--threads",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("<!-- cargo run --release -- bench detect --quick -->"));
    assert!(text.contains("## Detection delay: scores, latency, drift, fairness"));
    // One row per change in the table.
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("| score mean"))
            .count(),
        2
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("| fairness")).count(),
        2
    );
}

#[test]
fn the_detection_benchmark_says_where_its_traffic_is_missing() {
    ripcord()
        .args([
            "bench",
            "detect",
            "--quick",
            "--traffic",
            "/nonexistent",
            "--runs",
            "1",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "reading /nonexistent/nyc_taxi.csv (pass --traffic DIR)",
        ));
}
