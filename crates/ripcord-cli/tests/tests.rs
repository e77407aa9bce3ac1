//! Integration tests of the `ripcord` command: one binary, shared set-up in `support`.

mod audit;
mod cli;
mod dashboard;
mod drill;
mod evidence;
mod faults;
mod incident_artifacts;
mod nats;
mod postgres;
mod recovery;
mod report;
mod serve;
mod support;
mod template;
mod token;
