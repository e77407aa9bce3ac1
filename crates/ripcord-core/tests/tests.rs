//! Integration tests of the engine: one binary, shared helpers in `support`.

mod release;
mod statistics;
mod support;
