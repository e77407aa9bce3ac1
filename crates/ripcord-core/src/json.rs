//! JSON of ripcord's own plain types: records, documents and views that
//! derive `Serialize` over structs, strings, numbers, options, sequences
//! and string-keyed maps. serde_json fails only on a map whose keys are not
//! strings or on a `Serialize` that reports an error of its own, so for
//! these types it cannot fail (a non-finite number is written `null`): an
//! error is a bug in the type, and stops rather than storing an empty or
//! `null` document in its place.

use serde::Serialize;
use serde_json::Value;

/// `x` as a JSON value.
pub fn value<T: Serialize + ?Sized>(x: &T) -> Value {
    match serde_json::to_value(x) {
        Ok(v) => v,
        Err(e) => unreachable!("{} did not serialise: {e}", std::any::type_name::<T>()),
    }
}

/// `x` as one line of JSON, without the newline.
pub fn line<T: Serialize + ?Sized>(x: &T) -> String {
    match serde_json::to_string(x) {
        Ok(s) => s,
        Err(e) => unreachable!("{} did not serialise: {e}", std::any::type_name::<T>()),
    }
}
