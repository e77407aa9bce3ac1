//! The assignment of one unit to a side of its service's release, shared
//! by `/v1/assign` and OFREP, on the leader (from its engines) and on a
//! follower replica (from the stored release records).

use ripcord_core::Time;
use ripcord_core::assign::bucket;
use ripcord_store::Store;

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::hub::{Assignment, Hub};

/// Which version one unit gets, and why.
pub struct Assigned {
    pub version: String,
    pub release: String,
    pub candidate: bool,
    pub share: f64,
    pub bucket: u64,
}

/// What the assignment routes and the token check run on: the leader's
/// state, or a follower's (`follow::Follower`).
pub trait Assigner: Clone + Send + Sync + 'static {
    fn tokens(&self) -> &Tokens;
    fn store(&self) -> &dyn Store;
    fn now(&self) -> Time;
    /// The service's assignment now; 404 when it has no release.
    fn current(&self, service: &str) -> Result<Assignment, ApiError>;
    /// The services that have a release or a policy, sorted.
    fn services(&self) -> Vec<String>;
}

/// The leader's assignment of a service, as its engine last decided.
pub fn current(hub: &Hub, service: &str) -> Result<Assignment, ApiError> {
    let known = hub.known(service)?;
    known
        .assign_calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    known.assignment().ok_or_else(|| {
        ApiError::not_found(format!(
            "service \"{service}\" has no release; POST /v1/releases first"
        ))
    })
}

pub fn assign_unit(from: &impl Assigner, service: &str, unit: &str) -> Result<Assigned, ApiError> {
    let a = from.current(service)?;
    let bucket = bucket(service, unit);
    let candidate = (bucket as f64) < a.share * 10_000.0;
    Ok(Assigned {
        version: if candidate { a.candidate } else { a.baseline },
        release: a.release,
        candidate,
        share: a.share,
        bucket,
    })
}
