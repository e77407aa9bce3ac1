//! OpenTelemetry (OTLP) spans and log records as ripcord events, by the
//! GenAI semantic conventions, with no configuration:
//!
//! - the service is the resource's `service.name`, the version its
//!   `service.version`;
//! - the unit is the first of `user.id`, `session.id`,
//!   `gen_ai.conversation.id` on the item (or its resource), else the trace
//!   id;
//! - a span with `gen_ai.*` attributes is one output: `outputs: 1`, its
//!   duration in every latency signal's field, and `error: 1` when it
//!   failed (`error.type`, or status ERROR), and a guardrail's verdict
//!   (a `gen_ai.guardrail.result` span event) as `moderation_fail`; other
//!   spans are not ours and are skipped, not refused;
//! - a `gen_ai.guardrail.result` log record is a guardrail's verdict on the
//!   response it names, as `moderation_fail` over a denominator of its
//!   own (the span counted `outputs` already);
//! - a `gen_ai.evaluation.result` log record is a judge's result for the
//!   signal named by `gen_ai.evaluation.name`: a score signal takes
//!   `gen_ai.evaluation.score.value`, a rate signal a flag
//!   (`gen_ai.evaluation.score.label` in [`FLAGGED`]) with one of its
//!   denominator. It keeps the generation time, version and unit of the
//!   response it judges (`gen_ai.response.id`, seen in a span within the
//!   engine's lateness), so late judges land in the right bucket.
//!
//! The events then take `/v1/events`' path (`ingest`): the same checks,
//! the same durability, per-item refusals.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use ripcord_core::policy::{OtlpSources, Signal, SignalKind};
use ripcord_core::{Dur, Time};
use serde_json::{Map, Value, json};

/// Labels that flag an evaluation for a rate signal.
pub const FLAGGED: &[&str] = &["fail", "failed", "true", "yes", "flagged", "unsafe", "bad"];
/// Responses remembered for late evaluations to attach to.
const RESPONSES_KEPT: usize = 200_000;
const EVALUATION: &str = "gen_ai.evaluation.result";
const GUARDRAIL: &str = "gen_ai.guardrail.result";
/// The signal a guardrail's verdict flags.
const MODERATION: &str = "moderation_fail";
/// Guardrail decisions that flag the output.
pub const BLOCKED: &[&str] = &[
    "block", "blocked", "deny", "denied", "flag", "flagged", "redact", "redacted",
];

/// What a GenAI response was, for evaluations that come later.
#[derive(Clone, Debug, PartialEq)]
struct Response {
    service: String,
    version: String,
    unit: String,
    segment: Map<String, Value>,
    at: Time,
}

/// Responses seen in spans, by `gen_ai.response.id`: bounded in count and
/// kept only for the engine's lateness (an older event would be refused).
#[derive(Default)]
pub struct Responses {
    inner: Mutex<Remembered>,
}

/// The responses by id, and their ids oldest first (for expiry).
#[derive(Default)]
struct Remembered {
    by_id: HashMap<String, Response>,
    order: VecDeque<(Time, String)>,
}

impl Responses {
    fn remember(&self, id: String, r: Response) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let Remembered { by_id: map, order } = &mut *guard;
        if map.len() >= RESPONSES_KEPT
            && let Some((_, oldest)) = order.pop_front()
        {
            map.remove(&oldest);
        }
        order.push_back((r.at, id.clone()));
        map.insert(id, r);
    }

    fn find(&self, id: &str, now: Time, lateness: Dur) -> Option<Response> {
        let mut guard = self.inner.lock().ok()?;
        let Remembered { by_id: map, order } = &mut *guard;
        while let Some((at, old)) = order.front()
            && *at + lateness < now
        {
            map.remove(old);
            order.pop_front();
        }
        map.get(id).cloned()
    }
}

/// The events of one export and the items that could not be events.
#[derive(Debug, Default, PartialEq)]
pub struct Mapped {
    /// NDJSON event lines, each with where it came from.
    pub events: Vec<(Origin, String)>,
    /// (what, why) of the first [`LISTED`] items refused before ingest.
    pub refused: Vec<(String, String)>,
    /// Every item refused before ingest, listed or not.
    pub refused_count: usize,
}

/// Where an event came from in its export; put in words only when it is
/// refused (a large export's events carry two numbers, not a string).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Origin {
    pub logs: bool,
    pub resource: usize,
    pub item: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.logs {
            write!(
                f,
                "resource_logs[{}] log record {}",
                self.resource, self.item
            )
        } else {
            write!(f, "resource_spans[{}] span {}", self.resource, self.item)
        }
    }
}

/// Refusals kept with their reasons; the rest are only counted (a hostile
/// export of a million bad spans must not become a million strings).
pub const LISTED: usize = 100;

impl Mapped {
    fn refuse(&mut self, what: String, why: String) {
        self.refused_count += 1;
        if self.refused.len() < LISTED {
            self.refused.push((what, why));
        }
    }
}

/// What one service's policy says about OTLP: its signals and its
/// `sources.otlp` mapping.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub signals: Vec<Signal>,
    pub map: OtlpSources,
}

/// Each service's [`Target`], by service.
pub type Signals = HashMap<String, Target>;

/// The service names an export's resources give.
pub fn trace_services(req: &ExportTraceServiceRequest) -> Vec<String> {
    req.resource_spans
        .iter()
        .filter_map(|r| text(r.resource.as_ref().map(|r| &r.attributes)?, "service.name"))
        .collect()
}

pub fn log_services(req: &ExportLogsServiceRequest) -> Vec<String> {
    req.resource_logs
        .iter()
        .filter_map(|r| text(r.resource.as_ref().map(|r| &r.attributes)?, "service.name"))
        .collect()
}

/// Spans as events; GenAI responses are remembered for their judges.
pub fn spans(req: &ExportTraceServiceRequest, signals: &Signals, responses: &Responses) -> Mapped {
    let mut out = Mapped::default();
    for (r, rs) in req.resource_spans.iter().enumerate() {
        let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for (s, span) in rs.scope_spans.iter().flat_map(|ss| &ss.spans).enumerate() {
            if !is_gen_ai(&span.attributes) {
                continue;
            }
            let origin = Origin {
                logs: false,
                resource: r,
                item: s,
            };
            match span_event(resource, span, signals) {
                Ok((line, response)) => {
                    if let Some((id, resp)) = response {
                        responses.remember(id, resp);
                    }
                    out.events.push((origin, line));
                }
                Err(why) => out.refuse(format!("{origin} ({})", span.name), why),
            }
        }
    }
    out
}

/// Evaluation and guardrail log records as events; other records are
/// skipped.
pub fn logs(
    req: &ExportLogsServiceRequest,
    signals: &Signals,
    responses: &Responses,
    now: Time,
    lateness: Dur,
) -> Mapped {
    let mut out = Mapped::default();
    for (r, rl) in req.resource_logs.iter().enumerate() {
        let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for (l, log) in rl
            .scope_logs
            .iter()
            .flat_map(|sl| &sl.log_records)
            .enumerate()
        {
            let name = event_name(log);
            if name != EVALUATION && name != GUARDRAIL {
                continue;
            }
            let origin = Origin {
                logs: true,
                resource: r,
                item: l,
            };
            let joined = text(&log.attributes, "gen_ai.response.id")
                .and_then(|id| responses.find(&id, now, lateness));
            let mapped = if name == EVALUATION {
                evaluation_event(resource, log, signals, joined).map(Some)
            } else {
                guardrail_record(resource, log, signals, joined)
            };
            match mapped {
                Ok(Some(line)) => out.events.push((origin, line)),
                Ok(None) => {}
                Err(why) => out.refuse(format!("{origin} ({name})"), why),
            }
        }
    }
    out
}

fn event_name(log: &LogRecord) -> String {
    if !log.event_name.is_empty() {
        return log.event_name.clone();
    }
    text(&log.attributes, "event.name").unwrap_or_default()
}

fn is_gen_ai(attributes: &[KeyValue]) -> bool {
    attributes.iter().any(|kv| kv.key.starts_with("gen_ai."))
}

type SpanEvent = (String, Option<(String, Response)>);

fn span_event(resource: &[KeyValue], span: &Span, signals: &Signals) -> Result<SpanEvent, String> {
    let (service, target) = target(resource, signals)?;
    let version = version(resource, &span.attributes, target)?;
    let unit = unit(resource, &span.attributes, target).unwrap_or_else(|| hex(&span.trace_id));
    let segment = segment(resource, &span.attributes, target);
    let at = time(span.end_time_unix_nano)?;
    let mut values = Map::new();
    values.insert("outputs".into(), json!(1));
    let ms = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e6;
    let failed = text(&span.attributes, "error.type").is_some()
        || span.status.as_ref().is_some_and(|s| s.code == 2);
    for signal in &target.signals {
        match &signal.kind {
            SignalKind::Latency { field } => {
                values.insert(field.clone(), json!(ms));
            }
            SignalKind::Rate { numerator, .. } if numerator == "error" => {
                values.insert("error".into(), json!(u8::from(failed)));
            }
            _ => {}
        }
    }
    for (field, flagged) in guardrail(span, target).into_iter().flatten() {
        values.insert(field, json!(u8::from(flagged)));
    }
    let line = line(&service, &version, &unit, at, &segment, values);
    let response = text(&span.attributes, "gen_ai.response.id").map(|id| {
        let r = Response {
            service,
            version,
            unit,
            segment,
            at,
        };
        (id, r)
    });
    Ok((line, response))
}

/// A guardrail's verdict on the span's own output: a
/// `gen_ai.guardrail.result` span event whose `gen_ai.guardrail.decision`
/// (or `gen_ai.guardrail.action`) is one of [`BLOCKED`] flags the rate
/// signal `moderation_fail` on the same event: its numerator, and its
/// denominator when that is not `outputs` (which the span counts already),
/// so nothing is counted twice. Policies without that signal ignore
/// guardrails.
fn guardrail(span: &Span, target: &Target) -> Option<Vec<(String, bool)>> {
    let event = span.events.iter().find(|e| e.name == GUARDRAIL)?;
    let (numerator, denominator) = moderation(target)?;
    let flagged = blocked(&event.attributes)?;
    let mut values = vec![(numerator.to_string(), flagged)];
    if denominator != "outputs" {
        values.push((denominator.to_string(), true));
    }
    Some(values)
}

/// A guardrail's verdict as a log record (span events are deprecated in
/// favour of them): it names its response by `gen_ai.response.id` and
/// lands in that output's bucket, like a late judge. Its own event cannot
/// add to the span's `outputs`, so `moderation_fail` must count over a
/// denominator of its own (one per checked response, e.g. `guarded`).
/// `None`: the policy has no `moderation_fail`, guardrails are not its.
fn guardrail_record(
    resource: &[KeyValue],
    log: &LogRecord,
    signals: &Signals,
    joined: Option<Response>,
) -> Result<Option<String>, String> {
    let (r, target) = about(resource, log, signals, joined)?;
    let Some((numerator, denominator)) = moderation(target) else {
        return Ok(None);
    };
    if denominator == "outputs" {
        return Err(format!(
            "{MODERATION} counts over `outputs`, which the response's span counts already: \
             give it a denominator of its own (`denominator: guarded`) to take guardrail \
             results as log records"
        ));
    }
    let flagged = blocked(&log.attributes)
        .ok_or("gen_ai.guardrail.decision (or gen_ai.guardrail.action): missing")?;
    let mut values = Map::new();
    values.insert(denominator.to_string(), json!(1));
    values.insert(numerator.to_string(), json!(u8::from(flagged)));
    Ok(Some(line(
        &r.service, &r.version, &r.unit, r.at, &r.segment, values,
    )))
}

/// The policy's `moderation_fail` rate: its numerator and denominator.
fn moderation(target: &Target) -> Option<(&str, &str)> {
    target.signals.iter().find_map(|s| match &s.kind {
        SignalKind::Rate {
            numerator,
            denominator,
        } if s.name == MODERATION => Some((numerator.as_str(), denominator.as_str())),
        _ => None,
    })
}

/// Whether a guardrail's decision (or action) is one that flags.
fn blocked(attributes: &[KeyValue]) -> Option<bool> {
    let decision = text(attributes, "gen_ai.guardrail.decision")
        .or_else(|| text(attributes, "gen_ai.guardrail.action"))?;
    Some(BLOCKED.contains(&decision.to_ascii_lowercase().as_str()))
}

/// The response a log record is about (the one it names, else its own
/// attributes) and its service's policy.
fn about<'a>(
    resource: &[KeyValue],
    log: &LogRecord,
    signals: &'a Signals,
    joined: Option<Response>,
) -> Result<(Response, &'a Target), String> {
    let r = match joined {
        Some(r) => r,
        None => judged(resource, log, signals)?,
    };
    let target = signals
        .get(&r.service)
        .ok_or_else(|| format!("service: no policy for \"{}\"", r.service))?;
    Ok((r, target))
}

/// Who and when an evaluation is about: the response it names, else its
/// own attributes and time.
fn judged(resource: &[KeyValue], log: &LogRecord, signals: &Signals) -> Result<Response, String> {
    let (service, target) = target(resource, signals)?;
    let version = version(resource, &log.attributes, target)?;
    let unit = unit(resource, &log.attributes, target).unwrap_or_else(|| hex(&log.trace_id));
    let segment = segment(resource, &log.attributes, target);
    let nanos = if log.time_unix_nano > 0 {
        log.time_unix_nano
    } else {
        log.observed_time_unix_nano
    };
    Ok(Response {
        service,
        version,
        unit,
        segment,
        at: time(nanos)?,
    })
}

fn evaluation_event(
    resource: &[KeyValue],
    log: &LogRecord,
    signals: &Signals,
    joined: Option<Response>,
) -> Result<String, String> {
    let name =
        text(&log.attributes, "gen_ai.evaluation.name").ok_or("gen_ai.evaluation.name: missing")?;
    let (r, target) = about(resource, log, signals, joined)?;
    let (signal, flags) = evaluated(target, &name, &r.service)?;
    let mut values = Map::new();
    match &signal.kind {
        SignalKind::Score { field, .. } => {
            let score = number(&log.attributes, "gen_ai.evaluation.score.value")
                .ok_or("gen_ai.evaluation.score.value: missing or not a number")?;
            if !score.is_finite() {
                return Err(format!(
                    "gen_ai.evaluation.score.value: {score} is not a finite number"
                ));
            }
            values.insert(field.clone(), json!(score));
        }
        SignalKind::Rate {
            numerator,
            denominator,
        } => {
            let label = text(&log.attributes, "gen_ai.evaluation.score.label")
                .ok_or("gen_ai.evaluation.score.label: missing")?;
            let flagged = flags.contains(&label.to_ascii_lowercase());
            values.insert(denominator.clone(), json!(1));
            values.insert(numerator.clone(), json!(u8::from(flagged)));
        }
        _ => {
            return Err(format!(
                "gen_ai.evaluation.name: \"{name}\" is neither a score nor a rate signal"
            ));
        }
    }
    Ok(line(
        &r.service, &r.version, &r.unit, r.at, &r.segment, values,
    ))
}

/// The signal an evaluation feeds and the labels that flag it: the
/// policy's `sources.otlp.evaluations` entry, else the signal of the
/// evaluation's own name with [`FLAGGED`].
fn evaluated<'a>(
    target: &'a Target,
    name: &str,
    service: &str,
) -> Result<(&'a Signal, Vec<String>), String> {
    let mapped = target.map.evaluations.iter().find(|e| e.name == name);
    let signal_name = mapped.map_or(name, |e| e.signal.as_str());
    let flags = match mapped {
        Some(e) if !e.flag.is_empty() => e.flag.iter().map(|f| f.to_ascii_lowercase()).collect(),
        _ => FLAGGED.iter().map(|f| f.to_string()).collect(),
    };
    let signal = target
        .signals
        .iter()
        .find(|s| s.name == signal_name)
        .ok_or_else(|| {
            format!(
                "gen_ai.evaluation.name: \"{name}\" is not a signal of {service}'s policy (nor mapped in sources.otlp.evaluations)"
            )
        })?;
    Ok((signal, flags))
}

/// The service (the resource's `service.name`) and what its policy says.
fn target<'a>(resource: &[KeyValue], signals: &'a Signals) -> Result<(String, &'a Target), String> {
    let service = text(resource, "service.name")
        .ok_or("resource attribute service.name: missing (it names the ripcord service)")?;
    let target = signals
        .get(&service)
        .ok_or_else(|| format!("service: no policy for \"{service}\""))?;
    Ok((service, target))
}

/// The first of the mapping's attributes found on the item, then on its
/// resource.
fn first(resource: &[KeyValue], item: &[KeyValue], keys: &[String]) -> Option<String> {
    keys.iter()
        .find_map(|k| text(item, k).or_else(|| text(resource, k)))
}

fn version(resource: &[KeyValue], item: &[KeyValue], target: &Target) -> Result<String, String> {
    first(resource, item, &target.map.version).ok_or_else(|| {
        format!(
            "attribute {}: missing (it names the version)",
            target.map.version.join(" or ")
        )
    })
}

fn unit(resource: &[KeyValue], item: &[KeyValue], target: &Target) -> Option<String> {
    first(resource, item, &target.map.unit)
}

fn segment(resource: &[KeyValue], item: &[KeyValue], target: &Target) -> Map<String, Value> {
    target
        .map
        .segment
        .iter()
        .filter_map(|(key, attr)| {
            let v = text(item, attr).or_else(|| text(resource, attr))?;
            Some((key.clone(), Value::String(v)))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn time(nanos: u64) -> Result<Time, String> {
    if nanos == 0 {
        return Err("time: missing (0)".into());
    }
    Ok(Time((nanos / 1_000_000) as i64))
}

fn line(
    service: &str,
    version: &str,
    unit: &str,
    at: Time,
    segment: &Map<String, Value>,
    values: Map<String, Value>,
) -> String {
    let mut event = json!({
        "ts": at.to_rfc3339(), "service": service, "version": version,
        "unit": unit, "values": values,
    });
    if !segment.is_empty() {
        event["segment"] = Value::Object(segment.clone());
    }
    event.to_string()
}

fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

/// A string attribute (numbers and booleans in their usual text).
fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match value(attributes, key)? {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(attributes: &[KeyValue], key: &str) -> Option<f64> {
    match value(attributes, key)? {
        any_value::Value::DoubleValue(d) => Some(*d),
        any_value::Value::IntValue(i) => Some(*i as f64),
        any_value::Value::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Status;
    use ripcord_core::policy::{Category, Direction};

    fn attr(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn signals() -> Signals {
        let signal = |name: &str, kind: SignalKind| Signal {
            name: name.into(),
            category: Category::Operational,
            kind,
            direction: Direction::HigherIsWorse,
            unit: None,
        };
        let rate = |n: &str, d: &str| SignalKind::Rate {
            numerator: n.into(),
            denominator: d.into(),
        };
        let list = vec![
            signal(
                "gen_latency",
                SignalKind::Latency {
                    field: "gen_latency".into(),
                },
            ),
            signal("error", rate("error", "outputs")),
            signal("hallucination", rate("hallucination", "judged")),
        ];
        let target = Target {
            signals: list,
            map: OtlpSources::default(),
        };
        Signals::from([("svc".to_string(), target)])
    }

    #[test]
    fn a_failed_genai_span_is_one_output_with_its_latency_and_error_and_is_remembered() {
        let resource = [attr("service.name", "svc"), attr("service.version", "v2")];
        let span = Span {
            trace_id: vec![0xab, 0x01],
            start_time_unix_nano: 1_796_000_000_000_000_000,
            end_time_unix_nano: 1_796_000_000_250_000_000,
            attributes: vec![attr("gen_ai.response.id", "r1")],
            status: Some(Status {
                code: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        let (line, response) = span_event(&resource, &span, &signals()).unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["unit"], "ab01", "no unit attribute: the trace id");
        assert_eq!(
            event["values"],
            json!({"outputs": 1, "gen_latency": 250.0, "error": 1})
        );
        let (id, r) = response.unwrap();
        assert_eq!((id.as_str(), r.version.as_str()), ("r1", "v2"));
        let responses = Responses::default();
        responses.remember(id, r.clone());
        let lateness = Dur(30_000);
        assert_eq!(
            responses.find("r1", r.at + lateness, lateness),
            Some(r.clone())
        );
        assert_eq!(
            responses.find("r1", r.at + lateness + Dur(1), lateness),
            None
        );
    }

    #[test]
    fn a_guardrail_that_blocked_flags_moderation_on_the_outputs_own_event() {
        let mut signals = signals();
        if let Some(t) = signals.get_mut("svc") {
            t.signals.push(Signal {
                name: "moderation_fail".into(),
                category: Category::Safety,
                kind: SignalKind::Rate {
                    numerator: "moderation_fail".into(),
                    denominator: "outputs".into(),
                },
                direction: Direction::HigherIsWorse,
                unit: None,
            });
        }
        let resource = [attr("service.name", "svc"), attr("service.version", "v1")];
        let span = |decision: &str| Span {
            start_time_unix_nano: 1_796_000_000_000_000_000,
            end_time_unix_nano: 1_796_000_000_100_000_000,
            attributes: vec![attr("user.id", "u1")],
            events: vec![opentelemetry_proto::tonic::trace::v1::span::Event {
                name: "gen_ai.guardrail.result".into(),
                attributes: vec![attr("gen_ai.guardrail.decision", decision)],
                ..Default::default()
            }],
            ..Default::default()
        };
        for (decision, flag) in [("BLOCK", 1), ("allow", 0)] {
            let (line, _) = span_event(&resource, &span(decision), &signals).unwrap();
            let event: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(event["values"]["outputs"], 1, "{decision}");
            assert_eq!(event["values"]["moderation_fail"], flag, "{decision}");
        }
    }

    fn with_moderation(denominator: &str) -> Signals {
        let mut signals = signals();
        if let Some(t) = signals.get_mut("svc") {
            t.signals.push(Signal {
                name: "moderation_fail".into(),
                category: Category::Safety,
                kind: SignalKind::Rate {
                    numerator: "moderation_fail".into(),
                    denominator: denominator.into(),
                },
                direction: Direction::HigherIsWorse,
                unit: None,
            });
        }
        signals
    }

    #[test]
    fn a_guardrail_log_record_flags_the_response_it_names_over_its_own_denominator() {
        let joined = Response {
            service: "svc".into(),
            version: "v2".into(),
            unit: "u9".into(),
            segment: Map::new(),
            at: Time(1_796_000_000_000),
        };
        let log = |decision: &str| LogRecord {
            event_name: "gen_ai.guardrail.result".into(),
            attributes: vec![
                attr("gen_ai.response.id", "r9"),
                attr("gen_ai.guardrail.decision", decision),
            ],
            ..Default::default()
        };
        let guarded = with_moderation("guarded");
        for (decision, flag) in [("blocked", 1), ("Redact", 1), ("allow", 0)] {
            let line = guardrail_record(&[], &log(decision), &guarded, Some(joined.clone()))
                .unwrap()
                .unwrap();
            let event: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                event["values"],
                json!({"guarded": 1, "moderation_fail": flag}),
                "{decision}"
            );
            assert_eq!(
                (&event["version"], &event["unit"]),
                (&json!("v2"), &json!("u9"))
            );
            assert_eq!(
                event["ts"], "2026-11-30T00:53:20.000Z",
                "the response's time"
            );
        }
        // Over `outputs` the span counted the output already: refused, with why.
        let outputs = with_moderation("outputs");
        let why =
            guardrail_record(&[], &log("blocked"), &outputs, Some(joined.clone())).unwrap_err();
        assert!(
            why.starts_with("moderation_fail counts over `outputs`"),
            "{why}"
        );
        // A policy without moderation_fail takes no guardrails: skipped.
        assert_eq!(
            guardrail_record(&[], &log("blocked"), &signals(), Some(joined.clone())),
            Ok(None)
        );
        let undecided = LogRecord {
            attributes: vec![],
            ..log("x")
        };
        assert_eq!(
            guardrail_record(&[], &undecided, &guarded, Some(joined)),
            Err("gen_ai.guardrail.decision (or gen_ai.guardrail.action): missing".into())
        );
        // As a span event with its own denominator, the span's event
        // carries both.
        let resource = [attr("service.name", "svc"), attr("service.version", "v1")];
        let span = Span {
            end_time_unix_nano: 1_796_000_000_100_000_000,
            attributes: vec![attr("gen_ai.response.id", "r1")],
            events: vec![opentelemetry_proto::tonic::trace::v1::span::Event {
                name: "gen_ai.guardrail.result".into(),
                attributes: vec![attr("gen_ai.guardrail.action", "deny")],
                ..Default::default()
            }],
            ..Default::default()
        };
        let (line, _) = span_event(&resource, &span, &guarded).unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (
                &event["values"]["guarded"],
                &event["values"]["moderation_fail"]
            ),
            (&json!(1), &json!(1))
        );
    }

    #[test]
    fn refusals_past_the_listed_ones_are_counted_not_kept() {
        let mut m = Mapped::default();
        for i in 0..LISTED + 50 {
            m.refuse(format!("item {i}"), "bad".into());
        }
        assert_eq!((m.refused.len(), m.refused_count), (LISTED, LISTED + 50));
        let origin = Origin {
            logs: true,
            resource: 2,
            item: 7,
        };
        assert_eq!(origin.to_string(), "resource_logs[2] log record 7");
    }

    #[test]
    fn a_judges_label_flags_a_rate_with_one_of_its_denominator() {
        let joined = Response {
            service: "svc".into(),
            version: "v1".into(),
            unit: "u1".into(),
            segment: Map::new(),
            at: Time(1_796_000_000_000),
        };
        let log = |label: &str| LogRecord {
            attributes: vec![
                attr("gen_ai.evaluation.name", "hallucination"),
                attr("gen_ai.evaluation.score.label", label),
            ],
            ..Default::default()
        };
        for (label, flag) in [("FAIL", 1), ("pass", 0), ("Yes", 1)] {
            let line =
                evaluation_event(&[], &log(label), &signals(), Some(joined.clone())).unwrap();
            let event: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                event["values"],
                json!({"judged": 1, "hallucination": flag}),
                "{label}"
            );
            assert_eq!(event["version"], "v1");
        }
        let orphan = evaluation_event(&[], &log("fail"), &signals(), None).unwrap_err();
        assert!(
            orphan.starts_with("resource attribute service.name: missing"),
            "{orphan}"
        );
    }

    #[test]
    fn the_policys_sources_choose_version_unit_segment_and_what_an_evaluation_feeds() {
        let mut signals = signals();
        if let Some(t) = signals.get_mut("svc") {
            t.map.version = vec!["gen_ai.request.model".into()];
            t.map.unit = vec!["app.user".into()];
            t.map.segment = vec![("locale".into(), "user.locale".into())];
            t.map.evaluations = vec![ripcord_core::policy::OtlpEvaluation {
                name: "groundedness".into(),
                signal: "hallucination".into(),
                flag: vec!["ungrounded".into()],
            }];
        }
        let resource = [attr("service.name", "svc"), attr("user.locale", "de")];
        let log = |label: &str| LogRecord {
            time_unix_nano: 1_796_000_000_000_000_000,
            attributes: vec![
                attr("gen_ai.evaluation.name", "groundedness"),
                attr("gen_ai.evaluation.score.label", label),
                attr("gen_ai.request.model", "llama-3.1-8b"),
                attr("app.user", "alice"),
            ],
            ..Default::default()
        };
        let line = evaluation_event(&resource, &log("ungrounded"), &signals, None).unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (&event["version"], &event["unit"], &event["segment"]),
            (
                &json!("llama-3.1-8b"),
                &json!("alice"),
                &json!({"locale": "de"})
            )
        );
        assert_eq!(event["values"], json!({"judged": 1, "hallucination": 1}));
        // Only the policy's labels flag now.
        let line = evaluation_event(&resource, &log("fail"), &signals, None).unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["values"]["hallucination"], 0);
    }
}
