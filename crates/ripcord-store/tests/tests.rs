//! Integration tests of the store: one binary (the conformance suite run against every backend).

#[macro_use]
mod conformance;
mod lease;
mod retention;
