//! Lowering the YAML tree into a validated [`Policy`], reporting every
//! problem at once.
//!
//! The walk never stops at the first problem: each section is checked, each
//! problem becomes a [`Diagnostic`] with its place, and only a policy with
//! none is returned. Scenario presets are merged in first, entry by entry,
//! so a policy can override or switch off (`name: off`) any default.

use super::diagnostic::{Diagnostic, Diagnostics};
use super::scenario::Scenario;
use super::units::{parse_duration, parse_rate};
use super::yaml::{self, Key, Node, Pos, Source, Value};
use super::*;

mod governance;
mod prometheus;
mod sources;

/// Loads and validates a policy; `origin` names the file in messages.
pub fn load_policy(source: &str, origin: &str) -> Result<Policy, Diagnostics> {
    let mut cx = Cx {
        diags: Vec::new(),
        source: source.to_string(),
    };
    let policy = match yaml::parse(source) {
        Ok(root) => lower(&mut cx, root),
        Err(e) => {
            cx.diags.push(Diagnostic {
                message: format!("invalid YAML: {}", e.message),
                path: String::new(),
                line: e.line,
                column: e.column,
                help: None,
            });
            None
        }
    };
    // Report in reading order, whichever check found the problem.
    cx.diags.sort_by_key(|d| (d.line, d.column));
    match policy {
        Some(p) if cx.diags.is_empty() => Ok(p),
        _ => Err(Diagnostics {
            origin: origin.to_string(),
            source: source.to_string(),
            items: cx.diags,
        }),
    }
}

struct Cx {
    diags: Vec<Diagnostic>,
    /// The policy text, to place errors inside multi-line strings.
    source: String,
}

const TOP: &[&str] = &[
    "service",
    "description",
    "scenario",
    "signals",
    "criteria",
    "triggers",
    "rollout",
    "srm",
    "rights",
    "incidents",
    "playbooks",
    "templates",
    "evidence",
    "after_rollback",
    "sources",
];
const SIGNAL: &[&str] = &[
    "category",
    "kind",
    "numerator",
    "denominator",
    "field",
    "range",
    "direction",
    "unit",
    "description",
];
const CRITERION: &[&str] = &[
    "signal",
    "absolute",
    "max_ratio",
    "max_increase",
    "max_decrease",
    "quantile",
    "confidence",
    "min_samples",
    "window",
    "for",
    "clear_for",
    "on_no_data",
    "where",
    "per",
    "max_difference",
    "max_psi",
    "max_js",
    "across",
    "reference",
    "description",
];
const TRIGGER: &[&str] = &["when", "severity", "action", "approval", "description"];
const BOUNDS: &[&str] = &[
    "absolute",
    "max_ratio",
    "max_increase",
    "max_decrease",
    "max_difference",
    "max_psi",
    "max_js",
];
const CATEGORIES: &[&str] = &[
    "user_experience",
    "quality",
    "safety",
    "operational",
    "data",
    "fairness",
];

impl Cx {
    fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>, help: Option<String>) {
        let (line, column, message) = match pos.source {
            Source::File => (pos.line, pos.column, message.into()),
            Source::Preset => (0, 0, format!("{} (in the scenario preset)", message.into())),
        };
        self.diags.push(Diagnostic {
            message,
            path: path.to_string(),
            line,
            column,
            help,
        });
    }

    /// The entries of a mapping, after reporting unknown and repeated keys.
    fn fields<'a>(&mut self, node: &'a Node, path: &str, allowed: &[&str]) -> Option<Fields<'a>> {
        let Value::Map(entries) = &node.value else {
            self.error(
                node.pos,
                path,
                format!("expected a mapping, got {}", node.kind()),
                None,
            );
            return None;
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                let help = suggest(&key.name, allowed.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| Some(format!("expected one of: {}", allowed.join(", "))));
                self.error(key.pos, path, format!("unknown field `{}`", key.name), help);
            } else if seen.contains(&key.name.as_str()) {
                self.error(
                    key.pos,
                    path,
                    format!("`{}` is given twice", key.name),
                    None,
                );
            }
            seen.push(&key.name);
        }
        Some(Fields { entries, node })
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) if !s.is_empty() => Some(s.clone()),
            Value::Str(_) => {
                self.error(node.pos, path, "must not be empty", None);
                None
            }
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a string, got {}", node.kind()),
                    None,
                );
                None
            }
        }
    }

    fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        let v = match &node.value {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a number, got {}", node.kind()),
                    None,
                );
                return None;
            }
        };
        if !v.is_finite() {
            self.error(node.pos, path, "must be a finite number", None);
            return None;
        }
        Some(v)
    }

    fn positive(&mut self, node: &Node, path: &str) -> Option<f64> {
        let v = self.number(node, path)?;
        if v <= 0.0 {
            self.error(
                node.pos,
                path,
                format!("must be greater than 0, got {v}"),
                None,
            );
            return None;
        }
        Some(v)
    }

    fn count(&mut self, node: &Node, path: &str) -> Option<u64> {
        match &node.value {
            Value::Int(i) if *i >= 0 => Some(*i as u64),
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a whole number ≥ 0, got {}", describe(node)),
                    None,
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Dur> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(0) => return Some(Dur::ZERO),
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a duration such as 10m, got {}", describe(node)),
                    None,
                );
                return None;
            }
        };
        parse_duration(&text)
            .map_err(|e| self.error(node.pos, path, e, None))
            .ok()
    }

    /// A rate, as a number or with sugar (`3/10k`, `0.5%`).
    fn rate(&mut self, node: &Node, path: &str) -> Option<f64> {
        let r = match &node.value {
            Value::Str(s) => parse_rate(s),
            Value::Int(_) | Value::Float(_) => {
                let v = self.number(node, path)?;
                parse_rate(&v.to_string())
            }
            _ => Err(format!(
                "expected a rate such as 3/10k, got {}",
                node.kind()
            )),
        };
        r.map_err(|e| self.error(node.pos, path, e, None)).ok()
    }

    fn share(&mut self, node: &Node, path: &str) -> Option<f64> {
        let v = self.number(node, path)?;
        if !(v > 0.0 && v <= 1.0) {
            self.error(node.pos, path, format!("must be in (0, 1], got {v}"), None);
            return None;
        }
        Some(v)
    }

    fn confidence(&mut self, node: &Node, path: &str) -> Option<f64> {
        let v = self.number(node, path)?;
        if !(v > 0.0 && v < 1.0) {
            self.error(
                node.pos,
                path,
                format!("must be between 0 and 1 (e.g. 0.95), got {v}"),
                None,
            );
            return None;
        }
        Some(v)
    }

    /// One of `options`, by name; returns its index.
    fn choice(&mut self, node: &Node, path: &str, options: &[&str]) -> Option<usize> {
        let name = self.string(node, path)?;
        match options.iter().position(|o| *o == name) {
            Some(i) => Some(i),
            None => {
                let help = suggest(&name, options.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| Some(format!("expected one of: {}", options.join(", "))));
                self.error(node.pos, path, format!("unknown value `{name}`"), help);
                None
            }
        }
    }
}

/// A checked mapping.
struct Fields<'a> {
    entries: &'a [(Key, Node)],
    node: &'a Node,
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }
}

fn describe(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => format!("{s:?}"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        _ => node.kind().to_string(),
    }
}

/// The closest of `options` to `word`, if close enough to be a typo.
pub(crate) fn suggest<'o>(word: &str, options: impl Iterator<Item = &'o str>) -> Option<&'o str> {
    options
        .map(|o| (strsim::jaro_winkler(word, o), o))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o)
}

fn lower(cx: &mut Cx, root: Node) -> Option<Policy> {
    let top = cx.fields(&root, "", TOP)?;
    let service = match top.get("service") {
        Some(n) => cx.string(n, "service"),
        None => {
            cx.error(root.pos, "", "missing field `service`", None);
            None
        }
    };
    let scenario = top.get("scenario").and_then(|n| {
        let name = cx.string(n, "scenario")?;
        let found = Scenario::parse(&name);
        if found.is_none() {
            let names = Scenario::ALL.iter().map(|s| s.name());
            let help = suggest(&name, names)
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| {
                    Some(
                        "expected one of: conversational-agent, image-generator, data-augmentation"
                            .into(),
                    )
                });
            cx.error(
                n.pos,
                "scenario",
                format!("unknown scenario `{name}`"),
                help,
            );
        }
        found
    });
    let preset = scenario.map(preset_tree);
    let section = |name: &str| merged(top.get(name), preset.as_ref().and_then(|p| p.get(name)));

    let signals_node = section("signals");
    let signals = lower_entries(cx, &signals_node, "signals", |cx, name, node| {
        lower_signal(cx, name, node)
    });
    let criteria_node = section("criteria");
    let declared = Declared {
        signals: names(&signals_node),
        criteria: names(&criteria_node),
    };
    let criteria = lower_entries(cx, &criteria_node, "criteria", |cx, name, node| {
        lower_criterion(cx, name, node, &signals, &declared)
    });
    let triggers_node = section("triggers");
    let triggers = lower_entries(cx, &triggers_node, "triggers", |cx, name, node| {
        lower_trigger(cx, name, node, &criteria, &declared)
    });
    let rollout = match top.get("rollout") {
        Some(n) => lower_rollout(cx, n),
        None => Some(default_rollout()),
    }
    .map(|r| with_default_holdback(r, top.get("rollout"), &criteria));
    let srm = match top.get("srm") {
        Some(n) => lower_srm(cx, n),
        None => Some(SrmCheck::default()),
    };
    let governance = governance::lower_governance(cx, &top, &names(&triggers_node));
    let sources = match top.get("sources") {
        Some(n) => sources::lower_sources(cx, n, &signals, srm.as_ref()),
        None => Some(Sources::default()),
    };
    Some(Policy {
        service: service?,
        scenario,
        signals,
        criteria,
        triggers,
        rollout: rollout?,
        srm: srm?,
        sources: sources?,
        governance: governance?,
    })
}

/// Lowers every entry of a named section (`signals`, `criteria`,
/// `triggers`), keeping the valid ones; each invalid one has reported itself.
fn lower_entries<T>(
    cx: &mut Cx,
    node: &Node,
    section: &str,
    mut lower: impl FnMut(&mut Cx, &str, &Node) -> Option<T>,
) -> Vec<T> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            section,
            format!("expected a mapping, got {}", node.kind()),
            None,
        );
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(k, v)| lower(cx, &k.name, v))
        .collect()
}

/// Every name a section declares, valid or not: a reference to a declared
/// but broken entry is not reported again (its own problem already is).
struct Declared {
    signals: Vec<String>,
    criteria: Vec<String>,
}

fn names(section: &Node) -> Vec<String> {
    match &section.value {
        Value::Map(entries) => entries.iter().map(|(k, _)| k.name.clone()).collect(),
        _ => Vec::new(),
    }
}

/// A preset's sections, parsed from its embedded YAML.
struct PresetTree(Vec<(Key, Node)>);

impl PresetTree {
    fn get(&self, name: &str) -> Option<&Node> {
        self.0.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
    }
}

fn preset_tree(s: Scenario) -> PresetTree {
    // Presets are embedded and checked by tests; a broken one yields no defaults.
    match yaml::parse(s.preset_yaml()) {
        Ok(mut node) => {
            node.mark(Source::Preset);
            match node.value {
                Value::Map(entries) => PresetTree(entries),
                _ => PresetTree(Vec::new()),
            }
        }
        Err(_) => PresetTree(Vec::new()),
    }
}

/// A named section: the preset's entries, replaced by the file's entries of
/// the same name, without those the file switches `off`.
fn merged(file: Option<&Node>, preset: Option<&Node>) -> Node {
    let entries = |n: Option<&Node>| match n.map(|n| &n.value) {
        Some(Value::Map(e)) => e.clone(),
        _ => Vec::new(),
    };
    let mut out = entries(preset);
    for (k, v) in entries(file) {
        out.retain(|(pk, _)| pk.name != k.name);
        let off = matches!(&v.value, Value::Bool(false))
            || matches!(&v.value, Value::Str(s) if s == "off");
        if !off {
            out.push((k, v));
        }
    }
    match file {
        // A file section that is not a mapping is reported as such.
        Some(n) if !matches!(n.value, Value::Map(_)) => n.clone(),
        Some(n) => Node {
            value: Value::Map(out),
            pos: n.pos,
        },
        None => Node {
            value: Value::Map(out),
            pos: Pos::default(),
        },
    }
}

fn lower_signal(cx: &mut Cx, name: &str, node: &Node) -> Option<Signal> {
    let path = format!("signals.{name}");
    let f = cx.fields(node, &path, SIGNAL)?;
    let at = |field: &str| format!("{path}.{field}");
    let category = match f.get("category") {
        Some(n) => cx.choice(n, &at("category"), CATEGORIES),
        None => {
            cx.error(
                node.pos,
                &path,
                "missing field `category`",
                Some(format!("one of: {}", CATEGORIES.join(", "))),
            );
            None
        }
    };
    let kind_name = match f.get("kind") {
        Some(n) => cx.choice(n, &at("kind"), &["rate", "score", "latency", "category"]),
        None => {
            cx.error(
                node.pos,
                &path,
                "missing field `kind`",
                Some("one of: rate, score, latency, category".into()),
            );
            None
        }
    };
    let text = |cx: &mut Cx, field: &str, default: &str| match f.get(field) {
        Some(n) => cx.string(n, &at(field)),
        None => Some(default.to_string()),
    };
    let kind = match kind_name? {
        0 => SignalKind::Rate {
            numerator: text(cx, "numerator", name)?,
            denominator: text(cx, "denominator", "outputs")?,
        },
        1 => {
            let (min, max) = score_range(cx, f.get("range"), node, &at("range"))?;
            SignalKind::Score {
                field: text(cx, "field", name)?,
                min,
                max,
            }
        }
        2 => SignalKind::Latency {
            field: text(cx, "field", name)?,
        },
        _ => SignalKind::Category {
            field: text(cx, "field", name)?,
        },
    };
    // Scores are usually "higher is better"; rates and latencies the reverse.
    let default_direction = if kind_name == Some(1) { 1 } else { 0 };
    let direction = match f.get("direction") {
        Some(n) => cx.choice(n, &at("direction"), &["higher_is_worse", "lower_is_worse"])?,
        None => default_direction,
    };
    let unit = match f.get("unit") {
        Some(n) => Some(cx.string(n, &at("unit"))?),
        None => None,
    };
    Some(Signal {
        name: name.to_string(),
        category: [
            Category::UserExperience,
            Category::Quality,
            Category::Safety,
            Category::Operational,
            Category::Data,
            Category::Fairness,
        ][category?],
        kind,
        direction: [Direction::HigherIsWorse, Direction::LowerIsWorse][direction],
        unit,
    })
}

fn score_range(cx: &mut Cx, node: Option<&Node>, parent: &Node, path: &str) -> Option<(f64, f64)> {
    let Some(node) = node else {
        cx.error(parent.pos, path, "a score needs `range: [min, max]`", None);
        return None;
    };
    match &node.value {
        Value::Seq(items) if items.len() == 2 => {
            let min = cx.number(&items[0], path)?;
            let max = cx.number(&items[1], path)?;
            if min >= max {
                cx.error(
                    node.pos,
                    path,
                    format!("min must be below max, got [{min}, {max}]"),
                    None,
                );
                return None;
            }
            Some((min, max))
        }
        _ => {
            cx.error(
                node.pos,
                path,
                format!("expected [min, max], got {}", describe(node)),
                None,
            );
            None
        }
    }
}

fn lower_criterion(
    cx: &mut Cx,
    name: &str,
    node: &Node,
    signals: &[Signal],
    declared: &Declared,
) -> Option<Criterion> {
    let path = format!("criteria.{name}");
    let f = cx.fields(node, &path, CRITERION)?;
    let at = |field: &str| format!("{path}.{field}");
    let signal = match f.get("signal") {
        Some(n) => {
            let s = cx.string(n, &at("signal"))?;
            let found = signals.iter().position(|x| x.name == s);
            if found.is_none() && !declared.signals.contains(&s) {
                let help = suggest(&s, declared.signals.iter().map(String::as_str))
                    .map(|x| format!("did you mean `{x}`?"))
                    .or_else(|| Some(format!("declared signals: {}", declared.signals.join(", "))));
                cx.error(n.pos, &at("signal"), format!("unknown signal `{s}`"), help);
            }
            found
        }
        None => {
            cx.error(node.pos, &path, "missing field `signal`", None);
            None
        }
    };
    let across = match f.get("across") {
        Some(n) => cx.string(n, &at("across")).map(Some),
        None => Some(None),
    };
    let fairness = matches!(across, Some(Some(_)));
    let bound = lower_bound(cx, &f, &path, signal.map(|i| &signals[i]), fairness);
    let reference = lower_reference(cx, &f, &path, signal.map(|i| &signals[i]));
    let quantile = f
        .get("quantile")
        .and_then(|n| cx.confidence(n, &at("quantile")));
    let is_latency = signal.is_some_and(|i| matches!(signals[i].kind, SignalKind::Latency { .. }));
    if is_latency && quantile.is_none() {
        cx.error(
            node.pos,
            &path,
            "a latency criterion needs `quantile` (e.g. 0.95)",
            None,
        );
    }
    if !is_latency
        && signal.is_some()
        && let Some(n) = f.get("quantile")
    {
        cx.error(
            n.pos,
            &at("quantile"),
            "`quantile` only applies to latency signals",
            None,
        );
    }
    // Read every field before combining, so each problem is reported.
    let window = opt(
        cx,
        f.get("window"),
        &at("window"),
        Cx::duration,
        Dur::from_mins(10),
    );
    let confidence = opt(
        cx,
        f.get("confidence"),
        &at("confidence"),
        Cx::confidence,
        0.95,
    );
    // Below ~100 samples per version the estimates an explanation shows are
    // too noisy to act on, whatever the test says.
    let min_samples = opt(cx, f.get("min_samples"), &at("min_samples"), Cx::count, 100);
    let sustain = opt(cx, f.get("for"), &at("for"), Cx::duration, Dur::ZERO);
    // Clearing as slowly as the window keeps a flapping signal from toggling
    // a trigger on and off.
    let clear_for = match f.get("clear_for") {
        Some(n) => cx.duration(n, &at("clear_for")),
        None => window,
    };
    let on_no_data = match f.get("on_no_data") {
        Some(n) => cx
            .choice(n, &at("on_no_data"), &["hold", "inconclusive", "breach"])
            .map(|i| [OnNoData::Hold, OnNoData::Inconclusive, OnNoData::Breach][i]),
        None => Some(OnNoData::Hold),
    };
    let scope = match f.get("where") {
        Some(n) => lower_scope(cx, n, &at("where")),
        None => Some(Vec::new()),
    };
    let per = match f.get("per") {
        Some(n) => cx
            .choice(n, &at("per"), &["output", "unit"])
            .map(|i| [Per::Output, Per::Unit][i]),
        None => Some(Per::Output),
    };
    Some(Criterion {
        name: name.to_string(),
        signal: signal?,
        bound: bound?,
        quantile,
        confidence: confidence?,
        min_samples: min_samples?,
        window: window?,
        sustain: sustain?,
        clear_for: clear_for?,
        on_no_data: on_no_data?,
        scope: scope?,
        per: per?,
        across: across?,
        reference: reference?,
    })
}

/// `reference: {billing: 0.3, shipping: 0.5}` for category signals: the
/// stored profile drift is measured against; shares are normalised.
fn lower_reference(
    cx: &mut Cx,
    f: &Fields<'_>,
    path: &str,
    signal: Option<&Signal>,
) -> Option<Option<Vec<(String, f64)>>> {
    let Some(node) = f.get("reference") else {
        return Some(None);
    };
    let at = format!("{path}.reference");
    if signal.is_some_and(|s| !matches!(s.kind, SignalKind::Category { .. })) {
        cx.error(
            node.pos,
            &at,
            "`reference` only applies to category signals",
            None,
        );
        return None;
    }
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            &at,
            format!(
                "expected a mapping of category to share such as {{billing: 0.3, other: 0.7}}, got {}",
                node.kind()
            ),
            None,
        );
        return None;
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let share = non_negative(cx, v, &format!("{at}.{}", k.name))?;
        out.push((k.name.clone(), share));
    }
    let total: f64 = out.iter().map(|(_, s)| s).sum();
    if total <= 0.0 {
        cx.error(
            node.pos,
            &at,
            "the reference shares must not all be 0",
            None,
        );
        return None;
    }
    Some(Some(out.into_iter().map(|(k, s)| (k, s / total)).collect()))
}

/// An optional field with a default.
fn opt<T>(
    cx: &mut Cx,
    node: Option<&Node>,
    path: &str,
    read: fn(&mut Cx, &Node, &str) -> Option<T>,
    default: T,
) -> Option<T> {
    match node {
        Some(n) => read(cx, n, path),
        None => Some(default),
    }
}

fn lower_bound(
    cx: &mut Cx,
    f: &Fields<'_>,
    path: &str,
    signal: Option<&Signal>,
    fairness: bool,
) -> Option<Bound> {
    let given: Vec<(&str, &Node)> = BOUNDS
        .iter()
        .filter_map(|b| f.get(b).map(|n| (*b, n)))
        .collect();
    let (name, node) = match given.as_slice() {
        [one] => *one,
        [] => {
            cx.error(
                f.node.pos,
                path,
                "missing a bound",
                Some(format!("give one of: {}", BOUNDS.join(", "))),
            );
            return None;
        }
        [_, second, ..] => {
            cx.error(
                second.1.pos,
                path,
                "give only one bound per criterion",
                Some("split it into two criteria".into()),
            );
            return None;
        }
    };
    let at = format!("{path}.{name}");
    let kind = signal.map(|s| &s.kind);
    if fairness
        && matches!(
            kind,
            Some(SignalKind::Latency { .. } | SignalKind::Category { .. })
        )
    {
        cx.error(
            f.node.pos,
            path,
            "`across` applies to rate and score signals",
            Some("compare latency per segment with one criterion per segment (`where`)".into()),
        );
        return None;
    }
    let allowed: &[&str] = match kind {
        Some(SignalKind::Category { .. }) => &["max_psi", "max_js"],
        _ if fairness => &["max_ratio", "max_difference"],
        Some(SignalKind::Rate { .. }) => &["absolute", "max_ratio"],
        Some(SignalKind::Score { .. }) => &["absolute", "max_increase", "max_decrease"],
        Some(SignalKind::Latency { .. }) => &["absolute", "max_ratio"],
        None => BOUNDS,
    };
    if !allowed.contains(&name) {
        let message = if fairness {
            format!("`{name}` does not apply to a criterion `across` segments")
        } else {
            format!("`{name}` does not apply to this signal's kind")
        };
        let help = Some(format!("use one of: {}", allowed.join(", ")));
        cx.error(node.pos, &at, message, help);
        return None;
    }
    Some(match (name, kind) {
        ("absolute", Some(SignalKind::Rate { .. })) => Bound::Absolute(cx.rate(node, &at)?),
        ("absolute", _) => Bound::Absolute(cx.number(node, &at)?),
        ("max_ratio", _) => {
            let r = cx.positive(node, &at)?;
            if r < 1.0 {
                cx.error(node.pos, &at, format!("must be at least 1, got {r}"), Some("max_ratio is how much worse than the baseline is tolerated; 1 tolerates nothing".into()));
                return None;
            }
            Bound::MaxRatio(r)
        }
        ("max_increase", _) => Bound::MaxIncrease(non_negative(cx, node, &at)?),
        ("max_decrease", _) => Bound::MaxDecrease(non_negative(cx, node, &at)?),
        ("max_difference", _) => Bound::MaxDifference(non_negative(cx, node, &at)?),
        ("max_psi", _) => Bound::MaxPsi(cx.positive(node, &at)?),
        _ => {
            let d = cx.positive(node, &at)?;
            if d >= 1.0 {
                cx.error(
                    node.pos,
                    &at,
                    format!("must be below 1, got {d}"),
                    Some("the Jensen–Shannon distance lies in [0, 1]".into()),
                );
                return None;
            }
            Bound::MaxJs(d)
        }
    })
}

fn non_negative(cx: &mut Cx, node: &Node, path: &str) -> Option<f64> {
    let v = cx.number(node, path)?;
    if v < 0.0 {
        cx.error(node.pos, path, format!("must be ≥ 0, got {v}"), None);
        return None;
    }
    Some(v)
}

fn lower_scope(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            path,
            format!(
                "expected a mapping such as {{locale: de}}, got {}",
                node.kind()
            ),
            None,
        );
        return None;
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let value = match &v.value {
            Value::Str(s) => s.clone(),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => describe(v),
            _ => {
                cx.error(
                    v.pos,
                    path,
                    format!("expected a segment value, got {}", v.kind()),
                    None,
                );
                return None;
            }
        };
        out.push((k.name.clone(), value));
    }
    Some(out)
}

fn lower_trigger(
    cx: &mut Cx,
    name: &str,
    node: &Node,
    criteria: &[Criterion],
    declared: &Declared,
) -> Option<Trigger> {
    let path = format!("triggers.{name}");
    let f = cx.fields(node, &path, TRIGGER)?;
    let at = |field: &str| format!("{path}.{field}");
    let when = match f.get("when") {
        Some(n) => lower_condition(cx, n, &at("when"), criteria, declared),
        None => {
            cx.error(node.pos, &path, "missing field `when`", None);
            None
        }
    };
    let severity = match f.get("severity") {
        Some(n) => cx
            .choice(n, &at("severity"), &["critical", "major", "minor"])
            .map(|i| [Severity::Critical, Severity::Major, Severity::Minor][i]),
        None => Some(Severity::Major),
    };
    let action = match f.get("action") {
        Some(n) => lower_action(cx, n, &at("action")),
        None => {
            cx.error(
                node.pos,
                &path,
                "missing field `action`",
                Some("one of: notify, pause, pause_and_investigate, rollback".into()),
            );
            None
        }
    };
    let approval = match f.get("approval") {
        Some(n) => lower_approval(cx, n, &at("approval")),
        None => Some(Approval::None),
    };
    Some(Trigger {
        name: name.to_string(),
        when: when?,
        severity: severity?,
        action: action?,
        approval: approval?,
    })
}

fn lower_condition(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    criteria: &[Criterion],
    declared: &Declared,
) -> Option<Condition> {
    match &node.value {
        Value::Str(s) => match criteria.iter().position(|c| c.name == *s) {
            Some(i) => Some(Condition::Criterion(i)),
            None if declared.criteria.contains(s) => None,
            None => {
                let help = match node.pos.source {
                    Source::Preset => Some(
                        "a trigger of the scenario preset uses it: switch that trigger off (`name: off`) or override it"
                            .to_string(),
                    ),
                    Source::File => suggest(s, declared.criteria.iter().map(String::as_str))
                        .map(|x| format!("did you mean `{x}`?")),
                };
                cx.error(node.pos, path, format!("unknown criterion `{s}`"), help);
                None
            }
        },
        Value::Map(entries) => {
            let f = cx.fields(node, path, &["all", "any", "at_least", "of"])?;
            let list = |cx: &mut Cx, key: &str| -> Option<Vec<Condition>> {
                let n = f.get(key)?;
                let p = format!("{path}.{key}");
                let Value::Seq(items) = &n.value else {
                    cx.error(
                        n.pos,
                        &p,
                        format!("expected a list, got {}", n.kind()),
                        None,
                    );
                    return None;
                };
                if items.is_empty() {
                    cx.error(n.pos, &p, "must not be empty", None);
                }
                let out: Vec<_> = items
                    .iter()
                    .filter_map(|i| lower_condition(cx, i, &p, criteria, declared))
                    .collect();
                (out.len() == items.len()).then_some(out)
            };
            match (f.get("all"), f.get("any"), f.get("at_least")) {
                (Some(_), None, None) if entries.len() == 1 => list(cx, "all").map(Condition::All),
                (None, Some(_), None) if entries.len() == 1 => list(cx, "any").map(Condition::Any),
                (None, None, Some(k_node)) => {
                    let kp = format!("{path}.at_least");
                    let k_value = cx.count(k_node, &kp);
                    let Some(of) = f.get("of") else {
                        cx.error(node.pos, path, "`at_least` needs `of: [...]`", None);
                        return None;
                    };
                    let of_len = match &of.value {
                        Value::Seq(items) => items.len(),
                        _ => 0,
                    };
                    let conditions = list(cx, "of");
                    let k = k_value?;
                    if k < 1 || k as usize > of_len {
                        cx.error(
                            k_node.pos,
                            &kp,
                            format!(
                                "at_least {k} of {of_len}: must be between 1 and the length of `of`"
                            ),
                            None,
                        );
                        return None;
                    }
                    Some(Condition::AtLeast {
                        k: k as usize,
                        of: conditions?,
                    })
                }
                _ => {
                    cx.error(node.pos, path, "a condition is a criterion name, {all: [...]}, {any: [...]} or {at_least: k, of: [...]}", None);
                    None
                }
            }
        }
        _ => {
            cx.error(
                node.pos,
                path,
                format!(
                    "expected a criterion name or a condition, got {}",
                    node.kind()
                ),
                None,
            );
            None
        }
    }
}

fn lower_action(cx: &mut Cx, node: &Node, path: &str) -> Option<Action> {
    const NAMES: &[&str] = &["notify", "pause", "pause_and_investigate", "rollback"];
    match &node.value {
        Value::Str(_) => Some(match cx.choice(node, path, NAMES)? {
            0 => Action::Notify,
            1 => Action::Pause,
            2 => Action::PauseAndInvestigate,
            _ => Action::Rollback {
                stages: vec![RollbackStage {
                    fraction: 1.0,
                    verify_for: Dur::ZERO,
                }],
            },
        }),
        Value::Map(_) => {
            let f = cx.fields(node, path, &["rollback"])?;
            let rb = f.get("rollback")?;
            let rp = format!("{path}.rollback");
            let rf = cx.fields(rb, &rp, &["stages"])?;
            let Some(stages) = rf.get("stages") else {
                cx.error(rb.pos, &rp, "missing field `stages`", None);
                return None;
            };
            lower_stages(cx, stages, &format!("{rp}.stages"))
                .map(|stages| Action::Rollback { stages })
        }
        _ => {
            cx.error(node.pos, path, format!("expected an action, got {}", node.kind()), Some("one of: notify, pause, pause_and_investigate, rollback, or {rollback: {stages: [...]}}".into()));
            None
        }
    }
}

fn lower_stages(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<RollbackStage>> {
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            path,
            format!("expected a list of stages, got {}", node.kind()),
            None,
        );
        return None;
    };
    let mut stages = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(f) = cx.fields(item, &p, &["move_back", "verify_for"]) else {
            ok = false;
            continue;
        };
        let fraction = match f.get("move_back") {
            Some(n) => cx.share(n, &format!("{p}.move_back")),
            None => {
                cx.error(item.pos, &p, "missing field `move_back`", None);
                None
            }
        };
        let verify_for = opt(
            cx,
            f.get("verify_for"),
            &format!("{p}.verify_for"),
            Cx::duration,
            Dur::ZERO,
        );
        match (fraction, verify_for) {
            (Some(fraction), Some(verify_for)) => {
                if let Some(prev) = stages.last().map(|s: &RollbackStage| s.fraction)
                    && fraction <= prev
                {
                    cx.error(
                        item.pos,
                        &p,
                        format!("move_back must grow from stage to stage ({prev} then {fraction})"),
                        None,
                    );
                    ok = false;
                }
                stages.push(RollbackStage {
                    fraction,
                    verify_for,
                });
            }
            _ => ok = false,
        }
    }
    if ok && stages.last().is_none_or(|s| s.fraction != 1.0) {
        cx.error(
            node.pos,
            path,
            "the last stage must move everyone back (move_back: 1.0)",
            None,
        );
        ok = false;
    }
    ok.then_some(stages)
}

fn lower_approval(cx: &mut Cx, node: &Node, path: &str) -> Option<Approval> {
    if matches!(&node.value, Value::Str(s) if s == "none") {
        return Some(Approval::None);
    }
    let f = cx.fields(node, path, &["role", "within", "on_timeout", "quorum"])?;
    let role = match f.get("role") {
        Some(n) => governance::role(cx, n, &format!("{path}.role")),
        None => {
            cx.error(node.pos, path, "missing field `role`", None);
            None
        }
    };
    let within = match f.get("within") {
        Some(n) => cx.duration(n, &format!("{path}.within")),
        None => {
            cx.error(node.pos, path, "missing field `within`", None);
            None
        }
    };
    let quorum = opt(
        cx,
        f.get("quorum"),
        &format!("{path}.quorum"),
        governance::lower_quorum,
        1,
    );
    let on_timeout = match f.get("on_timeout") {
        Some(n) => governance::timeout_choice(cx, n, &format!("{path}.on_timeout")),
        None => {
            cx.error(
                node.pos,
                path,
                "missing field `on_timeout`",
                Some("proceed or hold".into()),
            );
            None
        }
    };
    Some(Approval::Role {
        role: role?,
        within: within?,
        on_timeout: on_timeout?,
        quorum: quorum?,
    })
}

fn default_rollout() -> Rollout {
    Rollout {
        steps: [(0.05, 30), (0.25, 30), (0.5, 30)]
            .iter()
            .map(|(share, mins)| RolloutStep {
                share: *share,
                hold: Dur::from_mins(*mins),
            })
            .collect(),
        watch_after_promotion: Dur::from_mins(60),
        false_alarm_every: FALSE_ALARM_EVERY,
        holdback: 0.0,
        promotion: Promotion::Automatic,
    }
}

/// A false alarm a month on a promoted version is rare enough to act on
/// every alarm and frequent enough to see a real change within hours.
const FALSE_ALARM_EVERY: Dur = Dur::from_mins(30 * 24 * 60);

fn lower_rollout(cx: &mut Cx, node: &Node) -> Option<Rollout> {
    let f = cx.fields(
        node,
        "rollout",
        &[
            "steps",
            "promotion",
            "watch_after_promotion",
            "false_alarm_every",
            "holdback",
        ],
    )?;
    let steps = match f.get("steps") {
        Some(n) => lower_steps(cx, n),
        None => Some(default_rollout().steps),
    };
    let promotion = match f.get("promotion") {
        Some(n) => [Promotion::Automatic, Promotion::Manual]
            [cx.choice(n, "rollout.promotion", &["automatic", "manual"])?],
        None => Promotion::Automatic,
    };
    let watch = opt(
        cx,
        f.get("watch_after_promotion"),
        "rollout.watch_after_promotion",
        Cx::duration,
        Dur::from_mins(60),
    );
    let false_alarm_every = opt(
        cx,
        f.get("false_alarm_every"),
        "rollout.false_alarm_every",
        Cx::duration,
        FALSE_ALARM_EVERY,
    );
    let holdback = match f.get("holdback") {
        Some(n) => lower_holdback(cx, n)?,
        None => 0.0,
    };
    Some(Rollout {
        steps: steps?,
        watch_after_promotion: watch?,
        false_alarm_every: false_alarm_every?,
        holdback,
        promotion,
    })
}

/// Unless the policy says otherwise, a promoted release whose criteria
/// compare it with the baseline keeps [`DEFAULT_HOLDBACK`] of units on the
/// baseline while it is watched: without a baseline those criteria can only
/// watch for a change from the level at promotion, which rates that move
/// over the day set off on healthy releases.
fn with_default_holdback(mut r: Rollout, node: Option<&Node>, criteria: &[Criterion]) -> Rollout {
    let explicit = node.is_some_and(|n| match &n.value {
        Value::Map(entries) => entries.iter().any(|(k, _)| k.name == "holdback"),
        _ => false,
    });
    let watched = r.watch_after_promotion > Dur::ZERO;
    if !explicit && watched && criteria.iter().any(Criterion::compares_with_baseline) {
        r.holdback = DEFAULT_HOLDBACK;
    }
    r
}

/// A holdback is a small share of units: at most half, or the "promoted"
/// version would not be the one most users get.
fn lower_holdback(cx: &mut Cx, node: &Node) -> Option<f64> {
    let v = cx.number(node, "rollout.holdback")?;
    if !(0.0..=0.5).contains(&v) {
        cx.error(
            node.pos,
            "rollout.holdback",
            format!("must be a share of units in [0, 0.5] (e.g. 0.02), got {v}"),
            None,
        );
        return None;
    }
    Some(v)
}

fn lower_steps(cx: &mut Cx, node: &Node) -> Option<Vec<RolloutStep>> {
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            "rollout.steps",
            format!("expected a list of steps, got {}", node.kind()),
            None,
        );
        return None;
    };
    if items.is_empty() {
        cx.error(node.pos, "rollout.steps", "needs at least one step", None);
        return None;
    }
    let mut steps: Vec<RolloutStep> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("rollout.steps[{i}]");
        let Some(f) = cx.fields(item, &p, &["share", "hold"]) else {
            ok = false;
            continue;
        };
        let share = match f.get("share") {
            Some(n) => cx.number(n, &format!("{p}.share")).map(|v| (n.pos, v)),
            None => {
                cx.error(item.pos, &p, "missing field `share`", None);
                None
            }
        };
        let hold = opt(
            cx,
            f.get("hold"),
            &format!("{p}.hold"),
            Cx::duration,
            RolloutStep::DEFAULT_HOLD,
        );
        let (Some((pos, share)), Some(hold)) = (share, hold) else {
            ok = false;
            continue;
        };
        match RolloutStep::share_problem(steps.last().map(|s| s.share), share) {
            Some(problem) => {
                cx.error(pos, &format!("{p}.share"), problem, None);
                ok = false;
            }
            None => steps.push(RolloutStep { share, hold }),
        }
    }
    ok.then_some(steps)
}

fn lower_srm(cx: &mut Cx, node: &Node) -> Option<SrmCheck> {
    if matches!(&node.value, Value::Bool(false))
        || matches!(&node.value, Value::Str(s) if s == "off")
    {
        return Some(SrmCheck {
            enabled: false,
            ..SrmCheck::default()
        });
    }
    let f = cx.fields(node, "srm", &["confidence", "min_samples", "count"])?;
    let d = SrmCheck::default();
    let count = match f.get("count") {
        Some(n) => cx
            .choice(n, "srm.count", &["units", "outputs"])
            .map(|i| [SrmCount::Units, SrmCount::Outputs][i]),
        None => Some(d.count),
    };
    let confidence = opt(
        cx,
        f.get("confidence"),
        "srm.confidence",
        Cx::confidence,
        d.confidence,
    );
    let min_samples = opt(
        cx,
        f.get("min_samples"),
        "srm.min_samples",
        Cx::count,
        d.min_samples,
    );
    Some(SrmCheck {
        enabled: true,
        confidence: confidence?,
        min_samples: min_samples?,
        count: count?,
    })
}

/// The JSON Schema of the policy format, for editors (YAML language servers
/// read JSON Schema).
pub fn policy_json_schema() -> serde_json::Value {
    super::schema::schema()
}
