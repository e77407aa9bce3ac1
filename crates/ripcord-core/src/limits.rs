//! Per-event limits on the numbers a sender may claim.
//!
//! An event can be a pre-aggregated bucket (`outputs: 1000,
//! moderation_fail: 3`), so one line can weigh as much as thousands of
//! outputs. Unbounded, one sender could drown the other version's evidence
//! (`outputs: 1e15` on the baseline), overflow the sums (`outputs: 1e308`)
//! or subtract flags (`moderation_fail: -5`). The server refuses events
//! outside these limits ([`EventLimits::check`], naming the field); the
//! engine also clamps every number it adds to them ([`EventLimits::count`],
//! [`EventLimits::value`]), so that no other path — replay of an old
//! journal, a policy test — lets an unbounded number reach a statistic.

use crate::event::Event;
use crate::ndjson::{LineError, number};
use crate::policy::{Policy, SignalKind};

/// The count field every event may carry (one output unless it says more).
pub const OUTPUTS: &str = "outputs";

/// Bounds on one event's values. Configurable (`ripcord.yaml` `limits:`);
/// the defaults suit buckets of up to ten thousand outputs.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventLimits {
    /// Largest count one event may carry: a rate's denominator (`outputs`)
    /// and so also its numerator (flags never exceed the denominator).
    pub max_outputs: f64,
    /// Largest magnitude of any other value (latency in ms, scores, fields
    /// no signal reads).
    pub max_value: f64,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_outputs: 10_000.0,
            max_value: 1e9,
        }
    }
}

fn refuse(field: &str, message: String) -> LineError {
    LineError {
        field: format!("values.{field}"),
        message,
    }
}

impl EventLimits {
    /// A count as the engine adds it: within `[0, max_outputs]` (NaN as 0).
    pub fn count(&self, v: f64) -> f64 {
        if v.is_nan() {
            return 0.0;
        }
        v.clamp(0.0, self.max_outputs)
    }

    /// Any other value as the engine adds it: within `±max_value` (NaN as 0).
    pub fn value(&self, v: f64) -> f64 {
        if v.is_nan() {
            return 0.0;
        }
        v.clamp(-self.max_value, self.max_value)
    }

    /// Whether `event` keeps within the limits under `policy`: every value
    /// finite and within `±max_value`; every count (`outputs`, each rate's
    /// numerator and denominator) within `[0, max_outputs]`; a numerator no
    /// larger than its denominator; latencies not negative; scores within
    /// their declared range. The first problem names its field.
    pub fn check(&self, policy: &Policy, event: &Event<'_>) -> Result<(), LineError> {
        self.check_count(event, OUTPUTS)?;
        for signal in &policy.signals {
            match &signal.kind {
                SignalKind::Rate {
                    numerator,
                    denominator,
                } => {
                    let n = self.check_count(event, denominator)?;
                    let x = self.check_count(event, numerator)?;
                    if let (Some(x), Some(n)) = (x, n)
                        && x > n
                    {
                        return Err(refuse(
                            numerator,
                            format!(
                                "{} flags cannot exceed values.{denominator} ({})",
                                number(x),
                                number(n)
                            ),
                        ));
                    }
                }
                SignalKind::Score { field, min, max } => {
                    if let Some(v) = event.value(field)
                        && !(*min..=*max).contains(&v)
                    {
                        return Err(refuse(
                            field,
                            format!("{} is outside the score's range [{min}, {max}]", number(v)),
                        ));
                    }
                }
                SignalKind::Latency { field } => {
                    if let Some(v) = event.value(field)
                        && v < 0.0
                    {
                        return Err(refuse(field, format!("{} must not be negative", number(v))));
                    }
                }
                SignalKind::Category { .. } => {}
            }
        }
        for (name, v) in &event.values {
            if !v.is_finite() || v.abs() > self.max_value {
                return Err(refuse(
                    name,
                    format!(
                        "{} is outside the per-event limit of ±{}",
                        number(*v),
                        number(self.max_value)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The count in `field`, if the event has one within `[0, max_outputs]`.
    fn check_count(&self, event: &Event<'_>, field: &str) -> Result<Option<f64>, LineError> {
        let Some(v) = event.value(field) else {
            return Ok(None);
        };
        if v < 0.0 {
            return Err(refuse(field, format!("{} must not be negative", number(v))));
        }
        if v > self.max_outputs {
            return Err(refuse(
                field,
                format!(
                    "{} is more than the per-event limit of {} (send a larger bucket as several events)",
                    number(v),
                    number(self.max_outputs)
                ),
            ));
        }
        Ok(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ndjson::{Line, parse_line};
    use crate::policy::load_policy;

    const POLICY: &str = include_str!("../../../examples/conversational-agent/policy.yaml");

    fn check(values: &str) -> Result<(), String> {
        let policy = load_policy(POLICY, "p.yaml").map_err(|d| d.to_string())?;
        let line = format!(
            r#"{{"ts":"2026-11-20T10:00:00Z","service":"support-bot","version":"a","unit":"u","values":{values}}}"#
        );
        let Ok(Line::Event(ev)) = parse_line(line.as_bytes()) else {
            return Err("not an event".into());
        };
        EventLimits::default()
            .check(&policy, &ev)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn counts_are_bounded_per_event_and_flags_by_outputs() {
        assert_eq!(check(r#"{"outputs":10000,"moderation_fail":3}"#), Ok(()));
        assert_eq!(
            check(r#"{"outputs":1e15,"moderation_fail":1e14}"#),
            Err("values.outputs: 1000000000000000 is more than the per-event limit of 10000 (send a larger bucket as several events)".into())
        );
        assert_eq!(
            check(r#"{"outputs":1e308}"#),
            Err("values.outputs: 1e+308 is more than the per-event limit of 10000 (send a larger bucket as several events)".into())
        );
        assert_eq!(
            check(r#"{"outputs":1,"latency_ms":1e300}"#),
            Err("values.latency_ms: 1e+300 is outside the per-event limit of ±1000000000".into())
        );
        assert_eq!(
            check(r#"{"outputs":10,"moderation_fail":-1}"#),
            Err("values.moderation_fail: -1 must not be negative".into())
        );
        assert_eq!(
            check(r#"{"outputs":10,"moderation_fail":11}"#),
            Err("values.moderation_fail: 11 flags cannot exceed values.outputs (10)".into())
        );
    }

    #[test]
    fn clamps_keep_sums_finite_and_counts_non_negative() {
        let l = EventLimits::default();
        assert_eq!(l.count(1e308), 10_000.0);
        assert_eq!(l.count(-5.0), 0.0);
        assert_eq!(l.count(f64::NAN), 0.0);
        assert_eq!(l.value(f64::INFINITY), 1e9);
        assert_eq!(l.value(-1e300), -1e9);
    }
}
