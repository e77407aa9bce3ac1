//! Drills: tabletop exercises run against the live service and graded.
//!
//! A drill file (`file.rs`) names a service, a baseline and a candidate,
//! simulated traffic with a scripted regression, a timeout and — for a
//! drill that runs unattended — the people's steps. Starting one starts a
//! release of the service marked as a drill (its incidents are drills,
//! kept out of the real figures, and `/v1/assign` serves its baseline to
//! everyone: only the simulated users meet the candidate). On every tick
//! of the leader, each running drill sends the simulator's events up to
//! the hub's clock through the ingest path (closed loop: the engine's
//! share decides who gets the candidate), and runs the scripted steps
//! that are due. Everything else is the real thing: triggers, the
//! incident, pages, timers, the playbook, approvals, the rollback.
//!
//! The drill ends when its incident is resolved or at its timeout, and is
//! scored (`score.rs`): one line per thing the team had to get right, each
//! with its evidence. Its release is rolled back and its incident resolved
//! if they were still open, so that the service is free again. Drills are
//! documents of kind `drill`; their generator lives in memory, so a drill
//! the server was restarted under (or a new leader found running) is
//! marked interrupted, unscored.

mod file;
mod score;

use std::collections::BTreeSet;
use std::sync::Arc;

use ripcord_core::engine::{Command, Phase};
use ripcord_core::ndjson::event_to_line;
use ripcord_core::policy::Scenario;
use ripcord_core::{Event, Time};
use ripcord_govern::IncidentCommand;
use ripcord_govern::record::{Incident, RequestState};
use ripcord_govern::words::IncidentState;
use ripcord_sim::traffic::{Generator, Shape, TrafficSpec};
use ripcord_store::{Batch, Doc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use file::{Act, Drill, DrillFile, MAX_BYTES, parse};
pub use score::Line;

use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::hub::{Hub, ReleaseView, Service, audit};
use crate::incidents::Ask;
use crate::ingest::{durable, ingest_simulated};

/// The store's document kind.
pub const DRILL: &str = "drill";
/// Drills running at once, on every service together, and per token.
const MAX_RUNNING: usize = 8;
const MAX_RUNNING_EACH: usize = 2;
/// Simulated events sent per pass at most: a clock that jumps far catches
/// up over several passes rather than in one huge body.
const MAX_EVENTS_PER_PASS: usize = 20_000;
/// The actor of what the drill itself does (its release, its clean-up).
const DRILL_ACTOR: &str = "drill";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillState {
    Running,
    Passed,
    Failed,
    /// The server restarted (or another replica took the lead) while it
    /// ran: the simulated traffic could not go on, so it is not scored.
    Interrupted,
}

/// A drill as stored and as the API answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    pub id: String,
    pub name: String,
    pub service: String,
    pub release: String,
    pub baseline: String,
    pub candidate: String,
    pub state: DrillState,
    pub started_at: String,
    pub started_by: String,
    /// The timeout: scored as it stands then.
    pub ends_by: String,
    pub finished_at: Option<String>,
    pub timed_out: bool,
    /// The people's steps are scripted.
    pub unattended: bool,
    /// When the first scripted regression starts.
    pub regression_at: Option<String>,
    pub incident: Option<String>,
    pub script: Vec<ScriptRun>,
    /// Simulated events the server accepted.
    pub events_sent: u64,
    pub scorecard: Vec<Line>,
    /// What the drill did to leave the service free (rolled its release
    /// back, resolved its incident).
    pub cleanup: Vec<String>,
    /// The drill file as given.
    pub file: String,
}

impl DrillRecord {
    /// The scorecard's failed lines, by name.
    pub fn failed_lines(&self) -> Vec<&str> {
        self.scorecard
            .iter()
            .filter(|l| !l.pass)
            .map(|l| l.name.as_str())
            .collect()
    }
}

/// A scripted step: when it was due and what came of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptRun {
    #[serde(rename = "do")]
    pub act: Act,
    pub by: String,
    pub after: String,
    #[serde(default)]
    pub step: Option<String>,
    pub due_at: Option<String>,
    pub ran_at: Option<String>,
    /// `None` while it waits; the refusal's message when it was refused.
    pub ok: Option<bool>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One running drill: its record and its traffic.
struct Live {
    record: DrillRecord,
    drill: Drill,
    traffic: Generator,
    /// The generator's next event, not yet due.
    next: Option<Event<'static>>,
    started: Time,
}

/// The drills this leader runs.
#[derive(Default)]
pub struct Drills(tokio::sync::Mutex<Runs>);

#[derive(Default)]
struct Runs {
    live: Vec<Live>,
    /// Stored drills left `running` by an earlier process were marked.
    swept: bool,
}

impl Drills {
    /// Starts the drill `text` describes, for `p`.
    pub async fn start(
        &self,
        hub: &Hub,
        text: &str,
        p: &Principal,
    ) -> Result<DrillRecord, ApiError> {
        let drill = parse(text).map_err(ApiError::bad_request)?;
        let f = &drill.file;
        p.require_service(&f.service)?;
        let service = hub.known(&f.service)?;
        for (field, version) in [("baseline", &f.baseline), ("candidate", &f.candidate)] {
            if hub.store.version(&f.service, version).await?.is_none() {
                return Err(ApiError::unprocessable(
                    format!(
                        "{field}: version \"{version}\" of \"{}\" is not registered",
                        f.service
                    ),
                    serde_json::json!([{"path": field, "message": "not registered"}]),
                ));
            }
        }
        let scenario = script_fits_policy(&service, &drill).await?;
        let mut runs = self.0.lock().await;
        hub.sweep(&mut runs).await?;
        if runs.live.len() >= MAX_RUNNING {
            return Err(ApiError::conflict(format!(
                "{MAX_RUNNING} drills are running; wait for one to end"
            )));
        }
        let mine = runs.live.iter().filter(|l| l.record.started_by == p.name);
        if mine.count() >= MAX_RUNNING_EACH {
            return Err(ApiError::conflict(format!(
                "{} already runs {MAX_RUNNING_EACH} drills; wait for one to end",
                p.name
            )));
        }
        if let Some(other) = runs.live.iter().find(|l| l.record.service == f.service) {
            return Err(ApiError::conflict(format!(
                "drill {} is running on {}",
                other.record.id, f.service
            )));
        }
        let (view, applied) = hub
            .start_release(&service, &f.baseline, &f.candidate, None, true, &p.name)
            .await?;
        durable(applied.durable).await?;
        // The release's own start, from which the regression is counted.
        let started = Time::parse_rfc3339(&view.created_at).unwrap_or_else(|| hub.now());
        let n = hub.store.docs(DRILL, Some(&f.service)).await?.len() + 1;
        let record = new_record(&drill, text, format!("drill-{}-{n}", f.service), &view, p);
        let traffic = Generator::new(traffic_spec(&drill, scenario, started));
        hub.save_drill(&record, started, &p.name, "drill.start")
            .await?;
        runs.live.push(Live {
            record: record.clone(),
            drill,
            traffic,
            next: None,
            started,
        });
        Ok(record)
    }

    /// One pass over the running drills: traffic up to now, the scripted
    /// steps that are due, and the end of those that are over. The tick
    /// task calls it on the leader.
    pub async fn run(&self, hub: &Hub) {
        let mut runs = self.0.lock().await;
        if let Err(e) = hub.sweep(&mut runs).await {
            tracing::warn!("drills: could not mark interrupted drills: {}", e.message);
        }
        let mut still = Vec::new();
        for mut live in std::mem::take(&mut runs.live) {
            match hub.pass(&mut live).await {
                Ok(true) => {}
                Ok(false) => still.push(live),
                Err(e) => {
                    tracing::warn!("drill {}: {}", live.record.id, e.message);
                    // A drill that cannot be moved on past its timeout (its
                    // incident unreadable, say) ends unscored rather than
                    // being retried every tick for ever.
                    let over = hub.now() >= live.started + live.drill.timeout;
                    if over {
                        let ended = hub.abandon(&mut live.record, &e.message).await;
                        if let Err(e) = ended {
                            tracing::warn!("drill {}: {}", live.record.id, e.message);
                        }
                    } else {
                        still.push(live);
                    }
                }
            }
        }
        runs.live = still;
    }

    /// Drills, newest first; one service's when given. A running drill is
    /// answered as it stands in memory.
    pub async fn list(
        &self,
        hub: &Hub,
        service: Option<&str>,
    ) -> Result<Vec<DrillRecord>, ApiError> {
        let runs = self.0.lock().await;
        let mut out = Vec::new();
        for doc in hub.store.docs(DRILL, service).await?.into_iter().rev() {
            let stored: DrillRecord = read(doc.body)?;
            let live = runs.live.iter().find(|l| l.record.id == stored.id);
            out.push(live.map_or(stored, |l| l.record.clone()));
        }
        Ok(out)
    }

    pub async fn get(&self, hub: &Hub, id: &str) -> Result<DrillRecord, ApiError> {
        let runs = self.0.lock().await;
        if let Some(l) = runs.live.iter().find(|l| l.record.id == id) {
            return Ok(l.record.clone());
        }
        let doc = hub.store.doc(DRILL, id).await?;
        let doc =
            doc.ok_or_else(|| ApiError::not_found(format!("drill \"{id}\" does not exist")))?;
        read(doc.body)
    }
}

impl Hub {
    /// Marks the stored drills an earlier process left running as
    /// interrupted, once, and frees their services.
    async fn sweep(&self, runs: &mut Runs) -> Result<(), ApiError> {
        if runs.swept {
            return Ok(());
        }
        for doc in self.store.docs(DRILL, None).await? {
            let mut record: DrillRecord = read(doc.body)?;
            if record.state != DrillState::Running {
                continue;
            }
            let why = "the server restarted, or another replica took the lead, while it ran";
            self.abandon(&mut record, why).await?;
        }
        runs.swept = true;
        Ok(())
    }

    /// Ends a drill unscored (interrupted), says why, and frees its
    /// service.
    async fn abandon(&self, record: &mut DrillRecord, why: &str) -> Result<(), ApiError> {
        let now = self.now();
        record.state = DrillState::Interrupted;
        record.finished_at = Some(now.to_rfc3339());
        record.cleanup.push(format!("ended unscored: {why}"));
        self.clean_up(record).await;
        self.save_drill(record, now, DRILL_ACTOR, "drill.interrupted")
            .await
    }

    /// Moves one drill on; `true` once it is over.
    async fn pass(&self, live: &mut Live) -> Result<bool, ApiError> {
        let now = self.now();
        let service = self.known(&live.record.service)?;
        if drill_release(&service, &live.record).await.is_none() {
            // Someone started another release once this one settled: the
            // simulated users must not feed it. Scored as it stands.
            let incident = self.recorded_incident(&live.record).await?;
            self.finish_drill(&service, live, incident.as_ref(), now)
                .await?;
            return Ok(true);
        }
        self.send_traffic(&service, live, now).await?;
        let before = live.record.clone();
        self.find_incident(live).await?;
        let mut incident = self.recorded_incident(&live.record).await?;
        if let Some(inc) = &incident
            && self.run_script(&service, live, inc, now).await
        {
            // The script changed it (acknowledged, ran a step, resolved).
            incident = self.recorded_incident(&live.record).await?;
        }
        let resolved = incident
            .as_ref()
            .is_some_and(|i| matches!(i.state, IncidentState::Resolved | IncidentState::Reviewed));
        let timed_out = now >= live.started + live.drill.timeout;
        if resolved || timed_out {
            live.record.timed_out = timed_out && !resolved;
            self.finish_drill(&service, live, incident.as_ref(), now)
                .await?;
            return Ok(true);
        }
        if live.record != before {
            self.save_drill(&live.record, now, DRILL_ACTOR, "drill.progress")
                .await?;
        }
        Ok(false)
    }

    /// The simulator's events up to `now`, through the ingest path; the
    /// engine's share of the drill's release picks who gets the candidate.
    async fn send_traffic(
        &self,
        service: &Service,
        live: &mut Live,
        now: Time,
    ) -> Result<(), ApiError> {
        let share = drill_release(service, &live.record)
            .await
            .map_or(0.0, |c| c.share);
        let mut body = String::new();
        let mut n = 0;
        while n < MAX_EVENTS_PER_PASS {
            let Some(event) = live.next.take().or_else(|| live.traffic.next(share)) else {
                break;
            };
            if event.ts > now {
                live.next = Some(event);
                break;
            }
            body.push_str(&event_to_line(&event));
            body.push('\n');
            n += 1;
        }
        if body.is_empty() {
            return Ok(());
        }
        let outcome = ingest_simulated(self, body.as_bytes()).await?;
        live.record.events_sent += outcome.accepted as u64;
        if let Some(first) = outcome.rejected.first() {
            tracing::warn!(
                "drill {}: {} simulated event(s) refused; first: {}",
                live.record.id,
                outcome.rejected_count,
                first.error
            );
        }
        Ok(())
    }

    /// The incident the drill found, as stored now.
    async fn recorded_incident(&self, record: &DrillRecord) -> Result<Option<Incident>, ApiError> {
        match &record.incident {
            Some(id) => Ok(Some(self.incident(id).await?)),
            None => Ok(None),
        }
    }

    /// Records the drill release's incident once one opened, and when each
    /// scripted step falls due after its page.
    async fn find_incident(&self, live: &mut Live) -> Result<(), ApiError> {
        let record = &mut live.record;
        if record.incident.is_some() {
            return Ok(());
        }
        let found = self
            .incidents(Some(&record.service), None, Some("drill"))
            .await?
            .into_iter()
            .find(|i| i.release.as_deref() == Some(record.release.as_str()));
        if let Some(inc) = found {
            let opened = Time::parse_rfc3339(&inc.opened_at).unwrap_or(Time(0));
            for (run, delay) in record.script.iter_mut().zip(&live.drill.delays) {
                run.due_at = Some((opened + *delay).to_rfc3339());
            }
            record.incident = Some(inc.id);
        }
        Ok(())
    }

    /// Runs the scripted steps that are due, in order; a refused step is
    /// recorded with its reason and the script goes on, as people would.
    /// Whether any ran.
    async fn run_script(
        &self,
        service: &Arc<Service>,
        live: &mut Live,
        inc: &Incident,
        now: Time,
    ) -> bool {
        let opened = Time::parse_rfc3339(&inc.opened_at).unwrap_or(now);
        let mut ran = false;
        for i in 0..live.drill.delays.len() {
            if live.record.script[i].ok.is_some() {
                continue;
            }
            if opened + live.drill.delays[i] > now {
                break;
            }
            let scripted = &live.drill.file.script[i];
            let who = person(format!("{} (drill)", scripted.by), &live.record.service);
            let result = self
                .act_scripted(service, &live.record, inc, scripted, &who)
                .await;
            let run = &mut live.record.script[i];
            run.ran_at = Some(now.to_rfc3339());
            run.ok = Some(result.is_ok());
            run.error = result.err().map(|e| e.message);
            ran = true;
        }
        ran
    }

    async fn act_scripted(
        &self,
        service: &Arc<Service>,
        record: &DrillRecord,
        inc: &Incident,
        s: &file::Scripted,
        who: &Principal,
    ) -> Result<(), ApiError> {
        let note = s.note.clone();
        let say = |default: &str| note.clone().unwrap_or_else(|| default.to_string());
        let ask = match s.act {
            Act::Acknowledge => Ask::Command(IncidentCommand::Acknowledge { note }),
            Act::Status => Ask::Command(IncidentCommand::Status {
                message: s.message.clone().unwrap_or_default(),
                next_update_in: None,
                channels: None,
                template: None,
            }),
            Act::Step => Ask::Step {
                name: s.step.clone().unwrap_or_default(),
                note,
            },
            Act::Mitigate => Ask::Command(IncidentCommand::Mitigate {
                note: say("mitigated (drill script)"),
            }),
            Act::Resolve => Ask::Command(IncidentCommand::Resolve {
                note: say("resolved (drill script)"),
            }),
            Act::Approve | Act::Reject => {
                return self
                    .vote_scripted(service, record, who, s.act == Act::Approve, note)
                    .await;
            }
        };
        let (_, pending) = self.incident_ask(&inc.id, ask, who).await?;
        durable(pending).await
    }

    /// Votes on every pending request of the drill's release.
    async fn vote_scripted(
        &self,
        service: &Service,
        record: &DrillRecord,
        who: &Principal,
        approve: bool,
        note: Option<String>,
    ) -> Result<(), ApiError> {
        let mut state = service.state.lock().await;
        let pending: Vec<String> = state
            .gov
            .requests
            .iter()
            .filter(|r| r.release == record.release && r.state == RequestState::Pending)
            .map(|r| r.id.clone())
            .collect();
        if pending.is_empty() {
            return Err(ApiError::conflict(format!(
                "release {} has no pending request to vote on",
                record.release
            )));
        }
        let mut durables = Vec::new();
        for id in pending {
            let (_, batch) = self.decide(service, &mut state, &id, who, approve, note.clone())?;
            durables.push(self.writer.submit(batch).await);
        }
        drop(state);
        for d in durables {
            durable(d).await?;
        }
        Ok(())
    }

    /// Scores the drill, frees the service and stores the result.
    async fn finish_drill(
        &self,
        service: &Service,
        live: &mut Live,
        incident: Option<&Incident>,
        now: Time,
    ) -> Result<(), ApiError> {
        let view = drill_release(service, &live.record).await;
        let policy = service.state.lock().await.policy.clone();
        let facts = score::Facts {
            drill: &live.drill,
            record: &live.record,
            incident,
            view: view.as_ref(),
            policy: &policy,
            started: live.started,
            now,
        };
        live.record.scorecard = score::score(self, &facts).await?;
        let passed = live.record.scorecard.iter().all(|l| l.pass);
        live.record.state = if passed {
            DrillState::Passed
        } else {
            DrillState::Failed
        };
        live.record.finished_at = Some(now.to_rfc3339());
        self.clean_up(&mut live.record).await;
        self.save_drill(&live.record, now, DRILL_ACTOR, "drill.finish")
            .await
    }

    /// Rolls the drill's release back and resolves its incident if either
    /// was still open, noting what it did.
    async fn clean_up(&self, record: &mut DrillRecord) {
        let Ok(service) = self.known(&record.service) else {
            return;
        };
        let mut state = service.state.lock().await;
        let running = state
            .current
            .as_ref()
            .is_some_and(|c| c.id == record.release && !settled(c));
        if running {
            let why = Some(format!("drill {} ended", record.id));
            match self.apply_command(
                &service,
                &mut state,
                Command::Rollback,
                why,
                DRILL_ACTOR,
                Batch::default(),
            ) {
                Ok((_, batch)) => {
                    let pending = self.writer.submit(batch).await;
                    drop(state);
                    match durable(pending).await {
                        Ok(()) => record
                            .cleanup
                            .push(format!("rolled {} back", record.release)),
                        Err(e) => record.cleanup.push(format!(
                            "rollback of {} failed: {}",
                            record.release, e.message
                        )),
                    }
                }
                Err(e) => record.cleanup.push(format!(
                    "rollback of {} refused: {}",
                    record.release, e.message
                )),
            }
        } else {
            drop(state);
        }
        self.close_incident(record).await;
    }

    async fn close_incident(&self, record: &mut DrillRecord) {
        let Some(id) = record.incident.clone() else {
            return;
        };
        let who = person(DRILL_ACTOR.into(), &record.service);
        let note = format!("drill {} ended", record.id);
        for command in [
            IncidentCommand::Mitigate { note: note.clone() },
            IncidentCommand::Resolve { note: note.clone() },
        ] {
            let Ok(inc) = self.incident(&id).await else {
                return;
            };
            let due = match &command {
                IncidentCommand::Mitigate { .. } => inc.state == IncidentState::Open,
                _ => inc.state == IncidentState::Mitigated,
            };
            if !due {
                continue;
            }
            let word = if matches!(command, IncidentCommand::Mitigate { .. }) {
                "mitigated"
            } else {
                "resolved"
            };
            let done = match self.incident_ask(&id, Ask::Command(command), &who).await {
                Ok((_, pending)) => durable(pending).await,
                Err(e) => Err(e),
            };
            record.cleanup.push(match done {
                Ok(()) => format!("{word} {id}"),
                Err(e) => format!("{id} could not be {word}: {}", e.message),
            });
        }
    }

    async fn save_drill(
        &self,
        record: &DrillRecord,
        now: Time,
        actor: &str,
        action: &str,
    ) -> Result<(), ApiError> {
        let body =
            serde_json::to_value(record).map_err(|e| ApiError::unserialisable("the drill", e))?;
        let detail = serde_json::json!({
            "state": record.state,
            "release": record.release,
            "incident": record.incident,
            "failed": record.failed_lines(),
        });
        let started = Time::parse_rfc3339(&record.started_at).unwrap_or(now);
        let batch = Batch {
            docs: vec![Doc {
                kind: DRILL.into(),
                id: record.id.clone(),
                service: record.service.clone(),
                created_ms: started.0,
                body,
            }],
            audit: vec![audit(now, actor, action, &record.id, detail)],
            ..Batch::default()
        };
        durable(self.writer.submit(batch).await).await
    }
}

/// The drill's release while it is still the service's current one.
async fn drill_release(service: &Service, record: &DrillRecord) -> Option<ReleaseView> {
    let state = service.state.lock().await;
    state.current.clone().filter(|c| c.id == record.release)
}

fn settled(view: &ReleaseView) -> bool {
    matches!(view.state, Phase::RolledBack | Phase::Promoted)
}

fn read(body: Value) -> Result<DrillRecord, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::unavailable(format!("a stored drill is unreadable: {e}")))
}

/// A scripted person: acts on the drill's own incident and release only
/// (the runner never names another), with every right there, so that a
/// playbook step's owner role is no obstacle to rehearsing it; persons
/// stay distinct for separation of duties.
fn person(name: String, service: &str) -> Principal {
    Principal {
        name: name.clone(),
        role: "admin".into(),
        person: name,
        scope: Scope::Services(BTreeSet::from([service.to_string()])),
    }
}

fn new_record(
    drill: &Drill,
    text: &str,
    id: String,
    view: &ReleaseView,
    p: &Principal,
) -> DrillRecord {
    let f = &drill.file;
    let started = Time::parse_rfc3339(&view.created_at).unwrap_or(Time(0));
    let regression_at = drill
        .regressions
        .iter()
        .map(|r| r.from)
        .min()
        .map(|d| (started + d).to_rfc3339());
    let script = f
        .script
        .iter()
        .map(|s| ScriptRun {
            act: s.act,
            by: s.by.clone(),
            after: s.after.clone(),
            step: s.step.clone(),
            due_at: None,
            ran_at: None,
            ok: None,
            error: None,
        })
        .collect();
    DrillRecord {
        id,
        name: f.drill.clone(),
        service: f.service.clone(),
        release: view.id.clone(),
        baseline: f.baseline.clone(),
        candidate: f.candidate.clone(),
        state: DrillState::Running,
        started_at: view.created_at.clone(),
        started_by: p.name.clone(),
        ends_by: (started + drill.timeout).to_rfc3339(),
        finished_at: None,
        timed_out: false,
        unattended: !f.script.is_empty(),
        regression_at,
        incident: None,
        script,
        events_sent: 0,
        scorecard: Vec::new(),
        cleanup: Vec::new(),
        file: text.to_string(),
    }
}

/// The simulator's spec for the drill: the policy's scenario, a flat
/// rate (a drill is minutes, not a day), the file's users and regressions.
fn traffic_spec(drill: &Drill, scenario: Scenario, start: Time) -> TrafficSpec {
    let f = &drill.file;
    let mut spec = TrafficSpec::new(scenario, f.traffic.seed);
    spec.service = f.service.clone();
    spec.baseline = f.baseline.clone();
    spec.candidate = f.candidate.clone();
    spec.start = start;
    spec.duration = drill.timeout;
    spec.rate = drill.rate;
    spec.shape = Shape::Series(vec![1.0, 1.0]);
    spec.units = f.traffic.users;
    spec.regressions = drill.regressions.clone();
    spec.base_rates = f
        .traffic
        .base_rates
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    spec
}

/// The policy's scenario (the simulator's signal model), after checking
/// that every scripted step names a step of the service's playbooks.
async fn script_fits_policy(service: &Service, drill: &Drill) -> Result<Scenario, ApiError> {
    let state = service.state.lock().await;
    let known: BTreeSet<&str> = state
        .policy
        .governance
        .playbooks
        .iter()
        .flat_map(|p| p.steps.iter().map(|s| s.name.as_str()))
        .collect();
    for (i, s) in drill.file.script.iter().enumerate() {
        if let Some(step) = &s.step
            && !known.contains(step.as_str())
        {
            let list: Vec<&str> = known.iter().copied().collect();
            return Err(ApiError::bad_request(format!(
                "script[{i}].step: \"{step}\" is no step of {}'s playbooks (known: {})",
                service.name,
                list.join(", ")
            )));
        }
    }
    Ok(state
        .policy
        .scenario
        .unwrap_or(Scenario::ConversationalAgent))
}
