#![recursion_limit = "512"]
//! ripcord's engine: the policy language and its validation, signal
//! aggregation, anytime-valid statistics, criteria, triggers and the release
//! state machine.
//!
//! This crate is pure and synchronous: it does no I/O, spawns nothing and
//! never reads the wall clock. Drivers (replay, the policy-test runner, the
//! simulator, later the server) pass events and time in and get decisions
//! out. Same policy + same inputs ⇒ the same decisions, byte for byte.
//! The [`ndjson`] module is the one wire format kept here, because replay and
//! ingest share it; the engine itself never sees JSON.

pub mod assign;
pub mod audit;
pub mod decision;
pub mod engine;
pub mod event;
pub mod evidence;
pub mod json;
pub mod limits;
pub mod ndjson;
pub mod policy;
pub mod purge;
pub mod record;
pub mod review;
mod rfc3339;
mod splitmix;
pub mod stats;
pub mod time;
pub mod whatif;

pub use decision::{ActionKind, Decision, DecisionKind, Explanation};
pub use event::{Event, Release};
pub use policy::Policy;
pub use time::{Dur, Time};
