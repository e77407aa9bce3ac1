//! Integration tests of the store: one binary (the conformance suite run against every backend).

mod conformance;
mod retention;
