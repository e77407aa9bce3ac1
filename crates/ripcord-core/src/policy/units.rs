//! Durations (`10m`, `1h30m`, `90s`, `500ms`) and rate sugar (`3/10k`,
//! `0.5%`, `0.0003`, `1/1M`).

use crate::time::Dur;

/// Parses a duration made of `<number><unit>` parts, units `ms`, `s`, `m`,
/// `h`, `d` (e.g. `1h30m`). A bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Dur, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Dur::ZERO);
    }
    let bad = || format!("invalid duration {text:?}: use e.g. 30s, 10m, 1h30m, 500ms");
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "d" => 86_400e3,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = number * millis;
        if !part.is_finite() || part > 1e15 {
            return Err(bad());
        }
        total = total.saturating_add(part.round() as i64);
    }
    Ok(Dur(total))
}

/// Parses a rate: a plain fraction (`0.0003`), a percentage (`0.5%`) or
/// `count/base` where base may carry `k` (thousand) or `M` (million):
/// `3/10k` is three per ten thousand.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "invalid rate {text:?}: use a fraction (0.0003), a percentage (0.5%) or count/base (3/10k, 1/1M)"
        )
    };
    let value = if let Some(p) = t.strip_suffix('%') {
        p.trim().parse::<f64>().map_err(|_| bad())? / 100.0
    } else if let Some((count, base)) = t.split_once('/') {
        let count: f64 = count.trim().parse().map_err(|_| bad())?;
        let base = base.trim();
        let (digits, scale) = match base.as_bytes().last() {
            Some(b'k' | b'K') => (&base[..base.len() - 1], 1e3),
            Some(b'M') => (&base[..base.len() - 1], 1e6),
            _ => (base, 1.0),
        };
        let base: f64 = digits.parse().map_err(|_| bad())?;
        if base <= 0.0 {
            return Err(bad());
        }
        count / (base * scale)
    } else {
        t.parse::<f64>().map_err(|_| bad())?
    };
    if !value.is_finite() || !(0.0..=1.0).contains(&value) {
        return Err(format!("rate {text:?} must be between 0 and 1 (100%)"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("10m"), Ok(Dur::from_mins(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Dur::from_mins(90)));
        assert_eq!(parse_duration("90s"), Ok(Dur::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Dur(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Dur::from_mins(90)));
        assert_eq!(parse_duration("2d"), Ok(Dur::from_mins(2880)));
        assert_eq!(parse_duration("0"), Ok(Dur::ZERO));
        assert_eq!(
            parse_duration("10 minutes"),
            Err(r#"invalid duration "10 minutes": use e.g. 30s, 10m, 1h30m, 500ms"#.to_string())
        );
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
    }

    #[test]
    fn rates_in_every_notation() {
        assert_eq!(parse_rate("3/10k"), Ok(0.0003));
        assert_eq!(parse_rate("0.5%"), Ok(0.005));
        assert_eq!(parse_rate("0.0003"), Ok(0.0003));
        assert_eq!(parse_rate("1/1M"), Ok(1e-6));
        assert_eq!(parse_rate("5/100"), Ok(0.05));
        assert_eq!(
            parse_rate("3/10q"),
            Err(r#"invalid rate "3/10q": use a fraction (0.0003), a percentage (0.5%) or count/base (3/10k, 1/1M)"#.to_string())
        );
        assert_eq!(
            parse_rate("150%"),
            Err(r#"rate "150%" must be between 0 and 1 (100%)"#.to_string())
        );
        assert!(parse_rate("3/0").is_err());
    }
}
