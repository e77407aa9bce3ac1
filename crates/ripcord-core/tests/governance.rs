//! The governance sections of the policy language: rights, incidents,
//! playbooks, templates and evidence load into exactly what they say, and
//! every mistake is reported with its path, line and a suggestion.

use ripcord_core::Dur;
use ripcord_core::policy::governance::*;
use ripcord_core::policy::*;

/// A policy with one trigger (`hallucination_up`) to hang governance on.
const HEAD: &str = "\
service: support-bot
signals:
  hallucination: {category: quality, kind: rate}
criteria:
  halluc: {signal: hallucination, max_ratio: 1.5}
triggers:
  hallucination_up: {when: halluc, severity: critical, action: rollback}
";

const FULL: &str = "\
rights:
  rollback:   {roles: [release_manager, safety_lead], quorum: 1, separation: true, within: 15m, on_timeout: hold}
  promote:    {roles: [release_manager], quorum: 2, separation: true, within: 1h, on_timeout: hold}
  re_release: {roles: [release_manager], quorum: 1, within: 30m, on_timeout: hold}   # separation defaults to true
incidents:
  ack: {critical: 5m, major: 15m, minor: 1h}
  escalation:
    - {after: 0s,  channels: [oncall-slack], template: oncall}
    - {after: 5m,  channels: [pager]}
    - {after: 15m, channels: [leads-email], template: stakeholders}
  status_every: 30m
playbooks:
  hallucination-spike:
    triggers: [hallucination_up]        # optional; absent = every trigger
    steps:
      - {name: acknowledge, kind: manual, owner: operator, within: 5m}
      - {name: tell-stakeholders, kind: communicate, owner: operator, within: 15m, template: stakeholders, channels: [leads-email]}
      - {name: roll-back, kind: action, owner: release_manager, within: 10m, action: rollback}
      - {name: integrity, kind: check, owner: operator, within: 30m, checks: [events_kept, baseline_assigned, store_integrity]}
      - {name: verify, kind: verify, owner: safety_lead, within: 1h, hold: 10m}
  every-incident:
    steps:
      - {name: status, kind: communicate, owner: operator, within: 30m, template: status_page, channels: [status]}
templates:
  stakeholders: {audience: stakeholders, subject: \"Incident {{ incident.id }}\", body: \"{{ incident.title }} on {{ service }}\"}
evidence:
  sample: 200
  redact: {drop: [prompt, response], hash: [unit, segment.user]}
";

fn load(governance: &str) -> Result<Policy, Diagnostics> {
    load_policy(&format!("{HEAD}{governance}"), "p.yaml")
}

/// Each problem as `line:column path: message [help]`; lines count from
/// the top of the policy, whose governance starts at line 8.
fn problems(governance: &str) -> Vec<String> {
    match load(governance) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .items
            .into_iter()
            .map(|i| {
                let help = i.help.map_or(String::new(), |h| format!(" [{h}]"));
                format!("{}:{} {}: {}{help}", i.line, i.column, i.path, i.message)
            })
            .collect(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn right(action: ActionName, roles: &[&str], quorum: u32, mins: i64) -> Right {
    Right {
        action,
        roles: strings(roles),
        quorum,
        separation: true,
        within: Dur::from_mins(mins),
        on_timeout: OnTimeout::Hold,
    }
}

fn step(name: &str, owner: &str, mins: i64, kind: StepKind) -> PlaybookStep {
    PlaybookStep {
        name: name.into(),
        owner: owner.into(),
        within: Dur::from_mins(mins),
        kind,
    }
}

fn expected() -> Governance {
    Governance {
        rights: vec![
            right(
                ActionName::Rollback,
                &["release_manager", "safety_lead"],
                1,
                15,
            ),
            right(ActionName::Promote, &["release_manager"], 2, 60),
            right(ActionName::ReRelease, &["release_manager"], 1, 30),
        ],
        incidents: IncidentRules {
            ack: AckDeadlines {
                critical: Dur::from_mins(5),
                major: Dur::from_mins(15),
                minor: Dur::from_mins(60),
            },
            escalation: vec![
                EscalationLevel {
                    after: Dur::ZERO,
                    channels: strings(&["oncall-slack"]),
                    template: Some("oncall".into()),
                },
                EscalationLevel {
                    after: Dur::from_mins(5),
                    channels: strings(&["pager"]),
                    template: None,
                },
                EscalationLevel {
                    after: Dur::from_mins(15),
                    channels: strings(&["leads-email"]),
                    template: Some("stakeholders".into()),
                },
            ],
            status_every: Some(Dur::from_mins(30)),
        },
        playbooks: vec![
            Playbook {
                name: "hallucination-spike".into(),
                triggers: strings(&["hallucination_up"]),
                steps: vec![
                    step("acknowledge", "operator", 5, StepKind::Manual),
                    step(
                        "tell-stakeholders",
                        "operator",
                        15,
                        StepKind::Communicate {
                            template: "stakeholders".into(),
                            channels: strings(&["leads-email"]),
                        },
                    ),
                    step(
                        "roll-back",
                        "release_manager",
                        10,
                        StepKind::Action {
                            action: ActionName::Rollback,
                        },
                    ),
                    step(
                        "integrity",
                        "operator",
                        30,
                        StepKind::Check {
                            checks: vec![
                                CheckKind::EventsKept,
                                CheckKind::BaselineAssigned,
                                CheckKind::StoreIntegrity,
                            ],
                        },
                    ),
                    step(
                        "verify",
                        "safety_lead",
                        60,
                        StepKind::Verify {
                            hold: Dur::from_mins(10),
                        },
                    ),
                ],
            },
            Playbook {
                name: "every-incident".into(),
                triggers: Vec::new(),
                steps: vec![step(
                    "status",
                    "operator",
                    30,
                    StepKind::Communicate {
                        template: "status_page".into(),
                        channels: strings(&["status"]),
                    },
                )],
            },
        ],
        templates: vec![TemplateDef {
            name: "stakeholders".into(),
            audience: Audience::Stakeholders,
            subject: Some("Incident {{ incident.id }}".into()),
            body: "{{ incident.title }} on {{ service }}".into(),
        }],
        evidence: EvidenceRules {
            sample: 200,
            drop: strings(&["prompt", "response"]),
            hash: strings(&["unit", "segment.user"]),
        },
        after_rollback: AfterRollback::default(),
    }
}

#[test]
fn the_full_example_loads_into_exactly_what_it_says() {
    let p = load(FULL).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(p.governance, expected());
}

#[test]
fn the_helpers_find_rights_playbooks_and_templates() {
    let g = load(FULL).unwrap().governance;
    assert_eq!(g.right(ActionName::Promote).map(|r| r.quorum), Some(2));
    assert_eq!(g.right(ActionName::Pause), None);
    let names = |t: &str| -> Vec<String> { g.playbooks_for(t).map(|p| p.name.clone()).collect() };
    assert_eq!(
        names("hallucination_up"),
        ["hallucination-spike", "every-incident"]
    );
    assert_eq!(names("other"), ["every-incident"]);
    assert_eq!(
        g.template("stakeholders").map(|t| t.audience),
        Some(Audience::Stakeholders)
    );
    assert_eq!(g.template("oncall"), None, "built-ins live in the server");
    assert_eq!(
        g.incidents.ack.for_severity(Severity::Major),
        Dur::from_mins(15)
    );
    let names: Vec<&str> = ActionName::ALL.iter().map(|a| a.as_str()).collect();
    assert_eq!(
        names,
        ["promote", "rollback", "re_release", "pause", "resume"]
    );
}

#[test]
fn a_policy_without_governance_gets_the_defaults() {
    let p = load("").unwrap();
    assert_eq!(p.governance, Governance::default());
    let d = Governance::default();
    assert_eq!(
        d.incidents.ack.for_severity(Severity::Critical),
        Dur::from_mins(5)
    );
    assert_eq!(
        d.incidents.ack.for_severity(Severity::Minor),
        Dur::from_mins(60)
    );
    assert_eq!(d.evidence.sample, 200);
    assert!(d.rights.is_empty() && d.playbooks.is_empty() && d.templates.is_empty());
    assert_eq!(d.incidents.status_every, None);
}

#[test]
fn partial_sections_keep_the_other_defaults() {
    let p =
        load("incidents:\n  ack: {major: 20m}\nevidence: {redact: {drop: [prompt]}}\n").unwrap();
    let g = p.governance;
    assert_eq!(
        g.incidents.ack,
        AckDeadlines {
            major: Dur::from_mins(20),
            ..AckDeadlines::default()
        }
    );
    assert_eq!(g.evidence.sample, 200);
    assert_eq!(g.evidence.drop, ["prompt"]);
    let p =
        load("rights:\n  pause: {roles: [operator], within: 1m, on_timeout: proceed}\n").unwrap();
    assert_eq!(
        p.governance.rights,
        [Right {
            action: ActionName::Pause,
            roles: strings(&["operator"]),
            quorum: 1,
            separation: true,
            within: Dur::from_mins(1),
            on_timeout: OnTimeout::Proceed,
        }]
    );
}

#[test]
fn the_conversational_agent_example_declares_governance() {
    let path = format!(
        "{}/../../examples/conversational-agent/policy.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let g = load_policy(&text, "policy.yaml").unwrap().governance;
    assert_eq!(
        g.right(ActionName::Promote),
        Some(&right(
            ActionName::Promote,
            &["release_manager", "safety_lead"],
            2,
            60
        ))
    );
    // Rolling back stays unrestricted: it is the safe direction.
    assert_eq!(g.right(ActionName::Rollback), None);
    assert_eq!(g.incidents.escalation.len(), 3);
    let steps: Vec<&str> = g
        .playbooks_for("safety_regression")
        .flat_map(|p| p.steps.iter().map(|s| s.name.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            "acknowledge",
            "tell-stakeholders",
            "roll-back",
            "integrity",
            "verify"
        ]
    );
    assert_eq!(g.playbooks_for("slow_answers").count(), 0);
    assert!(g.template("stakeholders").is_some());
}

#[test]
fn a_trigger_approval_takes_a_quorum() {
    let approval = |extra: &str| {
        let src = format!(
            "{HEAD}    approval: {{role: release_manager, within: 10m, on_timeout: proceed{extra}}}\n"
        );
        let src = src.replace(
            "  hallucination_up: {when: halluc, severity: critical, action: rollback}\n",
            "  hallucination_up:\n    when: halluc\n    action: rollback\n",
        );
        load_policy(&src, "p.yaml").map(|p| p.triggers[0].approval.clone())
    };
    let role = |quorum| Approval::Role {
        role: "release_manager".into(),
        within: Dur::from_mins(10),
        on_timeout: OnTimeout::Proceed,
        quorum,
    };
    assert_eq!(approval(""), Ok(role(1)));
    assert_eq!(approval(", quorum: 2"), Ok(role(2)));
    let err = approval(", quorum: 0").unwrap_err();
    assert_eq!(err.items.len(), 1);
    assert_eq!(
        (
            err.items[0].line,
            err.items[0].path.as_str(),
            err.items[0].message.as_str()
        ),
        (
            10,
            "triggers.hallucination_up.approval.quorum",
            "must be at least 1, got 0"
        )
    );
    let err = approval(", quorom: 2").unwrap_err();
    assert_eq!(err.items[0].help.as_deref(), Some("did you mean `quorum`?"));
}

#[test]
fn mistakes_in_rights_are_each_reported() {
    let src = "\
rights:
  rollback: {roles: [release_manager], quorom: 2, within: 15m, on_timeout: hold}
  promote: {roles: [], quorum: 0, within: 1h, on_timeout: hold}
  rolback: {roles: [\"release manager\"], within: 1h, on_timeout: wait}
  pause: {roles: [operator], separation: maybe, on_timeout: hold}
";
    assert_eq!(
        problems(src),
        [
            "9:40 rights.rollback: unknown field `quorom` [did you mean `quorum`?]",
            "10:20 rights.promote.roles: needs at least one role",
            "10:32 rights.promote.quorum: must be at least 1, got 0",
            "11:3 rights: unknown action `rolback` [did you mean `rollback`?]",
            "11:21 rights.rolback.roles: invalid role name \"release manager\" [a role is a letter followed by letters, digits, `_` or `-`]",
            "11:65 rights.rolback.on_timeout: unknown value `wait` [expected one of: proceed, hold]",
            "12:10 rights.pause: missing field `within`",
            "12:42 rights.pause.separation: expected true or false, got \"maybe\"",
        ]
    );
}

#[test]
fn mistakes_in_incidents_are_each_reported() {
    let src = "\
incidents:
  ack: {critical: 0s, majr: 1m}
  escalation:
    - {after: 5m, channels: [pager], template: oncal}
    - {after: 1m, channels: []}
    - {channels: [pager], template: nobody}
  status_every: 0
";
    assert_eq!(
        problems(src),
        [
            "9:19 incidents.ack.critical: must be longer than 0",
            "9:23 incidents.ack: unknown field `majr` [did you mean `major`?]",
            "11:48 incidents.escalation[0].template: unknown template `oncal` [did you mean `oncall`?]",
            "12:15 incidents.escalation[1].after: `after` must not decrease from level to level (5m then 1m)",
            "12:29 incidents.escalation[1].channels: must not be empty",
            "13:7 incidents.escalation[2]: missing field `after`",
            "13:37 incidents.escalation[2].template: unknown template `nobody` [declare it under `templates:` or use a built-in one: oncall, stakeholders, status_page]",
            "14:17 incidents.status_every: must be longer than 0",
        ]
    );
}

#[test]
fn mistakes_in_playbooks_are_each_reported() {
    let src = "\
playbooks:
  spike:
    triggers: [hallucination_upp]
    steps:
      - {name: a, kind: manual, owner: operator, within: 5m, hold: 1m}
      - {name: a, kind: communicate, owner: operator, within: 15m, template: stakeholders}
      - {name: b, kind: action, owner: release_manager, within: 10m, action: rollbak}
      - {name: c, kind: check, owner: operator, within: 30m, checks: [events_kept, store_integrty]}
      - {name: d, kind: verify, owner: \"safety lead\", within: 1h}
      - {name: e, kind: communicate, owner: operator, within: 1h, template: stakholders, channels: [x]}
      - {name: f, kind: wait, owner: operator}
  empty:
    triggers: []
    steps: []
";
    assert_eq!(
        problems(src),
        [
            "10:16 playbooks.spike.triggers: unknown trigger `hallucination_upp` [did you mean `hallucination_up`?]",
            "12:62 playbooks.spike.steps[0]: `hold` does not apply to a `manual` step",
            "13:9 playbooks.spike.steps[1]: a `communicate` step needs `channels`",
            "13:16 playbooks.spike.steps[1].name: step name `a` is used twice in this playbook",
            "14:78 playbooks.spike.steps[2].action: unknown value `rollbak` [did you mean `rollback`?]",
            "15:84 playbooks.spike.steps[3].checks: unknown check `store_integrty` [did you mean `store_integrity`?]",
            "16:9 playbooks.spike.steps[4]: a `verify` step needs `hold`",
            "16:40 playbooks.spike.steps[4].owner: invalid role name \"safety lead\" [a role is a letter followed by letters, digits, `_` or `-`]",
            "17:77 playbooks.spike.steps[5].template: unknown template `stakholders` [did you mean `stakeholders`?]",
            "18:9 playbooks.spike.steps[6]: missing field `within`",
            "18:25 playbooks.spike.steps[6].kind: unknown value `wait` [expected one of: manual, action, communicate, check, verify]",
            "20:15 playbooks.empty.triggers: must not be empty [leave `triggers` out to apply the playbook to every trigger]",
            "21:12 playbooks.empty.steps: needs at least one step",
        ]
    );
}

#[test]
fn a_playbook_may_name_a_trigger_of_the_scenario_preset() {
    let src = "service: s\nscenario: conversational-agent\nplaybooks:\n  p:\n    triggers: [safety_regression]\n    steps: [{name: a, kind: manual, owner: operator, within: 5m}]\n";
    let p = load_policy(src, "p.yaml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(p.governance.playbooks[0].triggers, ["safety_regression"]);
}

#[test]
fn a_template_that_is_not_jinja_is_reported_at_its_line() {
    let src = "\
templates:
  a:
    audience: oncall
    subject: \"{{ incident.id }\"
    body: |
      Incident {{ incident.id }} on {{ service }}.
        then {% endfor %}
  b:
    audience: pager
    body: \"one\\n{% if %}\"
  c:
    audience: status_page
";
    assert_eq!(
        problems(src),
        [
            "11:14 templates.a.subject: template syntax error: unexpected `}`, expected end of variable block",
            "14:17 templates.a.body: template syntax error: unknown statement endfor",
            "16:15 templates.b.audience: unknown value `pager` [expected one of: oncall, stakeholders, status_page]",
            "17:11 templates.b.body: template syntax error: unexpected end of block (line 2 of the template)",
            "19:5 templates.c: missing field `body`",
        ]
    );
    let rendered = load(src).unwrap_err().to_string();
    assert!(
        rendered.contains(
            "p.yaml:14:17: error: template syntax error: unknown statement endfor\n   |\n14 |         then {% endfor %}\n   |                 ^\n"
        ),
        "{rendered}"
    );
}

#[test]
fn a_declared_template_can_be_referenced() {
    let src = "\
incidents:
  escalation: [{after: 0s, channels: [pager], template: short}]
templates:
  short: {audience: oncall, body: \"{{ incident.id }}\"}
";
    let g = load(src).unwrap_or_else(|d| panic!("{d}")).governance;
    assert_eq!(g.incidents.escalation[0].template.as_deref(), Some("short"));
}

#[test]
fn mistakes_in_evidence_are_each_reported() {
    assert_eq!(
        problems(
            "evidence:\n  sample: -1\n  redact: {drop: [prompt], hash: [\"segment..user\"], keep: [x]}\n"
        ),
        [
            "9:11 evidence.sample: expected a whole number ≥ 0, got -1",
            "10:35 evidence.redact.hash: invalid field path \"segment..user\" [name a field of the event, with dots between levels: segment.user]",
            "10:53 evidence.redact: unknown field `keep` [expected one of: drop, hash]",
        ]
    );
    assert_eq!(
        problems(
            "evidence:\n  sample: 1000000\n  redact: {drop: [prompt], hash: [unit, prompt]}\n"
        ),
        [
            "9:11 evidence.sample: must be at most 100000, got 1000000",
            "10:34 evidence.redact.hash: `prompt` is both dropped and hashed [keep it in one list]",
        ]
    );
}

#[test]
fn after_rollback_lowers_its_keep_and_hold() {
    let p = load("after_rollback:\n  raw_events: {keep: 30d}\n  evidence: {hold: while_incident_open}\n  export:\n    - {to: safety-team, what: [evidence, decisions], channel: audit-hook}\n")
        .unwrap();
    let rule = &p.governance.after_rollback;
    assert_eq!(
        rule.exports,
        [Export {
            to: "safety-team".into(),
            what: vec![ExportPart::Evidence, ExportPart::Decisions],
            channel: "audit-hook".into(),
        }]
    );
    assert_eq!(rule.raw_events_keep, Some(Dur(30 * 86_400_000)));
    assert_eq!(rule.evidence_hold, EvidenceHold::WhileIncidentOpen);
    assert!(rule.is_set());
    let p = load("after_rollback:\n  evidence: {hold: until_reviewed}\n").unwrap();
    assert_eq!(p.governance.after_rollback.raw_events_keep, None);
    assert_eq!(
        p.governance.after_rollback.evidence_hold,
        EvidenceHold::UntilReviewed
    );
    assert!(!load("").unwrap().governance.after_rollback.is_set());
}

#[test]
fn mistakes_in_after_rollback_are_each_reported() {
    assert_eq!(
        problems(
            "after_rollback:\n  raw_events: {keep: 30days}\n  evidence: {hold: while_open}\n  exports: []\n"
        ),
        [
            "9:22 after_rollback.raw_events.keep: invalid duration \"30days\": use e.g. 30s, 10m, 1h30m, 500ms",
            "10:20 after_rollback.evidence.hold: unknown value `while_open` [did you mean `while_open_or_reported`?]",
            "11:3 after_rollback: unknown field `exports` [did you mean `export`?]",
        ]
    );
    assert_eq!(
        problems("after_rollback:\n  raw_events: {keep: 4000d}\n  evidence: {}\n"),
        [
            "9:22 after_rollback.raw_events.keep: must be between 0s and 3650d, got 96000h",
            "10:13 after_rollback.evidence: missing field `hold`",
        ]
    );
    assert_eq!(
        problems("after_rollback: {raw_events: 30d}\n"),
        ["8:30 after_rollback.raw_events: expected a mapping, got a string"]
    );
    assert_eq!(
        problems(
            "after_rollback:\n  export:\n    - {to: safety team, what: [evidence, evidence, logs], channel: h}\n    - {what: [], via: h}\n"
        ),
        [
            "10:12 after_rollback.export[0].to: invalid role name \"safety team\" [a role is a letter followed by letters, digits, `_` or `-`]",
            "10:42 after_rollback.export[0].what: `evidence` is given twice",
            "10:52 after_rollback.export[0].what: unknown value `logs` [expected one of: evidence, decisions]",
            "11:7 after_rollback.export[1]: missing field `to`",
            "11:7 after_rollback.export[1]: missing field `channel`",
            "11:14 after_rollback.export[1].what: must not be empty [one or more of: evidence, decisions]",
            "11:18 after_rollback.export[1]: unknown field `via` [expected one of: to, what, channel]",
        ]
    );
}

#[test]
fn an_unknown_top_level_section_suggests_the_governance_one() {
    assert_eq!(
        problems("playbook: {}\n"),
        ["8:1 : unknown field `playbook` [did you mean `playbooks`?]"]
    );
}

#[test]
fn the_governance_blocks_of_the_reference_are_valid() {
    let path = format!("{}/../../docs/policy.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let sections = [
        "rights:",
        "incidents:",
        "playbooks:",
        "templates:",
        "evidence:",
        "after_rollback:",
    ];
    let blocks: Vec<&str> = text
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| sections.iter().any(|s| b.starts_with(s)))
        .collect();
    assert_eq!(blocks.len(), 6);
    let src = format!(
        "service: s\nscenario: conversational-agent\n{}",
        blocks.concat()
    );
    if let Err(d) = load_policy(&src, "docs/policy.md") {
        panic!("{d}");
    }
}
