//! The policy-test runner (see below).
