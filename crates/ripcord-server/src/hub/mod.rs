//! The hub: one engine per service, driven by the API, the clock and
//! recovery — always through the same few functions, so live serving and a
//! restart replaying the journal take exactly the same path.
//!
//! Every engine input is handled under the service's lock: feed the engine,
//! turn what it decided into a [`Batch`] (journal entry, decisions, outbox
//! deliveries, release record), queue the batch to the writer, let go of the
//! lock, then wait until the batch is durable before answering.
//! `govern` drives the governance machine beside the engine.

pub mod answer;
pub mod govern;
pub mod review;
pub mod series;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use ripcord_core::engine::{
    Command, Engine, EngineOptions, Phase, Reading, ReleaseState, ReleaseStatus,
};
use ripcord_core::evidence::{Provenance, Reservoir, seed_for};
use ripcord_core::policy::{Policy, RolloutStep, load_policy};
use ripcord_core::record::{DecisionRecord, decision_to_line};
use ripcord_core::{Decision, Release, Time};
use ripcord_store::{
    Batch, DecisionEntry, JournalEntry, OutboxEntry, PendingAudit, ReleaseRecord, Sink, Store,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::ApiError;
pub use crate::journal::StepView;
use crate::journal::{self, CommandEntry, Entry, Kind, Start};
use crate::metrics;
use crate::rollback_rule::{self, RolledBack};
use crate::writer::{Durable, Writer};
use answer::{CommandAnswer, Ran};
use ripcord_govern::Governance;
use ripcord_govern::record::{INCIDENT, Incident, REQUEST, Request, RequestState};
use series::{Cadence, SeriesOptions};
use snapshot::{SNAPSHOT_BYTES, SNAPSHOT_EVERY, ServiceSnapshot};

/// Journal entries are read back this many at a time during recovery.
const PAGE: i64 = 512;

pub struct Hub {
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub options: EngineOptions,
    /// `http://host:port`, for links in notifications; set once serving.
    pub link_base: std::sync::OnceLock<String>,
    /// Notification channels by name, from the server config.
    pub channels:
        std::sync::OnceLock<std::collections::BTreeMap<String, crate::notify::ChannelConfig>>,
    /// Regulatory classes and report facts, from the server config.
    pub regulation: std::sync::OnceLock<crate::report::regulatory::Regulation>,
    services: RwLock<HashMap<String, Arc<Service>>>,
    /// The one clock the server reads ([`Hub::now`]).
    pub clock: Clock,
    /// When expired ingest idempotency keys were last forgotten (ms).
    pub keys_pruned_ms: std::sync::atomic::AtomicI64,
    /// The cadence and bound of releases' series ([`series`]).
    pub series: SeriesOptions,
    /// Woken when a release settles: a threshold review is pending
    /// ([`crate::reviews`]).
    pub reviews_due: tokio::sync::Notify,
    /// Whether settling a release asks for a review (`Config::reviews`).
    pub reviews_on: bool,
}

/// One service: its policy, engine and current release.
pub struct Service {
    pub name: String,
    pub state: tokio::sync::Mutex<State>,
    /// What `/v1/assign` and OFREP read, without waiting for the engine.
    assignment: RwLock<Option<Assignment>>,
    /// Assignment and OFREP answers this replica gave (the dashboard's
    /// "assignment calls seen").
    pub assign_calls: std::sync::atomic::AtomicU64,
}

pub struct State {
    pub policy: Policy,
    pub policy_version: i64,
    /// Built when a release starts, from the policy in force then.
    pub engine: Option<Engine>,
    /// The service's latest release.
    pub current: Option<ReleaseView>,
    pub releases_started: usize,
    pub sinks: Vec<Sink>,
    /// Answers to commands with idempotency keys given lately, newest last
    /// (bounded: [`answer::ANSWERS_IN_MEMORY`]), covering answers queued
    /// but not yet durable; the HTTP edge reads older ones from the store.
    pub answers: std::collections::VecDeque<(String, CommandAnswer)>,
    /// Ingest idempotency answers queued lately, newest last (bounded:
    /// `ingest::KEYS_IN_MEMORY`); older ones are read from the store.
    pub ingest_keys: std::collections::VecDeque<(String, String)>,
    /// Incidents and approval requests: the governance machine's state.
    pub gov: Governance,
    /// The current release is a drill: its incidents are drills too.
    pub drill: bool,
    /// What an incident's evidence bundle is frozen from.
    pub evidence: EvidenceInputs,
    /// When the service was last snapshotted, and where its release began.
    pub snapshots: Snapshots,
    /// How the service was rebuilt at start.
    pub recovery: Recovery,
    /// When the current release's next series point is due.
    pub series: Cadence,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshots {
    /// The journal sequence number of the current release's start entry.
    pub start_seq: Option<i64>,
    pub last_at: Option<Time>,
    /// Journal body bytes written since, which a restart would replay.
    pub bytes_since: usize,
    /// The last journal entry applied to the state (what a snapshot taken
    /// now covers).
    pub last_seq: Option<i64>,
}

/// How recovery rebuilt a service's engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The journal entry the snapshot it started from covers, if it used
    /// one.
    pub snapshot: Option<i64>,
    /// Journal entries replayed after it (or after the release start).
    pub replayed: usize,
}

/// The current release's raw material for evidence bundles: a seeded
/// reservoir of raw event lines (rebuilt identically by recovery), the
/// policy text, both versions' provenance and the decision lines.
#[derive(Default)]
pub struct EvidenceInputs {
    pub sample: Option<Reservoir>,
    pub policy_yaml: String,
    pub provenance: Vec<Provenance>,
    pub decisions: Vec<String>,
}

/// Decision lines kept per release for its evidence.
const KEPT_DECISIONS: usize = 1000;

impl EvidenceInputs {
    /// Notes one engine input: its raw event lines and its decision lines.
    fn remember(&mut self, kind: Kind, body: &str, decisions: &[String]) {
        if let (Some(sample), Kind::Events) = (self.sample.as_mut(), kind) {
            for line in body.lines() {
                sample.offer(line);
            }
        }
        let room = KEPT_DECISIONS.saturating_sub(self.decisions.len());
        self.decisions.extend(decisions.iter().take(room).cloned());
    }
}

/// Who gets which version, as of the engine's last decision.
#[derive(Clone, Debug)]
pub struct Assignment {
    pub release: String,
    pub baseline: String,
    pub candidate: String,
    pub share: f64,
}

/// A release as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReleaseView {
    pub id: String,
    pub service: String,
    pub baseline: String,
    pub candidate: String,
    pub state: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The candidate's share of units now.
    pub share: f64,
    pub generation: u32,
    /// The release as decisions name it (`service:baseline->candidate#n`).
    pub engine_release: String,
    pub policy_version: i64,
    pub steps: Vec<StepView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Events accepted for each side while this release ran.
    pub events: Counts,
    /// A rehearsal: its incidents are drills, kept out of the real figures.
    #[serde(default)]
    pub drill: bool,
    /// Every change of the candidate's share: from, to, who, why, under
    /// which policy version.
    #[serde(default)]
    pub moves: Vec<Move>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Move {
    pub at: String,
    pub from: f64,
    pub to: f64,
    pub state: Phase,
    /// A principal, or `engine`.
    pub by: String,
    pub why: String,
    pub policy_version: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub baseline: u64,
    pub candidate: u64,
}

/// What one engine input produced, before it is durable.
pub struct Applied {
    pub decisions: Vec<Decision>,
    pub durable: Durable,
}

fn steps_view(steps: &[RolloutStep]) -> Vec<StepView> {
    steps
        .iter()
        .map(|s| StepView {
            share: s.share,
            hold: Some(s.hold.to_string()),
        })
        .collect()
}

/// Lowers a release start's steps by the policy language's own rules
/// (`RolloutStep::share_problem`, its duration parser and default hold).
pub fn lower_steps(steps: &[StepView]) -> Result<Vec<RolloutStep>, ApiError> {
    if steps.is_empty() {
        return Err(ApiError::bad_request("steps: at least one step is needed"));
    }
    let mut lowered: Vec<RolloutStep> = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        if let Some(problem) = RolloutStep::share_problem(lowered.last().map(|p| p.share), s.share)
        {
            return Err(ApiError::bad_request(format!(
                "steps[{i}].share: {problem}"
            )));
        }
        let hold = match &s.hold {
            Some(text) => ripcord_core::policy::units::parse_duration(text)
                .map_err(|e| ApiError::bad_request(format!("steps[{i}].hold: {e}")))?,
            None => RolloutStep::DEFAULT_HOLD,
        };
        lowered.push(RolloutStep {
            share: s.share,
            hold,
        });
    }
    Ok(lowered)
}

impl State {
    /// Feeds one event to the service's engine: the hub's modules are the
    /// only code that feeds engines (ingest checks the event first).
    pub fn observe(
        &mut self,
        event: &ripcord_core::Event<'_>,
        out: &mut Vec<Decision>,
    ) -> Result<(), ripcord_core::engine::Rejection> {
        match self.engine.as_mut() {
            Some(engine) => engine.observe(event, out),
            None => Err(ripcord_core::engine::Rejection::NoRelease),
        }
    }
}

impl Service {
    pub fn assignment(&self) -> Option<Assignment> {
        self.assignment.read().ok().and_then(|a| a.clone())
    }

    fn set_assignment(&self, a: Option<Assignment>) {
        if let Ok(mut slot) = self.assignment.write() {
            *slot = a;
        }
    }
}

impl Hub {
    /// Opens the hub on a store, rebuilding every service's engine from
    /// its journal.
    pub async fn load(store: Arc<dyn Store>, options: EngineOptions) -> anyhow::Result<Hub> {
        let (journal, decisions) = store.last_seqs().await?;
        let writer = Writer::spawn(store.clone(), journal, decisions);
        let hub = Hub {
            store,
            writer,
            options,
            link_base: std::sync::OnceLock::new(),
            channels: std::sync::OnceLock::new(),
            regulation: std::sync::OnceLock::new(),
            services: RwLock::new(HashMap::new()),
            clock: Clock::Wall,
            keys_pruned_ms: std::sync::atomic::AtomicI64::new(0),
            series: SeriesOptions::default(),
            reviews_due: tokio::sync::Notify::new(),
            reviews_on: true,
        };
        for name in hub.store.services().await? {
            hub.recover(&name).await?;
        }
        Ok(hub)
    }

    /// The same hub reading `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: Clock) -> Hub {
        self.clock = clock;
        self
    }

    /// The same hub recording series points at `options`' cadence and
    /// bound (see [`series`]).
    /// Whether settling a release asks for a threshold review.
    pub fn with_reviews(mut self, on: bool) -> Hub {
        self.reviews_on = on;
        self
    }

    pub fn with_series(mut self, options: SeriesOptions) -> Hub {
        self.series = options;
        self
    }

    /// The current release's id (as its record has it) and its criteria's
    /// readings now; `None` for an unknown service or one that has not
    /// started a release.
    pub async fn readings(&self, service: &str) -> Option<(String, Vec<Reading>)> {
        let service = self.service(service)?;
        let state = service.state.lock().await;
        let id = state.current.as_ref()?.id.clone();
        Some((id, state.engine.as_ref()?.readings()))
    }

    /// "Now" for everything the server decides.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    pub fn service(&self, name: &str) -> Option<Arc<Service>> {
        self.services.read().ok()?.get(name).cloned()
    }

    pub fn service_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn known(&self, name: &str) -> Result<Arc<Service>, ApiError> {
        self.service(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "service \"{name}\" has no policy; PUT /v1/policies/{name} first"
            ))
        })
    }

    /// Rebuilds one service from the store: its newest policy, its sinks,
    /// its latest release record and — by replaying the journal from the
    /// latest release start through a fresh engine — the engine itself.
    async fn recover(&self, name: &str) -> anyhow::Result<()> {
        let Some(record) = self.store.policy(name).await? else {
            return Ok(());
        };
        let policy = load_policy(&record.yaml, &format!("policy {name} v{}", record.version))
            .map_err(|d| anyhow::anyhow!("stored policy no longer loads:\n{d}"))?;
        let releases = self.store.releases(Some(name)).await?;
        let current = match releases.last() {
            Some(r) => Some(serde_json::from_value::<ReleaseView>(r.body.clone())?),
            None => None,
        };
        let unreadable = |e: ApiError| anyhow::anyhow!(e.message);
        let incidents: Vec<Incident> = govern::read_docs(&*self.store, INCIDENT, Some(name))
            .await
            .map_err(unreadable)?;
        let requests: Vec<Request> = govern::read_docs(&*self.store, REQUEST, Some(name))
            .await
            .map_err(unreadable)?;
        let mut state = State {
            policy,
            policy_version: record.version,
            engine: None,
            drill: current.as_ref().is_some_and(|c| c.drill),
            current,
            releases_started: releases.len(),
            sinks: self.store.sinks(name).await?,
            answers: std::collections::VecDeque::new(),
            ingest_keys: Default::default(),
            gov: Governance::from_stored(incidents, requests),
            evidence: EvidenceInputs::default(),
            snapshots: Snapshots::default(),
            recovery: Recovery::default(),
            series: Cadence::default(),
        };
        if let Some(first) = first_of_chain(&*self.store, state.current.as_ref()).await? {
            state.evidence = self.evidence_inputs(name, &first, &state.policy).await?;
        }
        if let Some(start) = self.store.last_start(name).await? {
            state.snapshots.start_seq = Some(start);
            let snapshot = self.restore(name, start, &mut state).await;
            if snapshot.is_none() {
                self.replayable(name, start).await?;
            }
            let from = snapshot.map_or(start, |seq| seq + 1);
            let replayed = self.replay(name, from, &mut state).await?;
            state.recovery = Recovery { snapshot, replayed };
            tracing::info!(
                "{name}: engine rebuilt from {}, {replayed} journal entries replayed",
                snapshot.map_or("the release start".to_string(), |s| format!(
                    "the snapshot at journal entry {s}"
                ))
            );
        }
        let service = Arc::new(Service {
            name: name.to_string(),
            state: tokio::sync::Mutex::new(state),
            assignment: RwLock::new(None),
            assign_calls: std::sync::atomic::AtomicU64::new(0),
        });
        {
            let state = service.state.lock().await;
            service.set_assignment(assignment_of(&state));
            metrics::release_state(
                name,
                state.current.as_ref().map(|v| (v.state, v.share)),
                state.drill,
            );
        }
        if let Ok(mut map) = self.services.write() {
            map.insert(name.to_string(), service);
        }
        Ok(())
    }

    /// Refuses to rebuild a release from its start when retention deleted
    /// journal entries after it: only its snapshot can rebuild it, and a
    /// replay would silently miss what was deleted.
    async fn replayable(&self, name: &str, start: i64) -> anyhow::Result<()> {
        match self.store.pruned_through(name).await? {
            Some(pruned) if pruned > start => anyhow::bail!(
                "{name}: its snapshot cannot be used and retention deleted journal entries \
                 of its release up to entry {pruned}: the release cannot be rebuilt by \
                 replaying it (restore the snapshot, or run the ripcord version that wrote it)"
            ),
            _ => Ok(()),
        }
    }

    /// Applies a purge to what services hold in memory: the sample lines
    /// `erase` picks are forgotten (and the service snapshotted again, so
    /// that no stored snapshot keeps them), except in a release `held`
    /// keeps; incidents point at the bundles that replaced theirs. How
    /// many sample lines were forgotten, and how many a hold kept.
    pub async fn forget(
        &self,
        erase: &(dyn Fn(&str) -> bool + Sync),
        replaced: &[(String, String)],
        held: &ripcord_store::Held,
    ) -> anyhow::Result<(u64, u64)> {
        let (mut forgotten, mut kept) = (0, 0);
        for name in self.service_names() {
            let Some(service) = self.service(&name) else {
                continue;
            };
            let mut state = service.state.lock().await;
            for inc in &mut state.gov.incidents {
                if let Some((_, to)) = replaced
                    .iter()
                    .find(|(from, _)| inc.evidence.as_ref() == Some(from))
                {
                    inc.evidence = Some(to.clone());
                }
            }
            let is_held = state
                .current
                .as_ref()
                .is_some_and(|c| held.releases.contains(&c.id));
            let Some(sample) = state.evidence.sample.as_mut() else {
                continue;
            };
            if is_held {
                kept += sample.lines().iter().filter(|l| erase(l)).count() as u64;
                continue;
            }
            let n = sample.forget(erase) as u64;
            if n == 0 {
                continue;
            }
            forgotten += n;
            let mut batch = Batch::default();
            if let Some(seq) = state.snapshots.last_seq {
                take_snapshot(&name, &mut state, (seq, self.now()), &mut batch);
            }
            drop(state);
            if !batch.is_empty() {
                let durable = self.writer.submit(batch).await;
                durable
                    .await
                    .map_err(|_| anyhow::anyhow!("the writer has stopped"))?
                    .map_err(anyhow::Error::msg)?;
            }
        }
        Ok((forgotten, kept))
    }

    /// Feeds the journal from `start` on through a fresh engine. Decisions
    /// it makes again are already stored (they were written with the entry
    /// that caused them), so they are dropped.
    async fn replay(&self, name: &str, start: i64, state: &mut State) -> anyhow::Result<usize> {
        let mut from = start;
        let mut scratch = Vec::new();
        let mut replayed = 0;
        loop {
            let page = self.store.journal(name, from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for stored in &page {
                scratch.clear();
                let entry = journal::decode(&stored.kind, &stored.body)
                    .with_context(|| format!("journal entry {} of {name}", stored.seq))?;
                let kind = match entry {
                    Entry::Start(start) => {
                        let newest = (state.policy_version, &state.policy);
                        let policy = self.release_policy(name, &start, newest).await?;
                        state.engine = Some(self.new_engine(policy, &start, &mut scratch));
                        Kind::Start
                    }
                    other => replay_entry(&other, state, &mut scratch),
                };
                let lines: Vec<String> = scratch.iter().map(decision_to_line).collect();
                state.evidence.remember(kind, &stored.body, &lines);
                state.snapshots.last_seq = Some(stored.seq);
                replayed += 1;
            }
        }
        Ok(replayed)
    }

    /// Restores the engine and the evidence material from the service's
    /// snapshot, if it belongs to the release started at journal entry
    /// `start`; the journal entry it covers. A snapshot that cannot be
    /// used is logged, and the caller replays from the start.
    async fn restore(&self, name: &str, start: i64, state: &mut State) -> Option<i64> {
        let stored = match self.store.snapshot(name).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!("{name}: reading the snapshot: {e}");
                return None;
            }
        };
        match self.restore_from(name, start, &stored, state).await {
            Ok(true) => {
                state.snapshots.last_seq = Some(stored.journal_seq);
                Some(stored.journal_seq)
            }
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(
                    "{name}: the snapshot at journal entry {} is not used ({e:#}); \
                     replaying the journal from the release start",
                    stored.journal_seq
                );
                None
            }
        }
    }

    async fn restore_from(
        &self,
        name: &str,
        start: i64,
        stored: &ripcord_store::Snapshot,
        state: &mut State,
    ) -> anyhow::Result<bool> {
        let body = ServiceSnapshot::decode(&stored.body).map_err(anyhow::Error::msg)?;
        if body.start_seq != start || stored.journal_seq < start {
            // Taken during an earlier release.
            return Ok(false);
        }
        let first = self.store.journal(name, start, 1).await?;
        let entry = first
            .first()
            .context("the release's start entry is missing")?;
        let Entry::Start(begun) = journal::decode(&entry.kind, &entry.body)? else {
            anyhow::bail!("journal entry {start} is not a release start");
        };
        let newest = (state.policy_version, &state.policy);
        let policy = self.release_policy(name, &begun, newest).await?;
        state.engine = Some(Engine::restore(policy, self.options.clone(), &body.engine)?);
        state.evidence.sample = body.sample;
        state.evidence.decisions = body.decisions;
        Ok(true)
    }

    /// The policy a release runs under: the version it started with, with
    /// the steps it was started with, if it named its own.
    /// (`newest`: the service's newest policy and its version, which a
    /// release started under it needs not read from the store.)
    async fn release_policy(
        &self,
        name: &str,
        start: &Start,
        newest: (i64, &Policy),
    ) -> anyhow::Result<Policy> {
        let policy = self.policy_at(name, start.policy_version, newest).await?;
        with_steps(policy, start).map_err(anyhow::Error::msg)
    }

    /// The policy a release started with.
    async fn policy_at(
        &self,
        name: &str,
        version: i64,
        newest: (i64, &Policy),
    ) -> anyhow::Result<Policy> {
        if version == newest.0 {
            return Ok(newest.1.clone());
        }
        let record = self
            .store
            .policy_version(name, version)
            .await?
            .ok_or_else(|| anyhow::anyhow!("policy {name} v{version} is missing from the store"))?;
        load_policy(&record.yaml, &format!("policy {name} v{version}"))
            .map_err(|d| anyhow::anyhow!("stored policy no longer loads:\n{d}"))
    }

    fn new_engine(&self, policy: Policy, start: &Start, out: &mut Vec<Decision>) -> Engine {
        let first = policy.rollout.steps.first().map_or(1.0, |s| s.share);
        let service = policy.service.clone();
        let mut engine = Engine::new(policy, self.options.clone());
        engine.declare(
            &Release {
                ts: Time(start.at_ms),
                service,
                baseline: start.baseline.clone(),
                candidate: start.candidate.clone(),
                share: first,
            },
            out,
        );
        engine
    }

    /// Validates and stores a new policy version. It applies from the next
    /// release; a release in progress keeps the policy it started with.
    pub async fn put_policy(
        &self,
        service: &str,
        yaml: &str,
        principal: &str,
    ) -> Result<Value, ApiError> {
        let policy = load_policy(yaml, &format!("{service}.yaml")).map_err(diagnostics_error)?;
        if policy.service != service {
            return Err(ApiError::unprocessable(
                format!(
                    "service: the policy is for \"{}\" but was sent to /v1/policies/{service}",
                    policy.service
                ),
                json!([{"path": "service", "message": "does not match the URL"}]),
            ));
        }
        let existing = self.service(service);
        if let Some(s) = &existing {
            let state = s.state.lock().await;
            if let Some(current) = self.store.policy(service).await?
                && current.yaml == yaml
            {
                return Ok(
                    json!({"service": service, "version": state.policy_version, "changed": false}),
                );
            }
        }
        let now = self.now();
        let audit = audit(now, principal, "policy.put", service, json!({"yaml": yaml}));
        let version = self
            .store
            .put_policy(service, yaml, &now.to_rfc3339(), &audit)
            .await?;
        match existing {
            Some(s) => {
                let mut state = s.state.lock().await;
                state.policy = policy;
                state.policy_version = version;
            }
            None => self
                .recover(service)
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?,
        }
        Ok(json!({"service": service, "version": version, "changed": true}))
    }

    /// Starts a release of `candidate` against `baseline`.
    pub async fn start_release(
        &self,
        service: &Service,
        baseline: &str,
        candidate: &str,
        steps: Option<Vec<StepView>>,
        drill: bool,
        principal: &str,
    ) -> Result<(ReleaseView, Applied), ApiError> {
        if let Some(steps) = &steps {
            lower_steps(steps)?;
        }
        let mut state = service.state.lock().await;
        if let Some(current) = &state.current
            && !matches!(current.state, Phase::RolledBack | Phase::Promoted)
        {
            return Err(ApiError::conflict(format!(
                "service \"{}\" already has release {} in state {}; roll it back or promote it first",
                service.name, current.id, current.state
            )));
        }
        let id = format!("{}-{}", service.name, state.releases_started + 1);
        let now = self.now();
        let start = Start {
            release: id.clone(),
            baseline: baseline.to_string(),
            candidate: candidate.to_string(),
            policy_version: state.policy_version,
            steps,
            at_ms: now.0,
        };
        // Serialised before anything changes, so that a failure (a bug)
        // leaves no trace.
        let bug = |e| ApiError::unserialisable("the release start", e);
        let body = journal::start_body(&start).map_err(bug)?;
        let detail = serde_json::to_value(&start).map_err(bug)?;
        let mut decisions = Vec::new();
        let policy = with_steps(state.policy.clone(), &start).map_err(ApiError::bad_request)?;
        let engine = self.new_engine(policy, &start, &mut decisions);
        let status = engine.status();
        state.engine = Some(engine);
        state.releases_started += 1;
        let batch = Batch {
            audit: vec![audit(now, principal, "release.start", &id, detail)],
            ..Batch::default()
        };
        let mut view = ReleaseView {
            id: id.clone(),
            service: service.name.clone(),
            baseline: baseline.to_string(),
            candidate: candidate.to_string(),
            // Refreshed from the engine's status below.
            state: Phase::Ramping,
            step: None,
            stage: None,
            reason: None,
            share: 0.0,
            generation: 1,
            engine_release: String::new(),
            policy_version: state.policy_version,
            steps: state
                .engine
                .as_ref()
                .map_or_else(Vec::new, |e| steps_view(&e.policy().rollout.steps)),
            previous: None,
            next: None,
            created_at: now.to_rfc3339(),
            updated_at: now.to_rfc3339(),
            events: Counts::default(),
            drill,
            moves: Vec::new(),
        };
        if let Some(status) = &status {
            refresh(&mut view, status);
        }
        view.moves.push(Move {
            at: now.to_rfc3339(),
            from: 0.0,
            to: view.share,
            state: view.state,
            by: principal.to_string(),
            why: "release started".into(),
            policy_version: view.policy_version,
        });
        state.current = Some(view.clone());
        state.series = Cadence::starting(now);
        state.drill = drill;
        state.evidence = self
            .evidence_inputs(&service.name, &view, &state.policy)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let applied = self
            .finish(
                service,
                &mut state,
                (Kind::Start, body),
                decisions,
                batch,
                principal,
            )
            .await;
        Ok((view, applied))
    }

    /// Applies a person's command to the service's release: approve and
    /// reject vote on the pending approval request; other actions run at
    /// once, or become a request when the policy's decision rights say
    /// they need approval. With an idempotency key, the answer is stored
    /// with the command, and a repeat gets it back.
    pub async fn command(
        &self,
        service: &Service,
        command: Command,
        key: Option<String>,
        reason: Option<String>,
        principal: &Principal,
    ) -> Result<(CommandAnswer, Option<Durable>), ApiError> {
        let mut state = service.state.lock().await;
        let given = |k: &String| state.answers.iter().find(|(x, _)| x == k);
        if let Some((_, first)) = key.as_ref().and_then(given) {
            return Ok((first.clone(), None));
        }
        let (answer, mut batch) = match command {
            Command::Approve | Command::Reject => {
                let id = pending_request(&state, command.name())?;
                let approve = command == Command::Approve;
                let (mut voted, batch) =
                    self.decide(service, &mut state, &id, principal, approve, reason.clone())?;
                voted.action = Some(command.name());
                (CommandAnswer::Voted(voted), batch)
            }
            _ => self.act(
                service,
                &mut state,
                command.clone(),
                reason.clone(),
                principal,
                None,
            )?,
        };
        if let Some(key) = key {
            // In the command's own batch: the answer is durable exactly when
            // the command is.
            let text = serde_json::to_string(&answer)
                .map_err(|e| ApiError::unserialisable("the command's answer", e))?;
            batch.answers.push((key.clone(), text));
            if state.answers.len() >= answer::ANSWERS_IN_MEMORY {
                state.answers.pop_front();
            }
            state.answers.push_back((key, answer.clone()));
        }
        let durable = self.writer.submit(batch).await;
        Ok((answer, Some(durable)))
    }

    /// Feeds a command to the engine and prepares its batch; `extra` holds
    /// what else the same change writes.
    pub fn apply_command(
        &self,
        service: &Service,
        state: &mut State,
        command: Command,
        reason: Option<String>,
        actor: &str,
        mut extra: Batch,
    ) -> Result<(Ran, Batch), ApiError> {
        let Some(engine) = state.engine.as_mut() else {
            return Err(no_release(&service.name, &command));
        };
        let now = self.now();
        // Serialised before the engine moves, so that a failure (a bug)
        // leaves no trace.
        let body = journal::command_body(&CommandEntry {
            command: command.clone(),
            at_ms: now.0,
            reason: reason.clone(),
        })
        .map_err(|e| ApiError::unserialisable("the command", e))?;
        let mut decisions = Vec::new();
        engine
            .command(now, command.clone(), &mut decisions)
            .map_err(|e| ApiError::conflict(e.to_string()))?;
        let records: Vec<Value> = decisions
            .iter()
            .map(|d| DecisionRecord::from(d).to_value())
            .collect();
        let subject = state
            .current
            .as_ref()
            .map_or(String::new(), |c| c.id.clone());
        let detail = json!({"reason": reason});
        let action = format!("command.{}", command.name());
        extra
            .audit
            .push(audit(now, actor, &action, &subject, detail));
        let batch = self.prepare(
            service,
            state,
            (Kind::Command, body),
            &decisions,
            extra,
            actor,
        );
        let ran = Ran {
            action: command.name(),
            changed: true,
            decisions: records,
            reason,
            release: state.current.clone(),
        };
        Ok((ran, batch))
    }

    /// The evidence inputs of a release, from its first record (`first`,
    /// where the journal's start is): the policy it started under and both
    /// versions' provenance.
    async fn evidence_inputs(
        &self,
        service: &str,
        first: &ReleaseView,
        policy: &Policy,
    ) -> anyhow::Result<EvidenceInputs> {
        let yaml = self
            .store
            .policy_version(service, first.policy_version)
            .await?
            .map(|p| p.yaml)
            .unwrap_or_default();
        let mut provenance = Vec::new();
        for version in [&first.baseline, &first.candidate] {
            if let Some(v) = self.store.version(service, version).await? {
                provenance.push(Provenance {
                    version: version.clone(),
                    document: v.provenance,
                });
            }
        }
        let sample = policy.governance.evidence.sample;
        Ok(EvidenceInputs {
            sample: Some(Reservoir::new(sample, seed_for(&first.id))),
            policy_yaml: yaml,
            provenance,
            decisions: Vec::new(),
        })
    }

    pub fn ctx<'a>(&'a self, service: &'a str, now: Time) -> govern::Ctx<'a> {
        govern::Ctx {
            now,
            service,
            link_base: self.link_base.get().map_or("", String::as_str),
            channels: self.channels.get().unwrap_or(&NO_CHANNELS),
        }
    }

    /// Advances every service's engine to the hub's clock, recording the
    /// series points that are due.
    pub async fn tick_all(&self) {
        let services: Vec<Arc<Service>> = self
            .services
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        let now = self.now();
        for service in services {
            let mut state = service.state.lock().await;
            let durable = self.tick_one(&service, &mut state, now).await;
            drop(state);
            if let Some(durable) = durable {
                let _ = durable.await;
            }
        }
    }

    /// One service's tick and series point, queued in one batch.
    async fn tick_one(&self, service: &Service, state: &mut State, now: Time) -> Option<Durable> {
        // A settled release has no timers left: its ticks would only
        // lengthen the journal (recovery replays exactly what was fed,
        // so skipping them here skips them there too).
        if state.current.as_ref().is_none_or(|c| is_settled(c.state)) {
            return None;
        }
        let engine = state.engine.as_mut()?;
        // Only ticks that move time forward change anything.
        let moves = now.0 / 1000 > engine.now().0 / 1000;
        let mut decisions = Vec::new();
        if moves {
            engine.tick(now, &mut decisions);
        }
        let mut batch = Batch::default();
        self.series_point_if_due(state, now, &mut batch);
        if !moves {
            // Events dated ahead of the clock moved the engine on: no tick,
            // but the point is still due (and journals nothing).
            if batch.is_empty() {
                return None;
            }
            return Some(self.writer.submit(batch).await);
        }
        let entry = (Kind::Tick, now.0.to_string());
        let applied = self
            .finish(service, state, entry, decisions, batch, ENGINE)
            .await;
        Some(applied.durable)
    }

    /// Adds the current release's series point to `batch` when one is due.
    fn series_point_if_due(&self, state: &mut State, now: Time, batch: &mut Batch) {
        let (Some(view), Some(engine)) = (state.current.as_ref(), state.engine.as_ref()) else {
            return;
        };
        let start = series::started(view, now);
        if state.series.due(&self.series, start, now) {
            batch
                .series
                .push(series::point(view, &engine.readings(), now));
            batch.series_max = self.series.max;
        }
    }

    /// When the input settled the release (rolled back or promoted), its
    /// last point, so that its chart ends at the decision. A point the
    /// batch already holds (the tick's own) read the engine after the same
    /// input: it is that last point.
    fn series_point_if_settled(
        &self,
        state: &State,
        (was_running, now): (bool, Time),
        batch: &mut Batch,
    ) {
        let (Some(view), Some(engine)) = (state.current.as_ref(), state.engine.as_ref()) else {
            return;
        };
        let recorded = batch.series.iter().any(|p| p.release == view.id);
        if was_running && is_settled(view.state) && !recorded {
            batch
                .series
                .push(series::point(view, &engine.readings(), now));
            batch.series_max = self.series.max;
        }
    }

    /// When the input settled the release, the pending threshold review
    /// of it, stored with the change that settled it.
    fn review_if_settled(
        &self,
        state: &State,
        (was_running, now): (bool, Time),
        batch: &mut Batch,
    ) {
        let Some(view) = state.current.as_ref() else {
            return;
        };
        if self.reviews_on && was_running && is_settled(view.state) {
            review::request(view, now, batch);
            self.reviews_due.notify_one();
        }
    }

    /// Turns one engine input and what it decided into a batch and queues
    /// it.
    pub async fn finish(
        &self,
        service: &Service,
        state: &mut State,
        entry: (Kind, String),
        decisions: Vec<Decision>,
        batch: Batch,
        actor: &str,
    ) -> Applied {
        let batch = self.prepare(service, state, entry, &decisions, batch, actor);
        let durable = self.writer.submit(batch).await;
        Applied { decisions, durable }
    }

    /// The batch for one engine input (`entry` is its journal kind and
    /// body): its decisions and their deliveries, the refreshed release
    /// record, and what governance makes of the decisions. Also refreshes
    /// the assignment that `/v1/assign` reads. `actor` is who caused it.
    pub fn prepare(
        &self,
        service: &Service,
        state: &mut State,
        entry: (Kind, String),
        decisions: &[Decision],
        mut batch: Batch,
        actor: &str,
    ) -> Batch {
        let (kind, body) = entry;
        let now = self.now();
        if batch.answered_at_ms == 0 {
            batch.answered_at_ms = now.0;
        }
        // What a legal hold on this release keeps (before a re-release
        // below moves `current` on).
        batch.release = state.current.as_ref().map(|c| c.id.clone());
        // Each decision's record is built once, from the typed decision: its
        // line is stored and kept for evidence; its value goes into the
        // audit log, the deliveries and governance's timeline.
        let typed: Vec<DecisionRecord> = decisions.iter().map(DecisionRecord::from).collect();
        let lines: Vec<String> = typed.iter().map(DecisionRecord::to_line).collect();
        let records: Vec<Value> = typed.iter().map(DecisionRecord::to_value).collect();
        state.evidence.remember(kind, &body, &lines);
        state.snapshots.bytes_since += body.len();
        let journal_seq = self.writer.next_journal_seq();
        batch.journal.push(JournalEntry {
            seq: journal_seq,
            service: service.name.clone(),
            kind: kind.as_str().to_string(),
            body,
        });
        if kind == Kind::Start {
            state.snapshots.start_seq = Some(journal_seq);
        }
        state.snapshots.last_seq = Some(journal_seq);
        snapshot_if_due(&service.name, state, (journal_seq, now), &mut batch);
        for ((d, line), record) in decisions.iter().zip(&lines).zip(&records) {
            metrics::decision(d, state.drill);
            let seq = self.writer.next_decision_seq();
            for (i, sink) in state.sinks.iter().enumerate() {
                batch
                    .outbox
                    .push(delivery(&service.name, seq, i, sink, d, record, now));
            }
            let subject = state
                .current
                .as_ref()
                .map_or(d.release.clone(), |c| c.id.clone());
            let detail = record.clone();
            let action = match d.action {
                Some(a) => format!("decision.action.{}", a.as_str()),
                None => format!("decision.{}", d.kind.as_str()),
            };
            batch
                .audit
                .push(audit(now, ENGINE, &action, &subject, detail));
            batch.decisions.push(DecisionEntry {
                seq,
                service: service.name.clone(),
                at_ms: d.at.0,
                line: line.clone(),
            });
        }
        let was_running = state.current.as_ref().is_some_and(|c| !is_settled(c.state));
        self.refresh_release(state, &mut batch, now, (actor, decisions));
        self.series_point_if_settled(state, (was_running, now), &mut batch);
        self.review_if_settled(state, (was_running, now), &mut batch);
        let ctx = self.ctx(&service.name, now);
        govern::on_decisions(&ctx, state, (decisions, &records), actor, &mut batch);
        service.set_assignment(assignment_of(state));
        metrics::release_state(
            &service.name,
            state.current.as_ref().map(|v| (v.state, v.share)),
            state.drill,
        );
        batch
    }

    /// Brings the current release record up to date with the engine; a
    /// re-release (a new generation) becomes a new, linked record.
    fn refresh_release(
        &self,
        state: &mut State,
        batch: &mut Batch,
        now: Time,
        cause: (&str, &[Decision]),
    ) {
        let Some(status) = state.engine.as_ref().and_then(Engine::status) else {
            return;
        };
        let Some(view) = state.current.as_mut() else {
            return;
        };
        if status.generation != view.generation {
            let id = format!("{}-{}", view.service, state.releases_started + 1);
            state.releases_started += 1;
            view.next = Some(id.clone());
            view.updated_at = now.to_rfc3339();
            batch.releases.push(record(view));
            let mut next = view.clone();
            next.id = id;
            next.previous = Some(view.id.clone());
            next.next = None;
            next.created_at = now.to_rfc3339();
            next.events = Counts::default();
            refresh(&mut next, &status);
            batch.releases.push(record(&next));
            state.current = Some(next);
            return;
        }
        let before = view.clone();
        refresh(view, &status);
        if view.share != before.share {
            record_move(view, before.share, now, cause);
        }
        if view.state == Phase::RolledBack && before.state != Phase::RolledBack {
            // The rule of the policy the release ran under.
            let policy = state.engine.as_ref().map_or(&state.policy, Engine::policy);
            let rolled = RolledBack {
                release: &view.id,
                service: &view.service,
                candidate: &view.candidate,
                baseline: &view.baseline,
                engine_release: &view.engine_release,
                policy_version: view.policy_version,
            };
            if let Some((doc, audit)) =
                rollback_rule::on_rollback(rolled, &policy.governance.after_rollback, now)
            {
                batch.docs.push(doc);
                batch.audit.push(audit);
            }
        }
        let changed =
            *view != before || batch.journal.iter().any(|j| j.kind == Kind::Start.as_str());
        if changed {
            view.updated_at = now.to_rfc3339();
        }
        // Ingest bumps the record's event counts before this point, so a
        // batch of events must store the record even when the engine's
        // view of the release did not move; otherwise the stored counts
        // stay at what the last state change saw.
        if changed
            || batch
                .journal
                .iter()
                .any(|j| j.kind == Kind::Events.as_str())
        {
            batch.releases.push(record(view));
        }
    }
}

/// Whether a release is over: rolled back or promoted.
fn is_settled(phase: Phase) -> bool {
    matches!(phase, Phase::RolledBack | Phase::Promoted)
}

/// Feeds one non-start journal entry to the engine; its kind.
fn replay_entry(entry: &Entry, state: &mut State, out: &mut Vec<Decision>) -> Kind {
    let Some(engine) = &mut state.engine else {
        return entry.kind();
    };
    match entry {
        Entry::Events(body) => {
            for line in body.lines() {
                if let Ok(ripcord_core::ndjson::Line::Event(ev)) =
                    ripcord_core::ndjson::parse_line(line.as_bytes())
                {
                    let _ = engine.observe(&ev, out);
                }
            }
        }
        Entry::Tick(at) => engine.tick(*at, out),
        Entry::Command(c) => {
            let _ = engine.command(Time(c.at_ms), c.command.clone(), out);
        }
        Entry::Start(_) => {}
    }
    entry.kind()
}

/// The first release record of the current release's chain (re-releases
/// link back to it): the one the journal's last start began.
async fn first_of_chain(
    store: &dyn Store,
    current: Option<&ReleaseView>,
) -> anyhow::Result<Option<ReleaseView>> {
    let Some(mut view) = current.cloned() else {
        return Ok(None);
    };
    while let Some(previous) = view.previous.clone() {
        match store.release(&previous).await? {
            Some(r) => view = serde_json::from_value(r.body)?,
            None => break,
        }
    }
    Ok(Some(view))
}

/// The approval request waiting on the service's current release.
fn pending_request(state: &State, verb: &str) -> Result<String, ApiError> {
    let release = state.current.as_ref().map(|c| c.id.as_str());
    state
        .gov
        .requests
        .iter()
        .rev()
        .find(|r| r.state == RequestState::Pending && Some(r.release.as_str()) == release)
        .map(|r| r.id.clone())
        .ok_or_else(|| {
            let now = state
                .current
                .as_ref()
                .map_or("absent", |c| c.state.as_str());
            ApiError::conflict(format!("cannot {verb} a release that is {now}"))
        })
}

/// Reads a service's governance documents of one kind.
static NO_CHANNELS: std::collections::BTreeMap<String, crate::notify::ChannelConfig> =
    std::collections::BTreeMap::new();

pub use crate::auth::ENGINE;

/// An audit record for the store to chain.
pub fn audit(
    at: Time,
    principal: &str,
    action: &str,
    subject: &str,
    detail: Value,
) -> PendingAudit {
    PendingAudit {
        at_ms: at.0,
        principal: principal.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        detail,
    }
}

/// Adds a share change to the release's history: by the engine when a
/// trigger or the rollout plan moved it, else by the person who acted.
fn record_move(view: &mut ReleaseView, from: f64, now: Time, cause: (&str, &[Decision])) {
    let (actor, decisions) = cause;
    let mover = decisions.iter().rev().find(|d| d.share.is_some());
    let by = match mover {
        Some(d) if d.trigger.is_some() || actor == ENGINE => ENGINE,
        _ => actor,
    };
    let why = mover.map_or_else(
        || "the release changed".to_string(),
        |d| d.explanation.summary.clone(),
    );
    view.moves.push(Move {
        at: now.to_rfc3339(),
        from,
        to: view.share,
        state: view.state,
        by: by.to_string(),
        why,
        policy_version: view.policy_version,
    });
}

/// Copies the engine's view of the release into the record.
fn refresh(view: &mut ReleaseView, status: &ReleaseStatus) {
    view.state = status.state.phase();
    view.share = status.share;
    view.generation = status.generation;
    view.engine_release = status.id.clone();
    view.step = None;
    view.stage = None;
    view.reason = None;
    match &status.state {
        ReleaseState::Ramping { step } => view.step = Some(*step),
        ReleaseState::RollingBack { stage } => view.stage = Some(*stage),
        ReleaseState::Paused { reason } => view.reason = Some(reason.clone()),
        ReleaseState::AwaitingApproval { trigger } => {
            view.reason = Some(format!("trigger {trigger} awaits approval"))
        }
        _ => {}
    }
}

/// The answer to a command on a service without a release.
pub fn no_release(service: &str, command: &Command) -> ApiError {
    ApiError::conflict(format!(
        "service \"{service}\" has no release to {}",
        command.name()
    ))
}

/// `policy` with the rollout steps the release was started with, if it
/// named its own.
fn with_steps(mut policy: Policy, start: &Start) -> Result<Policy, String> {
    if let Some(steps) = &start.steps {
        policy.rollout.steps = lower_steps(steps).map_err(|e| e.message)?;
    }
    Ok(policy)
}

/// Snapshots the service with the journal entry `seq` when the last
/// snapshot is [`SNAPSHOT_EVERY`] old or [`SNAPSHOT_BYTES`] of journal
/// behind; a snapshot that cannot be taken is logged (recovery then
/// replays further back).
fn snapshot_if_due(service: &str, state: &mut State, (seq, now): (i64, Time), batch: &mut Batch) {
    let recent = state
        .snapshots
        .last_at
        .is_some_and(|at| now < at + SNAPSHOT_EVERY);
    if recent && state.snapshots.bytes_since < SNAPSHOT_BYTES {
        return;
    }
    take_snapshot(service, state, (seq, now), batch);
}

/// Adds a snapshot of the service as of journal entry `seq` to `batch`.
fn take_snapshot(service: &str, state: &mut State, (seq, now): (i64, Time), batch: &mut Batch) {
    let (Some(engine), Some(start_seq)) = (state.engine.as_ref(), state.snapshots.start_seq) else {
        return;
    };
    let body = engine
        .snapshot()
        .map_err(|e| e.to_string())
        .and_then(|engine| {
            ServiceSnapshot {
                start_seq,
                engine,
                sample: state.evidence.sample.clone(),
                decisions: state.evidence.decisions.clone(),
            }
            .encode()
        });
    match body {
        Ok(body) => {
            batch.snapshots.push(ripcord_store::Snapshot {
                service: service.to_string(),
                journal_seq: seq,
                body,
            });
            state.snapshots.last_at = Some(now);
            state.snapshots.bytes_since = 0;
        }
        Err(e) => tracing::warn!("{service}: no snapshot taken: {e}"),
    }
}

pub fn record(view: &ReleaseView) -> ReleaseRecord {
    ReleaseRecord {
        id: view.id.clone(),
        service: view.service.clone(),
        body: ripcord_core::json::value(view),
    }
}

fn assignment_of(state: &State) -> Option<Assignment> {
    state.current.as_ref().map(Assignment::of)
}

impl Assignment {
    /// Who gets which version while `view` is the service's release; what
    /// a follower replica reads from the stored record too. A drill's
    /// candidate is for its simulated users only (`crate::drills`): real
    /// callers get its baseline.
    pub fn of(view: &ReleaseView) -> Assignment {
        Assignment {
            release: view.id.clone(),
            baseline: view.baseline.clone(),
            candidate: view.candidate.clone(),
            share: if view.drill { 0.0 } else { view.share },
        }
    }
}

/// One decision for one sink, as a Standard Webhooks message.
fn delivery(
    service: &str,
    seq: i64,
    sink_index: usize,
    sink: &Sink,
    d: &Decision,
    data: &Value,
    now: Time,
) -> OutboxEntry {
    let id = format!("msg_{seq}_{sink_index}");
    let kind = match d.action {
        Some(a) => format!("action.{}", a.as_str()),
        None => format!("decision.{}", d.kind.as_str()),
    };
    let key = d.idempotency_key.clone().unwrap_or_else(|| id.clone());
    let payload = json!({
        "type": kind,
        "timestamp": d.at.to_rfc3339(),
        "idempotency_key": key,
        "data": data,
    });
    OutboxEntry {
        id,
        service: service.to_string(),
        kind: "webhook".to_string(),
        url: sink.url.clone(),
        secret: sink.secret.clone(),
        payload: payload.to_string(),
        idempotency_key: Some(key),
        attempts: 0,
        next_at_ms: now.0,
    }
}

fn diagnostics_error(d: ripcord_core::policy::Diagnostics) -> ApiError {
    let items: Vec<Value> = d
        .items
        .iter()
        .map(|i| {
            json!({
                "path": i.path,
                "line": i.line,
                "column": i.column,
                "message": i.message,
                "help": i.help,
            })
        })
        .collect();
    ApiError::unprocessable(d.to_string(), Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(share: f64, hold: Option<&str>) -> StepView {
        StepView {
            share,
            hold: hold.map(str::to_string),
        }
    }

    /// A release start's steps follow the policy file's rules: the same
    /// default hold and the same rising shares.
    #[test]
    fn a_release_starts_steps_follow_the_policy_languages_rules() {
        let lowered = lower_steps(&[step(0.1, None), step(0.5, Some("1h"))]);
        let got: Vec<(f64, i64)> = lowered
            .map(|s| s.iter().map(|s| (s.share, s.hold.0)).collect())
            .unwrap_or_default();
        assert_eq!(got, [(0.1, 1_800_000), (0.5, 3_600_000)]);
        let refused = |steps: &[StepView]| {
            lower_steps(steps).map_or_else(|e| e.message, |_| "lowered".into())
        };
        assert_eq!(
            refused(&[step(0.5, None), step(0.2, None)]),
            "steps[1].share: shares must increase from step to step (0.5 then 0.2)"
        );
        assert_eq!(
            refused(&[step(1.5, None)]),
            "steps[0].share: must be in (0, 1], got 1.5"
        );
        assert_eq!(
            refused(&[step(0.5, Some("soon"))]),
            "steps[0].hold: invalid duration \"soon\": use e.g. 30s, 10m, 1h30m, 500ms"
        );
        assert_eq!(refused(&[]), "steps: at least one step is needed");
    }
}
