//! The API description served at `/openapi.json`.

use serde_json::Value;

/// The OpenAPI 3.1 document, kept as a file beside this module so that it
/// reads (and diffs) as the document it is.
pub fn document() -> Value {
    serde_json::from_str(include_str!("openapi.json")).unwrap_or(Value::Null)
}
