//! Snapshots of an engine's run-time state, so that a restart loads the
//! latest snapshot and replays only the journal after it.
//!
//! What a snapshot holds is what the inputs built: the engine's clock, the
//! instant of its last decision and the release's run (state and share,
//! every criterion's windows, tests, epochs and `for` / `clear_for`
//! timers, per-unit tallies, the SRM counts, a rollback's stage). What the
//! policy determines (field bindings, error budgets) is rebuilt from the
//! policy, which must be the one the snapshot was taken under: its
//! fingerprint is in the snapshot, and another policy is refused.
//!
//! The format: 8 bytes of magic, a little-endian `u16` format version,
//! then the state in postcard (compact, and floats bit for bit, so that a
//! restored engine decides exactly as the uninterrupted one would). A
//! snapshot of another format version is refused with a message, never
//! read as this one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Engine, Run};
use crate::engine::EngineOptions;
use crate::policy::Policy;
use crate::time::Time;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u16 = 1;

const MAGIC: &[u8; 8] = b"RIPCORD\x01";

/// Why a snapshot cannot be restored; the caller replays the journal
/// instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("not a ripcord engine snapshot")]
    NotASnapshot,
    #[error(
        "engine snapshot format {found}, but this ripcord reads format {SNAPSHOT_VERSION}: \
         replay the journal instead"
    )]
    Version { found: u16 },
    #[error("the snapshot was taken under another policy or other engine options")]
    OtherPolicy,
    #[error("the engine snapshot is damaged: {0}")]
    Damaged(String),
    #[error("the engine state could not be encoded: {0}")]
    Encode(String),
}

/// What a snapshot records, as written (borrowing the run).
#[derive(Serialize)]
struct StateRef<'a> {
    /// SHA-256 of the policy and options the engine was built with.
    fingerprint: [u8; 32],
    now: Time,
    last_decision: Time,
    release: Option<&'a Run>,
}

/// What a snapshot records, as read.
#[derive(Deserialize)]
struct State {
    fingerprint: [u8; 32],
    now: Time,
    last_decision: Time,
    release: Option<Run>,
}

fn encode<T: Serialize + ?Sized>(x: &T) -> Result<Vec<u8>, SnapshotError> {
    postcard::to_stdvec(x).map_err(|e| SnapshotError::Encode(e.to_string()))
}

/// The policy and options, as one hash: a snapshot belongs to exactly
/// these.
fn fingerprint(policy: &Policy, options: &EngineOptions) -> Result<[u8; 32], SnapshotError> {
    Ok(Sha256::digest(encode(&(policy, options))?).into())
}

impl Engine {
    /// The engine's run-time state, to be restored by [`Engine::restore`]
    /// under the same policy and options.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let state = StateRef {
            fingerprint: fingerprint(&self.policy, &self.options)?,
            now: self.now,
            last_decision: self.last_decision,
            release: self.release.as_ref(),
        };
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend(encode(&state)?);
        Ok(out)
    }

    /// An engine for `policy` and `options` in the state `bytes` recorded.
    pub fn restore(
        policy: Policy,
        options: EngineOptions,
        bytes: &[u8],
    ) -> Result<Engine, SnapshotError> {
        let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(SnapshotError::NotASnapshot);
        };
        let Some((version, body)) = body.split_first_chunk::<2>() else {
            return Err(SnapshotError::NotASnapshot);
        };
        let found = u16::from_le_bytes(*version);
        if found != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version { found });
        }
        let state: State =
            postcard::from_bytes(body).map_err(|e| SnapshotError::Damaged(e.to_string()))?;
        if state.fingerprint != fingerprint(&policy, &options)? {
            return Err(SnapshotError::OtherPolicy);
        }
        let mut engine = Engine::new(policy, options);
        engine.now = state.now;
        engine.last_decision = state.last_decision;
        engine.release = state.release;
        Ok(engine)
    }
}
