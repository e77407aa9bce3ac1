//! What to simulate: regressions, spikes and gaps, written the way a person
//! says them (`moderation_fail x3 from 40m`, `moderation_fail x10 at 30m for 2m`,
//! `at 50m for 3m`), parsed into plain types.

use ripcord_core::Dur;
use ripcord_core::policy::units::parse_duration;

/// How a change moves a signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Effect {
    /// Rates and latencies: multiply (`x3`).
    Times(f64),
    /// Scores: add (`-0.1`, `+0.05`).
    Plus(f64),
}

/// Which versions a change hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Candidate,
    Both,
}

/// A lasting change of one signal, from an offset (until another),
/// optionally only for one locale (`in de`).
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    pub field: String,
    pub effect: Effect,
    pub from: Dur,
    pub until: Option<Dur>,
    pub target: Target,
    pub locale: Option<String>,
}

/// A short burst of one signal; by default it hits both versions, like an
/// upstream incident would.
#[derive(Clone, Debug, PartialEq)]
pub struct Spike {
    pub field: String,
    pub effect: Effect,
    pub at: Dur,
    pub lasting: Dur,
    pub target: Target,
}

/// A period with no traffic at all.
#[derive(Clone, Debug, PartialEq)]
pub struct Gap {
    pub at: Dur,
    pub lasting: Dur,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {problem}; e.g. {example:?}")]
pub struct SpecError {
    pub text: String,
    pub problem: String,
    pub example: &'static str,
}

impl Regression {
    pub fn parse(text: &str) -> Result<Regression, SpecError> {
        const EXAMPLE: &str = "moderation_fail x3 from 40m until 1h";
        let mut p = Words::new(text, EXAMPLE);
        let field = p.word("a signal field")?;
        let effect = p.effect()?;
        p.keyword("from")?;
        let from = p.duration()?;
        let mut until = None;
        let mut target = Target::Candidate;
        let mut locale = None;
        while let Some(word) = p.next() {
            match word {
                "until" => until = Some(p.duration()?),
                "on" => target = p.target()?,
                "in" => locale = Some(p.word("a locale")?),
                other => return Err(p.fail(format!("unexpected {other:?}"))),
            }
        }
        if until.is_some_and(|u| u <= from) {
            return Err(p.fail("`until` must come after `from`".into()));
        }
        Ok(Regression {
            field,
            effect,
            from,
            until,
            target,
            locale,
        })
    }

    /// Whether it applies at `offset` from the start, to this version and locale.
    pub fn active(&self, offset: Dur, candidate: bool, locale: &str) -> bool {
        offset >= self.from
            && self.until.is_none_or(|u| offset < u)
            && (candidate || self.target == Target::Both)
            && self.locale.as_deref().is_none_or(|l| l == locale)
    }
}

impl Spike {
    pub fn parse(text: &str) -> Result<Spike, SpecError> {
        const EXAMPLE: &str = "moderation_fail x10 at 30m for 2m";
        let mut p = Words::new(text, EXAMPLE);
        let field = p.word("a signal field")?;
        let effect = p.effect()?;
        p.keyword("at")?;
        let at = p.duration()?;
        p.keyword("for")?;
        let lasting = p.duration()?;
        let mut target = Target::Both;
        while let Some(word) = p.next() {
            match word {
                "on" => target = p.target()?,
                other => return Err(p.fail(format!("unexpected {other:?}"))),
            }
        }
        Ok(Spike {
            field,
            effect,
            at,
            lasting,
            target,
        })
    }

    pub fn active(&self, offset: Dur, candidate: bool) -> bool {
        offset >= self.at
            && offset < self.at + self.lasting
            && (candidate || self.target == Target::Both)
    }
}

impl Gap {
    pub fn parse(text: &str) -> Result<Gap, SpecError> {
        let mut p = Words::new(text, "at 50m for 3m");
        p.keyword("at")?;
        let at = p.duration()?;
        p.keyword("for")?;
        let lasting = p.duration()?;
        if let Some(extra) = p.next() {
            return Err(p.fail(format!("unexpected {extra:?}")));
        }
        Ok(Gap { at, lasting })
    }

    pub fn covers(&self, offset: Dur) -> bool {
        offset >= self.at && offset < self.at + self.lasting
    }
}

/// `50/s`, `3000/m`, `1e5/h` as events per second.
pub fn rate_per_second(text: &str) -> Result<f64, String> {
    let bad = || format!("invalid rate {text:?}: use e.g. 50/s, 3000/m");
    let (n, unit) = text.split_once('/').ok_or_else(bad)?;
    let n: f64 = n.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    if n.is_finite() && n > 0.0 {
        Ok(n / per)
    } else {
        Err(bad())
    }
}

/// A tiny cursor over whitespace-separated words.
struct Words<'a> {
    text: &'a str,
    words: std::str::SplitWhitespace<'a>,
    example: &'static str,
}

impl<'a> Words<'a> {
    fn new(text: &'a str, example: &'static str) -> Words<'a> {
        Words {
            text,
            words: text.split_whitespace(),
            example,
        }
    }

    fn fail(&self, problem: String) -> SpecError {
        SpecError {
            text: self.text.to_string(),
            problem,
            example: self.example,
        }
    }

    fn next(&mut self) -> Option<&'a str> {
        self.words.next()
    }

    fn word(&mut self, what: &str) -> Result<String, SpecError> {
        self.next()
            .map(str::to_string)
            .ok_or_else(|| self.fail(format!("missing {what}")))
    }

    fn keyword(&mut self, expected: &str) -> Result<(), SpecError> {
        match self.next() {
            Some(w) if w == expected => Ok(()),
            Some(w) => Err(self.fail(format!("expected `{expected}`, got {w:?}"))),
            None => Err(self.fail(format!("missing `{expected}`"))),
        }
    }

    fn duration(&mut self) -> Result<Dur, SpecError> {
        let w = self.word("a duration")?;
        parse_duration(&w).map_err(|e| self.fail(e))
    }

    fn effect(&mut self) -> Result<Effect, SpecError> {
        let w = self.word("an effect such as x3 or -0.1")?;
        let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
        let effect = if let Some(f) = w.strip_prefix('x').and_then(number) {
            (f >= 0.0).then_some(Effect::Times(f))
        } else if w.starts_with('+') || w.starts_with('-') {
            number(&w).map(Effect::Plus)
        } else {
            None
        };
        effect.ok_or_else(|| {
            self.fail(format!(
                "invalid effect {w:?}: use x3 (multiply) or -0.1 (add)"
            ))
        })
    }

    fn target(&mut self) -> Result<Target, SpecError> {
        match self.next() {
            Some("candidate") => Ok(Target::Candidate),
            Some("both") => Ok(Target::Both),
            other => Err(self.fail(format!("expected `candidate` or `both`, got {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regressions_read_as_written() {
        assert_eq!(
            Regression::parse("moderation_fail x3 from 40m until 1h").unwrap(),
            Regression {
                field: "moderation_fail".into(),
                effect: Effect::Times(3.0),
                from: Dur::from_mins(40),
                until: Some(Dur::from_mins(60)),
                target: Target::Candidate,
                locale: None,
            }
        );
        let german = Regression::parse("moderation_fail x3 from 10m in de").unwrap();
        assert!(german.active(Dur::from_mins(11), true, "de"));
        assert!(!german.active(Dur::from_mins(11), true, "en"));
        assert_eq!(
            Regression::parse("utility -0.1 from 20m").unwrap().effect,
            Effect::Plus(-0.1)
        );
        assert_eq!(
            Regression::parse("moderation_fail x3 after 40m")
                .unwrap_err()
                .to_string(),
            r#""moderation_fail x3 after 40m": expected `from`, got "after"; e.g. "moderation_fail x3 from 40m until 1h""#
        );
        assert!(Regression::parse("x three from 1m").is_err());
    }

    #[test]
    fn spikes_hit_both_versions_unless_told() {
        let s = Spike::parse("moderation_fail x10 at 30m for 2m").unwrap();
        assert_eq!(s.target, Target::Both);
        assert!(s.active(Dur::from_mins(31), false));
        assert!(!s.active(Dur::from_mins(32), true));
        let c = Spike::parse("moderation_fail x10 at 30m for 2m on candidate").unwrap();
        assert!(!c.active(Dur::from_mins(31), false));
    }

    #[test]
    fn gaps_read_as_written() {
        let g = Gap::parse("at 50m for 3m").unwrap();
        assert!(g.covers(Dur::from_mins(52)) && !g.covers(Dur::from_mins(53)));
        assert!(Gap::parse("at 50m").is_err());
    }
}
