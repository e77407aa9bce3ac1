//! Integration tests of the engine: one binary, shared helpers in `support`.

mod criteria;
mod ndjson;
mod policy;
mod release;
mod statistics;
mod support;
