//! Governance as a machine: incidents, approval requests, acknowledgement
//! deadlines, escalation, status updates and playbook steps. Like the
//! engine it does no I/O and reads no clock: the server (or a test) passes
//! time and inputs in and writes what comes out.

pub mod command;
pub mod decisions;
pub mod effects;
pub mod machine;
pub mod record;
pub mod regulatory;
pub mod requests;
pub mod steps;
pub mod timer;
pub mod words;

pub use command::{IncidentCommand, Person, Refusal, on_command};
pub use decisions::{Evidence, Sealed};
pub use effects::{AuditRecord, DocChange, Effects, Messenger, Metric, Notification};
pub use machine::{ENGINE, Governance, Setting};
pub use record::{IncidentReport, ReleaseFacts};
pub use regulatory::{Classify, Filed, Regulatory, RegulatoryClass, RegulatoryClasses};
pub use requests::{ApprovalAsk, Asked, MAX_PENDING_PER_PRINCIPAL, NewRequest, vote};
pub use steps::{StepOutcome, StepRun};
pub use timer::{Due, TimerBody, TimerChange};
pub use words::{NotifyKind, ReportStage};
