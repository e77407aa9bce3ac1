//! The assignment of one unit to a side of its service's release, shared
//! by `/v1/assign` and OFREP.

use ripcord_core::assign::bucket;

use crate::error::ApiError;
use crate::hub::Hub;

/// Which version one unit gets, and why.
pub struct Assigned {
    pub version: String,
    pub release: String,
    pub candidate: bool,
    pub share: f64,
    pub bucket: u64,
}

pub fn assign_unit(hub: &Hub, service: &str, unit: &str) -> Result<Assigned, ApiError> {
    let svc = hub.known(service)?;
    let a = svc.assignment().ok_or_else(|| {
        ApiError::not_found(format!(
            "service \"{service}\" has no release; POST /v1/releases first"
        ))
    })?;
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
