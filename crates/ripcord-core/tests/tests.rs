//! Integration tests of the engine: one binary, shared helpers in `support`.

mod criteria;
mod governance;
mod ndjson;
mod policy;
mod readings;
mod release;
mod snapshot;
mod statistics;
mod support;
