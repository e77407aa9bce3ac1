//! Observations and release declarations, as the engine sees them.
//!
//! These are domain types, not wire formats: [`crate::ndjson`] turns the
//! NDJSON lines of replay files (and later the ingest API) into them.
//! Strings borrow from the input line where they can, so the hot path of
//! replay allocates little.

use std::borrow::Cow;

use crate::time::Time;

/// One observation: a single output, or a pre-aggregated bucket with the
/// same meaning (`outputs: 1000, hallucination: 3`).
#[derive(Clone, Debug, PartialEq)]
pub struct Event<'a> {
    /// Generation time of the output (late labels keep it).
    pub ts: Time,
    pub service: Cow<'a, str>,
    pub version: Cow<'a, str>,
    pub unit: Cow<'a, str>,
    /// Segment attributes such as `locale: de`.
    pub segment: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Signal values by field name; always finite.
    pub values: Vec<(Cow<'a, str>, f64)>,
}

impl Event<'_> {
    pub fn value(&self, field: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(k, _)| k.as_ref() == field)
            .map(|(_, v)| *v)
    }

    pub fn segment_value(&self, key: &str) -> Option<&str> {
        self.segment
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v.as_ref())
    }
}

/// A release declared in the event stream (a control line) or on the
/// command line: from this instant the candidate serves `share` of units.
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    pub ts: Time,
    pub service: String,
    pub baseline: String,
    pub candidate: String,
    /// In (0, 1].
    pub share: f64,
}
