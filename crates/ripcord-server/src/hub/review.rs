//! The records of threshold reviews (`crate::reviews` builds and serves
//! them) and the request stored when a release settles: here, below the
//! hub, so that the hub can ask for one without importing what builds it.

use ripcord_core::engine::Phase;
use ripcord_core::review::{Outcome, Review};
use ripcord_core::{Time, json};
use ripcord_store::{Batch, Doc};
use serde::{Deserialize, Serialize};
use serde_json::json as jv;

use super::{ReleaseView, audit};

/// The documents' kind.
pub const REVIEW: &str = "threshold_review";

/// The principal of reviews the server builds.
pub const REVIEWER: &str = "ripcord";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Requested when the release settled; not built yet.
    Pending,
    Ready,
    /// The replay could not run (e.g. the stored policy no longer loads).
    Failed,
    /// Accepted: a policy version carries its suggestions.
    Accepted,
}

/// One suggestion as written into the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub criterion: String,
    pub bound_kind: String,
    pub from: f64,
    pub to: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acceptance {
    pub by: String,
    pub at: String,
    pub policy_version: i64,
    pub changes: Vec<Change>,
}

/// The stored review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub service: String,
    /// The release whose settling asked for it.
    pub release: String,
    pub outcome: Outcome,
    /// The policy version the release ran under, which the review varies.
    pub policy_version: i64,
    pub status: Status,
    pub requested_at: String,
    pub built_at: Option<String>,
    pub error: Option<String>,
    pub review: Option<Review>,
    pub accepted: Option<Acceptance>,
}

pub fn id_of(release: &str) -> String {
    format!("review-{release}")
}

pub fn outcome_of(view: &ReleaseView) -> Outcome {
    match view.state {
        _ if view.drill => Outcome::Unknown,
        Phase::Promoted => Outcome::Good,
        Phase::RolledBack => Outcome::Bad,
        _ => Outcome::Unknown,
    }
}

pub fn to_doc(r: &Record, created_ms: i64) -> Doc {
    Doc {
        kind: REVIEW.into(),
        id: r.id.clone(),
        service: r.service.clone(),
        created_ms,
        body: json::value(r),
    }
}

/// Adds the pending review of a release that just settled to its batch
/// (drills are rehearsals: no review).
pub fn request(view: &ReleaseView, now: Time, batch: &mut Batch) {
    if view.drill {
        return;
    }
    let record = Record {
        id: id_of(&view.id),
        service: view.service.clone(),
        release: view.id.clone(),
        outcome: outcome_of(view),
        policy_version: view.policy_version,
        status: Status::Pending,
        requested_at: now.to_rfc3339(),
        built_at: None,
        error: None,
        review: None,
        accepted: None,
    };
    batch.audit.push(audit(
        now,
        REVIEWER,
        "review.requested",
        &record.id,
        jv!({"release": view.id, "outcome": record.outcome}),
    ));
    batch.docs.push(to_doc(&record, now.0));
}
