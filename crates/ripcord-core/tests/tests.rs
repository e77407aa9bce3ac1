//! Integration tests of the engine: one binary, shared helpers in `support`.

mod criteria;
mod governance;
mod ndjson;
mod policy;
mod release;
mod statistics;
mod support;
