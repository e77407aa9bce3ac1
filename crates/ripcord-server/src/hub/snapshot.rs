//! Snapshots of a service's live state, so that a restart replays only the
//! journal after the latest one instead of the whole release.
//!
//! A snapshot is written in the transaction of the journal entry it covers,
//! once a [`SNAPSHOT_EVERY`] of server time per service, or sooner when
//! [`SNAPSHOT_BYTES`] of journal have been written since (so that what a
//! restart replays stays short under heavy ingest), and
//! holds what the journal would rebuild: the engine's run-time state
//! (core's `Engine::snapshot`) and the evidence material drawn from the
//! inputs (the seeded reservoir of raw event lines, the decision lines).
//! Governance is not in it: incidents, requests and timers are stored
//! documents already. Recovery uses a snapshot only if it belongs to the
//! release the journal's latest start began; any snapshot it cannot use
//! (another format, another policy, damaged) is logged and the journal is
//! replayed from the release start instead.

use ripcord_core::Dur;
use ripcord_core::evidence::Reservoir;
use serde::{Deserialize, Serialize};

/// How often, in server time, a service with new journal entries is
/// snapshotted.
pub const SNAPSHOT_EVERY: Dur = Dur::from_secs(60);

/// Journal written since the last snapshot that brings the next one
/// forward: about 100,000 events, a fraction of a second to replay.
pub const SNAPSHOT_BYTES: usize = 16 << 20;

/// A service's snapshot body (postcard).
#[derive(Serialize, Deserialize)]
pub struct ServiceSnapshot {
    /// The journal sequence number of the release's start entry.
    pub start_seq: i64,
    /// `Engine::snapshot`.
    pub engine: Vec<u8>,
    pub sample: Option<Reservoir>,
    pub decisions: Vec<String>,
}

impl ServiceSnapshot {
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(self).map_err(|e| e.to_string())
    }

    pub fn decode(bytes: &[u8]) -> Result<ServiceSnapshot, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("the service snapshot is damaged: {e}"))
    }
}
