//! Evidence bundles: what is frozen when an incident opens, so that the
//! review can see exactly what the engine saw.
//!
//! Three parts, all pure:
//! - [`Reservoir`], a seeded reservoir sample (Algorithm R) of the raw event
//!   lines of a release: every accepted line is offered, `sample` are kept,
//!   each line with the same chance, and the same seed and lines give the
//!   same sample.
//! - [`redact_line`], which applies the policy's redaction rules to one raw
//!   event line by dotted field path: `drop` removes the field, `hash`
//!   replaces its value by `"sha256:<hex>"` of the value's canonical JSON
//!   text. It edits the line's text in place, so every other field keeps its
//!   exact bytes (a reviewer can compare them with the producer's logs).
//! - [`Bundle`], the frozen record, serialised as canonical JSON (the audit
//!   log's form: sorted keys, no whitespace) and addressed by the SHA-256 of
//!   those bytes. [`open`] refuses bytes that do not hash to their address.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audit::{canonical_json, hex};
use crate::splitmix::SplitMix64;
use crate::time::Time;

/// The `format` of bundles this module writes.
pub const FORMAT: &str = "ripcord-evidence/1";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("event line is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("bundle {address}: its bytes hash to {actual}, not to its address")]
    AddressMismatch { address: String, actual: String },
    #[error("bundle {address}: not a bundle: {message}")]
    Unreadable { address: String, message: String },
}

/// The lowercase hex SHA-256 of some bytes: a bundle's address.
pub fn address(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes).into())
}

/// A seed for a release's reservoir, from its id: the sample of a release
/// is the same however often its journal is replayed.
pub fn seed_for(release_id: &str) -> u64 {
    let digest = Sha256::digest(release_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// A uniform sample of at most `sample` lines from a stream of unknown
/// length (Algorithm R: line `i` replaces a random kept line with
/// probability `sample / (i + 1)`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reservoir {
    sample: usize,
    seen: u64,
    lines: Vec<String>,
    rng: SplitMix64,
}

impl Reservoir {
    pub fn new(sample: usize, seed: u64) -> Reservoir {
        Reservoir {
            sample,
            seen: 0,
            lines: Vec::with_capacity(sample.min(1024)),
            rng: SplitMix64(seed),
        }
    }

    /// Offers one line; it is copied only if kept.
    pub fn offer(&mut self, line: &str) {
        self.seen += 1;
        if self.lines.len() < self.sample {
            self.lines.push(line.to_string());
            return;
        }
        let j = self.rng.below(self.seen);
        if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.lines.get_mut(j)) {
            *slot = line.to_string();
        }
    }

    /// Lines offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept lines (order is the reservoir's, not the stream's).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Drops the kept lines `erase` picks (a purged person's); how many.
    /// The slots they leave are filled by later lines, so the sample stays
    /// uniform over what it is offered from now on.
    pub fn forget(&mut self, erase: impl Fn(&str) -> bool) -> usize {
        let before = self.lines.len();
        self.lines.retain(|l| !erase(l));
        before - self.lines.len()
    }
}

/// Redaction rules: dotted field paths into a raw event's JSON object
/// (`prompt`, `segment.user`). Arrays are not entered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    pub drop: Vec<String>,
    pub hash: Vec<String>,
}

impl Redaction {
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.hash.is_empty()
    }
}

/// Applies the rules to one raw event line. A path that is not there is
/// left alone; a path both dropped and hashed is dropped.
pub fn redact_line(line: &str, rules: &Redaction) -> Result<String, EvidenceError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(_)) => {}
        Ok(_) => return Err(EvidenceError::NotAnObject("not an object".into())),
        Err(e) => return Err(EvidenceError::NotAnObject(e.to_string())),
    }
    let mut text = line.to_string();
    for path in &rules.drop {
        // One member per pass: duplicate keys are all removed.
        while let Some(range) = scan::find_drop(&text, path) {
            text.replace_range(range, "");
        }
    }
    for path in &rules.hash {
        for range in scan::find_values(&text, path).into_iter().rev() {
            let replacement = hashed(&text[range.clone()]);
            text.replace_range(range, &replacement);
        }
    }
    Ok(text)
}

/// `"sha256:<hex>"` of a JSON value's canonical text, as a JSON string.
fn hashed(value_text: &str) -> String {
    let canonical = serde_json::from_str::<Value>(value_text)
        .map(|v| canonical_json(&v))
        .unwrap_or_else(|_| value_text.to_string());
    format!("\"sha256:{}\"", address(canonical.as_bytes()))
}

/// Byte spans of fields in a JSON text known to be valid (checked by
/// serde_json first). Every index is read with `get`, so text that is not
/// valid after all gives "not found", never a panic.
mod scan {
    use std::ops::Range;

    /// One member of an object: where its key starts, and its value's span.
    pub(super) struct Member {
        pub key: String,
        pub start: usize,
        pub value: Range<usize>,
    }

    fn skip_ws(b: &[u8], mut i: usize) -> usize {
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    }

    /// `i` at an opening quote; returns the index after the closing one.
    fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
        i += 1;
        loop {
            match b.get(i)? {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    }

    /// `i` at a value's first byte; returns the index after its last.
    fn value_end(b: &[u8], i: usize) -> Option<usize> {
        match b.get(i)? {
            b'"' => string_end(b, i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                loop {
                    match b.get(j)? {
                        b'"' => {
                            j = string_end(b, j)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            _ => {
                let mut j = i;
                while b
                    .get(j)
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
                {
                    j += 1;
                }
                Some(j)
            }
        }
    }

    /// The members of the object whose `{` is at `open`.
    pub(super) fn members(text: &str, open: usize) -> Option<Vec<Member>> {
        let b = text.as_bytes();
        if b.get(open) != Some(&b'{') {
            return None;
        }
        let mut out = Vec::new();
        let mut i = skip_ws(b, open + 1);
        if b.get(i) == Some(&b'}') {
            return Some(out);
        }
        loop {
            let key_end = string_end(b, i)?;
            let key: String = serde_json::from_str(text.get(i..key_end)?).ok()?;
            let colon = skip_ws(b, key_end);
            let start = skip_ws(b, colon + 1);
            let end = value_end(b, start)?;
            out.push(Member {
                key,
                start: i,
                value: start..end,
            });
            i = skip_ws(b, end);
            match b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                _ => return Some(out),
            }
        }
    }

    /// The members of the object holding the path's last key.
    fn parent<'p>(text: &str, path: &'p str) -> Option<(Vec<Member>, &'p str)> {
        let mut keys: Vec<&str> = path.split('.').collect();
        let last = keys.pop()?;
        let mut open = skip_ws(text.as_bytes(), 0);
        for key in keys {
            let inner = members(text, open)?;
            // With duplicate keys the last one counts, as in serde_json.
            open = inner.iter().rev().find(|m| m.key == key)?.value.start;
        }
        Some((members(text, open)?, last))
    }

    /// The span to cut to remove the first member at `path`, with one of
    /// its separating commas.
    pub(super) fn find_drop(text: &str, path: &str) -> Option<Range<usize>> {
        let (m, key) = parent(text, path)?;
        let k = m.iter().position(|m| m.key == key)?;
        Some(if let Some(next) = m.get(k + 1) {
            m[k].start..next.start
        } else if k > 0 {
            m[k - 1].value.end..m[k].value.end
        } else {
            m[k].start..m[k].value.end
        })
    }

    /// The value spans of every member at `path`, in text order.
    pub(super) fn find_values(text: &str, path: &str) -> Vec<Range<usize>> {
        parent(text, path).map_or_else(Vec::new, |(m, key)| {
            m.into_iter()
                .filter(|m| m.key == key)
                .map(|m| m.value)
                .collect()
        })
    }
}

/// Which policy decided, by content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub version: i64,
    /// Lowercase hex SHA-256 of the policy YAML as stored.
    pub sha256: String,
}

/// One version's provenance document, as registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub version: String,
    pub document: Value,
}

/// One deciding statistic: a criterion's evidence object at a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowStatistic {
    /// The decision's time (RFC 3339) and kind.
    pub at: String,
    pub kind: String,
    pub evidence: Value,
}

/// A frozen evidence bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`FORMAT`].
    pub format: String,
    pub service: String,
    pub policy: PolicyRef,
    /// The release record (the API's JSON).
    pub release: Value,
    /// Baseline first, then candidate.
    pub provenance: Vec<Provenance>,
    /// The release's decision lines (NDJSON, as stored) up to the freeze.
    pub decisions: Vec<String>,
    /// The evidence of every breach and firing among `decisions`.
    pub window_statistics: Vec<WindowStatistic>,
    /// Sampled raw event lines, redacted.
    pub events: Vec<String>,
    /// Lines the reservoir was offered.
    pub events_seen: u64,
    /// Sampled lines left out because they could not be redacted.
    pub events_withheld: u64,
    /// Sampled lines erased afterwards by purges of the people they named.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_purged: u64,
    /// The rules applied to `events`.
    pub redaction: Redaction,
    /// RFC 3339.
    pub frozen_at: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the server knows when an incident opens.
#[derive(Clone, Debug)]
pub struct FreezeInput<'a> {
    pub service: &'a str,
    pub policy_version: i64,
    pub policy_yaml: &'a str,
    pub release: Value,
    pub provenance: Vec<Provenance>,
    pub decisions: Vec<String>,
    pub sample: &'a Reservoir,
    pub redaction: &'a Redaction,
    pub frozen_at: Time,
}

/// A bundle with its canonical bytes and address.
#[derive(Clone, Debug, PartialEq)]
pub struct Frozen {
    pub bundle: Bundle,
    pub bytes: Vec<u8>,
    pub address: String,
}

/// Freezes a bundle: redacts the sample, collects the deciding statistics,
/// serialises canonically and computes the address.
pub fn freeze(input: FreezeInput<'_>) -> Frozen {
    let mut events = Vec::with_capacity(input.sample.lines().len());
    let mut withheld = 0;
    for line in input.sample.lines() {
        // A line that cannot be redacted is withheld: leaking a field the
        // policy says to drop is worse than a smaller sample.
        match redact_line(line, input.redaction) {
            Ok(redacted) => events.push(redacted),
            Err(_) => withheld += 1,
        }
    }
    let bundle = Bundle {
        format: FORMAT.into(),
        service: input.service.into(),
        policy: PolicyRef {
            version: input.policy_version,
            sha256: address(input.policy_yaml.as_bytes()),
        },
        release: input.release,
        provenance: input.provenance,
        window_statistics: window_statistics(&input.decisions),
        decisions: input.decisions,
        events,
        events_seen: input.sample.seen(),
        events_withheld: withheld,
        events_purged: 0,
        redaction: input.redaction.clone(),
        frozen_at: input.frozen_at.to_rfc3339(),
    };
    let bytes = bundle.canonical().into_bytes();
    Frozen {
        address: address(&bytes),
        bundle,
        bytes,
    }
}

impl Bundle {
    /// The canonical JSON text (what is addressed).
    pub fn canonical(&self) -> String {
        // Plain strings, numbers and JSON values: serialising cannot fail.
        canonical_json(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// Reads stored bundle bytes, refusing bytes that do not hash to `address`.
pub fn open(address_: &str, bytes: &[u8]) -> Result<Bundle, EvidenceError> {
    let actual = address(bytes);
    if actual != address_ {
        return Err(EvidenceError::AddressMismatch {
            address: address_.into(),
            actual,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| EvidenceError::Unreadable {
        address: address_.into(),
        message: e.to_string(),
    })
}

/// The evidence objects of the breaches and firings among decision lines.
pub fn window_statistics(decisions: &[String]) -> Vec<WindowStatistic> {
    let mut out = Vec::new();
    for line in decisions {
        let Ok(d) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let kind = d["kind"].as_str().unwrap_or_default();
        if kind != "criterion_breached" && kind != "trigger_fired" {
            continue;
        }
        let at = d["at"].as_str().unwrap_or_default();
        if let Some(evidence) = d["explanation"]["evidence"].as_array() {
            out.extend(evidence.iter().map(|e| WindowStatistic {
                at: at.into(),
                kind: kind.into(),
                evidence: e.clone(),
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn rules(drop: &[&str], hash: &[&str]) -> Redaction {
        Redaction {
            drop: drop.iter().map(|s| s.to_string()).collect(),
            hash: hash.iter().map(|s| s.to_string()).collect(),
        }
    }

    const LINE: &str = r#"{"ts": "2026-11-20T10:00:00Z","service":"support-bot", "prompt":"my card is 4111…","segment":{"locale":"de","user":{"id":"u-17","tier":"pro"}},"values":{"outputs":1,"latency_ms":1.50e2}}"#;

    #[test]
    fn dropping_a_nested_field_leaves_every_other_byte() {
        let out = redact_line(LINE, &rules(&["segment.user.id", "prompt"], &[])).unwrap();
        assert_eq!(
            out,
            r#"{"ts": "2026-11-20T10:00:00Z","service":"support-bot", "segment":{"locale":"de","user":{"tier":"pro"}},"values":{"outputs":1,"latency_ms":1.50e2}}"#
        );
        // The last member, and the only member, go with their comma.
        let out = redact_line(LINE, &rules(&["values.latency_ms", "segment.user"], &[])).unwrap();
        assert_eq!(
            out,
            r#"{"ts": "2026-11-20T10:00:00Z","service":"support-bot", "prompt":"my card is 4111…","segment":{"locale":"de"},"values":{"outputs":1}}"#
        );
        let only = redact_line(
            r#"{ "a" : { "b" : [1, {"c": 2}] } }"#,
            &rules(&["a.b"], &[]),
        );
        assert_eq!(only.unwrap(), r#"{ "a" : {  } }"#);
    }

    #[test]
    fn hashing_replaces_the_value_by_the_sha256_of_its_canonical_json() {
        let out = redact_line(LINE, &rules(&[], &["prompt", "segment.user"])).unwrap();
        let prompt = address(r#""my card is 4111…""#.as_bytes());
        let user = address(br#"{"id":"u-17","tier":"pro"}"#);
        assert_eq!(
            out,
            format!(
                r#"{{"ts": "2026-11-20T10:00:00Z","service":"support-bot", "prompt":"sha256:{prompt}","segment":{{"locale":"de","user":"sha256:{user}"}},"values":{{"outputs":1,"latency_ms":1.50e2}}}}"#
            )
        );
        // The same value written differently hashes the same: reviewers can
        // join hashed fields across producers.
        let spaced = r#"{"segment":{"user":{ "tier" : "pro", "id":"u-17" }}}"#;
        let out = redact_line(spaced, &rules(&[], &["segment.user"])).unwrap();
        assert_eq!(out, format!(r#"{{"segment":{{"user":"sha256:{user}"}}}}"#));
    }

    #[test]
    fn missing_paths_arrays_and_dropped_hashes_are_left_alone() {
        let r = rules(
            &["nope", "prompt.x", "values.outputs.y"],
            &["segment.missing"],
        );
        assert_eq!(redact_line(LINE, &r).unwrap(), LINE);
        let both = redact_line(r#"{"p":1,"q":2}"#, &rules(&["p"], &["p"])).unwrap();
        assert_eq!(both, r#"{"q":2}"#);
        let dup = redact_line(r#"{"p":1,"p":2,"q":3}"#, &rules(&["p"], &[])).unwrap();
        assert_eq!(dup, r#"{"q":3}"#);
        assert!(matches!(
            redact_line("[1]", &r),
            Err(EvidenceError::NotAnObject(_))
        ));
        assert!(matches!(
            redact_line("{\"a\":", &r),
            Err(EvidenceError::NotAnObject(_))
        ));
    }

    /// Nested objects with keys from a small alphabet, so paths collide often.
    fn object() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(Value::from),
            "[a-z é\"\\\\]{0,6}".prop_map(Value::from),
            Just(Value::Null),
            prop::collection::vec(any::<bool>(), 0..3).prop_map(Value::from),
        ];
        let tree = leaf.prop_recursive(3, 24, 4, |inner| {
            prop::collection::btree_map("[abc]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        });
        prop::collection::btree_map("[abc]", tree, 1..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    fn remove(v: &mut Value, path: &[&str]) {
        match path {
            [last] => {
                if let Some(m) = v.as_object_mut() {
                    m.remove(*last);
                }
            }
            [first, rest @ ..] => {
                if let Some(inner) = v.get_mut(*first) {
                    remove(inner, rest);
                }
            }
            [] => {}
        }
    }

    proptest! {
        #[test]
        fn dropping_cuts_one_span_and_changes_nothing_else(
            v in object(), path in "[abc](\\.[abc]){0,2}", pretty in any::<bool>(),
        ) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            let out = redact_line(&text, &rules(&[&path], &[])).unwrap();
            let mut expected = v.clone();
            remove(&mut expected, &path.split('.').collect::<Vec<_>>());
            prop_assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), expected);
            // The output is the input minus one contiguous span: its
            // common prefix and suffix with the input cover all of it.
            let prefix = text.bytes().zip(out.bytes()).take_while(|(a, b)| a == b).count();
            let suffix = text.bytes().rev().zip(out.bytes().rev()).take_while(|(a, b)| a == b).count();
            prop_assert!(prefix + suffix >= out.len(), "{} → {}", text, out);
        }

        #[test]
        fn hashing_replaces_only_the_value(v in object(), path in "[abc](\\.[abc]){0,2}") {
            let text = serde_json::to_string(&v).unwrap();
            let out = redact_line(&text, &rules(&[], &[&path])).unwrap();
            let keys: Vec<&str> = path.split('.').collect();
            let pointer = format!("/{}", keys.join("/"));
            let mut expected = v.clone();
            if let Some(target) = expected.pointer_mut(&pointer) {
                let digest = address(canonical_json(target).as_bytes());
                *target = Value::from(format!("sha256:{digest}"));
            }
            prop_assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), expected);
        }
    }

    #[test]
    fn the_reservoir_is_deterministic_for_a_seed() {
        let run = |seed| {
            let mut r = Reservoir::new(5, seed);
            (0..1000).for_each(|i| r.offer(&i.to_string()));
            r.lines().to_vec()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let mut short = Reservoir::new(5, 1);
        (0..3).for_each(|i| short.offer(&i.to_string()));
        assert_eq!(short.lines(), ["0", "1", "2"]);
        assert_eq!(seed_for("support-bot-1"), seed_for("support-bot-1"));
        assert_ne!(seed_for("support-bot-1"), seed_for("support-bot-2"));
    }

    /// 4,000 seeded runs keeping 100 of 1,000 lines: each line is kept
    /// Binomial(4000, 0.1) times (mean 400, sd 19); every one of the 1,000
    /// lies within 6 sd (a chance of about 2e-6 of a false failure), and the
    /// chi-square of the counts (999 degrees of freedom, scaled by the
    /// binomial variance 360) stays under its 99.9th percentile, 1143.
    #[test]
    fn the_reservoir_keeps_every_line_with_the_same_chance() {
        const RUNS: u64 = 4000;
        let lines: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let mut kept = vec![0u32; lines.len()];
        for seed in 0..RUNS {
            let mut r = Reservoir::new(100, seed);
            lines.iter().for_each(|l| r.offer(l));
            assert_eq!(r.lines().len(), 100);
            for l in r.lines() {
                kept[l.parse::<usize>().unwrap()] += 1;
            }
        }
        let (mean, var) = (400.0_f64, 360.0_f64);
        let worst = kept
            .iter()
            .map(|k| (f64::from(*k) - mean).abs())
            .fold(0.0, f64::max);
        assert!(worst < 6.0 * var.sqrt(), "a line kept {worst} off the mean");
        let chi2: f64 = kept
            .iter()
            .map(|k| (f64::from(*k) - mean).powi(2) / var)
            .sum();
        assert!(chi2 < 1143.0, "chi-square {chi2}");
        // The first lines (always kept at first) and the last (offered once)
        // are not favoured.
        let head: u32 = kept[..100].iter().sum();
        let tail: u32 = kept[900..].iter().sum();
        for part in [head, tail] {
            assert!(
                (f64::from(part) - 40_000.0).abs() < 1000.0,
                "{head} / {tail}"
            );
        }
    }

    fn input<'a>(
        sample: &'a Reservoir,
        redaction: &'a Redaction,
        yaml: &'a str,
    ) -> FreezeInput<'a> {
        let breached = json!({"at": "2026-11-20T10:16:18.000Z", "kind": "criterion_breached",
            "service": "support-bot", "explanation": {"summary": "s", "release": "r",
            "evidence": [{"criterion": "moderation_rel", "estimate": 2.6}]}});
        FreezeInput {
            service: "support-bot",
            policy_version: 3,
            policy_yaml: yaml,
            release: json!({"id": "support-bot-1", "baseline": "v12", "candidate": "v13"}),
            provenance: vec![
                Provenance {
                    version: "v12".into(),
                    document: json!({"model": "m-12"}),
                },
                Provenance {
                    version: "v13".into(),
                    document: json!({"model": "m-13"}),
                },
            ],
            decisions: vec![
                r#"{"at":"2026-11-20T10:00:00.000Z","kind":"action","action":"ramp"}"#.into(),
                breached.to_string(),
            ],
            sample,
            redaction,
            frozen_at: Time(1_795_169_778_000),
        }
    }

    #[test]
    fn a_bundle_is_addressed_by_its_canonical_bytes() {
        let mut sample = Reservoir::new(2, 9);
        sample.offer(r#"{"prompt":"secret","values":{"outputs":1}}"#);
        sample.offer("not json");
        let redaction = rules(&["prompt"], &[]);
        let a = freeze(input(&sample, &redaction, "service: support-bot\n"));
        let b = freeze(input(&sample, &redaction, "service: support-bot\n"));
        assert_eq!(a, b);
        assert_eq!(a.address, address(&a.bytes));
        assert_eq!(a.bundle.events, [r#"{"values":{"outputs":1}}"#]);
        assert_eq!((a.bundle.events_seen, a.bundle.events_withheld), (2, 1));
        assert_eq!(a.bundle.window_statistics.len(), 1);
        assert_eq!(a.bundle.window_statistics[0].evidence["estimate"], 2.6);
        assert_eq!(a.bundle.policy.sha256, address(b"service: support-bot\n"));
        let text = String::from_utf8(a.bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"decisions":["#), "{text}");
        assert_eq!(open(&a.address, &a.bytes).unwrap(), a.bundle);
        // Any different input is a different address.
        let c = freeze(input(&sample, &redaction, "service: support-bot \n"));
        assert_ne!(c.address, a.address);
    }

    #[test]
    fn one_changed_byte_changes_the_address_and_open_refuses_it() {
        let sample = Reservoir::new(2, 9);
        let redaction = Redaction::default();
        let frozen = freeze(input(&sample, &redaction, "y"));
        for i in 0..frozen.bytes.len() {
            let mut changed = frozen.bytes.clone();
            changed[i] ^= 0x01;
            assert_ne!(address(&changed), frozen.address, "byte {i}");
            assert!(matches!(
                open(&frozen.address, &changed),
                Err(EvidenceError::AddressMismatch { .. })
            ));
        }
    }
}
