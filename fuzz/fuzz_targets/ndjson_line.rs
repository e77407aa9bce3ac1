//! The NDJSON event parser (`ripcord_core::ndjson::parse_line`): never
//! panics, and every event it accepts writes back to a line that parses to
//! the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripcord_core::ndjson::{Line, event_to_line, parse_line, release_to_line};

fuzz_target!(|data: &[u8]| {
    match parse_line(data) {
        Ok(Line::Event(event)) => {
            let again = event_to_line(&event);
            assert_eq!(
                parse_line(again.as_bytes()),
                Ok(Line::Event(event)),
                "{again}"
            );
        }
        Ok(Line::Release(release)) => {
            let again = release_to_line(&release);
            assert_eq!(
                parse_line(again.as_bytes()),
                Ok(Line::Release(release)),
                "{again}"
            );
        }
        Ok(Line::Blank) | Err(_) => {}
    }
});
