//! The ingest body parser as `POST /v1/events` runs it: the body walked
//! item by item (`ndjson::each_item`, JSON array or NDJSON, chosen by the
//! first byte), each item parsed, each event checked against the per-event
//! limits under the example policy. Never panics; indices only grow.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ripcord_core::Policy;
use ripcord_core::limits::EventLimits;
use ripcord_core::ndjson::{BodyFormat, Line, each_item, parse_line};
use ripcord_core::policy::load_policy;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let yaml = include_str!("../../examples/conversational-agent/policy.yaml");
        load_policy(yaml, "policy.yaml").unwrap_or_else(|d| panic!("{d}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let format = if first % 2 == 0 {
        BodyFormat::JsonArray
    } else {
        BodyFormat::Ndjson
    };
    let limits = EventLimits::default();
    let mut last = None;
    let _ = each_item(body, format, |index, item| {
        assert!(
            last.is_none_or(|l| index > l),
            "index {index} after {last:?}"
        );
        last = Some(index);
        if let Ok(Line::Event(event)) = parse_line(item) {
            if limits.check(policy(), &event).is_ok() {
                for (_, v) in &event.values {
                    assert!(v.is_finite());
                }
            }
        }
        // Stop now and then, as the server does at its item cap.
        if index > 1000 { Err(()) } else { Ok(()) }
    });
});
