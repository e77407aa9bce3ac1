//! `ripcord template preview` as a user runs it.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn preview(args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("ripcord").unwrap();
    cmd.args(["template", "preview"]).args(args);
    cmd
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn previews_a_built_in_template_with_sample_facts() {
    preview(&["status_page"]).assert().success().stdout(
        "Subject: support-bot: investigating\n\
         \n\
         We are investigating degraded responses from support-bot for some requests.\n\
         Next update by 2026-11-26T09:44:00Z.\n",
    );
    // A policy without templates keeps the built-ins.
    let policy = repo("examples/conversational-agent/policy.yaml");
    preview(&["oncall", "--policy", policy.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "Subject: [CRITICAL] support-bot open: refusals-up on v13\n\n\
             support-bot v13: refusal rate above bound\n",
        ));
}

#[test]
fn previews_the_payload_a_channel_would_receive() {
    preview(&[
        "oncall",
        "--channel-kind",
        "pagerduty",
        "--event",
        "resolve",
    ])
    .assert()
    .success()
    .stdout(
        "{\n  \"dedup_key\": \"rel-42/refusals-up\",\n  \"event_action\": \"resolve\",\n  \
         \"routing_key\": \"<routing key>\"\n}\n",
    );
    let out = preview(&["stakeholders", "--channel-kind", "slack"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let slack: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        slack["text"],
        "Incident open: support-bot v13: refusal rate above bound"
    );
    assert_eq!(slack["blocks"][0]["type"], "header");
    assert_eq!(slack["blocks"][1]["text"]["type"], "mrkdwn");
}

#[test]
fn previews_a_template_file_with_given_facts() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("exec.j2");
    std::fs::write(
        &template,
        "Subject: {{ service }} needs you\n\n{{ incident.title }} ({{ incident.state }})\n",
    )
    .unwrap();
    let facts = dir.path().join("facts.json");
    std::fs::write(
        &facts,
        r#"{"service": "search", "incident": {"title": "ranking regressed", "state": "mitigated"}}"#,
    )
    .unwrap();
    preview(&[
        "exec",
        "--template-file",
        template.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stdout("Subject: search needs you\n\nranking regressed (mitigated)\n");
}

#[test]
fn a_template_error_points_at_the_line_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("exec.j2");
    std::fs::write(&template, "Subject: hi\n\nfine\n{{ incident.nope }}\n").unwrap();
    preview(&["exec", "--template-file", template.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:4: body undefined value",
            template.display()
        )));
    preview(&["nope"])
        .assert()
        .code(2)
        .stderr("error: no template named \"nope\" (known: oncall, stakeholders, status_page)\n");
}
