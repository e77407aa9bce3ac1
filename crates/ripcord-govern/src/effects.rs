//! What the machine asks its driver to do: store documents, set and cancel
//! timers, send notifications, append audit records, count metrics. The
//! driver turns them into one store batch; nothing here is serialised
//! until then.

use ripcord_core::Time;
use serde_json::Value;

use crate::record::{Incident, Request};
use crate::timer::TimerChange;
use crate::words::{IncidentKind, NotifyKind};

#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    pub docs: Vec<DocChange>,
    pub timers: Vec<TimerChange>,
    /// Notifications the messenger accepted, in order.
    pub notifications: Vec<Notification>,
    pub audit: Vec<AuditRecord>,
    pub metrics: Vec<Metric>,
    /// Content-addressed blobs (evidence bundles): address and bytes.
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Effects {
    pub fn extend(&mut self, other: Effects) {
        self.docs.extend(other.docs);
        self.timers.extend(other.timers);
        self.notifications.extend(other.notifications);
        self.audit.extend(other.audit);
        self.metrics.extend(other.metrics);
        self.blobs.extend(other.blobs);
    }
}

/// A governance document to store as it now is.
#[derive(Debug, PartialEq)]
pub enum DocChange {
    Incident(Box<Incident>),
    Request(Box<Request>),
}

/// One audit record; `at` is when it was written.
#[derive(Debug, PartialEq)]
pub struct AuditRecord {
    pub at: Time,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: Value,
}

/// A message about an incident for one channel, with the facts its
/// template is rendered with.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub incident: String,
    pub channel: String,
    pub template: String,
    pub kind: NotifyKind,
    pub facts: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    IncidentOpened {
        kind: IncidentKind,
        severity: ripcord_core::policy::Severity,
    },
    IncidentEscalated {
        kind: IncidentKind,
    },
}

/// Hands notifications to channels. The driver's messenger renders the
/// template and queues the delivery; an error (an unknown channel, a
/// template that does not render) goes on the incident's timeline instead.
/// Rendering is pure, so the machine stays deterministic.
pub trait Messenger {
    fn queue(&self, n: &Notification) -> Result<(), String>;
}
