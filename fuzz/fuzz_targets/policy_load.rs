//! The policy loader (`ripcord_core::policy::load_policy`): YAML text to a
//! validated `Policy`, or every problem as diagnostics. Never panics, and
//! the diagnostics render (with their caret under the place) whatever the
//! text, since they point into it by line and column.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripcord_core::policy::load_policy;

fuzz_target!(|data: &[u8]| {
    // The server and the CLI read policies as UTF-8 text; other bytes
    // never reach the loader.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_policy(text, "fuzz.yaml") {
        Ok(_) => {}
        Err(diagnostics) => {
            assert!(!diagnostics.items.is_empty(), "refused without a reason");
            let _ = diagnostics.to_string();
        }
    }
});
