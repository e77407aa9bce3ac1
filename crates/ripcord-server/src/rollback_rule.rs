//! The data rule a rollback leaves (policy `after_rollback`): the stored
//! document, made in the rollback's own batch by the hub, and the
//! evidence its hold keeps, which [`crate::holds::held`] adds to what the
//! legal holds keep. Running the rules is [`crate::data_rules`]'s; this
//! module stays below the hub and the holds, so both can read it.

use ripcord_core::Time;
use ripcord_core::policy::governance::{AfterRollback, EvidenceHold, ExportPart};
use ripcord_govern::ReportStage;
use ripcord_govern::record::Incident;
use ripcord_govern::words::IncidentState;
use ripcord_store::{Doc, Held, PendingAudit, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;

/// The release that rolled back, as the hub's record has it.
pub struct RolledBack<'a> {
    /// The release record's id (`service-n`).
    pub release: &'a str,
    pub service: &'a str,
    pub candidate: &'a str,
    pub baseline: &'a str,
    /// The release as its decisions name it.
    pub engine_release: &'a str,
    pub policy_version: i64,
}

/// The document kind of data rules.
pub const DATA_RULE: &str = "data_rule";

/// Who the audit records name.
const ACTOR: &str = "ripcord";

/// Where a rule stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleState {
    /// Not due yet, or due with journal entries a snapshot does not cover
    /// yet (the next pass goes on).
    Waiting,
    /// Due, and a hold blocks it.
    Held,
    /// The candidate's raw events are gone.
    Purged,
    /// The rule purges nothing (`raw_events` not given): it only holds
    /// evidence.
    HoldOnly,
}

/// One release's data rule, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRule {
    /// The release record's id (`service-n`).
    pub release: String,
    pub service: String,
    /// The rolled-back candidate, whose raw events the rule purges.
    pub version: String,
    pub baseline: String,
    pub policy_version: i64,
    pub rolled_back_at: String,
    /// `None`: the raw events are left to the retention classes.
    pub keep_ms: Option<i64>,
    pub purge_after: Option<String>,
    pub purge_after_ms: Option<i64>,
    pub evidence_hold: EvidenceHold,
    pub state: RuleState,
    /// What blocks the purge now (hold ids, incident ids), when held.
    #[serde(default)]
    pub blocked_by: Blockers,
    #[serde(default)]
    pub purged: Purged,
    #[serde(default)]
    pub purged_at: Option<String>,
    /// The release as its decisions name it, to find them for an export.
    #[serde(default)]
    pub engine_release: String,
    #[serde(default)]
    pub exports: Vec<ExportState>,
}

/// One of the policy's exports and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportState {
    pub to: String,
    pub what: Vec<ExportPart>,
    pub channel: String,
    pub state: ExportStatus,
    /// Why it was refused.
    #[serde(default)]
    pub why: Option<String>,
    /// The outbox delivery's id (its `webhook-id`).
    #[serde(default)]
    pub delivery: Option<String>,
    #[serde(default)]
    pub at: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Sent at the next retention pass.
    Pending,
    /// Queued in the outbox, in the transaction that recorded it.
    Sent,
    /// The channel is not configured, or cannot carry data.
    Refused,
}

/// What blocks a due purge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blockers {
    /// Active legal holds on the release or one of its incidents.
    pub holds: Vec<String>,
    /// Incidents of the release the rule's evidence hold keeps.
    pub incidents: Vec<String>,
}

impl Blockers {
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty() && self.incidents.is_empty()
    }
}

/// What a rule's purge removed so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    pub journal_entries: u64,
    pub journal_lines: u64,
    pub sample_lines: u64,
}

/// The rule the rollback of `view` leaves under `rule`, with its audit
/// record; `None` when the policy has no `after_rollback`.
pub fn on_rollback(
    view: RolledBack<'_>,
    rule: &AfterRollback,
    now: Time,
) -> Option<(Doc, PendingAudit)> {
    if !rule.is_set() {
        return None;
    }
    let due = rule
        .raw_events_keep
        .map(|k| Time(now.0.saturating_add(k.0)));
    let data_rule = DataRule {
        release: view.release.to_string(),
        service: view.service.to_string(),
        version: view.candidate.to_string(),
        baseline: view.baseline.to_string(),
        policy_version: view.policy_version,
        rolled_back_at: now.to_rfc3339(),
        keep_ms: rule.raw_events_keep.map(|k| k.0),
        purge_after: due.map(|t| t.to_rfc3339()),
        purge_after_ms: due.map(|t| t.0),
        evidence_hold: rule.evidence_hold,
        state: if due.is_some() {
            RuleState::Waiting
        } else {
            RuleState::HoldOnly
        },
        blocked_by: Blockers::default(),
        purged: Purged::default(),
        purged_at: None,
        engine_release: view.engine_release.to_string(),
        exports: rule
            .exports
            .iter()
            .map(|e| ExportState {
                to: e.to.clone(),
                what: e.what.clone(),
                channel: e.channel.clone(),
                state: ExportStatus::Pending,
                why: None,
                delivery: None,
                at: None,
            })
            .collect(),
    };
    let body = json!(data_rule);
    let audit = record(now, "after_rollback.rule", view.release, body.clone());
    Some((doc(&data_rule, now, body), audit))
}

pub(crate) fn doc(rule: &DataRule, now: Time, body: Value) -> Doc {
    Doc {
        kind: DATA_RULE.into(),
        id: rule.release.clone(),
        service: rule.service.clone(),
        created_ms: now.0,
        body,
    }
}

pub(crate) fn record(now: Time, action: &str, subject: &str, detail: Value) -> PendingAudit {
    PendingAudit {
        at_ms: now.0,
        principal: ACTOR.into(),
        action: action.into(),
        subject: subject.into(),
        detail,
    }
}

/// Every rule, oldest first.
pub async fn list(store: &dyn Store) -> Result<Vec<DataRule>, ApiError> {
    store
        .docs(DATA_RULE, None)
        .await?
        .into_iter()
        .map(|d| {
            serde_json::from_value(d.body).map_err(|e| {
                ApiError::unavailable(format!("{DATA_RULE} {} is unreadable: {e}", d.id))
            })
        })
        .collect()
}

/// Whether the rule's evidence hold keeps an incident in this state;
/// `reporting`: it is classified and its final regulatory report is not
/// filed yet.
fn holds_incident(hold: EvidenceHold, state: IncidentState, reporting: bool) -> bool {
    match hold {
        EvidenceHold::None => false,
        EvidenceHold::WhileIncidentOpen => state.is_active(),
        EvidenceHold::UntilReviewed => state != IncidentState::Reviewed,
        EvidenceHold::WhileOpenOrReported => state.is_active() || reporting,
    }
}

/// Classified for regulatory reporting, and no final report filed yet.
fn reporting(inc: &Incident) -> bool {
    inc.regulatory
        .as_ref()
        .is_some_and(|r| !r.reports.iter().any(|f| f.stage == ReportStage::Final))
}

/// The incidents of the rule's release its evidence hold keeps now.
pub(crate) fn held_incidents<'a>(rule: &DataRule, incidents: &'a [Incident]) -> Vec<&'a Incident> {
    incidents
        .iter()
        .filter(|i| i.release.as_deref() == Some(rule.release.as_str()))
        .filter(|i| holds_incident(rule.evidence_hold, i.state, reporting(i)))
        .collect()
}

/// Adds what the rules' evidence holds keep to `held`: while one of its
/// incidents is held, the release is kept as a legal hold on that
/// incident keeps it (its journal entries, decisions, the incidents'
/// bundles and the audit records about them), since the investigation
/// still reads them.
pub fn keep_evidence(rules: &[DataRule], incidents: &[Incident], held: &mut Held) {
    for rule in rules {
        let kept = held_incidents(rule, incidents);
        if kept.is_empty() {
            continue;
        }
        for inc in kept {
            held.subjects.insert(inc.id.clone());
            if let Some(address) = &inc.evidence {
                held.blobs.insert(address.clone());
            }
        }
        held.subjects.insert(rule.release.clone());
        held.releases.insert(rule.release.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hold_keeps_incidents_in_its_states() {
        use EvidenceHold::*;
        use IncidentState::*;
        let kept = |h, reporting| {
            IncidentState::ALL
                .iter()
                .filter(|s| holds_incident(h, **s, reporting))
                .copied()
                .collect::<Vec<_>>()
        };
        for reporting in [false, true] {
            assert_eq!(kept(None, reporting), []);
            assert_eq!(kept(WhileIncidentOpen, reporting), [Open, Mitigated]);
            assert_eq!(kept(UntilReviewed, reporting), [Open, Mitigated, Resolved]);
        }
        assert_eq!(kept(WhileOpenOrReported, false), [Open, Mitigated]);
        assert_eq!(kept(WhileOpenOrReported, true), IncidentState::ALL);
    }
}
