//! Legal holds: a release or an incident whose data no deletion may touch
//! until the hold is lifted.
//!
//! A hold is a stored governance document (kind `hold`), placed and lifted
//! through the API with a reason, both audited. [`held`] is the one check
//! every deletion path goes through: it turns the active holds into the
//! [`Held`] set (releases, evidence bundles, audit subjects) that the
//! store's retention passes and the purge honour.

use ripcord_core::Time;
use ripcord_govern::record::{INCIDENT, Incident};
use ripcord_store::{Batch, Doc, Held, PendingAudit, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::hub::govern::{read_doc, read_docs};
use crate::rollback_rule as data_rules;
use ripcord_core::policy::governance::EvidenceHold;

/// The document kind of holds.
pub const HOLD: &str = "hold";

/// Active holds at most: each one is read by every retention pass.
pub const MAX_ACTIVE: usize = 1000;

/// What a hold keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A release record (`service-n`): its journal entries, decisions,
    /// the evidence of its incidents, and the audit records about it.
    Release(String),
    /// An incident: its evidence bundle and audit records, and everything
    /// of its release.
    Incident(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub on: Target,
    pub service: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: String,
    #[serde(default)]
    pub lifted: Option<Lifted>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lifted {
    pub by: String,
    pub at: String,
    pub reason: String,
}

impl Hold {
    pub fn active(&self) -> bool {
        self.lifted.is_none()
    }

    fn subject(&self) -> &str {
        match &self.on {
            Target::Release(id) | Target::Incident(id) => id,
        }
    }
}

/// What the active holds keep: the one check of every deletion path.
/// Besides the legal holds, the evidence holds of the data rules left by
/// rollbacks ([`data_rules::keep_evidence`]) keep their incidents'
/// bundles and audit records.
pub async fn held(store: &dyn Store) -> Result<Held, ApiError> {
    let holds: Vec<Hold> = read_docs(store, HOLD, None).await?;
    let rules = data_rules::list(store).await?;
    let mut held = Held::default();
    let holding = |r: &data_rules::DataRule| r.evidence_hold != EvidenceHold::None;
    if !holds.iter().any(Hold::active) && !rules.iter().any(holding) {
        return Ok(held);
    }
    let incidents: Vec<Incident> = read_docs(store, INCIDENT, None).await?;
    data_rules::keep_evidence(&rules, &incidents, &mut held);
    for hold in holds.iter().filter(|h| h.active()) {
        let release = match &hold.on {
            Target::Release(id) => Some(id.clone()),
            Target::Incident(id) => {
                held.subjects.insert(id.clone());
                incidents
                    .iter()
                    .find(|i| i.id == *id)
                    .and_then(|i| keep_incident(&mut held, i))
            }
        };
        if let Some(release) = release {
            for inc in incidents
                .iter()
                .filter(|i| i.release.as_ref() == Some(&release))
            {
                keep_incident(&mut held, inc);
            }
            held.subjects.insert(release.clone());
            held.releases.insert(release);
        }
    }
    Ok(held)
}

/// Keeps an incident's bundle and records; its release.
fn keep_incident(held: &mut Held, inc: &Incident) -> Option<String> {
    held.subjects.insert(inc.id.clone());
    if let Some(address) = &inc.evidence {
        held.blobs.insert(address.clone());
    }
    inc.release.clone()
}

/// Every hold, active or lifted, oldest first.
pub async fn list(store: &dyn Store) -> Result<Vec<Hold>, ApiError> {
    read_docs(store, HOLD, None).await
}

/// The service a target belongs to; not found if it does not exist.
pub async fn service_of(store: &dyn Store, on: &Target) -> Result<String, ApiError> {
    match on {
        Target::Release(id) => store
            .release(id)
            .await?
            .map(|r| r.service)
            .ok_or_else(|| ApiError::not_found(format!("no release {id}"))),
        Target::Incident(id) => store
            .doc(INCIDENT, id)
            .await?
            .map(|d| d.service)
            .ok_or_else(|| ApiError::not_found(format!("no incident {id}"))),
    }
}

/// A new hold's document and audit record. Its id is derived from what it
/// holds, who placed it and when: placing the same hold twice in the same
/// millisecond is one hold.
pub fn place(on: Target, service: String, reason: String, by: &str, now: Time) -> (Hold, Batch) {
    let seed = format!("{on:?}|{by}|{}|{reason}", now.0);
    let id = format!(
        "hold-{}",
        &ripcord_core::evidence::address(seed.as_bytes())[..12]
    );
    let hold = Hold {
        id,
        on,
        service,
        reason,
        placed_by: by.to_string(),
        placed_at: now.to_rfc3339(),
        lifted: None,
    };
    let batch = save(&hold, now, by, "hold.place");
    (hold, batch)
}

/// Lifts an active hold; conflict if it was lifted already.
pub async fn lift(
    store: &dyn Store,
    id: &str,
    reason: String,
    by: &str,
    now: Time,
) -> Result<(Hold, Batch), ApiError> {
    let doc = store
        .doc(HOLD, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no hold {id}")))?;
    let mut hold: Hold = read_doc(doc)?;
    if let Some(lifted) = &hold.lifted {
        return Err(ApiError::conflict(format!(
            "hold {id} was lifted at {} by {}",
            lifted.at, lifted.by
        )));
    }
    hold.lifted = Some(Lifted {
        by: by.to_string(),
        at: now.to_rfc3339(),
        reason,
    });
    let batch = save(&hold, now, by, "hold.lift");
    Ok((hold, batch))
}

fn save(hold: &Hold, now: Time, by: &str, action: &str) -> Batch {
    let body = json!(hold);
    Batch {
        docs: vec![Doc {
            kind: HOLD.into(),
            id: hold.id.clone(),
            service: hold.service.clone(),
            created_ms: now.0,
            body: body.clone(),
        }],
        audit: vec![PendingAudit {
            at_ms: now.0,
            principal: by.to_string(),
            action: action.into(),
            subject: hold.subject().to_string(),
            detail: body,
        }],
        answered_at_ms: now.0,
        ..Batch::default()
    }
}
