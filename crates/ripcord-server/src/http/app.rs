//! The state every handler shares: the hub and what the HTTP edge adds to
//! it (tokens, ingest slots, the sinks' allowed ranges).

use std::sync::Arc;

use crate::auth::Tokens;
use crate::hub::Hub;
use crate::sinks::Allowed;
use crate::slow::{BodyRate, IngestSlots};

/// Ingest requests handled at once; more get 429 (bounded memory).
pub const INGEST_SLOTS: usize = 16;
/// Of those, how many one token may hold: one sender's slow uploads leave
/// the other slots to the others.
pub const INGEST_SLOTS_PER_TOKEN: usize = 4;

pub struct App {
    pub hub: Hub,
    pub tokens: Tokens,
    pub ingest_slots: IngestSlots,
    /// The slowest ingest body a slot is held for.
    pub body_rate: BodyRate,
    /// Address ranges webhook sinks may name beyond the public internet.
    pub sinks_allowed: Allowed,
    /// The retention task's settings and last report.
    pub retention: crate::retention::Status,
}

pub type Shared = Arc<App>;
