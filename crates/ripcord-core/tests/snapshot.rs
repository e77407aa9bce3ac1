//! Engine snapshots: a run cut anywhere — snapshot, restore, continue —
//! decides exactly as the uninterrupted run, byte for byte; snapshots of
//! another format or policy are refused with a message.

use std::borrow::Cow;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ripcord_core::Release;
use ripcord_core::engine::{Engine, EngineOptions, SNAPSHOT_VERSION, ShareSource, SnapshotError};
use ripcord_core::policy::{Policy, load_policy};
use ripcord_core::record::decision_to_line;
use ripcord_core::{Decision, Dur, Event, Time};

use crate::support::*;

/// One input of a run.
enum Input {
    Observe(Event<'static>),
    Tick(Time),
}

fn options() -> EngineOptions {
    EngineOptions {
        lateness: Dur::from_secs(30),
        share_source: ShareSource::Engine,
        ..EngineOptions::default()
    }
}

/// An hour of per-second traffic in which the candidate fails three times
/// as often, following the share the engine assigns: a breach, a trigger
/// and a two-stage rollback that verifies. Returns the inputs, recorded,
/// and the uninterrupted run's decisions.
fn recorded() -> (Vec<Input>, Vec<String>) {
    let (mut engine, mut decided) = started();
    let mut traffic = Traffic::new(7, 50.0, 0.005, 3.0);
    let mut inputs = Vec::new();
    for s in 1..=3600 {
        let ts = T0 + Dur::from_secs(s);
        let share = engine.status().map_or(0.0, |st| st.share_in_force);
        let (c_n, c_x, b_n, b_x) = traffic.second(share);
        let mut second = Vec::new();
        if c_n > 0.0 {
            second.push(Input::Observe(bucket(
                ts,
                "v13",
                c_n,
                "moderation_fail",
                c_x,
            )));
        }
        if b_n > 0.0 {
            second.push(Input::Observe(bucket(
                ts,
                "v12",
                b_n,
                "moderation_fail",
                b_x,
            )));
        }
        second.push(Input::Tick(ts));
        feed(&mut engine, &second, &mut decided);
        inputs.extend(second);
    }
    (inputs, lines(&decided))
}

fn feed(engine: &mut Engine, inputs: &[Input], out: &mut Vec<Decision>) {
    for input in inputs {
        match input {
            Input::Observe(e) => {
                let _ = engine.observe(e, out);
            }
            Input::Tick(ts) => engine.tick(*ts, out),
        }
    }
}

fn started() -> (Engine, Vec<Decision>) {
    let mut e = Engine::new(relative_policy(1.2), options());
    let mut out = Vec::new();
    declare(&mut e, T0, 0.05, &mut out);
    (e, out)
}

fn lines(decisions: &[Decision]) -> Vec<String> {
    decisions.iter().map(decision_to_line).collect()
}

/// A release started: the engine and its first decisions.
type Start = fn() -> (Engine, Vec<Decision>);

/// The recorded inputs fed to `start()`'s engine with a snapshot and
/// restore under `policy()` at each of `cuts` (indices into the inputs,
/// clamped and sorted): the decisions' lines.
fn cut_at(
    inputs: &[Input],
    mut cuts: Vec<usize>,
    (start, policy): (Start, fn() -> Policy),
) -> Vec<String> {
    for c in &mut cuts {
        *c = (*c).min(inputs.len());
    }
    cuts.sort_unstable();
    let (mut engine, mut got) = start();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&inputs.len())) {
        feed(&mut engine, &inputs[from..cut], &mut got);
        let bytes = engine.snapshot().expect("encodes");
        engine = Engine::restore(policy(), options(), &bytes).expect("restores");
        from = cut;
    }
    lines(&got)
}

fn relative() -> Policy {
    relative_policy(1.2)
}

#[test]
fn the_uninterrupted_run_rolls_back_so_the_cuts_cross_every_phase() {
    let (_, expected) = recorded();
    let kinds: Vec<&str> = expected
        .iter()
        .filter_map(|l| l.split("\"action\":\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        kinds,
        [
            "ramp",
            "rollback_stage",
            "rollback_stage",
            "rollback_complete"
        ],
        "{expected:#?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_run_cut_anywhere_decides_exactly_as_the_uninterrupted_one(
        cuts in proptest::collection::vec(0usize..8000, 1..4)
    ) {
        let (inputs, expected) = recorded();
        prop_assert_eq!(cut_at(&inputs, cuts, (started, relative)), expected);
    }
}

/// The conversational-agent example: every kind of criterion (rates
/// absolute and relative, per output and per unit, a latency quantile, a
/// score, a segment), SRM on units and approvals.
fn example() -> Policy {
    let yaml = include_str!("../../../examples/conversational-agent/policy.yaml");
    load_policy(yaml, "example").expect("the example loads")
}

/// One output of a user from a pool with a few heavy users, on the
/// version the engine's share gives them (sticky by unit).
fn output(rng: &mut StdRng, ts: Time, share: f64, worse: bool) -> Event<'static> {
    let user = if rng.random::<f64>() < 0.3 {
        rng.random_range(0..5)
    } else {
        rng.random_range(5..2000)
    };
    let candidate = (user as f64 * 0.618_034).fract() < share;
    let fails = if candidate && worse { 0.03 } else { 0.01 };
    let flag = |rng: &mut StdRng, p: f64| f64::from(u8::from(rng.random::<f64>() < p));
    let mut values = vec![
        (Cow::Borrowed("outputs"), 1.0),
        (Cow::Borrowed("moderation_fail"), flag(rng, fails)),
        (Cow::Borrowed("hallucination"), flag(rng, 0.001)),
        (Cow::Borrowed("error"), flag(rng, 0.005)),
        (
            Cow::Borrowed("latency_ms"),
            400.0 + 900.0 * rng.random::<f64>(),
        ),
        (Cow::Borrowed("utility"), 0.7 + 0.2 * rng.random::<f64>()),
    ];
    if rng.random::<f64>() < 0.2 {
        values.push((Cow::Borrowed("feedback"), 1.0));
        values.push((Cow::Borrowed("thumbs_down"), flag(rng, 0.1)));
    }
    let locale = if user % 4 == 0 { "de" } else { "en" };
    Event {
        ts,
        service: Cow::Borrowed("support-bot"),
        version: Cow::Borrowed(if candidate { "v13" } else { "v12" }),
        unit: Cow::Owned(format!("user-{user}")),
        segment: vec![(Cow::Borrowed("locale"), Cow::Borrowed(locale))],
        values,
    }
}

/// The example's release v12 → v13, declared at 5%.
fn started_example() -> (Engine, Vec<Decision>) {
    let mut engine = Engine::new(example(), options());
    let mut decided = Vec::new();
    let release = Release {
        ts: T0,
        service: "support-bot".into(),
        baseline: "v12".into(),
        candidate: "v13".into(),
        share: 0.05,
    };
    engine.declare(&release, &mut decided);
    (engine, decided)
}

/// Forty minutes of single outputs (about 10 a second) under the example
/// policy, the candidate failing moderation three times as often from
/// minute ten: recorded inputs, and the uninterrupted run's decisions.
fn recorded_example() -> (Vec<Input>, Vec<String>) {
    let (mut engine, mut decided) = started_example();
    let mut rng = StdRng::seed_from_u64(11);
    let mut inputs = Vec::new();
    for s in 1..=2400 {
        let ts = T0 + Dur::from_secs(s);
        let share = engine.status().map_or(0.0, |st| st.share_in_force);
        let mut second: Vec<Input> = (0..rng.random_range(5..15))
            .map(|_| Input::Observe(output(&mut rng, ts, share, s > 600)))
            .collect();
        second.push(Input::Tick(ts));
        feed(&mut engine, &second, &mut decided);
        inputs.extend(second);
    }
    (inputs, lines(&decided))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn every_kind_of_criterion_decides_exactly_as_before_a_cut(
        cuts in proptest::collection::vec(0usize..30_000, 1..4)
    ) {
        let (inputs, expected) = recorded_example();
        prop_assert_eq!(cut_at(&inputs, cuts, (started_example, example)), expected);
    }
}

#[test]
fn a_snapshot_of_another_format_or_policy_is_refused_not_misread() {
    let (e, _) = started();
    let bytes = e.snapshot().unwrap();
    let restore = |bytes: &[u8]| Engine::restore(relative_policy(1.2), options(), bytes).err();
    let mut newer = bytes.clone();
    newer[8..10].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
    assert_eq!(
        restore(&newer),
        Some(SnapshotError::Version {
            found: SNAPSHOT_VERSION + 1
        })
    );
    assert_eq!(
        restore(&newer).map(|e| e.to_string()).as_deref(),
        Some(
            "engine snapshot format 2, but this ripcord reads format 1: replay the journal instead"
        )
    );
    assert_eq!(restore(b"{\"not\": 1}"), Some(SnapshotError::NotASnapshot));
    let cut_short = &bytes[..bytes.len() - 3];
    assert!(matches!(
        restore(cut_short),
        Some(SnapshotError::Damaged(_))
    ));
    let other = Engine::restore(relative_policy(1.5), options(), &bytes).err();
    assert_eq!(other, Some(SnapshotError::OtherPolicy));
}

#[test]
fn the_example_run_breaches_and_acts_so_the_cuts_matter() {
    let (inputs, expected) = recorded_example();
    assert!(inputs.len() > 20_000, "{}", inputs.len());
    let kinds: Vec<&str> = expected
        .iter()
        .filter_map(|l| l.split("\"kind\":\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        kinds,
        [
            "action",
            "action",
            "criterion_breached",
            "trigger_fired",
            "action"
        ],
        "{expected:#?}"
    );
}
