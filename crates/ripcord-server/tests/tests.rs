//! Integration tests of the live service: one binary, shared set-up in `support`.

mod after_rollback;
mod api;
mod cluster;
mod dashboard;
mod failstop;
mod gov_server;
mod governance;
mod governance_record;
mod ingest_abuse;
mod layering;
mod notify;
mod ofrep;
mod openapi;
mod otlp;
mod prometheus;
mod regulatory;
mod retention;
mod reviews;
mod rights;
mod roles;
mod series;
mod sinks;
mod snapshots;
mod support;
mod tokens_and_clients;
mod webhooks;
