//! Governance on the live service: the driver of `ripcord-govern`'s
//! machine. It reacts to the engine's decisions (opening or joining
//! incidents, freezing evidence, mirroring a trigger's approval wait) and
//! turns the machine's [`Effects`] into the store [`Batch`] — documents,
//! timers, audit records, deliveries — written with the change that caused
//! them. Recovery does not replay any of it: incidents, requests and
//! timers are read back from the store.

use ripcord_core::engine::ReleaseState;
use ripcord_core::evidence::{FreezeInput, Redaction, freeze};
use ripcord_core::policy::Policy;
use ripcord_core::{Decision, Time, json};
use ripcord_govern::machine;
use ripcord_govern::{
    DocChange, Due, Effects, Evidence, Governance, Metric, Refusal, ReleaseFacts, Sealed, Setting,
    TimerChange as MachineTimer,
};
use ripcord_store::{Batch, Doc, Timer, TimerChange};
use serde_json::Value;

use super::{EvidenceInputs, ReleaseView, State, audit};
use crate::error::ApiError;
use crate::notify_bridge::Bridge;
use ripcord_govern::record::{INCIDENT, Incident, REQUEST, Request};

/// What governance needs besides the state.
pub struct Ctx<'a> {
    pub now: Time,
    pub service: &'a str,
    /// `http://host:port`, for links in notifications.
    pub link_base: &'a str,
    pub channels: &'a std::collections::BTreeMap<String, crate::notify::ChannelConfig>,
}

/// Writes the machine's effects into the batch: the one place where
/// governance documents and timer bodies are serialised for the store.
fn apply(service: &str, now: Time, fx: Effects, batch: &mut Batch) {
    for doc in fx.docs {
        batch.docs.push(store_doc(doc, now));
    }
    for change in fx.timers {
        batch.timers.push(store_timer(service, change));
    }
    for a in fx.audit {
        batch
            .audit
            .push(audit(a.at, &a.actor, &a.action, &a.subject, a.detail));
    }
    batch.blobs.extend(fx.blobs);
    for m in fx.metrics {
        match m {
            Metric::IncidentOpened { kind, severity } => {
                crate::metrics::incident_opened(kind.as_str(), severity.as_str());
            }
            Metric::IncidentEscalated { kind } => crate::metrics::incident_escalated(kind.as_str()),
        }
    }
}

fn store_doc(doc: DocChange, now: Time) -> Doc {
    let (kind, id, service, created, body) = match doc {
        DocChange::Incident(inc) => (
            INCIDENT,
            inc.id.clone(),
            inc.service.clone(),
            inc.opened_at.clone(),
            json::value(&inc),
        ),
        DocChange::Request(req) => (
            REQUEST,
            req.id.clone(),
            req.service.clone(),
            req.requested_at.clone(),
            json::value(&req),
        ),
    };
    Doc {
        kind: kind.into(),
        id,
        service,
        created_ms: Time::parse_rfc3339(&created).map_or(now.0, |t| t.0),
        body,
    }
}

/// A stored governance document read back as its record; one that does
/// not read is an error naming it, never skipped.
pub fn read_doc<T: serde::de::DeserializeOwned>(doc: Doc) -> Result<T, ApiError> {
    let (kind, id) = (doc.kind, doc.id);
    serde_json::from_value(doc.body)
        .map_err(|e| ApiError::unavailable(format!("{kind} {id} is unreadable: {e}")))
}

/// The stored governance documents of `kind` (of one service, or all),
/// oldest first, read back as records; see [`read_doc`].
pub async fn read_docs<T: serde::de::DeserializeOwned>(
    store: &dyn ripcord_store::Store,
    kind: &str,
    service: Option<&str>,
) -> Result<Vec<T>, ApiError> {
    store
        .docs(kind, service)
        .await?
        .into_iter()
        .map(read_doc)
        .collect()
}

fn store_timer(service: &str, change: MachineTimer) -> TimerChange {
    match change {
        MachineTimer::Set { body, at } => TimerChange::Set(Timer {
            id: body.due.id(&body.subject),
            service: service.to_string(),
            due_ms: at.0,
            body: json::value(&body),
        }),
        MachineTimer::Cancel { id } => TimerChange::Cancel(id),
    }
}

/// What the machine reads of a service's state besides its own.
pub struct On<'a> {
    pub policy: &'a Policy,
    pub policy_version: i64,
    pub current: Option<&'a ReleaseView>,
    pub drill: bool,
    pub evidence: &'a EvidenceInputs,
}

pub fn on(state: &State) -> On<'_> {
    On {
        policy: &state.policy,
        policy_version: state.policy_version,
        current: state.current.as_ref(),
        drill: state.drill,
        evidence: &state.evidence,
    }
}

/// Runs `f` against the machine's setting for this service — its policy,
/// current release, the notification bridge and the evidence source — and
/// writes what it did into the batch.
pub fn drive<R>(
    ctx: &Ctx,
    on: On,
    batch: &mut Batch,
    f: impl FnOnce(&Setting, &mut Effects) -> R,
) -> R {
    let bridge = Bridge::new(ctx.channels, on.policy, ctx.now);
    let bundles = Bundles {
        service: ctx.service,
        policy: on.policy,
        inputs: on.evidence,
        current: on.current,
    };
    let release = on.current.map(|c| ReleaseFacts {
        id: c.id.clone(),
        baseline: c.baseline.clone(),
        candidate: c.candidate.clone(),
        share: c.share,
        policy_version: c.policy_version,
    });
    let setting = Setting {
        now: ctx.now,
        service: ctx.service,
        policy: on.policy,
        policy_version: on.policy_version,
        release: release.as_ref(),
        drill: on.drill,
        evidence: &bundles,
        link_base: ctx.link_base,
        messenger: &bridge,
    };
    let mut fx = Effects::default();
    let answer = f(&setting, &mut fx);
    apply(ctx.service, ctx.now, fx, batch);
    batch.outbox.extend(bridge.into_queued());
    answer
}

/// Like [`drive`], with the service's governance state.
pub fn drive_gov<R>(
    ctx: &Ctx,
    state: &mut State,
    batch: &mut Batch,
    f: impl FnOnce(&mut Governance, &Setting, &mut Effects) -> R,
) -> R {
    let State {
        policy,
        policy_version,
        current,
        drill,
        evidence,
        gov,
        ..
    } = state;
    let on = On {
        policy,
        policy_version: *policy_version,
        current: current.as_ref(),
        drill: *drill,
        evidence,
    };
    drive(ctx, on, batch, |s, fx| f(gov, s, fx))
}

pub fn cancel_timer(batch: &mut Batch, subject: &str, due: Due) {
    batch.timers.push(TimerChange::Cancel(due.id(subject)));
}

/// The API's answer to a refused command.
pub fn refusal(r: Refusal) -> ApiError {
    match r {
        Refusal::BadRequest(m) => ApiError::bad_request(m),
        Refusal::Forbidden(m) => ApiError::forbidden(m),
        Refusal::NotFound(m) => ApiError::not_found(m),
        Refusal::Conflict(m) => ApiError::conflict(m),
    }
}

/// Stores the incident and its audit record.
pub fn save_incident(batch: &mut Batch, inc: &Incident, at: Time, actor: &str, action: &str) {
    let mut fx = Effects::default();
    machine::save_incident(&mut fx, inc, at, actor, action);
    apply(&inc.service, at, fx, batch);
}

pub fn save_request(batch: &mut Batch, req: &Request, at: Time, actor: &str, action: &str) {
    let mut fx = Effects::default();
    machine::save_request(&mut fx, req, at, actor, action);
    apply(&req.service, at, fx, batch);
}

/// Reacts to the engine's decisions for one live input.
/// `decisions` comes with each decision's record (its stored line,
/// parsed), which the timeline keeps.
pub fn on_decisions(
    ctx: &Ctx,
    state: &mut State,
    decided: (&[Decision], &[Value]),
    actor: &str,
    batch: &mut Batch,
) {
    let waiting = state
        .engine
        .as_ref()
        .and_then(|e| e.status())
        .is_some_and(|s| matches!(s.state, ReleaseState::AwaitingApproval { .. }));
    drive_gov(ctx, state, batch, |g, s, fx| {
        fx.extend(g.on_decisions(s, decided, actor, waiting));
    });
}

/// The current release's evidence bundle, frozen from the raw material the
/// hub keeps for it.
struct Bundles<'a> {
    service: &'a str,
    policy: &'a Policy,
    inputs: &'a EvidenceInputs,
    current: Option<&'a ReleaseView>,
}

impl Evidence for Bundles<'_> {
    fn freeze(&self, policy_version: i64, at: Time) -> Option<Sealed> {
        let sample = self.inputs.sample.as_ref()?;
        let rules = &self.policy.governance.evidence;
        let redaction = Redaction {
            drop: rules.drop.clone(),
            hash: rules.hash.clone(),
        };
        let frozen = freeze(FreezeInput {
            service: self.service,
            policy_version,
            policy_yaml: &self.inputs.policy_yaml,
            release: json::value(&self.current),
            provenance: self.inputs.provenance.clone(),
            decisions: self.inputs.decisions.clone(),
            sample,
            redaction: &redaction,
            frozen_at: at,
        });
        Some(Sealed {
            events: frozen.bundle.events.len(),
            decisions: self.inputs.decisions.len(),
            address: frozen.address,
            bytes: frozen.bytes,
        })
    }
}
