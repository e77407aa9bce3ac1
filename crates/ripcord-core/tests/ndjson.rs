//! The event reader never panics, whatever it is fed, and what the writer
//! writes reads back unchanged.

use std::borrow::Cow;

use proptest::prelude::*;
use ripcord_core::ndjson::{Line, event_to_line, parse_line};
use ripcord_core::{Event, Time};

const LINE: &str = r#"{"ts":"2026-11-20T10:00:00.120Z","service":"support-bot","version":"v13","unit":"u-81","segment":{"locale":"de"},"values":{"outputs":1,"hallucination":0,"moderation_fail":0,"latency_ms":812.0,"utility":0.81}}"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_line(&bytes);
    }

    #[test]
    fn mutated_valid_lines_never_panic(
        edits in proptest::collection::vec((0usize..LINE.len(), any::<u8>()), 1..6),
        cut in 0usize..=LINE.len(),
    ) {
        let mut bytes = LINE.as_bytes().to_vec();
        for (at, b) in edits {
            bytes[at] = b;
        }
        let _ = parse_line(&bytes);
        let _ = parse_line(&bytes[..cut]);
    }

    #[test]
    fn written_events_read_back_unchanged(
        ms in 0i64..4_000_000_000_000,
        unit in "\\PC{1,12}",
        locale in "[a-z\"\\\\ ]{1,5}",
        values in proptest::collection::vec(("[a-z_]{1,10}", -1e9f64..1e9), 0..6),
    ) {
        // Value names must be distinct for a faithful round trip (JSON keeps the last).
        let mut seen = std::collections::HashSet::new();
        let values: Vec<_> = values
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .map(|(k, v)| (Cow::Owned(k), v))
            .collect();
        let ev = Event {
            ts: Time(ms),
            service: Cow::Borrowed("svc"),
            version: Cow::Borrowed("v1"),
            unit: Cow::Owned(unit),
            segment: vec![(Cow::Borrowed("locale"), Cow::Owned(locale))],
            values,
        };
        let line = event_to_line(&ev);
        let Line::Event(back) = parse_line(line.as_bytes()).unwrap() else {
            panic!("not an event: {line}")
        };
        // serde_json's fast float parser may be off by one unit in the last
        // place; everything else is exact.
        prop_assert_eq!(back.values.len(), ev.values.len());
        for ((k1, v1), (k2, v2)) in back.values.iter().zip(&ev.values) {
            prop_assert_eq!(k1, k2);
            prop_assert!((v1 - v2).abs() <= v2.abs() * 1e-15, "{} vs {}", v1, v2);
        }
        prop_assert_eq!(Event { values: Vec::new(), ..back }, Event { values: Vec::new(), ..ev });
    }
}
