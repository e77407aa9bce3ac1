//! The release state machine, driven through the public engine API.

use std::borrow::Cow;

use proptest::prelude::*;
use ripcord_core::engine::{Command, Engine, Rejection, ReleaseState, ShareSource};
use ripcord_core::policy::*;
use ripcord_core::{ActionKind, Decision, DecisionKind, Dur, Event, Time};

use crate::support::*;

fn actions(decisions: &[Decision]) -> Vec<(String, f64, i64)> {
    decisions
        .iter()
        .filter_map(|d| {
            let a = d.action?;
            Some((
                a.as_str().to_string(),
                d.share.unwrap_or(f64::NAN),
                (d.at - T0).0 / 1000,
            ))
        })
        .collect()
}

fn first(decisions: &[Decision], kind: ActionKind) -> &Decision {
    decisions
        .iter()
        .find(|d| d.action == Some(kind))
        .unwrap_or_else(|| panic!("no {kind:?} in {:#?}", kinds(decisions)))
}

fn at(d: &Decision) -> i64 {
    (d.at - T0).0 / 1000
}

#[test]
fn a_sustained_regression_rolls_back_in_stages_and_verifies_each() {
    let mut e = engine(relative_policy(1.2), ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    let mut traffic = Traffic::new(1, 50.0, 0.005, 3.0);
    out.extend(run(&mut e, &mut traffic, "moderation_fail", 3600, 1));

    let breach = out
        .iter()
        .position(|d| d.kind == DecisionKind::CriterionBreached)
        .expect("breached");
    assert_eq!(out[breach + 1].kind, DecisionKind::TriggerFired);
    assert_eq!(out[breach + 1].trigger.as_deref(), Some("safety"));
    let stage1 = first(&out, ActionKind::RollbackStage);
    let t = at(stage1);
    assert_eq!(at(&out[breach]), t);
    let got: Vec<_> = actions(&out).into_iter().skip(1).collect();
    assert_eq!(
        got,
        vec![
            ("rollback_stage".to_string(), 0.025, t),
            ("rollback_stage".to_string(), 0.0, t + 120),
            ("rollback_complete".to_string(), 0.0, t + 240),
        ]
    );
    let keys: Vec<_> = out
        .iter()
        .filter_map(|d| d.idempotency_key.clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            "support-bot:v12->v13#1/ramp/1",
            "support-bot:v12->v13#1/rollback_stage/1",
            "support-bot:v12->v13#1/rollback_stage/2",
            "support-bot:v12->v13#1/rollback_complete/1",
        ]
    );
    let evidence = &stage1.explanation.evidence[0];
    assert_eq!(evidence.criterion, "moderation_rel");
    assert_eq!(evidence.bound, "candidate ≤ 1.2 × baseline");
    assert!(evidence.statistic >= evidence.threshold);
    assert_eq!(evidence.threshold, 20.0);
    assert!(evidence.estimate.unwrap() > 1.2);
    assert!(evidence.candidate.n >= 100.0 && evidence.baseline.unwrap().n >= 100.0);
    let complete = first(&out, ActionKind::RollbackComplete);
    // Outputs still arriving in the stage's first 30 s (its grace period)
    // were served under the previous share and are not judged; after it,
    // the candidate served nobody.
    let summary = &complete.explanation.summary;
    assert!(
        summary.contains("verified: the candidate served 0% of ")
            && summary.ends_with("(assigned 0%)"),
        "{summary}"
    );
    assert_eq!(e.status().unwrap().state, ReleaseState::RolledBack);
}

fn ramp_policy() -> Policy {
    let mut p = relative_policy(1.5);
    p.rollout = Rollout {
        steps: [0.05, 0.25, 0.5]
            .iter()
            .map(|s| RolloutStep {
                share: *s,
                hold: Dur::from_mins(30),
            })
            .collect(),
        watch_after_promotion: Dur::from_mins(60),
        false_alarm_every: Dur::from_mins(30 * 24 * 60),
        holdback: 0.0,
        promotion: Promotion::Automatic,
    };
    p
}

#[test]
fn a_healthy_release_ramps_step_by_step_then_promotes_and_is_watched() {
    let mut e = engine(ramp_policy(), ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    let mut traffic = Traffic::new(3, 50.0, 0.005, 1.0);
    out.extend(run(&mut e, &mut traffic, "moderation_fail", 3 * 3600, 1));
    assert_eq!(
        actions(&out),
        vec![
            ("ramp".to_string(), 0.05, 0),
            ("ramp".to_string(), 0.25, 1800),
            ("ramp".to_string(), 0.5, 3600),
            ("promote".to_string(), 1.0, 5400),
            ("watch_complete".to_string(), 1.0, 9000),
        ]
    );
    assert_eq!(e.status().unwrap().state, ReleaseState::Promoted);
}

/// Runs `seconds` of traffic whose candidate ratio becomes `after` from
/// second `from` on.
fn run_changing(e: &mut Engine, seconds: i64, from: i64, after: f64) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut traffic = Traffic::new(5, 50.0, 0.01, 1.0);
    for s in 1..=seconds {
        if s == from {
            traffic.ratio = after;
        }
        let ts = T0 + Dur::from_secs(s);
        let share = e.status().map_or(0.0, |st| st.share_in_force);
        let (c_n, c_x, b_n, b_x) = traffic.second(share);
        if c_n > 0.0 {
            let _ = e.observe(&bucket(ts, "v13", c_n, "moderation_fail", c_x), &mut out);
        }
        if b_n > 0.0 {
            let _ = e.observe(&bucket(ts, "v12", b_n, "moderation_fail", b_x), &mut out);
        }
        e.tick(ts, &mut out);
    }
    out
}

#[test]
fn a_holdback_keeps_some_units_on_the_baseline_until_the_watch_ends() {
    let mut p = ramp_policy();
    p.rollout.holdback = 0.02;
    let mut e = engine(p, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    out.extend(run_changing(&mut e, 3 * 3600, i64::MAX, 1.0));
    assert_eq!(
        actions(&out),
        vec![
            ("ramp".to_string(), 0.05, 0),
            ("ramp".to_string(), 0.25, 1800),
            ("ramp".to_string(), 0.5, 3600),
            ("promote".to_string(), 0.98, 5400),
            ("watch_complete".to_string(), 1.0, 9000),
        ]
    );
    assert_eq!(e.status().unwrap().share, 1.0);
}

#[test]
fn with_a_holdback_a_regression_after_promotion_is_judged_against_the_baseline() {
    let mut p = ramp_policy();
    p.rollout.holdback = 0.1;
    p.rollout.watch_after_promotion = Dur::from_mins(120);
    let mut e = engine(p, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    // Three times the baseline's failures from ten minutes after promotion.
    out.extend(run_changing(&mut e, 4 * 3600, 6000, 3.0));
    let breach = out
        .iter()
        .find(|d| d.kind == DecisionKind::CriterionBreached)
        .expect("the regression is caught");
    assert!(breach.at >= T0 + Dur::from_secs(6000), "{:?}", breach.at);
    let test = breach.explanation.evidence[0].test;
    assert!(test.contains("noncentral hypergeometric"), "{test}");
    assert!(
        out.iter()
            .any(|d| d.action == Some(ActionKind::RollbackStage)),
        "{:?}",
        kinds(&out)
    );
}

#[test]
fn manual_promotion_holds_at_the_last_step_until_commanded() {
    let mut p = ramp_policy();
    p.rollout.promotion = Promotion::Manual;
    let mut e = engine(p, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    let mut traffic = Traffic::new(3, 50.0, 0.005, 1.0);
    out.extend(run(&mut e, &mut traffic, "moderation_fail", 2 * 3600, 1));
    assert_eq!(e.status().unwrap().state, ReleaseState::Holding);
    e.command(T0 + Dur::from_mins(121), Command::Promote, &mut out)
        .unwrap();
    assert_eq!(e.status().unwrap().state, ReleaseState::Watching);
    assert_eq!(e.status().unwrap().share, 1.0);
}

fn approval_policy(on_timeout: OnTimeout) -> Policy {
    let mut p = relative_policy(1.2);
    p.triggers[0].severity = Severity::Major;
    p.triggers[0].approval = Approval::Role {
        role: "safety-lead".into(),
        within: Dur::from_mins(15),
        on_timeout,
        quorum: 1,
    };
    p
}

#[test]
fn an_unanswered_approval_proceeds_when_the_policy_says_so() {
    let mut e = engine(approval_policy(OnTimeout::Proceed), ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    let mut traffic = Traffic::new(1, 50.0, 0.005, 3.0);
    out.extend(run(&mut e, &mut traffic, "moderation_fail", 3600, 1));
    let asked = out
        .iter()
        .find(|d| d.kind == DecisionKind::ApprovalRequested)
        .expect("approval requested");
    assert_eq!(
        asked.explanation.summary,
        "rollback of trigger safety needs approval by role safety-lead within 15m; the rollout is frozen meanwhile"
    );
    let stage = first(&out, ActionKind::RollbackStage);
    assert_eq!(at(stage), at(asked) + 900);
    assert!(stage.explanation.summary.starts_with(
        "no approval by safety-lead within 15m; the policy says proceed; trigger safety fired"
    ));
}

#[test]
fn an_unanswered_approval_holds_the_release_when_the_policy_says_hold() {
    let mut e = engine(approval_policy(OnTimeout::Hold), ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    let mut traffic = Traffic::new(1, 50.0, 0.005, 3.0);
    out.extend(run(&mut e, &mut traffic, "moderation_fail", 3600, 1));
    let pause = first(&out, ActionKind::Pause);
    assert_eq!(
        pause.explanation.summary,
        "no approval by safety-lead within 15m; the policy says hold"
    );
    assert!(matches!(
        e.status().unwrap().state,
        ReleaseState::Paused { .. }
    ));
    assert!(
        out.iter()
            .all(|d| d.action != Some(ActionKind::RollbackStage))
    );
}

#[test]
fn an_approval_carries_out_the_action_at_once_and_a_rejection_resumes() {
    for (command, expected) in [
        (Command::Approve, "rollback_stage"),
        (Command::Reject, "resume"),
    ] {
        let mut e = engine(approval_policy(OnTimeout::Hold), ShareSource::Engine);
        let mut out = Vec::new();
        declare(&mut e, T0, 0.05, &mut out);
        let mut traffic = Traffic::new(1, 50.0, 0.005, 3.0);
        // Run until the approval is requested, then answer it 30 s after
        // the minute of traffic that asked for it.
        let mut asked_in = None;
        for minute in 1..=60 {
            out.extend(run_more(&mut e, &mut traffic, minute));
            if out
                .iter()
                .any(|d| d.kind == DecisionKind::ApprovalRequested)
            {
                asked_in = Some(minute);
                break;
            }
        }
        let asked_in = asked_in.expect("approval requested");
        let answer = T0 + Dur::from_secs(asked_in * 60 + 30);
        let before = out.len();
        e.command(answer, command.clone(), &mut out).unwrap();
        let acted = &out[before..];
        assert_eq!(acted.last().unwrap().action.unwrap().as_str(), expected);
        assert_eq!(acted.last().unwrap().at, answer);
    }
}

/// One more minute of traffic (the `minute`-th) through an engine.
fn run_more(
    e: &mut ripcord_core::engine::Engine,
    traffic: &mut Traffic,
    minute: i64,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for s in (minute - 1) * 60 + 1..=minute * 60 {
        let ts = T0 + Dur::from_secs(s);
        let share = e.status().unwrap().share_in_force;
        let (c_n, c_x, b_n, b_x) = traffic.second(share);
        let _ = e.observe(&bucket(ts, "v13", c_n, "moderation_fail", c_x), &mut out);
        let _ = e.observe(&bucket(ts, "v12", b_n, "moderation_fail", b_x), &mut out);
    }
    out
}

#[test]
fn a_critical_trigger_overrides_a_pending_approval() {
    let mut p = relative_policy(1.2);
    p.signals.push(rate_signal("hallucination"));
    p.criteria
        .push(criterion("hallucination_rel", 1, Bound::MaxRatio(1.2)));
    // The moderation trigger needs an approval; the hallucination one is critical.
    p.triggers[0].severity = Severity::Major;
    p.triggers[0].approval = Approval::Role {
        role: "safety-lead".into(),
        within: Dur::from_mins(60),
        on_timeout: OnTimeout::Hold,
        quorum: 1,
    };
    p.triggers
        .push(rollback_trigger("hallucinations", 1, &[(1.0, 1)]));
    let mut e = engine(p, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    // Moderation regresses first (strongly), hallucination later.
    let mut moderation = Traffic::new(5, 50.0, 0.01, 5.0);
    let mut hallucination = Traffic::new(6, 50.0, 0.005, 4.0);
    for s in 1..=3600 {
        let ts = T0 + Dur::from_secs(s);
        let share = e.status().unwrap().share_in_force;
        let (c_n, c_x, b_n, b_x) = moderation.second(share);
        let (_, h_c, _, h_b) = hallucination.second(share);
        let h_c = if s > 600 { h_c } else { 0.0 };
        let h_b = if s > 600 { h_b } else { 0.0 };
        for (v, n, m, h) in [("v13", c_n, c_x, h_c), ("v12", b_n, b_x, h_b)] {
            let mut ev = bucket(ts, v, n, "moderation_fail", m);
            ev.values.push((Cow::Borrowed("hallucination"), h));
            let _ = e.observe(&ev, &mut out);
        }
    }
    let asked = out
        .iter()
        .position(|d| d.kind == DecisionKind::ApprovalRequested)
        .expect("approval requested");
    let stage = out
        .iter()
        .position(|d| d.action == Some(ActionKind::RollbackStage))
        .expect("rolled back");
    assert!(stage > asked);
    assert_eq!(out[stage].trigger.as_deref(), Some("hallucinations"));
    assert!(
        out[stage]
            .explanation
            .summary
            .starts_with("critical trigger hallucinations overrides the pending approval"),
        "{}",
        out[stage].explanation.summary
    );
}

#[test]
fn a_sample_ratio_mismatch_halts_the_release_instead_of_deciding() {
    let mut e = engine(relative_policy(1.2), ShareSource::Recorded);
    let mut out = Vec::new();
    // Declared at 5%, but the recorded traffic gives the candidate 10%.
    declare(&mut e, T0, 0.05, &mut out);
    let mut traffic = Traffic::new(9, 50.0, 0.005, 1.0);
    for s in 1..=1800 {
        let ts = T0 + Dur::from_secs(s);
        let (c_n, c_x, b_n, b_x) = traffic.second(0.10);
        let _ = e.observe(&bucket(ts, "v13", c_n, "moderation_fail", c_x), &mut out);
        let _ = e.observe(&bucket(ts, "v12", b_n, "moderation_fail", b_x), &mut out);
    }
    let pause = first(&out, ActionKind::Pause);
    assert_eq!(pause.explanation.evidence[0].criterion, "sample_ratio");
    assert!(
        pause
            .explanation
            .summary
            .starts_with("sample ratio mismatch")
    );
    assert!(at(pause) < 600, "halted after {}s", at(pause));
    assert!(
        out.iter()
            .all(|d| d.action != Some(ActionKind::RollbackStage))
    );
}

/// Two hours of minute buckets of 2,000 outputs, the baseline's line of
/// each minute before the candidate's (as a source aggregating per version
/// sends them), the candidate getting `split` of the outputs.
fn minute_buckets(split: f64) -> Vec<Decision> {
    let mut e = engine(relative_policy(1.2), ShareSource::Recorded);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.5, &mut out);
    for m in 1..=120 {
        let ts = T0 + Dur::from_mins(m);
        let c = (2_000.0 * split).round();
        let _ = e.observe(
            &bucket(ts, "v12", 2_000.0 - c, "moderation_fail", 5.0),
            &mut out,
        );
        let _ = e.observe(&bucket(ts, "v13", c, "moderation_fail", 5.0), &mut out);
    }
    e.tick(T0 + Dur::from_mins(121), &mut out);
    out
}

#[test]
fn pre_aggregated_buckets_are_checked_for_sample_ratio_once_both_versions_are_in() {
    // Between the baseline's 1,000 and the candidate's 1,000 the split is
    // 1,000 to 0: checked there, every healthy release would halt.
    let healthy = minute_buckets(0.5);
    assert!(
        healthy.iter().all(|d| d.action != Some(ActionKind::Pause)),
        "{:?}",
        kinds(&healthy)
    );
    let broken = minute_buckets(0.4);
    let pause = first(&broken, ActionKind::Pause);
    assert!(
        pause
            .explanation
            .summary
            .starts_with("sample ratio mismatch: the candidate got 800 of 2000 outputs"),
        "{}",
        pause.explanation.summary
    );
}

#[test]
fn a_rolled_back_release_can_be_re_released_as_a_new_generation() {
    let mut e = engine(relative_policy(1.2), ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    let later = T0 + Dur::from_mins(1);
    e.command(later, Command::Rollback, &mut out).unwrap();
    e.tick(later + Dur::from_secs(1), &mut out);
    assert_eq!(e.status().unwrap().state, ReleaseState::RolledBack);
    assert_eq!(
        e.command(later, Command::Promote, &mut out)
            .unwrap_err()
            .to_string(),
        "cannot promote a release that is rolled_back"
    );
    e.command(later + Dur::from_secs(2), Command::ReRelease, &mut out)
        .unwrap();
    let status = e.status().unwrap();
    assert_eq!(status.generation, 2);
    assert_eq!(status.state, ReleaseState::Ramping { step: 0 });
    assert_eq!(status.share, 0.05);
    assert_eq!(
        out.last().unwrap().idempotency_key.as_deref(),
        Some("support-bot:v12->v13#2/re_release/1")
    );
}

fn event(ts: Time, version: &'static str, unit: String, flagged: f64) -> Event<'static> {
    Event {
        ts,
        service: Cow::Borrowed("support-bot"),
        version: Cow::Borrowed(version),
        unit: Cow::Owned(unit),
        segment: vec![(Cow::Borrowed("locale"), Cow::Borrowed("de"))],
        values: vec![
            (Cow::Borrowed("outputs"), 1.0),
            (Cow::Borrowed("moderation_fail"), flagged),
        ],
    }
}

#[test]
fn counting_per_unit_ignores_one_unit_that_fails_over_and_over() {
    let breaches = |per: Per| {
        let mut p = relative_policy(1.2);
        p.criteria[0].per = per;
        p.srm.enabled = false;
        let mut e = engine(p, ShareSource::Recorded);
        let mut out = Vec::new();
        declare(&mut e, T0, 0.5, &mut out);
        for i in 0..4000i64 {
            let ts = T0 + Dur(i * 250);
            // 400 units per version, each seen 5 times; 1% of them are
            // flagged on every request, on both versions. One candidate unit
            // (a scraper, say) is flagged on every one of its 100 requests.
            let version = if i % 2 == 0 { "v13" } else { "v12" };
            let index = (i / 2) % 400;
            let unit = format!("{version}-u{index}");
            let flagged = if index % 100 == 7 { 1.0 } else { 0.0 };
            let _ = e.observe(&event(ts, version, unit, flagged), &mut out);
            if i % 40 == 0 {
                let _ = e.observe(&event(ts, "v13", "scraper".into(), 1.0), &mut out);
            }
        }
        out.iter()
            .any(|d| d.kind == DecisionKind::CriterionBreached)
    };
    assert!(breaches(Per::Output));
    assert!(!breaches(Per::Unit));
}

#[test]
fn a_spike_that_hits_both_versions_does_not_roll_back() {
    let mut e = engine(relative_policy(1.2), ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    let mut normal = Traffic::new(11, 50.0, 0.005, 1.0);
    let mut spike = Traffic::new(11, 50.0, 0.05, 1.0);
    for s in 1..=3600 {
        let ts = T0 + Dur::from_secs(s);
        let share = e.status().unwrap().share_in_force;
        let traffic = if (1800..1920).contains(&s) {
            &mut spike
        } else {
            &mut normal
        };
        let (c_n, c_x, b_n, b_x) = traffic.second(share);
        let _ = e.observe(&bucket(ts, "v13", c_n, "moderation_fail", c_x), &mut out);
        let _ = e.observe(&bucket(ts, "v12", b_n, "moderation_fail", b_x), &mut out);
    }
    assert_eq!(kinds(&out), vec!["action:ramp"]);
}

#[test]
fn a_transient_candidate_spike_shorter_than_for_does_not_breach() {
    let mut p = relative_policy(1.0);
    p.criteria[0].bound = Bound::Absolute(0.01);
    p.criteria[0].window = Dur::from_mins(1);
    p.criteria[0].sustain = Dur::from_mins(5);
    let run_with = |spike_secs: i64| {
        let mut e = engine(p.clone(), ShareSource::Engine);
        let mut out = Vec::new();
        declare(&mut e, T0, 0.5, &mut out);
        let mut normal = Traffic::new(13, 50.0, 0.002, 1.0);
        let mut bad = Traffic::new(14, 50.0, 0.002, 10.0);
        for s in 1..=3600 {
            let ts = T0 + Dur::from_secs(s);
            let share = e.status().unwrap().share_in_force;
            let spiking = (1800..1800 + spike_secs).contains(&s);
            let traffic = if spiking { &mut bad } else { &mut normal };
            let (c_n, c_x, b_n, b_x) = traffic.second(share);
            let _ = e.observe(&bucket(ts, "v13", c_n, "moderation_fail", c_x), &mut out);
            let _ = e.observe(&bucket(ts, "v12", b_n, "moderation_fail", b_x), &mut out);
        }
        out
    };
    let transient = run_with(120);
    assert!(
        transient
            .iter()
            .all(|d| d.kind != DecisionKind::CriterionBreached)
    );
    let sustained = run_with(1200);
    let breach = sustained
        .iter()
        .find(|d| d.kind == DecisionKind::CriterionBreached)
        .expect("sustained regression breaches");
    assert!(breach.explanation.evidence[0].breached_for >= Dur::from_mins(5));
}

#[test]
fn events_too_late_or_for_other_versions_are_refused_and_say_why() {
    let mut e = engine(relative_policy(1.2), ShareSource::Engine);
    let mut out = Vec::new();
    let ev = bucket(T0, "v13", 1.0, "moderation_fail", 0.0);
    assert_eq!(e.observe(&ev, &mut out), Err(Rejection::NoRelease));
    declare(&mut e, T0, 0.05, &mut out);
    let later = bucket(T0 + Dur::from_mins(1), "v13", 1.0, "moderation_fail", 0.0);
    assert_eq!(e.observe(&later, &mut out), Ok(()));
    let within = bucket(T0 + Dur::from_secs(31), "v12", 1.0, "moderation_fail", 0.0);
    assert_eq!(e.observe(&within, &mut out), Ok(()));
    let late = bucket(T0 + Dur::from_secs(29), "v12", 1.0, "moderation_fail", 0.0);
    assert_eq!(e.observe(&late, &mut out), Err(Rejection::TooLate));
    let other = bucket(T0 + Dur::from_mins(1), "v11", 1.0, "moderation_fail", 0.0);
    assert_eq!(e.observe(&other, &mut out), Err(Rejection::UnknownVersion));
    let mut foreign = later.clone();
    foreign.service = Cow::Borrowed("image-bot");
    assert_eq!(e.observe(&foreign, &mut out), Err(Rejection::OtherService));
}

fn decisions_of(seed: u64, ratio: f64, share: f64) -> Vec<Decision> {
    let mut e = engine(ramp_policy(), ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, share, &mut out);
    let mut traffic = Traffic::new(seed, 30.0, 0.01, ratio);
    out.extend(run(&mut e, &mut traffic, "moderation_fail", 2 * 3600, 5));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn the_same_inputs_give_the_same_decisions(seed in 0u64..1000, ratio in 0.5f64..4.0, share in 0.01f64..0.5) {
        prop_assert_eq!(decisions_of(seed, ratio, share), decisions_of(seed, ratio, share));
    }
}

/// Single-output events from units `u0, u1, …`; unit `i` is the candidate's
/// when `candidate(i)`, and every fifth event comes from `busy` if given.
fn unit_traffic(candidate: impl Fn(i64) -> bool, busy: Option<&'static str>) -> Vec<Decision> {
    let mut p = relative_policy(1.2);
    p.srm.count = SrmCount::Units;
    let mut e = engine(p, ShareSource::Recorded);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    for i in 0..40_000i64 {
        let ts = T0 + Dur(i * 100);
        let (unit, version) = match busy {
            Some(b) if i % 5 == 0 => (b.to_string(), "v13"),
            _ => {
                let u = i / 2;
                (format!("u{u}"), if candidate(u) { "v13" } else { "v12" })
            }
        };
        let ev = Event {
            values: vec![
                (Cow::Borrowed("outputs"), 1.0),
                (Cow::Borrowed("moderation_fail"), 0.0),
            ],
            ..event(ts, version, unit, 0.0)
        };
        let _ = e.observe(&ev, &mut out);
    }
    out
}

#[test]
fn one_busy_user_on_the_candidate_is_not_a_sample_ratio_mismatch() {
    // A fifth of all outputs come from one candidate user: counted by
    // outputs the candidate would have 24% instead of 5%.
    let out = unit_traffic(|u| u % 20 == 0, Some("scraper"));
    assert_eq!(kinds(&out), vec!["action:ramp"]);
}

#[test]
fn a_candidate_getting_twice_its_share_of_users_is_a_sample_ratio_mismatch() {
    let out = unit_traffic(|u| u % 10 == 0, None);
    let pause = first(&out, ActionKind::Pause);
    assert!(
        pause
            .explanation
            .summary
            .starts_with("sample ratio mismatch: the candidate got"),
        "{}",
        pause.explanation.summary
    );
}

#[test]
fn the_rollout_does_not_ramp_while_a_criterion_is_breached() {
    // Notify only: nothing stops the release, but the ramp waits while the
    // criterion says the candidate is worse.
    let mut p = ramp_policy();
    p.criteria[0].bound = Bound::MaxRatio(1.2);
    p.triggers[0].action = Action::Notify;
    p.rollout.steps[0].hold = Dur::from_mins(10);
    let mut e = engine(p, ShareSource::Engine);
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    let mut traffic = Traffic::new(2, 50.0, 0.005, 4.0);
    out.extend(run(&mut e, &mut traffic, "moderation_fail", 3600, 1));
    let notify = first(&out, ActionKind::Notify);
    assert!(at(notify) < 600, "notified at {}s", at(notify));
    assert!(
        out.iter()
            .all(|d| d.action != Some(ActionKind::Ramp) || d.share == Some(0.05)),
        "{:?}",
        actions(&out)
    );
    assert_eq!(e.status().unwrap().state, ReleaseState::Ramping { step: 0 });
}

/// Feeds `seconds` of traffic from `from` on with the candidate at `share`
/// whatever the engine decided, and the baseline flagging at `baseline_p`.
fn open_loop(
    e: &mut Engine,
    traffic: &mut Traffic,
    from: i64,
    seconds: i64,
    share: f64,
    baseline_p: f64,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for s in from + 1..=from + seconds {
        let ts = T0 + Dur::from_secs(s);
        let (c_n, c_x, b_n, _) = traffic.second(share);
        let b_x = (b_n * baseline_p).round();
        let _ = e.observe(&bucket(ts, "v13", c_n, "moderation_fail", c_x), &mut out);
        let _ = e.observe(&bucket(ts, "v12", b_n, "moderation_fail", b_x), &mut out);
        e.tick(ts, &mut out);
    }
    out
}

/// Runs the regression until the first rollback stage; returns its second.
fn until_rollback(e: &mut Engine, traffic: &mut Traffic) -> i64 {
    let mut out = Vec::new();
    declare(e, T0, 0.05, &mut out);
    for s in 1..3600 {
        out.extend(one_second(e, traffic, s));
        if out
            .iter()
            .any(|d| d.action == Some(ActionKind::RollbackStage))
        {
            return s;
        }
    }
    panic!("no rollback in an hour: {:?}", kinds(&out));
}

fn one_second(e: &mut Engine, traffic: &mut Traffic, s: i64) -> Vec<Decision> {
    let mut out = Vec::new();
    let ts = T0 + Dur::from_secs(s);
    let share = e.status().map_or(0.0, |st| st.share_in_force);
    let (c_n, c_x, b_n, b_x) = traffic.second(share);
    let _ = e.observe(&bucket(ts, "v13", c_n, "moderation_fail", c_x), &mut out);
    let _ = e.observe(&bucket(ts, "v12", b_n, "moderation_fail", b_x), &mut out);
    e.tick(ts, &mut out);
    out
}

#[test]
fn a_rollback_stage_whose_users_do_not_move_holds_for_a_person() {
    let mut e = engine(relative_policy(1.2), ShareSource::Engine);
    let mut traffic = Traffic::new(3, 50.0, 0.005, 3.0);
    let t = until_rollback(&mut e, &mut traffic);
    assert_eq!(e.status().unwrap().share, 0.025);
    // Clients keep serving the candidate to 5% of outputs, not 2.5%.
    let out = open_loop(&mut e, &mut traffic, t, 150, 0.05, 0.005);
    let held = first(&out, ActionKind::Pause);
    assert_eq!(at(held), t + 120, "{:?}", kinds(&out));
    let why = &held.explanation.summary;
    assert!(
        why.starts_with("rollback stage 1/2 failed verification: the candidate still served")
            && why.contains("clients are not following the assignment")
            && why.ends_with("holding at 2.5% for a person: resume verifies the stage again, rollback moves everyone back now"),
        "{why}"
    );
    assert!(matches!(
        e.status().unwrap().state,
        ReleaseState::Paused { .. }
    ));
    assert_eq!(e.status().unwrap().share, 0.025);
    // The person moves everyone back at once.
    let mut after = Vec::new();
    let now = T0 + Dur::from_secs(t + 151);
    e.command(now, Command::Rollback, &mut after).unwrap();
    e.tick(now + Dur::from_secs(1), &mut after);
    assert_eq!(e.status().unwrap().state, ReleaseState::RolledBack);
    assert_eq!(e.status().unwrap().share, 0.0);
}

/// A release with a relative criterion and a 1% moderation ceiling, run
/// until its rollback starts; the engine, its traffic and the second the
/// rollback started.
fn rolling_back_with_a_ceiling() -> (Engine, Traffic, i64) {
    let mut policy = relative_policy(1.2);
    let mut ceiling = criterion("moderation_abs", 0, Bound::Absolute(0.01));
    ceiling.min_samples = 200;
    policy.criteria.push(ceiling);
    let mut e = engine(policy, ShareSource::Engine);
    let mut traffic = Traffic::new(5, 50.0, 0.005, 3.0);
    let t = until_rollback(&mut e, &mut traffic);
    (e, traffic, t)
}

#[test]
fn a_baseline_outside_an_absolute_bound_fails_verification_and_resume_verifies_again() {
    let (mut e, mut traffic, t) = rolling_back_with_a_ceiling();
    // The baseline, now serving more users, fails moderation at 5%.
    let out = open_loop(&mut e, &mut traffic, t, 121, 0.025, 0.05);
    let held = first(&out, ActionKind::Pause);
    let why = &held.explanation.summary;
    assert!(
        why.contains("the baseline breaks moderation_abs: ")
            && why.contains("certainly beyond 0.01 at 95% confidence"),
        "{why}"
    );
    assert!(!why.contains("clients are not following"), "{why}");
    // Resumed with a healthy baseline, the stage is verified afresh (its
    // full verify_for again) and the rollback goes on.
    let resumed_at = t + 122;
    let mut after = Vec::new();
    e.command(T0 + Dur::from_secs(resumed_at), Command::Resume, &mut after)
        .unwrap();
    assert_eq!(
        e.status().unwrap().state,
        ReleaseState::RollingBack { stage: 0 }
    );
    after.extend(open_loop(
        &mut e,
        &mut traffic,
        resumed_at,
        125,
        0.025,
        0.005,
    ));
    let next = first(&after, ActionKind::RollbackStage);
    assert_eq!(at(next), resumed_at + 120);
    assert_eq!(next.share, Some(0.0));
}

#[test]
fn negative_or_excess_flag_counts_cannot_make_a_failing_stage_verified() {
    let (mut e, mut traffic, t) = rolling_back_with_a_ceiling();
    // The baseline fails moderation at 5% while a sender adds buckets
    // whose negative flags would cancel the failures out of the stage's
    // sums, and buckets with more flags than outputs.
    let mut out = Vec::new();
    for s in t + 1..=t + 121 {
        let ts = T0 + Dur::from_secs(s);
        let (c_n, c_x, b_n, _) = traffic.second(0.025);
        let b_x = (b_n * 0.05).round();
        let _ = e.observe(&bucket(ts, "v13", c_n, "moderation_fail", c_x), &mut out);
        let _ = e.observe(&bucket(ts, "v12", b_n, "moderation_fail", b_x), &mut out);
        let cancel = bucket(ts, "v12", 50.0, "moderation_fail", -1000.0);
        let _ = e.observe(&cancel, &mut out);
        e.tick(ts, &mut out);
    }
    assert!(
        !out.iter()
            .any(|d| d.action == Some(ActionKind::RollbackStage)),
        "a failing stage was verified: {:?}",
        kinds(&out)
    );
    let held = first(&out, ActionKind::Pause);
    let why = &held.explanation.summary;
    assert!(
        why.contains("the baseline breaks moderation_abs: "),
        "{why}"
    );
    assert!(!why.contains("inf") && !why.contains("NaN"), "{why}");
}

/// Four million users, each seen once at a 5% share: the SRM check's
/// bounded unit set is well past its design (a million): by the end it
/// forgets a quarter of the new users, by a hash that owes nothing to the
/// assignment. Assigned as declared, the check stays quiet; with a fifth
/// of the candidate's users lost on the way, it still halts the release.
#[test]
fn srm_on_units_stays_valid_when_the_bounded_unit_set_is_saturated() {
    let srm_pauses = |kept_on_candidate: u64| {
        let mut p = relative_policy(100.0);
        p.srm = SrmCheck {
            count: SrmCount::Units,
            ..SrmCheck::default()
        };
        let mut e = engine(p, ShareSource::Engine);
        let mut out = Vec::new();
        declare(&mut e, T0, 0.05, &mut out);
        for u in 0..4_000_000u64 {
            let unit = format!("user-{u}");
            let candidate = ripcord_core::assign::is_candidate("svc-1", &unit, 0.05);
            if candidate && u % 5 >= kept_on_candidate {
                continue;
            }
            let ts = T0 + Dur(u as i64);
            let version = if candidate { "v13" } else { "v12" };
            let _ = e.observe(&event(ts, version, unit, 0.0), &mut out);
        }
        out.iter()
            .filter(|d| d.action == Some(ActionKind::Pause))
            .count()
    };
    assert_eq!(srm_pauses(5), 0, "a false sample ratio mismatch");
    assert_eq!(srm_pauses(4), 1, "a real one missed");
}
