//! Fast paths for the one timestamp shape that dominates event streams,
//! `YYYY-MM-DDTHH:MM:SS[.fff]Z` with a year from 1970 to 9999.
//!
//! Parsing timestamps through jiff costs about as much as parsing the rest of
//! the line, so the common shape is handled here and everything else (offsets,
//! lowercase separators, other years) falls back to [`Time::parse_rfc3339`].
//! Both paths agree; a property test checks it.

use crate::time::Time;

/// Parses an RFC 3339 timestamp to whole milliseconds (extra fraction digits
/// are truncated, as jiff does).
pub(crate) fn parse(s: &str) -> Option<Time> {
    fast_parse(s.as_bytes()).or_else(|| Time::parse_rfc3339(s))
}

fn fast_parse(b: &[u8]) -> Option<Time> {
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let sep = |i: usize, c: u8| b[i] == c;
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if year < 1970
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let rest = &b[19..b.len() - 1];
    let millis = match rest {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let mut ms = 0;
            for i in 0..3 {
                let d = match frac.get(i) {
                    Some(c) if c.is_ascii_digit() => i64::from(c - b'0'),
                    Some(_) => return None,
                    None => 0,
                };
                ms = ms * 10 + d;
            }
            if !frac.iter().all(u8::is_ascii_digit) {
                return None;
            }
            ms
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(Time(secs * 1000 + millis))
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut n = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS.fffZ`, exactly as
/// [`Time::to_rfc3339`] writes it.
pub(crate) fn format_into(t: Time, out: &mut Vec<u8>) {
    // 1970-01-01 .. 9999-12-31T23:59:59.999Z
    if !(0..=253_402_300_799_999).contains(&t.0) {
        out.extend_from_slice(t.to_rfc3339().as_bytes());
        return;
    }
    let secs = t.0 / 1000;
    let millis = t.0 % 1000;
    let (y, m, d) = civil_from_days(secs / 86_400);
    let sod = secs % 86_400;
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    put(&mut buf[0..4], y);
    put(&mut buf[5..7], m);
    put(&mut buf[8..10], d);
    put(&mut buf[11..13], sod / 3600);
    put(&mut buf[14..16], sod % 3600 / 60);
    put(&mut buf[17..19], sod % 60);
    put(&mut buf[20..23], millis);
    out.extend_from_slice(&buf);
}

fn put(dst: &mut [u8], mut n: i64) {
    for c in dst.iter_mut().rev() {
        *c = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_MS: i64 = 253_402_300_799_999;

    #[test]
    fn fast_path_reads_the_common_shape() {
        assert_eq!(
            fast_parse(b"2026-11-20T10:00:00.120Z"),
            Time::parse_rfc3339("2026-11-20T10:00:00.120Z")
        );
        assert_eq!(
            fast_parse(b"2024-02-29T00:00:00Z").map(|t| t.0),
            Some(1_709_164_800_000)
        );
        assert_eq!(fast_parse(b"2023-02-29T00:00:00Z"), None);
        assert_eq!(fast_parse(b"2026-11-20T10:00:00+01:00"), None);
    }

    #[test]
    fn other_shapes_fall_back_to_jiff() {
        assert_eq!(
            parse("2026-11-20T11:00:00.120+01:00"),
            parse("2026-11-20T10:00:00.120Z")
        );
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2026-11-20T10:00:00"), None);
    }

    proptest! {
        #[test]
        fn formatting_matches_jiff(ms in 0..=MAX_MS) {
            let mut out = Vec::new();
            format_into(Time(ms), &mut out);
            prop_assert_eq!(String::from_utf8(out).unwrap(), Time(ms).to_rfc3339());
        }

        #[test]
        fn fast_parse_agrees_with_jiff(ms in 0..=MAX_MS, frac_digits in 0usize..=9, extra in 0u32..1_000_000) {
            let base = Time(ms - ms % 1000).to_rfc3339();
            let whole = &base[..19];
            let frac = format!("{:03}{:06}", ms % 1000, extra);
            let s = if frac_digits == 0 {
                format!("{whole}Z")
            } else {
                format!("{whole}.{}Z", &frac[..frac_digits])
            };
            prop_assert_eq!(fast_parse(s.as_bytes()), Time::parse_rfc3339(&s), "{}", s);
        }

        #[test]
        fn fast_parse_never_disagrees_on_arbitrary_text(s in "[0-9:.TZ-]{18,30}") {
            if let Some(t) = fast_parse(s.as_bytes()) {
                prop_assert_eq!(Some(t), Time::parse_rfc3339(&s), "{}", s);
            }
        }
    }
}
