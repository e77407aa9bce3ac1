//! Integration tests of the engine: one binary, shared helpers in `support`.

mod criteria;
mod ndjson;
mod release;
mod statistics;
mod support;
