//! The engine proper: routes events to criteria, combines criteria into
//! triggers, and runs the release state machine.
//!
//! States: ramping(step) → holding → (promote) watching → promoted; from
//! ramping, holding or watching: paused, awaiting approval, rolling
//! back(stage) → rolled back; from rolled back: re-released (a new ramp).
//! Every transition is a decision with an idempotency key derived from the
//! release and a per-action counter, so the same inputs always produce the
//! same keys.

use std::hash::{Hash, Hasher};

mod snapshot;

pub use snapshot::{SNAPSHOT_VERSION, SnapshotError};

use super::criterion::{CriterionState, Sample, Transition};
use super::units::UnitSet;
use super::{
    Command, CommandError, EngineOptions, Rejection, ReleaseState, ReleaseStatus, ShareSource,
};
use crate::decision::{ActionKind, Decision, DecisionKind, Evidence, Explanation, Part, Samples};
use crate::event::{Event, Release};
use crate::limits::{EventLimits, OUTPUTS};
use crate::policy::{
    Action, Approval, Bound, Condition, Direction, OnTimeout, Policy, Promotion, RollbackStage,
    Severity, Signal, SignalKind, SrmCount,
};
use crate::stats::bound::confidence_bound;
use crate::stats::cluster::cluster_of;
use crate::stats::srm::SrmTest;
use crate::time::{Dur, Time};

/// Where a criterion reads its sample from an event.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
enum Binding {
    Rate {
        numerator: usize,
        denominator: usize,
    },
    Value {
        field: usize,
    },
    /// Every output counts once (a bucket counts its `outputs`); the
    /// category is a segment attribute.
    Category {
        outputs: usize,
    },
}

/// The engine for one service's policy.
pub struct Engine {
    policy: Policy,
    options: EngineOptions,
    now: Time,
    /// Event value field names the policy reads; index = field id.
    fields: Vec<String>,
    bindings: Vec<Binding>,
    outputs_field: Option<usize>,
    /// Per-criterion error budget (Bonferroni over rollback criteria).
    alphas: Vec<f64>,
    /// Field values of the event being observed, by field id.
    scratch: Vec<Option<f64>>,
    release: Option<Run>,
    /// Instant of the latest decision, so that decisions never go back in time.
    last_decision: Time,
}

/// One release's run-time state.
#[derive(serde::Serialize, serde::Deserialize)]
struct Run {
    id: String,
    baseline: String,
    candidate: String,
    generation: u32,
    state: ReleaseState,
    share: f64,
    share_in_force: f64,
    step: usize,
    step_started: Time,
    watch_until: Time,
    criteria: Vec<CriterionState>,
    trigger_active: Vec<bool>,
    srm: SrmTest,
    srm_fired: bool,
    /// Units already counted by the SRM check.
    units_seen: UnitSet,
    pending: Option<Pending>,
    rollback: Option<Rollback>,
    /// What to return to on resume.
    paused_from: Option<ReleaseState>,
    /// How many of each action (by name) this release has taken.
    action_counts: Vec<(String, u32)>,
    last_second: i64,
    samples_seen: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    trigger: usize,
    deadline: Time,
    resume_to: ReleaseState,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Rollback {
    stages: Vec<RollbackStage>,
    stage: usize,
    stage_started: Time,
    /// The candidate's share when the rollback started.
    from_share: f64,
    candidate_outputs: f64,
    all_outputs: f64,
    /// (flagged, total) of the baseline during the stage, per criterion;
    /// only absolute rate criteria are counted.
    baseline: Vec<(f64, f64)>,
}

impl Rollback {
    /// Whether an output generated at `ts` counts in the stage's
    /// verification. The first part of the stage is a grace period — the
    /// lateness, at most half the stage — because outputs still arriving
    /// then were mostly served under the previous stage's share.
    fn judges(&self, ts: Time, lateness: Dur) -> bool {
        let Some(stage) = self.stages.get(self.stage) else {
            return false;
        };
        let grace = Dur(lateness.0.min(stage.verify_for.0 / 2));
        ts >= self.stage_started + grace
    }
}

/// A stage fails verification when the candidate serves more than its
/// assigned share × this + [`SERVED_SLACK`] (clients not following the
/// assignment). The slack absorbs late events and briefly cached answers.
const SERVED_FACTOR: f64 = 1.2;
const SERVED_SLACK: f64 = 0.01;
/// ...judged once the stage has seen this many outputs.
const SERVED_MIN_OUTPUTS: f64 = 100.0;

impl Engine {
    pub fn new(policy: Policy, options: super::EngineOptions) -> Engine {
        let mut fields: Vec<String> = Vec::new();
        let mut field = |name: &str| match fields.iter().position(|f| f == name) {
            Some(i) => i,
            None => {
                fields.push(name.to_string());
                fields.len() - 1
            }
        };
        let bindings = policy
            .criteria
            .iter()
            .map(|c| match &policy.signals[c.signal].kind {
                SignalKind::Rate {
                    numerator,
                    denominator,
                } => Binding::Rate {
                    numerator: field(numerator),
                    denominator: field(denominator),
                },
                SignalKind::Score { field: f, .. } | SignalKind::Latency { field: f } => {
                    Binding::Value { field: field(f) }
                }
                SignalKind::Category { .. } => Binding::Category {
                    outputs: field(OUTPUTS),
                },
            })
            .collect();
        let outputs_field = Some(field(OUTPUTS));
        let alphas = error_budgets(&policy);
        let scratch = vec![None; fields.len()];
        Engine {
            policy,
            options,
            now: Time(i64::MIN),
            fields,
            bindings,
            outputs_field,
            alphas,
            scratch,
            release: None,
            last_decision: Time(i64::MIN),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The latest instant the engine has seen (event time or tick).
    pub fn now(&self) -> Time {
        self.now
    }

    /// The current release's criteria, in policy order; none before the
    /// first release.
    pub(super) fn criteria(&self) -> &[CriterionState] {
        self.release
            .as_ref()
            .map_or(&[], |run| run.criteria.as_slice())
    }

    pub fn status(&self) -> Option<ReleaseStatus> {
        let run = self.release.as_ref()?;
        Some(ReleaseStatus {
            id: run.id.clone(),
            baseline: run.baseline.clone(),
            candidate: run.candidate.clone(),
            state: run.state.clone(),
            share: run.share,
            share_in_force: run.share_in_force,
            generation: run.generation,
        })
    }

    /// The sample-ratio check of the running release as it stands now,
    /// for dashboards; `None` without a release or with the check off.
    pub fn srm(&self) -> Option<super::SrmReading> {
        let run = self.release.as_ref()?;
        let srm = &self.policy.srm;
        if !srm.enabled {
            return None;
        }
        let (candidate, baseline, expected) = run.srm.counts();
        Some(super::SrmReading {
            candidate,
            baseline,
            expected,
            e_value: run.srm.log_e_value().exp(),
            threshold: 1.0 / (1.0 - srm.confidence),
            fired: run.srm_fired,
        })
    }

    /// Declares a release (a control line, or `--baseline/--candidate`).
    /// The first declaration of a baseline/candidate pair starts a release at
    /// `release.share`; a later one for the same pair records the share now
    /// in force.
    pub fn declare(&mut self, release: &Release, out: &mut Vec<Decision>) {
        if release.service != self.policy.service {
            return;
        }
        self.advance(release.ts, out);
        let share = release.share.clamp(0.0, 1.0);
        if let Some(run) = &mut self.release
            && run.baseline == release.baseline
            && run.candidate == release.candidate
        {
            run.share_in_force = share;
            if self.options.share_source == ShareSource::Engine {
                run.share = share;
            }
            return;
        }
        let run = self.new_run(&release.baseline, &release.candidate, share, 1);
        self.release = Some(run);
        let summary = format!(
            "release {} → {} started at {}% of units",
            release.baseline,
            release.candidate,
            pct(share)
        );
        self.emit_action(out, ActionKind::Ramp, None, None, summary, Vec::new());
    }

    fn new_run(&self, baseline: &str, candidate: &str, share: f64, generation: u32) -> Run {
        let steps = &self.policy.rollout.steps;
        let step = steps.iter().rposition(|s| s.share <= share).unwrap_or(0);
        let criteria = self
            .policy
            .criteria
            .iter()
            .zip(&self.alphas)
            .map(|(c, alpha)| {
                CriterionState::new(c, &self.policy.signals[c.signal], *alpha, self.now)
            })
            .collect();
        Run {
            id: format!(
                "{}:{}->{}#{}",
                self.policy.service, baseline, candidate, generation
            ),
            baseline: baseline.to_string(),
            candidate: candidate.to_string(),
            generation,
            state: ReleaseState::Ramping { step },
            share,
            share_in_force: share,
            step,
            step_started: self.now,
            watch_until: self.now,
            criteria,
            trigger_active: vec![false; self.policy.triggers.len()],
            srm: SrmTest::default(),
            srm_fired: false,
            units_seen: UnitSet::default(),
            pending: None,
            rollback: None,
            paused_from: None,
            action_counts: Vec::new(),
            last_second: self.now.0.div_euclid(1000),
            samples_seen: 0,
        }
    }

    /// Counts one event and evaluates the criteria it touches.
    pub fn observe(&mut self, event: &Event<'_>, out: &mut Vec<Decision>) -> Result<(), Rejection> {
        if event.service != self.policy.service.as_str() {
            return Err(Rejection::OtherService);
        }
        let Some(run) = &self.release else {
            return Err(Rejection::NoRelease);
        };
        let candidate = if event.version == run.candidate.as_str() {
            true
        } else if event.version == run.baseline.as_str() {
            false
        } else {
            return Err(Rejection::UnknownVersion);
        };
        if event.ts < self.now - self.options.lateness {
            return Err(Rejection::TooLate);
        }
        self.advance(event.ts, out);
        self.load_values(event);
        let unit = unit_hash(&event.unit);
        self.count_outputs(candidate, unit, event.ts);
        // Units are what the rollout assigns, so they are the clusters of
        // the design effect; the outputs of an event without one (or of a
        // pre-aggregated stream, `srm.count: outputs`) count as independent.
        let by_unit = self.policy.srm.count == SrmCount::Units && !event.unit.is_empty();
        let cluster = by_unit.then(|| cluster_of(unit));
        if !candidate {
            self.count_baseline(event);
        }
        if !self.evaluating() {
            return Ok(());
        }
        let mut transitions = Vec::new();
        let now = self.now;
        let Some(run) = &mut self.release else {
            return Ok(());
        };
        run.samples_seen += 1;
        for (i, state) in run.criteria.iter_mut().enumerate() {
            if !in_scope(&state.spec.scope, event) {
                continue;
            }
            let Some(sample) = sample_of(self.bindings[i], &self.scratch, &self.options.limits)
            else {
                continue;
            };
            let signal = &self.policy.signals[state.spec.signal];
            let Some(sample) = keyed(state, signal, event, sample) else {
                continue;
            };
            let sample = if state.per_unit() {
                match state.unit_sample(unit, sample) {
                    Some(s) => s,
                    None => continue,
                }
            } else {
                sample
            };
            let flagged = state.observe(event.ts, now, candidate, cluster, sample);
            // Evidence only grows on flags; other samples matter for clearing
            // (active criteria) and for criteria that read every event, which
            // the per-second pass also covers.
            let every = state.reads_every_event();
            let due = flagged && !state.is_score()
                || state.is_active()
                || (every && run.samples_seen % 32 == 0);
            if due && let Some(t) = state.evaluate(now) {
                transitions.push((i, t));
            }
        }
        self.after_transitions(transitions, out);
        // Pre-aggregated outputs are checked once time moves past their
        // stamp (`advance`), when the other version's bucket of the same
        // period is in too: a stream sends one version's bucket before the
        // other's, and between the two the split is off by a whole bucket.
        if self.policy.srm.count == SrmCount::Units {
            self.check_srm(out);
        }
        Ok(())
    }

    /// Advances time: hold steps, `for` timers, approvals, verification.
    pub fn tick(&mut self, now: Time, out: &mut Vec<Decision>) {
        self.advance(now, out);
    }

    /// Moves "now" forward (never back) and runs the time-driven work once
    /// per new second.
    fn advance(&mut self, ts: Time, out: &mut Vec<Decision>) {
        if ts <= self.now {
            return;
        }
        if self.policy.srm.count == SrmCount::Outputs {
            // Every bucket stamped up to now is in: see `observe`.
            self.check_srm(out);
        }
        self.now = ts;
        let second = ts.0.div_euclid(1000);
        let Some(run) = &mut self.release else {
            return;
        };
        if second > run.last_second {
            run.last_second = second;
            self.on_time(out);
        }
    }

    fn on_time(&mut self, out: &mut Vec<Decision>) {
        self.release_timers(out);
        if !self.evaluating() {
            return;
        }
        let now = self.now;
        let Some(run) = &mut self.release else {
            return;
        };
        let transitions: Vec<(usize, Transition)> = run
            .criteria
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.evaluate(now).map(|t| (i, t)))
            .collect();
        self.after_transitions(transitions, out);
    }

    /// Whether criteria are being watched in the current state. After a
    /// sample-ratio mismatch nothing is decided on the broken data until a
    /// person resumes.
    fn evaluating(&self) -> bool {
        self.release.as_ref().is_some_and(|r| {
            !r.srm_fired
                && !matches!(
                    r.state,
                    ReleaseState::RolledBack
                        | ReleaseState::Promoted
                        | ReleaseState::RollingBack { .. }
                )
        })
    }

    fn load_values(&mut self, event: &Event<'_>) {
        self.scratch.iter_mut().for_each(|v| *v = None);
        for (name, value) in &event.values {
            if let Some(i) = self.fields.iter().position(|f| f == name.as_ref()) {
                self.scratch[i] = Some(*value);
            }
        }
    }

    /// Counts outputs for rollback verification and assignments for the
    /// SRM check. By default the check counts each unit once, when it is
    /// first seen: whether that unit is the candidate's depends only on its
    /// hash, so one busy user cannot tip the split the way counting their
    /// outputs would. Pre-aggregated streams count outputs instead.
    fn count_outputs(&mut self, candidate: bool, unit: u64, ts: Time) {
        let lateness = self.options.lateness;
        let by_units = self.policy.srm.count == SrmCount::Units;
        let srm_on = self.policy.srm.enabled;
        let outputs = self.outputs_field.and_then(|i| self.scratch[i]);
        let Some(run) = &mut self.release else {
            return;
        };
        let n = self.options.limits.count(outputs.unwrap_or(1.0));
        if let Some(rb) = &mut run.rollback
            && rb.judges(ts, lateness)
        {
            rb.all_outputs += n;
            if candidate {
                rb.candidate_outputs += n;
            }
        }
        if !matches!(
            run.state,
            ReleaseState::Ramping { .. } | ReleaseState::Holding
        ) {
            return;
        }
        // Without the check, no unit set to fill (2 MiB once a unit counts).
        if !srm_on {
            return;
        }
        if !by_units {
            run.srm.add(run.share_in_force, candidate, n);
        } else if run.units_seen.insert(unit) {
            run.srm.add(run.share_in_force, candidate, 1.0);
        }
    }

    fn check_srm(&mut self, out: &mut Vec<Decision>) {
        let srm = &self.policy.srm;
        let Some(run) = &self.release else {
            return;
        };
        if !srm.enabled || run.srm_fired {
            return;
        }
        let (c, b, expected) = run.srm.counts();
        let alpha = 1.0 - srm.confidence;
        if c + b < srm.min_samples as f64 || run.srm.log_e_value() < (1.0 / alpha).ln() {
            return;
        }
        let evidence = Evidence {
            criterion: "sample_ratio".into(),
            signal: OUTPUTS.into(),
            test: "sequential sample-ratio mixture likelihood ratio (anytime-valid)",
            bound: "candidate's share of new units (or of pre-aggregated outputs) = assigned share"
                .into(),
            statistic: run.srm.log_e_value().exp(),
            threshold: 1.0 / alpha,
            confidence: srm.confidence,
            estimate: Some(c / (c + b)),
            interval: None,
            window_estimate: None,
            window: Dur::ZERO,
            candidate: Samples { n: c, sum: 0.0 },
            baseline: Some(Samples { n: b, sum: 0.0 }),
            window_candidate: Samples::default(),
            window_baseline: None,
            breached_for: Dur::ZERO,
            breakdown: Vec::new(),
        };
        let summary = format!(
            "sample ratio mismatch: the candidate got {} of {} {}, {} expected at the assigned share; \
             halting instead of deciding on broken data",
            c,
            c + b,
            match srm.count {
                SrmCount::Units => "new units",
                SrmCount::Outputs => "outputs",
            },
            expected.round()
        );
        if let Some(run) = &mut self.release {
            run.srm_fired = true;
        }
        self.pause(out, ActionKind::Pause, None, summary, vec![evidence]);
    }

    fn after_transitions(
        &mut self,
        transitions: Vec<(usize, Transition)>,
        out: &mut Vec<Decision>,
    ) {
        if transitions.is_empty() {
            return;
        }
        let now = self.now;
        for (i, t) in &transitions {
            let Some(run) = &self.release else {
                return;
            };
            let evidence = run.criteria[*i].evidence(now);
            let (kind, verb) = match t {
                Transition::Breached => (DecisionKind::CriterionBreached, "breached"),
                Transition::NoData => (
                    DecisionKind::CriterionNoData,
                    "has no data in its window (on_no_data: breach; not statistical evidence)",
                ),
                Transition::Cleared => (DecisionKind::CriterionCleared, "cleared"),
            };
            let summary = format!("{} {verb}: {}", evidence.criterion, describe(&evidence));
            let mut d = self.decision(kind, summary, vec![evidence]);
            d.criterion = Some(self.policy.criteria[*i].name.clone());
            self.push(out, d);
        }
        self.evaluate_triggers(out);
    }

    fn evaluate_triggers(&mut self, out: &mut Vec<Decision>) {
        let Some(run) = &mut self.release else {
            return;
        };
        let breached: Vec<bool> = run.criteria.iter().map(|c| c.breached).collect();
        let mut fired = Vec::new();
        for (t, trigger) in self.policy.triggers.iter().enumerate() {
            let active = holds(&trigger.when, &breached);
            if active && !run.trigger_active[t] {
                fired.push(t);
            }
            run.trigger_active[t] = active;
        }
        // Critical first, so a rollback is not queued behind an approval.
        fired.sort_by_key(|t| std::cmp::Reverse(self.policy.triggers[*t].severity));
        for t in fired {
            self.fire(t, out);
        }
    }

    fn fire(&mut self, t: usize, out: &mut Vec<Decision>) {
        let Some(run) = &self.release else {
            return;
        };
        if !matches!(
            run.state,
            ReleaseState::Ramping { .. }
                | ReleaseState::Holding
                | ReleaseState::Paused { .. }
                | ReleaseState::AwaitingApproval { .. }
                | ReleaseState::Watching
        ) {
            return;
        }
        let awaiting = matches!(run.state, ReleaseState::AwaitingApproval { .. });
        let trigger = self.policy.triggers[t].clone();
        let evidence = self.trigger_evidence(&trigger.when);
        let summary = format!(
            "trigger {} ({}) fired: {}",
            trigger.name,
            trigger.severity.as_str(),
            evidence
                .iter()
                .map(|e| e.criterion.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut d = self.decision(DecisionKind::TriggerFired, summary, evidence.clone());
        d.trigger = Some(trigger.name.clone());
        d.severity = Some(trigger.severity);
        self.push(out, d);

        let overrides = awaiting && trigger.severity == Severity::Critical;
        match (&trigger.approval, &trigger.action) {
            (_, Action::Notify) => self.execute(t, out, None),
            (Approval::Role { role, within, .. }, _) if !overrides => {
                let role = role.clone();
                let within = *within;
                self.request_approval(t, &role, within, evidence, out);
            }
            _ => {
                let note = overrides.then(|| {
                    format!(
                        "critical trigger {} overrides the pending approval",
                        trigger.name
                    )
                });
                if let Some(run) = &mut self.release
                    && overrides
                {
                    run.pending = None;
                }
                self.execute(t, out, note);
            }
        }
    }

    fn request_approval(
        &mut self,
        t: usize,
        role: &str,
        within: Dur,
        evidence: Vec<Evidence>,
        out: &mut Vec<Decision>,
    ) {
        let now = self.now;
        let trigger = &self.policy.triggers[t];
        let Some(run) = &mut self.release else {
            return;
        };
        let resume_to = match &run.pending {
            Some(p) => p.resume_to.clone(),
            None => run.state.clone(),
        };
        run.pending = Some(Pending {
            trigger: t,
            deadline: now + within,
            resume_to,
        });
        run.state = ReleaseState::AwaitingApproval {
            trigger: trigger.name.clone(),
        };
        let summary = format!(
            "{} of trigger {} needs approval by role {} within {}; the rollout is frozen meanwhile",
            action_name(&trigger.action),
            trigger.name,
            role,
            within
        );
        let name = trigger.name.clone();
        let severity = trigger.severity;
        let mut d = self.decision(DecisionKind::ApprovalRequested, summary, evidence);
        d.trigger = Some(name);
        d.severity = Some(severity);
        d.idempotency_key = Some(self.next_key("approval_requested"));
        self.push(out, d);
    }

    /// Carries out trigger `t`'s action.
    fn execute(&mut self, t: usize, out: &mut Vec<Decision>, note: Option<String>) {
        let trigger = self.policy.triggers[t].clone();
        let evidence = self.trigger_evidence(&trigger.when);
        let reason = match note {
            Some(n) => format!("{n}; trigger {} fired", trigger.name),
            None => format!("trigger {} fired", trigger.name),
        };
        let tag = Some((trigger.name.clone(), trigger.severity));
        match &trigger.action {
            Action::Notify => {
                self.emit_action(out, ActionKind::Notify, None, tag, reason, evidence)
            }
            Action::Pause => self.pause(out, ActionKind::Pause, tag, reason, evidence),
            Action::PauseAndInvestigate => self.pause(
                out,
                ActionKind::PauseAndInvestigate,
                tag,
                format!("{reason}; investigate before any revert"),
                evidence,
            ),
            Action::Rollback { stages } => {
                self.start_rollback(stages.clone(), tag, reason, evidence, out)
            }
        }
    }

    fn pause(
        &mut self,
        out: &mut Vec<Decision>,
        kind: ActionKind,
        tag: Option<(String, Severity)>,
        reason: String,
        evidence: Vec<Evidence>,
    ) {
        let Some(run) = &mut self.release else {
            return;
        };
        let from = match (&run.pending, &run.state) {
            (Some(p), _) => p.resume_to.clone(),
            (None, ReleaseState::Paused { .. }) => {
                run.paused_from.clone().unwrap_or(run.state.clone())
            }
            (None, s) => s.clone(),
        };
        run.pending = None;
        run.paused_from = Some(from);
        run.state = ReleaseState::Paused {
            reason: reason.clone(),
        };
        self.emit_action(out, kind, None, tag, reason, evidence);
    }

    fn start_rollback(
        &mut self,
        stages: Vec<RollbackStage>,
        tag: Option<(String, Severity)>,
        reason: String,
        evidence: Vec<Evidence>,
        out: &mut Vec<Decision>,
    ) {
        let now = self.now;
        let Some(run) = &mut self.release else {
            return;
        };
        run.pending = None;
        run.rollback = Some(Rollback {
            stages,
            stage: 0,
            stage_started: now,
            from_share: run.share,
            candidate_outputs: 0.0,
            all_outputs: 0.0,
            baseline: vec![(0.0, 0.0); self.policy.criteria.len()],
        });
        self.enter_stage(0, tag, reason, evidence, out);
    }

    fn enter_stage(
        &mut self,
        stage: usize,
        tag: Option<(String, Severity)>,
        reason: String,
        evidence: Vec<Evidence>,
        out: &mut Vec<Decision>,
    ) {
        let now = self.now;
        let engine_drives = self.options.share_source == ShareSource::Engine;
        let Some(run) = &mut self.release else {
            return;
        };
        let Some(rb) = &mut run.rollback else {
            return;
        };
        let Some(spec) = rb.stages.get(stage) else {
            return;
        };
        let share = rb.from_share * (1.0 - spec.fraction);
        let summary = format!(
            "{reason}; rollback stage {}/{}: {}% of the candidate's units moved back, candidate now at {}%, verifying for {}",
            stage + 1,
            rb.stages.len(),
            pct(spec.fraction),
            pct(share),
            spec.verify_for
        );
        rb.stage = stage;
        rb.stage_started = now;
        rb.candidate_outputs = 0.0;
        rb.all_outputs = 0.0;
        rb.baseline.iter_mut().for_each(|t| *t = (0.0, 0.0));
        run.share = share;
        if engine_drives {
            run.share_in_force = share;
        }
        run.state = ReleaseState::RollingBack { stage };
        self.emit_action(
            out,
            ActionKind::RollbackStage,
            Some(share),
            tag,
            summary,
            evidence,
        );
    }

    /// Hold steps, approval deadlines, rollback verification, watch end.
    fn release_timers(&mut self, out: &mut Vec<Decision>) {
        let now = self.now;
        let Some(run) = &self.release else {
            return;
        };
        match run.state.clone() {
            ReleaseState::Ramping { step } => {
                // A validated policy has at least one step; a hand-built one
                // without steps just never advances.
                let hold = self
                    .policy
                    .rollout
                    .steps
                    .get(step)
                    .map_or(Dur(i64::MAX), |s| s.hold);
                let breaching = run.criteria.iter().any(|c| c.is_active());
                if now - run.step_started >= hold && !breaching {
                    self.next_step(step, out);
                }
            }
            ReleaseState::AwaitingApproval { .. } => {
                if let Some(p) = &run.pending
                    && now >= p.deadline
                {
                    self.approval_timed_out(out);
                }
            }
            ReleaseState::RollingBack { stage } => {
                if let Some(rb) = &run.rollback
                    && now - rb.stage_started >= rb.stages[stage].verify_for
                {
                    self.verify_stage(stage, out);
                }
            }
            ReleaseState::Watching if now >= run.watch_until => {
                let held_back = run.share < 1.0;
                self.set_share(1.0);
                self.set_state(ReleaseState::Promoted);
                let (share, summary) = if held_back {
                    (
                        Some(1.0),
                        "post-promotion watch ended with no trigger fired; the holdback joins the candidate (100%)",
                    )
                } else {
                    (None, "post-promotion watch ended with no trigger fired")
                };
                self.emit_action(
                    out,
                    ActionKind::WatchComplete,
                    share,
                    None,
                    summary.to_string(),
                    Vec::new(),
                );
            }
            _ => {}
        }
    }

    fn next_step(&mut self, step: usize, out: &mut Vec<Decision>) {
        let steps = &self.policy.rollout.steps;
        if step + 1 < steps.len() {
            let share = steps[step + 1].share;
            let summary = format!(
                "step {} held for {} with no trigger fired; ramping to {}% (step {}/{})",
                step + 1,
                steps.get(step).map_or(Dur::ZERO, |s| s.hold),
                pct(share),
                step + 2,
                steps.len()
            );
            self.set_share(share);
            if let Some(run) = &mut self.release {
                run.step = step + 1;
                run.step_started = self.now;
            }
            self.set_state(ReleaseState::Ramping { step: step + 1 });
            self.emit_action(
                out,
                ActionKind::Ramp,
                Some(share),
                None,
                summary,
                Vec::new(),
            );
        } else {
            match self.policy.rollout.promotion {
                Promotion::Automatic => {
                    self.promote(out, "the last step held with no trigger fired")
                }
                Promotion::Manual => self.set_state(ReleaseState::Holding),
            }
        }
    }

    fn promote(&mut self, out: &mut Vec<Decision>, why: &str) {
        let watch = self.policy.rollout.watch_after_promotion;
        let every = self.policy.rollout.false_alarm_every;
        let holdback = self.policy.rollout.holdback;
        let now = self.now;
        let share = 1.0 - holdback;
        self.set_share(share);
        if let Some(run) = &mut self.release {
            run.watch_until = now + watch;
            // With a holdback the versions are still compared; without one
            // the relative criteria switch to watching for a change.
            if holdback == 0.0 {
                for c in &mut run.criteria {
                    c.promote(now, every);
                }
            }
        }
        self.set_state(ReleaseState::Watching);
        let summary = if holdback > 0.0 {
            format!(
                "{why}; promoting to {}%, {}% of units held back on the baseline and the versions still compared for {watch}",
                pct(share),
                pct(holdback)
            )
        } else {
            format!("{why}; promoting to 100%, criteria still apply for {watch}")
        };
        self.emit_action(
            out,
            ActionKind::Promote,
            Some(share),
            None,
            summary,
            Vec::new(),
        );
    }

    fn approval_timed_out(&mut self, out: &mut Vec<Decision>) {
        let Some(run) = &mut self.release else {
            return;
        };
        let Some(p) = run.pending.take() else {
            return;
        };
        let trigger = &self.policy.triggers[p.trigger];
        let Approval::Role {
            role,
            within,
            on_timeout,
            ..
        } = &trigger.approval
        else {
            return;
        };
        let note = format!("no approval by {role} within {within}");
        match on_timeout {
            OnTimeout::Proceed => self.execute(
                p.trigger,
                out,
                Some(format!("{note}; the policy says proceed")),
            ),
            OnTimeout::Hold => {
                run.pending = Some(p);
                let reason = format!("{note}; the policy says hold");
                let tag = Some((trigger.name.clone(), trigger.severity));
                self.pause(out, ActionKind::Pause, tag, reason, Vec::new());
            }
        }
    }

    /// During a rollback the baseline, now serving the moved-back users, is
    /// held to the policy's absolute rate bounds (relative ones need a
    /// candidate to compare with, and it is leaving).
    fn count_baseline(&mut self, event: &Event<'_>) {
        let Some(run) = &mut self.release else {
            return;
        };
        let Some(rb) = &mut run.rollback else {
            return;
        };
        if !matches!(run.state, ReleaseState::RollingBack { .. })
            || !rb.judges(event.ts, self.options.lateness)
        {
            return;
        }
        for (i, c) in self.policy.criteria.iter().enumerate() {
            let (
                Binding::Rate {
                    numerator,
                    denominator,
                },
                Bound::Absolute(_),
            ) = (self.bindings[i], c.bound)
            else {
                continue;
            };
            if !in_scope(&c.scope, event) {
                continue;
            }
            if let (Some(f), Some(n)) = (self.scratch[numerator], self.scratch[denominator]) {
                // Clamped like every count: a negative or oversized flag
                // count must not make a failing stage look verified.
                let n = self.options.limits.count(n);
                rb.baseline[i].0 += self.options.limits.count(f).min(n);
                rb.baseline[i].1 += n;
            }
        }
    }

    /// What is wrong at the end of a stage's verification, if anything:
    /// the candidate still serving more than it was assigned, or the
    /// baseline certainly outside an absolute bound.
    fn stage_problems(&self, run: &Run, rb: &Rollback) -> Vec<String> {
        let mut problems = Vec::new();
        let engine_drives = self.options.share_source == ShareSource::Engine;
        if engine_drives && rb.all_outputs >= SERVED_MIN_OUTPUTS {
            let observed = rb.candidate_outputs / rb.all_outputs;
            if observed > run.share * SERVED_FACTOR + SERVED_SLACK {
                problems.push(format!(
                    "the candidate still served {}% of {} outputs though assigned {}%: clients are not following the assignment",
                    pct(observed),
                    rb.all_outputs,
                    pct(run.share)
                ));
            }
        }
        for (c, &(flagged, total)) in self.policy.criteria.iter().zip(&rb.baseline) {
            let Bound::Absolute(limit) = c.bound else {
                continue;
            };
            if total < c.min_samples.max(1) as f64 {
                continue;
            }
            let direction = self.policy.signals[c.signal].direction;
            let cb = confidence_bound(flagged, total, 1.0 - c.confidence, direction);
            let outside = match direction {
                Direction::HigherIsWorse => cb > limit,
                Direction::LowerIsWorse => cb < limit,
            };
            if outside {
                problems.push(format!(
                    "the baseline breaks {}: {flagged}/{total} = {:.4}, certainly beyond {limit} at {}% confidence",
                    c.name,
                    flagged / total,
                    pct(c.confidence)
                ));
            }
        }
        problems
    }

    fn verify_stage(&mut self, stage: usize, out: &mut Vec<Decision>) {
        let engine_drives = self.options.share_source == ShareSource::Engine;
        let Some(run) = &self.release else {
            return;
        };
        let Some(rb) = &run.rollback else {
            return;
        };
        let problems = self.stage_problems(run, rb);
        if !problems.is_empty() {
            let reason = format!(
                "rollback stage {}/{} failed verification: {}; holding at {}% for a person: resume verifies the stage again, rollback moves everyone back now",
                stage + 1,
                rb.stages.len(),
                problems.join("; "),
                pct(run.share)
            );
            self.pause(out, ActionKind::Pause, None, reason, Vec::new());
            return;
        }
        let observed = if rb.all_outputs > 0.0 {
            rb.candidate_outputs / rb.all_outputs
        } else {
            0.0
        };
        let verification = if engine_drives {
            format!(
                "verified: the candidate served {}% of {} outputs during the stage (assigned {}%)",
                pct(observed),
                rb.all_outputs,
                pct(run.share)
            )
        } else {
            "recorded traffic: the stage cannot be verified in replay".to_string()
        };
        if stage + 1 < rb.stages.len() {
            self.enter_stage(stage + 1, None, verification, Vec::new(), out);
        } else {
            self.set_share(0.0);
            self.set_state(ReleaseState::RolledBack);
            let summary = format!("rollback complete, everyone is on the baseline; {verification}");
            self.emit_action(
                out,
                ActionKind::RollbackComplete,
                Some(0.0),
                None,
                summary,
                Vec::new(),
            );
        }
    }

    /// A person's (or an API client's) request.
    pub fn command(
        &mut self,
        at: Time,
        command: Command,
        out: &mut Vec<Decision>,
    ) -> Result<(), CommandError> {
        self.advance(at, out);
        let Some(run) = &self.release else {
            return Err(CommandError::NoRelease);
        };
        let state = run.state.clone();
        let refuse = |name: &'static str| CommandError::NotAllowed {
            command: name,
            state: state_name(&state).to_string(),
        };
        match (command, &state) {
            (
                Command::Promote,
                ReleaseState::Ramping { .. } | ReleaseState::Holding | ReleaseState::Paused { .. },
            ) => self.promote(out, "promoted by command"),
            (
                Command::Pause,
                ReleaseState::Ramping { .. } | ReleaseState::Holding | ReleaseState::Watching,
            ) => self.pause(
                out,
                ActionKind::Pause,
                None,
                "paused by command".into(),
                Vec::new(),
            ),
            (Command::Resume, ReleaseState::Paused { .. }) => {
                self.resume(out, "resumed by command")
            }
            (
                Command::Rollback,
                ReleaseState::Ramping { .. }
                | ReleaseState::Holding
                | ReleaseState::Paused { .. }
                | ReleaseState::AwaitingApproval { .. }
                | ReleaseState::Watching,
            ) => {
                let stages = vec![RollbackStage {
                    fraction: 1.0,
                    verify_for: Dur::ZERO,
                }];
                self.start_rollback(stages, None, "rollback by command".into(), Vec::new(), out);
            }
            (Command::ReRelease, ReleaseState::RolledBack) => self.re_release(out),
            (Command::Approve, ReleaseState::AwaitingApproval { .. }) => {
                let t = run.pending.as_ref().map(|p| p.trigger);
                if let Some(t) = t {
                    self.execute(t, out, Some("approved".into()));
                }
            }
            (Command::Reject, ReleaseState::AwaitingApproval { .. }) => {
                let resume_to = run.pending.as_ref().map(|p| p.resume_to.clone());
                if let Some(run) = &mut self.release {
                    run.pending = None;
                    run.paused_from = resume_to;
                }
                self.resume(out, "approval rejected; the rollout continues");
            }
            (c, _) => return Err(refuse(c.verb())),
        }
        Ok(())
    }

    fn resume(&mut self, out: &mut Vec<Decision>, why: &str) {
        let now = self.now;
        let Some(run) = &mut self.release else {
            return;
        };
        let to = run
            .paused_from
            .take()
            .unwrap_or(ReleaseState::Ramping { step: run.step });
        if let ReleaseState::Ramping { .. } = to {
            run.step_started = now;
        }
        if let (ReleaseState::RollingBack { .. }, Some(rb)) = (&to, &mut run.rollback) {
            // The person who resumes asks for the stage to be verified again.
            rb.stage_started = now;
            rb.candidate_outputs = 0.0;
            rb.all_outputs = 0.0;
            rb.baseline.iter_mut().for_each(|t| *t = (0.0, 0.0));
        }
        if run.srm_fired {
            // The person who resumes vouches for the data from here on.
            run.srm_fired = false;
            run.srm = SrmTest::default();
            run.units_seen.clear();
        }
        run.state = to;
        self.emit_action(
            out,
            ActionKind::Resume,
            None,
            None,
            why.to_string(),
            Vec::new(),
        );
    }

    fn re_release(&mut self, out: &mut Vec<Decision>) {
        let Some(old) = self.release.take() else {
            return;
        };
        let share = self.policy.rollout.steps.first().map_or(0.05, |s| s.share);
        let mut run = self.new_run(&old.baseline, &old.candidate, share, old.generation + 1);
        run.state = ReleaseState::Ramping { step: 0 };
        run.step = 0;
        self.release = Some(run);
        let summary = format!(
            "re-released {} after rollback (generation {}), starting again at {}%",
            old.candidate,
            old.generation + 1,
            pct(share)
        );
        self.emit_action(
            out,
            ActionKind::ReRelease,
            Some(share),
            None,
            summary,
            Vec::new(),
        );
    }

    fn set_state(&mut self, state: ReleaseState) {
        if let Some(run) = &mut self.release {
            run.state = state;
        }
    }

    fn set_share(&mut self, share: f64) {
        let engine_drives = self.options.share_source == ShareSource::Engine;
        if let Some(run) = &mut self.release {
            run.share = share;
            if engine_drives {
                run.share_in_force = share;
            }
        }
    }

    fn trigger_evidence(&self, when: &Condition) -> Vec<Evidence> {
        let Some(run) = &self.release else {
            return Vec::new();
        };
        let mut indices = Vec::new();
        criteria_of(when, &mut indices);
        indices
            .into_iter()
            .filter(|i| run.criteria[*i].breached)
            .map(|i| run.criteria[i].evidence(self.now))
            .collect()
    }

    fn emit_action(
        &mut self,
        out: &mut Vec<Decision>,
        kind: ActionKind,
        share: Option<f64>,
        tag: Option<(String, Severity)>,
        summary: String,
        evidence: Vec<Evidence>,
    ) {
        let share = share.or_else(|| self.release.as_ref().map(|r| r.share));
        let mut d = self.decision(DecisionKind::Action, summary, evidence);
        d.action = Some(kind);
        d.share = share;
        if let Some((trigger, severity)) = tag {
            d.trigger = Some(trigger);
            d.severity = Some(severity);
        }
        d.idempotency_key = Some(self.next_key(kind.as_str()));
        self.push(out, d);
    }

    fn decision(&self, kind: DecisionKind, summary: String, evidence: Vec<Evidence>) -> Decision {
        Decision {
            at: self.now.max(self.last_decision),
            kind,
            service: self.policy.service.clone(),
            release: self
                .release
                .as_ref()
                .map_or_else(String::new, |r| r.id.clone()),
            criterion: None,
            trigger: None,
            severity: None,
            action: None,
            share: None,
            idempotency_key: None,
            explanation: Explanation { summary, evidence },
        }
    }

    fn push(&mut self, out: &mut Vec<Decision>, d: Decision) {
        self.last_decision = d.at;
        out.push(d);
    }

    /// `release/action/n`: the n-th such action of this release.
    fn next_key(&mut self, action: &'static str) -> String {
        let Some(run) = &mut self.release else {
            return action.to_string();
        };
        let n = match run.action_counts.iter_mut().find(|(k, _)| k == action) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                run.action_counts.push((action.to_string(), 1));
                1
            }
        };
        format!("{}/{}/{}", run.id, action, n)
    }
}

/// Splits `1 − confidence` over the criteria that can roll a release back
/// (Bonferroni), so that the chance of any false rollback stays within the
/// stated confidence; other criteria keep their own level.
fn error_budgets(policy: &Policy) -> Vec<f64> {
    let mut rollback = Vec::new();
    for t in &policy.triggers {
        if matches!(t.action, Action::Rollback { .. }) {
            criteria_of(&t.when, &mut rollback);
        }
    }
    rollback.sort_unstable();
    rollback.dedup();
    let k = rollback.len().max(1) as f64;
    policy
        .criteria
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // 1 − 0.95 is 0.050000000000000044 in binary; round it so that
            // thresholds read as the 20 a user expects.
            let alpha = ((1.0 - c.confidence) * 1e12).round() / 1e12;
            if rollback.contains(&i) {
                alpha / k
            } else {
                alpha
            }
        })
        .collect()
}

fn criteria_of(c: &Condition, out: &mut Vec<usize>) {
    match c {
        Condition::Criterion(i) => {
            if !out.contains(i) {
                out.push(*i)
            }
        }
        Condition::All(cs) | Condition::Any(cs) | Condition::AtLeast { of: cs, .. } => {
            cs.iter().for_each(|c| criteria_of(c, out))
        }
    }
}

fn holds(c: &Condition, breached: &[bool]) -> bool {
    match c {
        Condition::Criterion(i) => breached[*i],
        Condition::All(cs) => cs.iter().all(|c| holds(c, breached)),
        Condition::Any(cs) => cs.iter().any(|c| holds(c, breached)),
        Condition::AtLeast { k, of } => of.iter().filter(|c| holds(c, breached)).count() >= *k,
    }
}

fn in_scope(scope: &[(String, String)], event: &Event<'_>) -> bool {
    scope
        .iter()
        .all(|(k, v)| event.segment_value(k) == Some(v.as_str()))
}

fn sample_of(binding: Binding, values: &[Option<f64>], limits: &EventLimits) -> Option<Sample> {
    match binding {
        Binding::Rate {
            numerator,
            denominator,
        } => {
            // An event counts towards a rate when it carries the denominator;
            // a missing numerator means "not flagged". A count cannot be
            // negative, exceed its denominator or the per-event limit,
            // whatever a sender claims: sums stay finite.
            let n = limits.count(values[denominator]?);
            let x = limits.count(values[numerator].unwrap_or(0.0)).min(n);
            (n > 0.0).then_some(Sample::new(n, x))
        }
        Binding::Value { field } => Some(Sample::new(1.0, limits.value(values[field]?))),
        Binding::Category { outputs } => {
            let n = limits.count(values[outputs].unwrap_or(1.0));
            (n > 0.0).then_some(Sample::new(n, 0.0))
        }
    }
}

/// Keys a sample by its category or segment value, for drift and fairness
/// criteria; `None` when the event does not carry the attribute.
fn keyed(
    state: &mut CriterionState,
    signal: &Signal,
    event: &Event<'_>,
    s: Sample,
) -> Option<Sample> {
    match state.key_field(signal) {
        None => Some(s),
        Some(field) => {
            let value = event.segment_value(field)?;
            Some(Sample {
                key: state.key_of(value),
                ..s
            })
        }
    }
}

/// A stable 64-bit hash of a unit id (FNV-1a), for per-unit counting. Not
/// the assignment hash: this one only has to tell units apart.
fn unit_hash(unit: &str) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    unit.hash(&mut h);
    h.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn describe(e: &Evidence) -> String {
    let est = e.estimate.map_or("n/a".to_string(), fmt_num);
    let west = e.window_estimate.map_or("n/a".to_string(), fmt_num);
    let samples = match e.baseline {
        Some(b) => format!(
            "candidate {}/{}, baseline {}/{}",
            fmt_num(e.candidate.sum),
            fmt_num(e.candidate.n),
            fmt_num(b.sum),
            fmt_num(b.n)
        ),
        None => format!(
            "candidate {}/{}",
            fmt_num(e.candidate.sum),
            fmt_num(e.candidate.n)
        ),
    };
    format!(
        "{} — estimate {est} (last {}: {west}); statistic {} vs {} at {}% confidence; {samples}{}",
        e.bound,
        e.window,
        fmt_num(e.statistic),
        fmt_num(e.threshold),
        pct(e.confidence),
        describe_parts(&e.breakdown)
    )
}

/// "; by category: billing 41% vs 22% (PSI term 0.12), …" or
/// "; by segment: de 0.031 (n 2000), en 0.010 (n 9000)".
fn describe_parts(parts: &[Part]) -> String {
    if parts.is_empty() {
        return String::new();
    }
    let drift = parts.iter().any(|p| p.reference.is_some());
    let items: Vec<String> = parts
        .iter()
        .take(5)
        .map(|p| match (p.reference, p.contribution) {
            (Some(r), Some(c)) => format!(
                "{} {}% vs {}% (PSI term {})",
                p.name,
                pct(p.value),
                pct(r),
                fmt_num(c)
            ),
            _ => format!("{} {} (n {})", p.name, fmt_num(p.value), fmt_num(p.n)),
        })
        .collect();
    let by = if drift { "category" } else { "segment" };
    format!("; by {by}: {}", items.join(", "))
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let digits = if x.abs() >= 100.0 {
        1
    } else if x.abs() >= 1.0 {
        3
    } else {
        6
    };
    let s = format!("{x:.digits$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A share as a percentage, without trailing zeros: 0.125 → `12.5`.
pub fn pct(x: f64) -> String {
    fmt_num((x * 100.0 * 1000.0).round() / 1000.0)
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Notify => "notify",
        Action::Pause => "pause",
        Action::PauseAndInvestigate => "pause_and_investigate",
        Action::Rollback { .. } => "rollback",
    }
}

pub fn state_name(s: &ReleaseState) -> &'static str {
    s.phase().as_str()
}
