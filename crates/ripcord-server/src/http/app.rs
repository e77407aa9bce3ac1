//! The state every handler shares: the hub and what the HTTP edge adds to
//! it (tokens, ingest slots, the sinks' allowed ranges).

use std::sync::Arc;

use ripcord_core::Time;
use ripcord_store::Store;

use crate::assignment::{self, Assigner};
use crate::auth::Tokens;
use crate::error::ApiError;
use crate::hub::{Assignment, Hub};
use crate::sinks::Allowed;
use crate::slow::{BodyRate, IngestSlots};

/// Ingest requests handled at once; more get 429 (bounded memory).
pub const INGEST_SLOTS: usize = 16;
/// Of those, how many one token may hold: one sender's slow uploads leave
/// the other slots to the others.
pub const INGEST_SLOTS_PER_TOKEN: usize = 4;

pub struct App {
    pub hub: Hub,
    /// Shared with the follower this replica was before it led.
    pub tokens: Arc<Tokens>,
    pub ingest_slots: IngestSlots,
    /// The slowest ingest body a slot is held for.
    pub body_rate: BodyRate,
    /// Address ranges webhook sinks may name beyond the public internet.
    pub sinks_allowed: Allowed,
    /// The retention task's settings and last report.
    pub retention: crate::retention::Status,
    /// This replica's place in a cluster; `None`: it is the only one.
    pub membership: Option<Arc<crate::cluster::Membership>>,
    /// The dashboard's sessions and live streams.
    pub dashboard: crate::dashboard::Dashboard,
    /// GenAI responses seen over OTLP, for their late evaluations.
    pub otlp_responses: crate::otlp::Responses,
    /// The drills this leader runs.
    pub drills: crate::drills::Drills,
}

pub type Shared = Arc<App>;

impl Assigner for Shared {
    fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    fn store(&self) -> &dyn Store {
        self.hub.store.as_ref()
    }

    fn now(&self) -> Time {
        self.hub.now()
    }

    fn current(&self, service: &str) -> Result<Assignment, ApiError> {
        assignment::current(&self.hub, service)
    }

    fn services(&self) -> Vec<String> {
        self.hub.service_names()
    }
}
