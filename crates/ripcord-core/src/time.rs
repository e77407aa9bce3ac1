//! Time as data: instants and durations in whole milliseconds.
//!
//! The engine never reads a clock; every instant it sees was passed in.

use std::fmt;

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Time(pub i64);

/// A non-negative span of time, in milliseconds.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Dur(pub i64);

impl Dur {
    pub const ZERO: Dur = Dur(0);

    pub const fn from_secs(s: i64) -> Dur {
        Dur(s * 1000)
    }

    pub const fn from_mins(m: i64) -> Dur {
        Dur(m * 60_000)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl std::ops::Add<Dur> for Time {
    type Output = Time;
    fn add(self, d: Dur) -> Time {
        Time(self.0.saturating_add(d.0))
    }
}

impl std::ops::Add for Dur {
    type Output = Dur;
    fn add(self, other: Dur) -> Dur {
        Dur(self.0.saturating_add(other.0))
    }
}

impl std::ops::Sub<Dur> for Time {
    type Output = Time;
    fn sub(self, d: Dur) -> Time {
        Time(self.0.saturating_sub(d.0))
    }
}

impl std::ops::Sub<Time> for Time {
    type Output = Dur;
    fn sub(self, t: Time) -> Dur {
        Dur(self.0.saturating_sub(t.0))
    }
}

impl Time {
    /// Parses an RFC 3339 timestamp such as `2026-11-20T10:00:00.120Z`.
    pub fn parse_rfc3339(s: &str) -> Option<Time> {
        let ts: jiff::Timestamp = s.parse().ok()?;
        Some(Time(ts.as_millisecond()))
    }

    /// RFC 3339 in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => format!("{ts:.3}"),
            Err(_) => format!("@{}ms", self.0),
        }
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Dur {
    /// Human form: `90s` → `1m30s`, `0` → `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms < 0 {
            f.write_str("-")?;
            ms = -ms;
        }
        let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
        let (m, rest) = (rest / 60_000, rest % 60_000);
        let (s, milli) = (rest / 1000, rest % 1000);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || milli > 0 {
            if milli > 0 {
                write!(f, "{s}.{milli:03}s")?;
            } else {
                write!(f, "{s}s")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_milliseconds() {
        let t = Time::parse_rfc3339("2026-11-20T10:00:00.120Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-20T10:00:00.120Z");
    }

    #[test]
    fn durations_print_compactly() {
        assert_eq!(Dur(90_000).to_string(), "1m30s");
        assert_eq!(Dur::from_mins(120).to_string(), "2h");
        assert_eq!(Dur(1500).to_string(), "1.500s");
    }
}
