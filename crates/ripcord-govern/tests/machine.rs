//! The governance machine driven directly, on fixed times: timers set when
//! an incident opens, escalation when nobody acknowledges, a missed status
//! update, an overdue step, a channel that refuses a message, a request's
//! quorum with separation of duties and its expiry. Each test asserts the
//! exact effects.

use std::cell::RefCell;

use ripcord_core::decision::Samples;
use ripcord_core::policy::governance::{ActionName, Right, StepKind};
use ripcord_core::policy::{Category, OnTimeout, Policy, Severity, load_policy};
use ripcord_core::record::DecisionRecord;
use ripcord_core::{Decision, DecisionKind, Explanation};
use ripcord_core::{Dur, Time};
use ripcord_govern::machine::{self, cancel_paging, schedule};
use ripcord_govern::record::{
    ActionWord, EntryKind, Incident, IncidentKind, Request, RequestState, StepStatus,
};
use ripcord_govern::steps::{cite, complete_step, step_to_run};
use ripcord_govern::{
    ApprovalAsk, DocChange, Due, Effects, Evidence, Governance, Messenger, Metric, NewRequest,
    Notification, NotifyKind, Person, Refusal, ReleaseFacts, Sealed, Setting, StepOutcome, StepRun,
    TimerBody, TimerChange, vote,
};
use serde_json::json;

const POLICY: &str = "\
service: svc
srm: off
signals:
  moderation_fail: {category: safety, kind: rate, denominator: outputs}
criteria:
  moderation_rel: {signal: moderation_fail, max_ratio: 1.2, min_samples: 50, window: 30s, for: 0s}
triggers:
  safety:
    when: moderation_rel
    severity: critical
    action: pause
rollout:
  steps:
    - {share: 0.5, hold: 1h}
incidents:
  ack: {critical: 2s, major: 1h, minor: 1h}
  status_every: 30s
  escalation:
    - {after: 0s, channels: [chat], template: oncall}
    - {after: 1h, channels: [pager]}
playbooks:
  moderation:
    steps:
      - {name: look, kind: manual, owner: operator, within: 1h}
";

/// 2026-01-01T00:00:00Z.
const T0: Time = Time(1_767_225_600_000);

fn policy() -> Policy {
    load_policy(POLICY, "test policy").unwrap()
}

/// Accepts every channel but `broken`, and remembers what it accepted.
#[derive(Default)]
struct Inbox {
    got: RefCell<Vec<(String, NotifyKind)>>,
}

impl Messenger for Inbox {
    fn queue(&self, n: &Notification) -> Result<(), String> {
        if n.channel == "broken" {
            return Err("channel \"broken\" is not configured".into());
        }
        self.got.borrow_mut().push((n.channel.clone(), n.kind));
        Ok(())
    }
}

/// Every bundle has the same address.
struct Frozen;

impl Evidence for Frozen {
    fn freeze(&self, _: i64, _: Time) -> Option<Sealed> {
        Some(Sealed {
            address: "ab12".into(),
            bytes: b"bundle".to_vec(),
            events: 3,
            decisions: 1,
        })
    }
}

const RELEASE: ReleaseFacts = ReleaseFacts {
    id: String::new(),
    baseline: String::new(),
    candidate: String::new(),
    share: 0.5,
    policy_version: 7,
};

fn setting<'a>(now: Time, policy: &'a Policy, inbox: &'a Inbox) -> Setting<'a> {
    Setting {
        now,
        service: "svc",
        policy,
        policy_version: 7,
        release: None,
        drill: false,
        evidence: &Frozen,
        link_base: "http://ripcord",
        messenger: inbox,
    }
}

/// A critical safety incident opened at T0 by trigger `safety`, scheduled.
fn opened(policy: &Policy, inbox: &Inbox) -> (Governance, Incident, Effects) {
    let mut gov = Governance::default();
    let id = gov.next_incident_id("svc");
    let mut inc = Incident {
        severity: Severity::Critical,
        categories: vec![Category::Safety],
        triggers: vec!["safety".into()],
        title: "safety (critical) on svc".into(),
        ..Incident::opened(id, "svc", T0)
    };
    let mut fx = Effects::default();
    schedule(&setting(T0, policy, inbox), &mut inc, &mut fx);
    gov.store_active(&inc);
    (gov, inc, fx)
}

fn timer(subject: &str, due: Due) -> TimerBody {
    TimerBody {
        subject: subject.into(),
        due,
    }
}

fn stored(fx: &Effects) -> Vec<&Incident> {
    fx.docs
        .iter()
        .filter_map(|d| match d {
            DocChange::Incident(i) => Some(&**i),
            DocChange::Request(_) => None,
        })
        .collect()
}

/// A breach of `moderation_rel`, as the engine explains one.
fn moderation_evidence() -> ripcord_core::decision::Evidence {
    let samples = Samples { n: 50.0, sum: 17.0 };
    ripcord_core::decision::Evidence {
        criterion: "moderation_rel".into(),
        signal: "moderation_fail".into(),
        test: "a ratio test",
        bound: "candidate ≤ 1.2 × baseline".into(),
        statistic: 99.6,
        threshold: 20.0,
        confidence: 0.95,
        estimate: Some(3.1),
        interval: Some((1.8, f64::INFINITY)),
        window_estimate: None,
        window: Dur::from_secs(30),
        candidate: samples,
        baseline: Some(Samples::default()),
        window_candidate: samples,
        window_baseline: Some(Samples::default()),
        breached_for: Dur(0),
        breakdown: Vec::new(),
    }
}

#[test]
fn an_opened_incident_gets_its_deadlines_as_timers() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (_, inc, fx) = opened(&policy, &inbox);
    let at = |d: Dur| T0 + d;
    assert_eq!(
        fx.timers,
        [
            TimerChange::set("inc-svc-1", Due::Ack, at(Dur::from_secs(2))),
            TimerChange::set(
                "inc-svc-1",
                Due::Escalate { level: 1 },
                at(Dur::from_secs(3600))
            ),
            TimerChange::set("inc-svc-1", Due::Status, at(Dur::from_secs(30))),
            TimerChange::set(
                "inc-svc-1",
                Due::Step {
                    step: "look".into()
                },
                at(Dur::from_secs(3600))
            ),
        ]
    );
    assert_eq!(inc.ack_by.as_deref(), Some("2026-01-01T00:00:02.000Z"));
    assert_eq!(inc.steps[0].status, StepStatus::Pending);
    let last = inc.timeline.last().unwrap();
    assert_eq!(last.kind, EntryKind::Escalation);
    assert_eq!(
        last.summary,
        "acknowledgement due by 2026-01-01T00:00:02.000Z (critical incident)"
    );
}

#[test]
fn a_missed_acknowledgement_escalates_and_pages_the_next_level() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (mut gov, _, _) = opened(&policy, &inbox);
    let now = T0 + Dur::from_secs(2);
    let fx = gov.on_timer(
        &setting(now, &policy, &inbox),
        &timer("inc-svc-1", Due::Ack),
    );
    assert_eq!(
        *inbox.got.borrow(),
        [("pager".to_string(), NotifyKind::Escalate)]
    );
    assert_eq!(fx.notifications.len(), 1);
    assert_eq!(fx.notifications[0].facts["incident"]["escalation_level"], 1);
    assert_eq!(
        fx.metrics,
        [Metric::IncidentEscalated {
            kind: IncidentKind::Real
        }]
    );
    let [inc] = stored(&fx)[..] else {
        panic!("one incident stored: {:?}", fx.docs)
    };
    assert_eq!(inc.escalation_level, 1);
    let news: Vec<&str> = inc
        .timeline
        .iter()
        .rev()
        .take(2)
        .map(|e| e.summary.as_str())
        .collect();
    assert_eq!(
        news,
        [
            "escalate notification to pager (oncall)",
            "not acknowledged within the critical deadline; escalated to level 1",
        ]
    );
    assert_eq!(fx.audit.len(), 1);
    assert_eq!(fx.audit[0].action, "incident.timer");
    assert_eq!(fx.audit[0].actor, "engine");
    assert_eq!(gov.incidents[0].escalation_level, 1);
}

#[test]
fn an_acknowledged_incident_does_not_escalate_and_its_paging_is_cancelled() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (mut gov, mut inc, _) = opened(&policy, &inbox);
    inc.acknowledged_at = Some("2026-01-01T00:00:01Z".into());
    gov.store_active(&inc);
    let now = T0 + Dur::from_secs(2);
    let s = setting(now, &policy, &inbox);
    assert_eq!(
        gov.on_timer(&s, &timer("inc-svc-1", Due::Ack)),
        Effects::default()
    );
    let late = timer("inc-svc-1", Due::Escalate { level: 1 });
    assert_eq!(gov.on_timer(&s, &late), Effects::default());
    let mut fx = Effects::default();
    cancel_paging(&s, &inc, &mut fx);
    assert_eq!(
        fx.timers,
        [
            TimerChange::Cancel {
                id: "inc-svc-1/ack".into()
            },
            TimerChange::Cancel {
                id: "inc-svc-1/escalate/1".into()
            },
        ]
    );
    assert!(inbox.got.borrow().is_empty());
}

#[test]
fn a_missed_status_update_escalates_and_sets_the_next_one() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (mut gov, _, _) = opened(&policy, &inbox);
    let now = T0 + Dur::from_secs(30);
    let fx = gov.on_timer(
        &setting(now, &policy, &inbox),
        &timer("inc-svc-1", Due::Status),
    );
    assert_eq!(
        fx.timers,
        [TimerChange::set(
            "inc-svc-1",
            Due::Status,
            now + Dur::from_secs(30)
        )]
    );
    let inc = stored(&fx)[0];
    assert_eq!(
        inc.next_update_by.as_deref(),
        Some("2026-01-01T00:01:00.000Z")
    );
    assert!(inc.timeline.iter().any(|e| e.summary
        == "status update missed (was due by 2026-01-01T00:00:30.000Z); escalated to level 1"));
}

#[test]
fn an_overdue_step_is_marked_and_escalates_once_at_the_last_level() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (mut gov, mut inc, _) = opened(&policy, &inbox);
    inc.escalation_level = 1;
    gov.store_active(&inc);
    let now = T0 + Dur::from_secs(3600);
    let step = timer(
        "inc-svc-1",
        Due::Step {
            step: "look".into(),
        },
    );
    let fx = gov.on_timer(&setting(now, &policy, &inbox), &step);
    let inc = stored(&fx)[0];
    assert_eq!(inc.steps[0].status, StepStatus::Overdue);
    assert!(inc.timeline.iter().any(|e| e.summary
        == "playbook step look is overdue (owner operator); already at the last level 1, notified again"));
    // An overdue step is not overdue twice.
    let again = gov.on_timer(&setting(now, &policy, &inbox), &step);
    assert_eq!(again, Effects::default());
}

#[test]
fn a_channel_that_refuses_is_on_the_timeline_and_not_in_the_effects() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (_, mut inc, _) = opened(&policy, &inbox);
    let s = setting(T0, &policy, &inbox);
    let mut fx = Effects::default();
    let channels = ["broken".to_string(), "chat".to_string()];
    machine::notify(
        &s,
        &mut inc,
        (&channels, "stakeholders"),
        NotifyKind::Update,
        Some("hi"),
        &mut fx,
    );
    assert_eq!(fx.notifications.len(), 1);
    assert_eq!(fx.notifications[0].channel, "chat");
    assert_eq!(fx.notifications[0].facts["message"], "hi");
    let said: Vec<&str> = inc
        .timeline
        .iter()
        .rev()
        .take(2)
        .map(|e| e.summary.as_str())
        .collect();
    assert_eq!(
        said,
        [
            "update notification to chat (stakeholders)",
            "update notification to broken failed: channel \"broken\" is not configured",
        ]
    );
}

fn person<'a>(name: &'a str, role: &'a str) -> Person<'a> {
    Person {
        name,
        role,
        person: name,
    }
}

/// A rollback `ann` asked for, needing two of `sre` or `lead`, with
/// separation of duties, open for 10 minutes; logged on incident 1.
fn asked(gov: &mut Governance, s: &Setting, on_timeout: OnTimeout) -> (Request, Effects) {
    let mut fx = Effects::default();
    let mut req = gov.new_request(
        s,
        NewRequest {
            action: ActionWord::Rollback,
            trigger: None,
            incident: Some("inc-svc-1".into()),
            requested_by: "ann".into(),
            reason: Some("errors".into()),
            roles: vec!["sre".into(), "lead".into()],
            quorum: 2,
            separation: true,
            within: Dur::from_mins(10),
            on_timeout,
        },
    );
    req.requested_by_person = Some("ann".into());
    gov.log_request(s, &req, "approval requested", &mut fx);
    gov.requests.push(req.clone());
    (req, fx)
}

#[test]
fn a_request_reaches_its_quorum_only_with_two_other_people() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (mut gov, _, _) = opened(&policy, &inbox);
    let s = setting(T0, &policy, &inbox);
    let (mut req, fx) = asked(&mut gov, &s, OnTimeout::Hold);
    assert_eq!(req.id, "req-svc-1");
    assert_eq!(
        stored(&fx)[0].timeline.last().unwrap().summary,
        "approval requested: rollback (0 of 2 approvals by sre or lead, deadline 2026-01-01T00:10:00.000Z)"
    );
    let refused = |req: &mut Request, by| vote(&s, req, by, true, None).unwrap_err();
    assert_eq!(
        refused(&mut req, person("ann", "sre")),
        Refusal::Forbidden(
            "separation of duties: ann requested this rollback and cannot approve it".into()
        )
    );
    assert_eq!(
        refused(&mut req, person("cy", "viewer")),
        Refusal::Forbidden("approving rollback needs role sre or lead; cy has role viewer".into())
    );
    vote(&s, &mut req, person("bo", "sre"), true, None).unwrap();
    assert_eq!(req.state, RequestState::Pending);
    // Bo's second token is still Bo.
    let second = Person {
        name: "bo-laptop",
        role: "lead",
        person: "bo",
    };
    assert_eq!(
        refused(&mut req, second),
        Refusal::Conflict("bo (token bo-laptop) has already voted on request req-svc-1".into())
    );
    vote(&s, &mut req, person("di", "lead"), true, None).unwrap();
    assert_eq!(req.state, RequestState::Approved);
    assert_eq!(req.outcome.as_deref(), Some("approved by bo, di"));
    assert_eq!(
        refused(&mut req, person("ed", "sre")),
        Refusal::Conflict("request req-svc-1 is already approved".into())
    );
}

#[test]
fn a_request_expires_when_its_window_closes() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (mut gov, _, _) = opened(&policy, &inbox);
    let (req, _) = asked(&mut gov, &setting(T0, &policy, &inbox), OnTimeout::Proceed);
    let later = setting(T0 + Dur::from_mins(10), &policy, &inbox);
    let mut fx = Effects::default();
    let expired = gov.expire(&later, &req.id, &mut fx).unwrap();
    assert_eq!(expired.state, RequestState::Expired);
    assert_eq!(
        expired.outcome.as_deref(),
        Some("no quorum by 2026-01-01T00:10:00.000Z; the action proceeds as the policy says")
    );
    let [inc] = stored(&fx)[..] else {
        panic!("the incident's timeline is stored: {:?}", fx.docs)
    };
    assert_eq!(
        inc.timeline.last().unwrap().summary,
        "expired: rollback (0 of 2 approvals by sre or lead, deadline 2026-01-01T00:10:00.000Z)"
    );
    assert_eq!(fx.audit[0].action, "incident.timeline");
    assert!(fx.timers.is_empty() && fx.notifications.is_empty());
}

#[test]
fn a_fired_trigger_opens_an_incident_that_pages_level_zero() {
    let (policy, inbox) = (policy(), Inbox::default());
    let release = ReleaseFacts {
        id: "svc-1".into(),
        baseline: "v1".into(),
        candidate: "v2".into(),
        ..RELEASE
    };
    let s = Setting {
        release: Some(&release),
        ..setting(T0, &policy, &inbox)
    };
    let fired = Decision {
        at: T0,
        kind: DecisionKind::TriggerFired,
        service: "svc".into(),
        release: "svc:v1->v2#1".into(),
        criterion: None,
        trigger: Some("safety".into()),
        severity: Some(Severity::Critical),
        action: None,
        share: None,
        idempotency_key: None,
        explanation: Explanation {
            summary: "trigger safety fired".into(),
            evidence: vec![moderation_evidence()],
        },
    };
    let record = DecisionRecord::from(&fired).to_value();
    let mut gov = Governance::default();
    let fx = gov.on_decisions(
        &s,
        (&[fired], std::slice::from_ref(&record)),
        "engine",
        false,
    );
    let [inc] = stored(&fx)[..] else {
        panic!("one incident stored: {:?}", fx.docs)
    };
    assert_eq!(inc.id, "inc-svc-1");
    assert_eq!(inc.title, "safety (critical) on svc");
    assert_eq!(inc.release.as_deref(), Some("svc-1"));
    assert_eq!(inc.policy_version, 7);
    // The deciding signals are the decision's evidence records, as its
    // record has them.
    assert_eq!(inc.categories, [Category::Safety]);
    assert_eq!(
        Some(&inc.signals),
        record["explanation"]["evidence"].as_array()
    );
    assert_eq!(inc.evidence.as_deref(), Some("ab12"));
    assert_eq!(fx.blobs, [("ab12".to_string(), b"bundle".to_vec())]);
    let actions: Vec<&str> = fx.audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["evidence.freeze", "incident.open"]);
    assert_eq!(
        *inbox.got.borrow(),
        [("chat".to_string(), NotifyKind::Open)]
    );
    assert_eq!(fx.notifications[0].facts["release"]["candidate"], "v2");
    assert_eq!(fx.timers.len(), 4);
    assert_eq!(
        fx.metrics,
        [Metric::IncidentOpened {
            kind: IncidentKind::Real,
            severity: Severity::Critical
        }]
    );
    let kinds: Vec<EntryKind> = inc.timeline.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Signal,
            EntryKind::State,
            EntryKind::Evidence,
            EntryKind::Playbook,
            EntryKind::Escalation,
            EntryKind::Notification,
        ]
    );
    assert_eq!(gov.incidents.len(), 1);
}

/// The test policy with a communicate and a check step after `look`.
fn steps_policy() -> Policy {
    let text = POLICY.replace(
        "      - {name: look, kind: manual, owner: operator, within: 1h}\n",
        "      - {name: look, kind: manual, owner: operator, within: 1h}\n      \
         - {name: tell, kind: communicate, owner: operator, within: 1h, template: stakeholders, channels: [chat]}\n      \
         - {name: integrity, kind: check, owner: operator, within: 1h, checks: [events_kept]}\n",
    );
    load_policy(&text, "steps policy").unwrap()
}

fn run<'a>(name: &'a str, by: Person<'a>) -> StepRun<'a> {
    StepRun {
        name,
        note: Some("seen".into()),
        by,
    }
}

#[test]
fn a_step_is_run_by_its_owner_once_and_its_timer_is_cancelled() {
    let (policy, inbox) = (steps_policy(), Inbox::default());
    let (_, mut inc, _) = opened(&policy, &inbox);
    let s = setting(T0 + Dur::from_mins(5), &policy, &inbox);
    assert_eq!(
        step_to_run(&s, &inc, &run("look", person("vi", "viewer"))).unwrap_err(),
        Refusal::Forbidden("step look is owned by role operator; vi has role viewer".into())
    );
    assert_eq!(
        step_to_run(&s, &inc, &run("lok", person("ol", "operator"))).unwrap_err(),
        Refusal::NotFound(
            "incident inc-svc-1 has no playbook step \"lok\" (steps: look, tell, integrity)".into()
        )
    );
    let look = run("look", person("ol", "operator"));
    let kind = step_to_run(&s, &inc, &look).unwrap();
    assert_eq!(kind, StepKind::Manual);
    let mut fx = Effects::default();
    complete_step(&s, &mut inc, (look, &kind), None, &mut fx);
    assert_eq!(
        fx.timers,
        [TimerChange::Cancel {
            id: "inc-svc-1/step/look".into()
        }]
    );
    let step = &inc.steps[0];
    assert_eq!(
        (step.status, step.done_by.as_deref(), step.note.as_deref()),
        (StepStatus::Done, Some("ol"), Some("seen"))
    );
    assert_eq!(step.done_at.as_deref(), Some("2026-01-01T00:05:00.000Z"));
    let last = inc.timeline.last().unwrap();
    assert_eq!(
        (last.kind, last.summary.as_str()),
        (EntryKind::Playbook, "step look (manual) done by ol")
    );
    // An admin may run anyone's step, but not a done one.
    let again = run("look", person("ad", "admin"));
    assert_eq!(
        step_to_run(&s, &inc, &again).unwrap_err(),
        Refusal::Conflict("step look is already done".into())
    );
}

#[test]
fn a_communicate_step_sends_its_template_with_the_note_as_message() {
    let (policy, inbox) = (steps_policy(), Inbox::default());
    let (_, mut inc, _) = opened(&policy, &inbox);
    let s = setting(T0, &policy, &inbox);
    let tell = run("tell", person("ol", "operator"));
    let kind = step_to_run(&s, &inc, &tell).unwrap();
    let mut fx = Effects::default();
    complete_step(&s, &mut inc, (tell, &kind), None, &mut fx);
    assert_eq!(
        *inbox.got.borrow(),
        [("chat".to_string(), NotifyKind::Update)]
    );
    assert_eq!(fx.notifications[0].template, "stakeholders");
    assert_eq!(fx.notifications[0].facts["message"], "seen");
    assert_eq!(inc.steps[1].status, StepStatus::Done);
    assert_eq!(
        inc.steps[1].result,
        json!({"channels": ["chat"], "template": "stakeholders"})
    );
}

#[test]
fn a_check_step_takes_the_drivers_outcome_and_a_failed_one_can_run_again() {
    let (policy, inbox) = (steps_policy(), Inbox::default());
    let (_, mut inc, _) = opened(&policy, &inbox);
    let s = setting(T0, &policy, &inbox);
    let check = run("integrity", person("ol", "operator"));
    let kind = step_to_run(&s, &inc, &check).unwrap();
    let report = json!([{"check": "events_kept", "ok": false}]);
    let outcome = StepOutcome::checked(false, report.clone());
    let mut fx = Effects::default();
    complete_step(&s, &mut inc, (check, &kind), Some(outcome), &mut fx);
    assert_eq!(
        (inc.steps[2].status, &inc.steps[2].result),
        (StepStatus::Failed, &report)
    );
    assert_eq!(
        inc.timeline.last().unwrap().summary,
        "step integrity (check) failed by ol"
    );
    let retry = run("integrity", person("ol", "operator"));
    assert!(step_to_run(&s, &inc, &retry).is_ok());
}

fn rollback_right() -> Right {
    Right {
        action: ActionName::Rollback,
        roles: vec!["lead".into()],
        quorum: 1,
        separation: true,
        within: Dur::from_mins(10),
        on_timeout: OnTimeout::Hold,
    }
}

#[test]
fn asking_again_for_a_pending_action_is_the_same_request_and_a_token_has_a_cap() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (mut gov, mut inc, _) = opened(&policy, &inbox);
    // The release's active incident is where its requests are logged.
    inc.release = Some("svc-1".into());
    gov.store_active(&inc);
    let release = ReleaseFacts {
        id: "svc-1".into(),
        ..RELEASE
    };
    let s = Setting {
        release: Some(&release),
        ..setting(T0, &policy, &inbox)
    };
    let right = rollback_right();
    let ask = |by, step: Option<&str>| ApprovalAsk {
        right: &right,
        reason: Some("errors".into()),
        by,
        step: step.map(|name| ("inc-svc-1".to_string(), name.to_string())),
    };
    let mut fx = Effects::default();
    let first = gov
        .ask_approval(&s, ask(person("ann", "sre"), None), &mut fx)
        .unwrap();
    assert!(!first.existing);
    let req = &first.request;
    assert_eq!(
        (req.id.as_str(), req.action, req.incident.as_deref()),
        ("req-svc-1", ActionWord::Rollback, Some("inc-svc-1"))
    );
    assert_eq!(
        fx.timers,
        [TimerChange::set(
            "req-svc-1",
            Due::Request,
            T0 + Dur::from_mins(10)
        )]
    );
    let audited: Vec<&str> = fx.audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(audited, ["incident.timeline", "request.open"]);
    let again = gov
        .ask_approval(&s, ask(person("bo", "sre"), None), &mut Effects::default())
        .unwrap();
    assert!(again.existing);
    assert_eq!(again.request.id, "req-svc-1");
    // Each step's request is its own; the 16th pending one of a token is
    // the last it may have.
    for i in 1..16 {
        let step = format!("s{i}");
        let asked = gov.ask_approval(&s, ask(person("ann", "sre"), Some(&step)), &mut fx);
        assert!(asked.is_ok_and(|a| !a.existing));
    }
    let over = gov.ask_approval(&s, ask(person("ann", "sre"), Some("s16")), &mut fx);
    assert_eq!(
        over.err(),
        Some(Refusal::Conflict(
            "\"ann\" already has 16 pending requests on \"svc\" (at most 16); wait until they \
             are decided or expire"
                .into()
        ))
    );
    assert_eq!(gov.requests.len(), 16);
}

#[test]
fn a_cited_incident_records_the_policy_version_that_answers_it() {
    let (policy, inbox) = (policy(), Inbox::default());
    let (_, mut inc, _) = opened(&policy, &inbox);
    let mut fx = Effects::default();
    cite(&setting(T0, &policy, &inbox), &mut inc, 3, "max", &mut fx);
    assert_eq!(inc.policy_changes, [3]);
    let last = inc.timeline.last().unwrap();
    assert_eq!(
        (last.kind, last.actor.as_str(), last.summary.as_str()),
        (
            EntryKind::Policy,
            "max",
            "policy version 3 answers this incident"
        )
    );
    assert_eq!(fx.audit[0].action, "incident.policy_change");
    assert_eq!(stored(&fx)[0].policy_changes, [3]);
}

/// Classified `death` (10 days) with awareness 6 days before `now`: the
/// 50% reminder is past and not set, 90% and the deadline are; a timer of
/// a resolved incident still fires; the first report cancels them all.
#[test]
fn a_reporting_deadline_counts_from_awareness_and_outlives_resolution() {
    use ripcord_govern::regulatory::{self, Classify};
    use ripcord_govern::{Filed, RegulatoryClasses, ReportStage};
    const DAY: i64 = 86_400_000;
    let (policy, inbox) = (policy(), Inbox::default());
    let (mut gov, mut inc, _) = opened(&policy, &inbox);
    let now = T0 + Dur(DAY);
    let s = setting(now, &policy, &inbox);
    let classes = RegulatoryClasses::default();
    let by = Person {
        name: "sam",
        role: "safety_lead",
        person: "sam",
    };
    let aware = T0 - Dur(5 * DAY);
    let ask = |aware_at| Classify {
        class: classes.get("death").unwrap(),
        framework: &classes.framework,
        aware_at,
        affected: Some(1),
        harm: None,
    };
    let mut fx = Effects::default();
    let future = Some(now + Dur(1));
    let refused = regulatory::classify(&s, &mut inc, ask(future), by, &mut fx).unwrap_err();
    assert!(matches!(refused, Refusal::BadRequest(m) if m.starts_with("aware_at: ")));
    assert_eq!(inc.regulatory, None);
    regulatory::classify(&s, &mut inc, ask(Some(aware)), by, &mut fx).unwrap();
    let due = aware + Dur(10 * DAY);
    assert_eq!(
        fx.timers,
        [
            TimerChange::Cancel {
                id: format!("{}/report/50", inc.id)
            },
            TimerChange::set(&inc.id, Due::Report { percent: 90 }, aware + Dur(9 * DAY)),
            TimerChange::set(&inc.id, Due::Report { percent: 100 }, due),
        ]
    );
    assert_eq!(
        inc.regulatory.as_ref().map(|r| r.due_at.clone()),
        Some(due.to_rfc3339())
    );
    // Resolved, then the deadline passes: it escalates all the same.
    inc.state = ripcord_govern::record::IncidentState::Resolved;
    gov.store_active(&inc);
    let late = setting(due, &policy, &inbox);
    let fx = gov.on_report_timer(&late, inc.clone(), 100);
    let last = fx.docs.last();
    let Some(DocChange::Incident(after)) = last else {
        panic!("no incident stored: {fx:?}");
    };
    assert_eq!(after.escalation_level, 1);
    assert_eq!(
        inbox.got.borrow().last(),
        Some(&("pager".to_string(), NotifyKind::Escalate))
    );
    assert_eq!(
        fx.audit.last().map(|a| a.action.as_str()),
        Some("incident.regulatory_deadline")
    );
    // The first report (late) cancels every reporting timer.
    let mut inc = *after.clone();
    let mut fx = Effects::default();
    let filed = Filed {
        id: format!("{}/report-1", inc.id),
        stage: ReportStage::Initial,
        filed_at: due.to_rfc3339(),
        filed_by: "sam".into(),
        sha256: "00".repeat(32),
    };
    let later = setting(due + Dur(1), &policy, &inbox);
    regulatory::file(&later, &mut inc, filed, &mut fx).unwrap();
    let reg = inc.regulatory.as_ref().unwrap();
    assert_eq!(reg.deadline_met, Some(false));
    assert_eq!(fx.timers.len(), 3);
    assert!(
        fx.timers
            .iter()
            .all(|t| matches!(t, TimerChange::Cancel { .. }))
    );
}
