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

/// The service snapshot format this build writes and reads; the engine's
/// part inside has a format version of its own.
pub const SERVICE_SNAPSHOT_VERSION: u16 = 1;

const MAGIC: &[u8; 8] = b"RCSERV\x00\x01";

/// A service's snapshot body: magic, format version, postcard.
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
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&SERVICE_SNAPSHOT_VERSION.to_le_bytes());
        out.extend(postcard::to_stdvec(self).map_err(|e| e.to_string())?);
        Ok(out)
    }

    /// Reads a snapshot this build wrote; another format is refused, never
    /// read as this one (postcard does not describe itself).
    pub fn decode(bytes: &[u8]) -> Result<ServiceSnapshot, String> {
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or("not a ripcord service snapshot")?;
        let (version, body) = body
            .split_first_chunk::<2>()
            .ok_or("not a ripcord service snapshot")?;
        let found = u16::from_le_bytes(*version);
        if found != SERVICE_SNAPSHOT_VERSION {
            return Err(format!(
                "service snapshot format {found}, but this ripcord reads format \
                 {SERVICE_SNAPSHOT_VERSION}"
            ));
        }
        postcard::from_bytes(body).map_err(|e| format!("the service snapshot is damaged: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> ServiceSnapshot {
        ServiceSnapshot {
            start_seq: 7,
            engine: vec![1, 2, 3],
            sample: None,
            decisions: vec!["{}".into()],
        }
    }

    #[test]
    fn a_service_snapshot_reads_back_and_another_format_is_refused() {
        let bytes = snapshot().encode().unwrap();
        let back = ServiceSnapshot::decode(&bytes).unwrap();
        assert_eq!((back.start_seq, back.engine), (7, vec![1, 2, 3]));
        let mut newer = bytes.clone();
        newer[8..10].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(
            ServiceSnapshot::decode(&newer).err().as_deref(),
            Some("service snapshot format 2, but this ripcord reads format 1")
        );
        assert_eq!(
            ServiceSnapshot::decode(b"nonsense").err().as_deref(),
            Some("not a ripcord service snapshot")
        );
        let cut = &bytes[..bytes.len() - 2];
        assert!(ServiceSnapshot::decode(cut).is_err_and(|e| e.contains("damaged")));
    }
}
