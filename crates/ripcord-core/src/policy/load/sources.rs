//! `sources:`: how telemetry from elsewhere maps onto the policy's
//! signals: `sources.otlp`, for OpenTelemetry spans and log records, and
//! `sources.prometheus`, for counters on a Prometheus server.

use super::{Cx, Node, Value, suggest};
use crate::policy::{OtlpEvaluation, OtlpSources, Signal, SignalKind, Sources, SrmCheck};

pub(crate) fn lower_sources(
    cx: &mut Cx,
    node: &Node,
    signals: &[Signal],
    srm: Option<&SrmCheck>,
) -> Option<Sources> {
    let f = cx.fields(node, "sources", &["otlp", "prometheus"])?;
    let otlp = match f.get("otlp") {
        Some(n) => lower_otlp(cx, n, signals),
        None => Some(OtlpSources::default()),
    };
    let prometheus = match f.get("prometheus") {
        Some(n) => super::prometheus::lower_prometheus(cx, n, signals, srm).map(Some),
        None => Some(None),
    };
    Some(Sources {
        otlp: otlp?,
        prometheus: prometheus?,
    })
}

fn lower_otlp(cx: &mut Cx, node: &Node, signals: &[Signal]) -> Option<OtlpSources> {
    let f = cx.fields(
        node,
        "sources.otlp",
        &["version", "unit", "segment", "evaluations"],
    )?;
    let d = OtlpSources::default();
    let version = match f.get("version") {
        Some(n) => names(cx, n, "sources.otlp.version"),
        None => Some(d.version),
    };
    let unit = match f.get("unit") {
        Some(n) => names(cx, n, "sources.otlp.unit"),
        None => Some(d.unit),
    };
    let segment = match f.get("segment") {
        Some(n) => pairs(cx, n, "sources.otlp.segment"),
        None => Some(Vec::new()),
    };
    let evaluations = match f.get("evaluations") {
        Some(n) => evaluations(cx, n, signals),
        None => Some(Vec::new()),
    };
    Some(OtlpSources {
        version: version?,
        unit: unit?,
        segment: segment?,
        evaluations: evaluations?,
    })
}

/// One attribute name or a list of them, tried in order.
fn names(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<String>> {
    match &node.value {
        Value::Seq(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, n)| cx.string(n, &format!("{path}[{i}]")))
            .collect(),
        Value::Seq(_) => {
            cx.error(node.pos, path, "must name at least one attribute", None);
            None
        }
        _ => cx.string(node, path).map(|s| vec![s]),
    }
}

/// `{segment key: attribute}`.
fn pairs(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
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
    entries
        .iter()
        .map(|(k, v)| Some((k.name.clone(), cx.string(v, &format!("{path}.{}", k.name))?)))
        .collect()
}

/// `{evaluation name: {signal, flag}}`: which signal an evaluation feeds,
/// and for a rate which labels flag.
fn evaluations(cx: &mut Cx, node: &Node, signals: &[Signal]) -> Option<Vec<OtlpEvaluation>> {
    let Value::Map(entries) = &node.value else {
        let got = node.kind();
        cx.error(
            node.pos,
            "sources.otlp.evaluations",
            format!("expected a mapping, got {got}"),
            None,
        );
        return None;
    };
    // Every entry is lowered, so that all their mistakes are reported.
    let lowered: Vec<Option<OtlpEvaluation>> = entries
        .iter()
        .map(|(k, v)| evaluation(cx, &k.name, v, signals))
        .collect();
    lowered.into_iter().collect()
}

fn evaluation(cx: &mut Cx, name: &str, node: &Node, signals: &[Signal]) -> Option<OtlpEvaluation> {
    let path = format!("sources.otlp.evaluations.{name}");
    let f = cx.fields(node, &path, &["signal", "flag"])?;
    let Some(signal_node) = f.get("signal") else {
        cx.error(node.pos, &path, "missing field `signal`", None);
        return None;
    };
    let signal = known_signal(cx, signal_node, &format!("{path}.signal"), signals);
    let flag = match f.get("flag") {
        Some(n) => names(cx, n, &format!("{path}.flag")),
        None => Some(Vec::new()),
    };
    Some(OtlpEvaluation {
        name: name.to_string(),
        signal: signal?,
        flag: flag?,
    })
}

fn known_signal(cx: &mut Cx, node: &Node, path: &str, signals: &[Signal]) -> Option<String> {
    let name = cx.string(node, path)?;
    let found = signals.iter().find(|s| s.name == name);
    match found {
        Some(s) if matches!(s.kind, SignalKind::Rate { .. } | SignalKind::Score { .. }) => {
            Some(name)
        }
        Some(_) => {
            cx.error(
                node.pos,
                path,
                format!("signal `{name}` is neither a rate nor a score"),
                None,
            );
            None
        }
        None => {
            let help = suggest(&name, signals.iter().map(|s| s.name.as_str()))
                .map(|s| format!("did you mean `{s}`?"));
            cx.error(node.pos, path, format!("unknown signal `{name}`"), help);
            None
        }
    }
}
