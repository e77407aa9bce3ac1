//! Synthetic traffic for ripcord, and the policy-test runner that drives the
//! real engine with it.
//!
//! Everything here is deterministic for a seed: the same spec gives the same
//! events, byte for byte, so tests and benchmarks can state exact figures.

pub use ripcord_core::assign;
pub mod detect;
pub mod limits;
pub mod peers;
pub mod policytest;
pub mod spec;
pub mod traffic;

use std::io::{self, Write};

use ripcord_core::ndjson::{event_to_line, release_to_line};
use ripcord_core::{Release, Time};

pub use traffic::{Generator, Shape, TrafficSpec};

/// What a written stream contains.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StreamStats {
    pub events: u64,
    pub candidate: u64,
    pub baseline: u64,
    pub late: u64,
}

/// Writes an open-loop stream: the release line, then every event at a
/// fixed candidate `share`, as NDJSON.
pub fn generate_to(spec: TrafficSpec, share: f64, w: &mut impl Write) -> io::Result<StreamStats> {
    let release = Release {
        ts: spec.start,
        service: spec.service.clone(),
        baseline: spec.baseline.clone(),
        candidate: spec.candidate.clone(),
        share,
    };
    writeln!(w, "{}", release_to_line(&release))?;
    let candidate = spec.candidate.clone();
    let mut generator = Generator::new(spec);
    let mut stats = StreamStats::default();
    let mut newest = Time(i64::MIN);
    while let Some(ev) = generator.next(share) {
        stats.events += 1;
        if ev.version == candidate.as_str() {
            stats.candidate += 1;
        } else {
            stats.baseline += 1;
        }
        if ev.ts < newest {
            stats.late += 1;
        }
        newest = newest.max(ev.ts);
        writeln!(w, "{}", event_to_line(&ev))?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Regression, Spike};
    use ripcord_core::policy::Scenario;
    use ripcord_core::{Dur, Event};

    fn spec(seed: u64) -> TrafficSpec {
        TrafficSpec {
            duration: Dur::from_mins(60),
            ..TrafficSpec::new(Scenario::ConversationalAgent, seed)
        }
    }

    fn bytes(s: TrafficSpec) -> Vec<u8> {
        let mut out = Vec::new();
        generate_to(s, 0.05, &mut out).unwrap();
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        assert_eq!(bytes(spec(7)), bytes(spec(7)));
        assert_ne!(bytes(spec(7)), bytes(spec(8)));
    }

    fn all(s: TrafficSpec, share: f64) -> Vec<Event<'static>> {
        let mut g = Generator::new(s);
        std::iter::from_fn(|| g.next(share)).collect()
    }

    /// Flag rate of `field` per version, over events in [from, to) minutes.
    fn rate(
        events: &[Event<'_>],
        field: &str,
        candidate: bool,
        from: i64,
        to: i64,
        start: ripcord_core::Time,
    ) -> f64 {
        let window: Vec<_> = events
            .iter()
            .filter(|e| (e.version == "v13") == candidate)
            .filter(|e| {
                let m = (e.ts - start).0 / 60_000;
                m >= from && m < to
            })
            .collect();
        let flagged: f64 = window.iter().filter_map(|e| e.value(field)).sum();
        flagged / window.len() as f64
    }

    #[test]
    fn a_regression_multiplies_the_candidates_rate_from_its_start() {
        let s = TrafficSpec {
            rate: 200.0,
            regressions: vec![Regression::parse("moderation_fail x3 from 30m").unwrap()],
            ..spec(3)
        };
        let start = s.start;
        let events = all(s, 0.5);
        let before = rate(&events, "moderation_fail", true, 0, 30, start);
        let after = rate(&events, "moderation_fail", true, 30, 60, start);
        let baseline = rate(&events, "moderation_fail", false, 30, 60, start);
        // ~180k events: each rate estimate is within ±10% at these counts.
        assert!((after / before - 3.0).abs() < 0.5, "{before} → {after}");
        assert!(
            (after / baseline - 3.0).abs() < 0.5,
            "{baseline} vs {after}"
        );
    }

    #[test]
    fn a_spike_hits_both_versions_for_its_duration() {
        let s = TrafficSpec {
            rate: 200.0,
            spikes: vec![Spike::parse("moderation_fail x10 at 20m for 10m").unwrap()],
            ..spec(4)
        };
        let start = s.start;
        let events = all(s, 0.5);
        for candidate in [true, false] {
            let normal = rate(&events, "moderation_fail", candidate, 0, 20, start);
            let spiking = rate(&events, "moderation_fail", candidate, 20, 30, start);
            let after = rate(&events, "moderation_fail", candidate, 30, 60, start);
            assert!(spiking > 6.0 * normal, "{normal} → {spiking}");
            assert!(after < 2.0 * normal, "{normal} after {after}");
        }
    }

    #[test]
    fn late_events_are_never_later_than_the_allowed_lateness() {
        let s = spec(5);
        let max_late = s.max_late;
        let events = all(s, 0.05);
        let mut newest = ripcord_core::Time(i64::MIN);
        let mut late = 0;
        for e in &events {
            if e.ts < newest {
                late += 1;
                assert!(newest - e.ts <= max_late, "{:?} behind", newest - e.ts);
            }
            newest = newest.max(e.ts);
        }
        assert!(late > 100, "only {late} late events");
    }

    #[test]
    fn the_candidate_gets_its_share_of_units() {
        let events = all(spec(6), 0.2);
        let candidate = events.iter().filter(|e| e.version == "v13").count() as f64;
        let share = candidate / events.len() as f64;
        // Busy users make outputs cluster by unit; 0.2 ± 0.05 at ~180k events.
        assert!((share - 0.2).abs() < 0.05, "{share}");
    }

    #[test]
    fn a_gap_has_no_traffic() {
        let s = TrafficSpec {
            gaps: vec![crate::spec::Gap::parse("at 10m for 5m").unwrap()],
            late_share: 0.0,
            ..spec(9)
        };
        let start = s.start;
        let events = all(s, 0.05);
        assert!(events.iter().all(|e| {
            let m = (e.ts - start).0 / 60_000;
            !(10..15).contains(&m)
        }));
    }

    #[test]
    fn a_real_traffic_series_shapes_the_load() {
        let csv = "timestamp,value\n2014-07-01 00:00:00,100\n2014-07-01 00:30:00,300\n";
        let s = TrafficSpec {
            shape: Shape::from_csv(csv).unwrap(),
            late_share: 0.0,
            ..spec(10)
        };
        let start = s.start;
        let events = all(s, 0.05);
        let first = events
            .iter()
            .filter(|e| (e.ts - start).0 < 1_800_000)
            .count() as f64;
        let second = events.len() as f64 - first;
        assert!((second / first - 3.0).abs() < 0.3, "{first} then {second}");
        assert_eq!(
            Shape::from_csv("timestamp,value\n2014,12\n2014,abc\n"),
            Err("line 3: \"abc\" is not a number".to_string())
        );
    }
}
