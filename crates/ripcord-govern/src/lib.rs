//! Governance as a machine: incidents, approval requests, acknowledgement
//! deadlines, escalation, status updates and playbook steps. Like the
//! engine it does no I/O and reads no clock: the server (or a test) passes
//! time and inputs in and writes what comes out.

pub mod record;
