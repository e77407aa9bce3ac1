//! The NDJSON event format of replay files and the ingest API.
//!
//! One JSON object per line: an event
//! `{"ts":"…","service":"…","version":"…","unit":"…","segment":{…},"values":{…}}`
//! or a release declaration `{"ts":"…","release":{"service","baseline","candidate","share"}}`.
//! Unknown fields are allowed and ignored. Errors name the field:
//! `values.latency_ms: expected a number, got "fast"`.
//!
//! Parsing borrows strings from the line wherever JSON escapes allow, so the
//! replay hot path allocates only the two small vectors of an event.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::event::{Event, Release};
use crate::time::Time;

/// One parsed line.
#[derive(Clone, Debug, PartialEq)]
pub enum Line<'a> {
    Event(Event<'a>),
    Release(Release),
    /// An empty or whitespace-only line.
    Blank,
}

/// What was wrong with a line, and where in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The field path (`values.latency_ms`), empty when the line as a whole
    /// is malformed.
    pub field: String,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for LineError {}

fn error(field: impl Into<String>, message: impl Into<String>) -> LineError {
    LineError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses one NDJSON line.
pub fn parse_line(line: &[u8]) -> Result<Line<'_>, LineError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(Line::Blank);
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let raw = Any(LineVisitor)
        .deserialize(&mut de)
        .map_err(|e| json_error(&e))?;
    de.end().map_err(|e| json_error(&e))?;
    raw.validate()
}

/// Turns a serde_json error into a field-naming error. Our visitors report
/// their own field problems as `field\u{0}message`; everything else is a
/// syntax error with its column.
fn json_error(e: &serde_json::Error) -> LineError {
    let text = e.to_string();
    // serde_json appends " at line L column C"; keep the column, drop the line (always 1).
    let (body, column) = match text.rfind(" at line ") {
        Some(i) => {
            let column = text[i..].rsplit(' ').next().unwrap_or("").to_string();
            (text[..i].to_string(), Some(column))
        }
        None => (text.clone(), None),
    };
    if let Some((field, message)) = body.split_once('\u{0}') {
        return error(field, message);
    }
    match (e.classify(), column) {
        (serde_json::error::Category::Data, _) => error("", body),
        (_, Some(c)) => error("", format!("malformed JSON at column {c}: {body}")),
        (_, None) => error("", format!("malformed JSON: {body}")),
    }
}

fn field_error<E: de::Error>(field: &str, message: impl fmt::Display) -> E {
    E::custom(format!("{field}\u{0}{message}"))
}

#[derive(Default)]
struct RawLine<'a> {
    ts: Option<Cow<'a, str>>,
    service: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
    unit: Option<Cow<'a, str>>,
    segment: Option<Segment<'a>>,
    values: Option<Values<'a>>,
    release: Option<RawRelease<'a>>,
}

#[derive(Default)]
struct RawRelease<'a> {
    service: Option<Cow<'a, str>>,
    baseline: Option<Cow<'a, str>>,
    candidate: Option<Cow<'a, str>>,
    share: Option<f64>,
}

struct LineVisitor;

impl<'de> Visitor<'de> for LineVisitor {
    type Value = RawLine<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (one event or release per line)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawLine::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let text = |map: &mut A, field: &str| -> Result<Option<Cow<'de, str>>, A::Error> {
                match map.next_value_seed(Expect {
                    parent: "",
                    field,
                    kind: Kind::Text,
                })? {
                    Value::Text(t) => Ok(Some(t)),
                    Value::Number(_) => Ok(None),
                }
            };
            match key.as_ref() {
                "ts" => raw.ts = text(&mut map, "ts")?,
                "service" => raw.service = text(&mut map, "service")?,
                "version" => raw.version = text(&mut map, "version")?,
                "unit" => raw.unit = text(&mut map, "unit")?,
                "segment" => raw.segment = Some(map.next_value_seed(Any(SegmentVisitor))?),
                "values" => raw.values = Some(map.next_value_seed(Any(ValuesVisitor))?),
                "release" => raw.release = Some(map.next_value_seed(Any(ReleaseVisitor))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

/// Visitor methods for everything but an object: a nested field that must
/// be an object reports by name what it got instead.
macro_rules! only_objects {
    ($field:expr) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Err(not_object($field, &v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(not_object($field, &v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(not_object($field, &v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(not_object($field, &v.to_string()))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(not_object($field, &format!("{v:?}")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(not_object($field, "null"))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Err(not_object($field, "an array"))
        }
    };
}

fn not_object<E: de::Error>(field: &str, got: &str) -> E {
    field_error(field, format!("expected an object, got {got}"))
}

struct ReleaseVisitor;

impl<'de> Visitor<'de> for ReleaseVisitor {
    type Value = RawRelease<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    only_objects!("release");

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawRelease::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let kind = if key == "share" {
                Kind::Number
            } else {
                Kind::Text
            };
            let value = map.next_value_seed(Expect {
                parent: "release",
                field: &key,
                kind,
            })?;
            match (key.as_ref(), value) {
                ("service", Value::Text(t)) => raw.service = Some(t),
                ("baseline", Value::Text(t)) => raw.baseline = Some(t),
                ("candidate", Value::Text(t)) => raw.candidate = Some(t),
                ("share", Value::Number(n)) => raw.share = Some(n),
                _ => {}
            }
        }
        Ok(raw)
    }
}

impl<'a> RawLine<'a> {
    fn validate(self) -> Result<Line<'a>, LineError> {
        let ts = self.ts.ok_or_else(|| error("ts", "missing field"))?;
        let ts = crate::rfc3339::parse(&ts)
            .ok_or_else(|| error("ts", format!("invalid RFC 3339 timestamp {:?}", ts)))?;
        if let Some(r) = self.release {
            return r.validate(ts).map(Line::Release);
        }
        let required = |v: Option<Cow<'a, str>>, name: &str| match v {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(error(name, "must not be empty")),
            None => Err(error(name, "missing field")),
        };
        Ok(Line::Event(Event {
            ts,
            service: required(self.service, "service")?,
            version: required(self.version, "version")?,
            unit: required(self.unit, "unit")?,
            segment: self.segment.map(|s| s.0).unwrap_or_default(),
            values: self
                .values
                .ok_or_else(|| error("values", "missing field"))?
                .0,
        }))
    }
}

impl RawRelease<'_> {
    fn validate(self, ts: Time) -> Result<Release, LineError> {
        let required = |v: Option<Cow<'_, str>>, name: &str| match v {
            Some(s) if !s.is_empty() => Ok(s.into_owned()),
            Some(_) => Err(error(format!("release.{name}"), "must not be empty")),
            None => Err(error(format!("release.{name}"), "missing field")),
        };
        let share = self
            .share
            .ok_or_else(|| error("release.share", "missing field"))?;
        if !(share > 0.0 && share <= 1.0) {
            return Err(error(
                "release.share",
                format!("must be in (0, 1], got {share}"),
            ));
        }
        Ok(Release {
            ts,
            service: required(self.service, "service")?,
            baseline: required(self.baseline, "baseline")?,
            candidate: required(self.candidate, "candidate")?,
            share,
        })
    }
}

/// `segment`: an object of string values.
struct Segment<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

struct SegmentVisitor;

impl<'de> Visitor<'de> for SegmentVisitor {
    type Value = Segment<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings")
    }

    only_objects!("segment");

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value = map.next_value_seed(Expect {
                parent: "segment",
                field: &key,
                kind: Kind::Text,
            })?;
            if let Value::Text(v) = value {
                out.push((key, v));
            }
        }
        Ok(Segment(out))
    }
}

/// `values`: an object of finite numbers (booleans count as 0/1).
struct Values<'a>(Vec<(Cow<'a, str>, f64)>);

struct ValuesVisitor;

impl<'de> Visitor<'de> for ValuesVisitor {
    type Value = Values<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of numbers")
    }

    only_objects!("values");

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(8);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if let Value::Number(v) = map.next_value_seed(Expect {
                parent: "values",
                field: &key,
                kind: Kind::Number,
            })? {
                out.push((key, v));
            }
        }
        Ok(Values(out))
    }
}

/// Runs a visitor through `deserialize_any`, so that it sees what is there.
struct Any<V>(V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Any<V> {
    type Value = V::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self.0)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Number,
    Text,
}

enum Value<'a> {
    Number(f64),
    Text(Cow<'a, str>),
}

/// A value of an expected kind whose error names its field and says what
/// it got instead.
struct Expect<'f> {
    /// The enclosing object (`values`), empty at the top level.
    parent: &'static str,
    field: &'f str,
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for Expect<'_> {
    type Value = Value<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Expect<'_> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Number => "a number",
            Kind::Text => "a string",
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Number if v.is_finite() => Ok(Value::Number(v)),
            Kind::Number => Err(field_error(&self.path(), "must be a finite number")),
            Kind::Text => Err(self.wrong(&v.to_string())),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_f64(v as f64)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Number => Ok(Value::Number(if v { 1.0 } else { 0.0 })),
            Kind::Text => Err(self.wrong(&v.to_string())),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Text => Ok(Value::Text(Cow::Borrowed(v))),
            Kind::Number => Err(self.wrong(&format!("{v:?}"))),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Text => Ok(Value::Text(Cow::Owned(v.to_string()))),
            Kind::Number => Err(self.wrong(&format!("{v:?}"))),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.wrong("null"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Err(self.wrong("an object"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Err(self.wrong("an array"))
    }
}

impl Expect<'_> {
    /// The field's path, built only when there is an error to report.
    fn path(&self) -> String {
        if self.parent.is_empty() {
            self.field.to_string()
        } else {
            format!("{}.{}", self.parent, self.field)
        }
    }

    fn wrong<E: de::Error>(&self, got: &str) -> E {
        let want = match self.kind {
            Kind::Number => "a number",
            Kind::Text => "a string",
        };
        field_error(&self.path(), format!("expected {want}, got {got}"))
    }
}

/// How an ingest body holds its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON array of objects.
    JsonArray,
    /// One object per line.
    Ndjson,
}

/// Why walking a body stopped.
#[derive(Debug, PartialEq)]
pub enum BodyError<E> {
    /// The body is not a JSON array (NDJSON bodies are never malformed as a
    /// whole: each line is judged on its own).
    Malformed(String),
    /// The callback refused to go on.
    Stopped(E),
}

/// Calls `item(index, bytes)` for each item of an ingest body in order —
/// each non-blank line of NDJSON (indexed by line), or each element of a
/// JSON array — without collecting them first, so that memory does not
/// grow with the number of items. Stops at the first error of `item`.
pub fn each_item<'a, E>(
    body: &'a [u8],
    format: BodyFormat,
    mut item: impl FnMut(usize, &'a [u8]) -> Result<(), E>,
) -> Result<(), BodyError<E>> {
    match format {
        BodyFormat::Ndjson => {
            for (index, line) in body.split(|b| *b == b'\n').enumerate() {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    item(index, line).map_err(BodyError::Stopped)?;
                }
            }
            Ok(())
        }
        BodyFormat::JsonArray => {
            let mut stopped = None;
            let mut de = serde_json::Deserializer::from_slice(body);
            let walked = de::Deserializer::deserialize_seq(
                &mut de,
                EachItem {
                    item: &mut item,
                    stopped: &mut stopped,
                },
            )
            .and_then(|()| de.end());
            match (stopped, walked) {
                (Some(e), _) => Err(BodyError::Stopped(e)),
                (None, Err(e)) => Err(BodyError::Malformed(e.to_string())),
                (None, Ok(())) => Ok(()),
            }
        }
    }
}

/// Feeds each element of a JSON array to a callback as its raw bytes.
struct EachItem<'p, F, E> {
    item: &'p mut F,
    stopped: &'p mut Option<E>,
}

impl<'de, F, E> Visitor<'de> for EachItem<'_, F, E>
where
    F: FnMut(usize, &'de [u8]) -> Result<(), E>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(raw) = seq.next_element::<&'de serde_json::value::RawValue>()? {
            if let Err(e) = (self.item)(index, raw.get().as_bytes()) {
                *self.stopped = Some(e);
                return Err(de::Error::custom("stopped"));
            }
            index += 1;
        }
        Ok(())
    }
}

/// Writes an event as one NDJSON line (no trailing newline), keeping the
/// order of segment and value fields.
pub fn event_to_line(ev: &Event<'_>) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(256);
    let mut ts = Vec::with_capacity(24);
    crate::rfc3339::format_into(ev.ts, &mut ts);
    let _ = write!(
        s,
        r#"{{"ts":"{}","service":{},"version":{},"unit":{},"segment":{{"#,
        String::from_utf8_lossy(&ts),
        quote(&ev.service),
        quote(&ev.version),
        quote(&ev.unit)
    );
    for (i, (k, v)) in ev.segment.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}{}:{}", quote(k), quote(v));
    }
    s.push_str(r#"},"values":{"#);
    for (i, (k, v)) in ev.values.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}{}:{}", quote(k), number(*v));
    }
    s.push_str("}}");
    s
}

/// Writes a release declaration as one NDJSON line (no trailing newline).
pub fn release_to_line(r: &Release) -> String {
    format!(
        r#"{{"ts":"{}","release":{{"service":{},"baseline":{},"candidate":{},"share":{}}}}}"#,
        r.ts.to_rfc3339(),
        quote(&r.service),
        quote(&r.baseline),
        quote(&r.candidate),
        number(r.share)
    )
}

fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Whole numbers print without a fraction (`"outputs":1`), others in the
/// shortest form that reads back to the same value.
pub(crate) fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        format!("{}", v as i64)
    } else {
        serde_json::Value::from(v).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"ts":"2026-11-20T10:00:00.120Z","service":"support-bot","version":"v13","unit":"u-81","segment":{"locale":"de"},"values":{"outputs":1,"hallucination":0,"moderation_fail":0,"latency_ms":812.0,"utility":0.81}}"#;

    fn err(line: &str) -> String {
        match parse_line(line.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(l) => panic!("parsed: {l:?}"),
        }
    }

    #[test]
    fn the_documented_event_line_parses_with_every_field() {
        let Line::Event(ev) = parse_line(LINE.as_bytes()).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(ev.ts.to_rfc3339(), "2026-11-20T10:00:00.120Z");
        assert_eq!(ev.service, "support-bot");
        assert_eq!(ev.version, "v13");
        assert_eq!(ev.unit, "u-81");
        assert_eq!(ev.segment_value("locale"), Some("de"));
        assert_eq!(ev.value("latency_ms"), Some(812.0));
        assert_eq!(ev.value("utility"), Some(0.81));
        assert_eq!(ev.values.len(), 5);
    }

    #[test]
    fn a_release_line_declares_a_release() {
        let line = r#"{"ts":"2026-11-20T10:00:00Z","release":{"service":"support-bot","baseline":"v12","candidate":"v13","share":0.05}}"#;
        assert_eq!(
            parse_line(line.as_bytes()).unwrap(),
            Line::Release(Release {
                ts: Time::parse_rfc3339("2026-11-20T10:00:00Z").unwrap(),
                service: "support-bot".into(),
                baseline: "v12".into(),
                candidate: "v13".into(),
                share: 0.05,
            })
        );
    }

    #[test]
    fn extra_fields_are_ignored() {
        let line = LINE.replace("\"unit\"", "\"trace_id\":{\"a\":[1,2]},\"unit\"");
        assert!(matches!(parse_line(line.as_bytes()), Ok(Line::Event(_))));
    }

    #[test]
    fn errors_name_the_field_and_what_was_there() {
        assert_eq!(
            err(&LINE.replace("812.0", "\"fast\"")),
            r#"values.latency_ms: expected a number, got "fast""#
        );
        assert_eq!(
            err(&LINE.replace("\"2026-11-20T10:00:00.120Z\"", "\"yesterday\"")),
            r#"ts: invalid RFC 3339 timestamp "yesterday""#
        );
        assert_eq!(
            err(&LINE.replace("\"version\":\"v13\",", "")),
            "version: missing field"
        );
        assert_eq!(
            err(&LINE.replace("\"de\"", "7")),
            "segment.locale: expected a string, got 7"
        );
        // serde_json refuses the number while reading it, before any field
        // is known: the column points at it.
        assert_eq!(
            err(&LINE.replace("812.0", "1e400")),
            "malformed JSON at column 191: number out of range"
        );
        assert_eq!(
            err(&LINE.replace("812.0", "null")),
            "values.latency_ms: expected a number, got null"
        );
        assert_eq!(
            err(
                r#"{"ts":"2026-11-20T10:00:00Z","release":{"service":"s","baseline":"a","candidate":"b","share":1.5}}"#
            ),
            "release.share: must be in (0, 1], got 1.5"
        );
    }

    #[test]
    fn malformed_json_says_where() {
        assert_eq!(
            err(r#"{"ts": "2026-11-20T10:00:00Z", "service" "x"}"#),
            "malformed JSON at column 42: expected `:`"
        );
        assert_eq!(
            err("[1,2]"),
            "invalid type: sequence, expected a JSON object (one event or release per line)"
        );
        assert_eq!(
            err(&LINE.replace("\"support-bot\"", "5")),
            "service: expected a string, got 5"
        );
        assert_eq!(
            err(&LINE.replace("{\"locale\":\"de\"}", "\"de\"")),
            "segment: expected an object, got \"de\""
        );
    }

    #[test]
    fn a_release_line_round_trips() {
        let line = r#"{"ts":"2026-11-20T10:00:00.000Z","release":{"service":"s","baseline":"a","candidate":"b","share":0.05}}"#;
        let Line::Release(r) = parse_line(line.as_bytes()).unwrap() else {
            panic!("not a release")
        };
        assert_eq!(release_to_line(&r), line);
    }

    #[test]
    fn bodies_are_walked_item_by_item() {
        let walk = |body: &str, format| {
            let mut seen = Vec::new();
            let r = each_item(body.as_bytes(), format, |i, b| {
                seen.push((i, String::from_utf8_lossy(b).to_string()));
                if b == b"9" { Err("nine") } else { Ok(()) }
            });
            (r, seen)
        };
        let (r, seen) = walk("{\"a\":1}\n\n  \n[2]\n", BodyFormat::Ndjson);
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![(0, "{\"a\":1}".into()), (3, "[2]".into())]);
        let (r, seen) = walk(" [ {\"a\": [1]} , 7 ] ", BodyFormat::JsonArray);
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![(0, "{\"a\": [1]}".into()), (1, "7".into())]);
        assert_eq!(
            walk("[1, 9, 3]", BodyFormat::JsonArray).0,
            Err(BodyError::Stopped("nine"))
        );
        assert!(matches!(
            walk("{}", BodyFormat::JsonArray).0,
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            walk("[1,", BodyFormat::JsonArray).0,
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            walk("[1] x", BodyFormat::JsonArray).0,
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn blank_lines_are_blank() {
        assert_eq!(parse_line(b"   \r").unwrap(), Line::Blank);
    }

    #[test]
    fn written_lines_parse_back_to_the_same_event() {
        let Line::Event(ev) = parse_line(LINE.as_bytes()).unwrap() else {
            panic!("not an event")
        };
        let again = event_to_line(&ev);
        assert_eq!(parse_line(again.as_bytes()).unwrap(), Line::Event(ev));
    }
}
