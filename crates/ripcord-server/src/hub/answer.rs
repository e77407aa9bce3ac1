//! What a release command did, typed until the HTTP edge serialises it
//! (and an idempotency key stores it as text).

use ripcord_govern::record::{Request, RequestState, Vote};
use serde::Serialize;
use serde_json::Value;

use super::ReleaseView;

/// Command answers a service keeps in memory: a client sending a new key
/// with each command cannot grow the server's memory.
pub const ANSWERS_IN_MEMORY: usize = 1024;

/// The answer to a release action or a vote.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum CommandAnswer {
    /// The engine ran the command.
    Ran(Ran),
    /// The action waits for approvals under the policy's decision right.
    Requested(Requested),
    /// A vote on a request, and what the request's command did if the vote
    /// decided it.
    Voted(Voted),
}

impl CommandAnswer {
    /// The request it names still waits for approvals: the action is
    /// accepted, not done.
    pub fn waits(&self) -> bool {
        let request = match self {
            CommandAnswer::Ran(_) => return false,
            CommandAnswer::Requested(r) => &r.request,
            CommandAnswer::Voted(v) => &v.request,
        };
        request.state == RequestState::Pending
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Ran {
    pub action: &'static str,
    /// Always true: the release changed.
    pub changed: bool,
    /// The decisions the command caused, as the decision log has them.
    pub decisions: Vec<Value>,
    pub reason: Option<String>,
    pub release: Option<ReleaseView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Requested {
    pub action: &'static str,
    /// Always false: nothing changed yet.
    pub changed: bool,
    /// The same action was already waiting: asking again is not a new
    /// request.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub existing: bool,
    pub release: Option<ReleaseView>,
    pub request: Request,
}

#[derive(Clone, Debug, Serialize)]
pub struct Voted {
    /// `approve` or `reject` when the vote came as a release action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// The vote decided the request and its command ran.
    pub changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<Value>>,
    pub release: Option<ReleaseView>,
    pub request: Request,
    pub vote: Vote,
}
