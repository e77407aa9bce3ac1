//! `sources.prometheus`: counters read from a Prometheus server.
//!
//! ```yaml
//! sources:
//!   prometheus:
//!     url: http://prometheus:9090
//!     step: 30s
//!     version_label: version
//!     counters:
//!       outputs: genai_outputs_total{service="chat"}
//!       hallucination: genai_hallucinations_total{service="chat"}
//! ```
//!
//! Each counter is a selector, not an expression: ripcord takes the
//! increases itself, so that what reaches the statistics are counts (a
//! ratio or a `rate()` computed by PromQL would not be).

use super::{Cx, Node, Value, suggest};
use crate::policy::{PrometheusCounter, PrometheusSource, Signal, SignalKind, SrmCheck, SrmCount};

const FIELDS: &[&str] = &["url", "step", "version_label", "counters"];

pub(crate) fn lower_prometheus(
    cx: &mut Cx,
    node: &Node,
    signals: &[Signal],
    srm: Option<&SrmCheck>,
) -> Option<PrometheusSource> {
    let f = cx.fields(node, "sources.prometheus", FIELDS)?;
    let url = match f.get("url") {
        Some(n) => url(cx, n),
        None => {
            cx.error(
                node.pos,
                "sources.prometheus",
                "missing field `url`",
                Some("the Prometheus server's address, e.g. http://prometheus:9090".into()),
            );
            None
        }
    };
    let step = match f.get("step") {
        Some(n) => step(cx, n),
        None => Some(PrometheusSource::DEFAULT_STEP),
    };
    let version_label = match f.get("version_label") {
        Some(n) => label(cx, n, "sources.prometheus.version_label"),
        None => Some(PrometheusSource::DEFAULT_VERSION_LABEL.to_string()),
    };
    let counters = match f.get("counters") {
        Some(n) => counters(cx, n, signals),
        None => {
            cx.error(
                node.pos,
                "sources.prometheus",
                "missing field `counters`",
                Some("map each event field to a counter, e.g. outputs: genai_outputs_total".into()),
            );
            None
        }
    };
    pre_aggregated(cx, node, srm);
    Some(PrometheusSource {
        url: url?,
        step: step?,
        version_label: version_label?,
        counters: counters?,
    })
}

/// Counters have no units: the SRM check must count outputs (or be off),
/// or it would count two "units" and never look.
fn pre_aggregated(cx: &mut Cx, node: &Node, srm: Option<&SrmCheck>) {
    if srm.is_some_and(|s| s.enabled && s.count == SrmCount::Units) {
        cx.error(
            node.pos,
            "sources.prometheus",
            "counters carry no units, so the sample-ratio check cannot count units",
            Some("add `srm: {count: outputs}` (or `srm: off`)".into()),
        );
    }
}

fn url(cx: &mut Cx, node: &Node) -> Option<String> {
    let path = "sources.prometheus.url";
    let text = cx.string(node, path)?;
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    let problem = match rest {
        None => Some("must start with http:// or https://"),
        Some(r) if r.is_empty() || r.starts_with('/') => Some("has no host"),
        Some(r) if r.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') => {
            Some("must be a base address, without spaces, query or fragment")
        }
        Some(_) => None,
    };
    if let Some(p) = problem {
        cx.error(
            node.pos,
            path,
            format!("\"{text}\" {p}"),
            Some("e.g. http://prometheus:9090".into()),
        );
        return None;
    }
    Some(text.trim_end_matches('/').to_string())
}

fn step(cx: &mut Cx, node: &Node) -> Option<crate::Dur> {
    let path = "sources.prometheus.step";
    let step = cx.duration(node, path)?;
    let (min, max) = (PrometheusSource::MIN_STEP, PrometheusSource::MAX_STEP);
    if step < min || step > max {
        cx.error(
            node.pos,
            path,
            format!("must be between {min} and {max}"),
            Some("a step of one to a few scrape intervals, e.g. 30s".into()),
        );
        return None;
    }
    Some(step)
}

fn label(cx: &mut Cx, node: &Node, path: &str) -> Option<String> {
    let name = cx.string(node, path)?;
    if !is_label_name(&name) {
        cx.error(
            node.pos,
            path,
            format!("\"{name}\" is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            None,
        );
        return None;
    }
    Some(name)
}

/// `{field: selector}`, every entry checked so that all mistakes are
/// reported; then each numerator's denominator must have a counter too.
fn counters(cx: &mut Cx, node: &Node, signals: &[Signal]) -> Option<Vec<PrometheusCounter>> {
    let path = "sources.prometheus.counters";
    let Value::Map(entries) = &node.value else {
        let got = node.kind();
        cx.error(
            node.pos,
            path,
            format!("expected a mapping, got {got}"),
            None,
        );
        return None;
    };
    if entries.is_empty() {
        cx.error(node.pos, path, "must map at least one field", None);
        return None;
    }
    let lowered: Vec<Option<PrometheusCounter>> = entries
        .iter()
        .map(|(k, v)| counter(cx, &k.name, k.pos, v, signals))
        .collect();
    let counters: Vec<PrometheusCounter> = lowered.into_iter().collect::<Option<_>>()?;
    let mut complete = true;
    for ((key, _), c) in entries.iter().zip(&counters) {
        if !counters.iter().any(|d| d.field == c.denominator) {
            let message = format!(
                "`{}` counts flags over `{}`, which has no counter here",
                c.field, c.denominator
            );
            let help = Some(format!("add `{}: <its counter>`", c.denominator));
            cx.error(key.pos, &format!("{path}.{}", c.field), message, help);
            complete = false;
        }
    }
    complete.then_some(counters)
}

fn counter(
    cx: &mut Cx,
    field: &str,
    pos: super::Pos,
    node: &Node,
    signals: &[Signal],
) -> Option<PrometheusCounter> {
    let path = format!("sources.prometheus.counters.{field}");
    let denominator = denominator_of(field, signals);
    if denominator.is_none() {
        let fields = rate_fields(signals);
        let help = suggest(field, fields.iter().copied())
            .map(|s| format!("did you mean `{s}`?"))
            .or_else(|| Some(format!("the rates read: {}", fields.join(", "))));
        cx.error(
            pos,
            &path,
            format!("`{field}` is neither the numerator nor the denominator of a rate signal"),
            help,
        );
    }
    let selector = cx.string(node, &path)?;
    if let Err(problem) = check_selector(&selector) {
        cx.error(
            node.pos,
            &path,
            format!("`{selector}` is not a counter selector: {problem}"),
            Some(
                "name the counter and its label matchers, e.g. genai_outputs_total{job=\"chat\"}: \
                 ripcord takes the increases itself, so that it gets counts"
                    .into(),
            ),
        );
        return None;
    }
    Some(PrometheusCounter {
        field: field.to_string(),
        selector,
        denominator: denominator?,
    })
}

/// The denominator a field's increases travel with: itself when some rate
/// is over it, else the denominator of the first rate it is the numerator
/// of.
fn denominator_of(field: &str, signals: &[Signal]) -> Option<String> {
    let rates = || {
        signals.iter().filter_map(|s| match &s.kind {
            SignalKind::Rate {
                numerator,
                denominator,
            } => Some((numerator, denominator)),
            _ => None,
        })
    };
    if rates().any(|(_, d)| d == field) {
        return Some(field.to_string());
    }
    rates().find(|(n, _)| *n == field).map(|(_, d)| d.clone())
}

fn rate_fields(signals: &[Signal]) -> Vec<&str> {
    let mut fields: Vec<&str> = Vec::new();
    for s in signals {
        if let SignalKind::Rate {
            numerator,
            denominator,
        } = &s.kind
        {
            for f in [numerator.as_str(), denominator.as_str()] {
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
        }
    }
    fields
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks an instant-vector selector: `name`, `name{matchers}` or
/// `{matchers}`, where a matcher is `label op "value"` with op one of
/// `=`, `!=`, `=~`, `!~` (PromQL's grammar for selectors). Anything else
/// (a function, a range, an operator) is refused.
pub fn check_selector(s: &str) -> Result<(), String> {
    let mut p = Scan {
        rest: s.trim(),
        matchers: 0,
    };
    let named = p.take_while(|c, first| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
    });
    p.skip_space();
    if p.eat('{') {
        p.matchers()?;
    }
    p.skip_space();
    if let Some(c) = p.rest.chars().next() {
        return Err(format!(
            "unexpected `{c}` (functions, ranges and operators are not taken)"
        ));
    }
    if named.is_empty() && p.matchers == 0 {
        return Err("it names no metric and has no matcher".into());
    }
    Ok(())
}

struct Scan<'a> {
    rest: &'a str,
    matchers: usize,
}

impl<'a> Scan<'a> {
    fn take_while(&mut self, ok: impl Fn(char, bool) -> bool) -> &'a str {
        let end = self
            .rest
            .char_indices()
            .find(|&(i, c)| !ok(c, i == 0))
            .map_or(self.rest.len(), |(i, _)| i);
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    /// After `{`: matchers separated by commas (one trailing allowed), `}`.
    fn matchers(&mut self) -> Result<(), String> {
        loop {
            self.skip_space();
            if self.eat('}') {
                return Ok(());
            }
            self.matcher()?;
            self.matchers += 1;
            self.skip_space();
            if self.eat('}') {
                return Ok(());
            }
            if !self.eat(',') {
                return Err("expected `,` or `}` after a label matcher".into());
            }
        }
    }

    fn matcher(&mut self) -> Result<(), String> {
        let label = self.take_while(|c, first| {
            c.is_ascii_alphabetic() || c == '_' || (!first && c.is_ascii_digit())
        });
        if label.is_empty() {
            return Err("expected a label name in `{…}`".into());
        }
        self.skip_space();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| self.rest.starts_with(op))
            .ok_or_else(|| format!("expected =, !=, =~ or !~ after `{label}`"))?;
        self.rest = &self.rest[op.len()..];
        self.skip_space();
        self.string()
            .ok_or_else(|| format!("expected a quoted value after `{label}{op}`"))
    }

    /// A quoted string ("…", '…' with backslash escapes, or `…`).
    fn string(&mut self) -> Option<()> {
        let quote = self.rest.chars().next().filter(|c| "\"'`".contains(*c))?;
        let mut escaped = false;
        for (i, c) in self.rest.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' if quote != '`' => escaped = true,
                _ if c == quote => {
                    self.rest = &self.rest[i + 1..];
                    return Some(());
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::check_selector;

    #[test]
    fn selectors_are_a_name_and_matchers_and_nothing_computed() {
        for ok in [
            "genai_outputs_total",
            "genai_outputs_total{}",
            r#"genai_outputs_total{job="chat"}"#,
            r#" ns:outputs_total { job = "chat" , env=~'prod|canary', x!~`a"b`, } "#,
            r#"{__name__="genai_outputs_total"}"#,
            r#"m{v="a\"}b"}"#,
        ] {
            assert_eq!(check_selector(ok), Ok(()), "{ok}");
        }
        let bad = |s: &str| check_selector(s).unwrap_err();
        assert_eq!(
            bad("rate(genai_outputs_total[5m])"),
            "unexpected `(` (functions, ranges and operators are not taken)"
        );
        assert_eq!(
            bad("genai_outputs_total[5m]"),
            "unexpected `[` (functions, ranges and operators are not taken)"
        );
        assert_eq!(
            bad("a_total / b_total"),
            "unexpected `/` (functions, ranges and operators are not taken)"
        );
        assert_eq!(bad("{}"), "it names no metric and has no matcher");
        assert_eq!(
            bad("9lives"),
            "unexpected `9` (functions, ranges and operators are not taken)"
        );
        assert_eq!(
            bad(r#"m{job="chat""#),
            "expected `,` or `}` after a label matcher"
        );
        assert_eq!(
            bad(r#"m{job=chat}"#),
            "expected a quoted value after `job=`"
        );
        assert_eq!(
            bad(r#"m{job~"chat"}"#),
            "expected =, !=, =~ or !~ after `job`"
        );
        assert_eq!(bad(r#"m{="chat"}"#), "expected a label name in `{…}`");
        assert_eq!(
            bad(r#"m{job="chat}"#),
            "expected a quoted value after `job=`"
        );
    }
}
