//! Governance's durable timers: what each one is for ([`Due`]) and the
//! changes the machine asks for. The store keeps a timer's purpose as its
//! body; [`TimerBody`] is that body's one serialised form.

use ripcord_core::Time;
use serde::{Deserialize, Serialize};

/// A timer's purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "due", rename_all = "snake_case")]
pub enum Due {
    /// The incident's acknowledgement deadline.
    Ack,
    /// Escalation level `level` pages if nobody acknowledged by then.
    Escalate { level: u32 },
    /// The next status update is due.
    Status,
    /// A playbook step is due.
    Step { step: String },
    /// An approval request's window closes.
    Request,
    /// A regulatory reporting deadline: a reminder at `percent` of the
    /// period, or the deadline itself at 100.
    Report { percent: u32 },
}

impl Due {
    /// The timer's id: one timer per subject and purpose, so setting it
    /// again moves it.
    pub fn id(&self, subject: &str) -> String {
        match self {
            Due::Ack => format!("{subject}/ack"),
            Due::Escalate { level } => format!("{subject}/escalate/{level}"),
            Due::Status => format!("{subject}/status"),
            Due::Step { step } => format!("{subject}/step/{step}"),
            Due::Request => format!("{subject}/deadline"),
            Due::Report { percent } => format!("{subject}/report/{percent}"),
        }
    }
}

/// What a stored timer's body holds: the incident or request it is about
/// and why it fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerBody {
    pub subject: String,
    #[serde(flatten)]
    pub due: Due,
}

/// A timer the machine wants set or cancelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimerChange {
    Set { body: TimerBody, at: Time },
    Cancel { id: String },
}

impl TimerChange {
    pub fn set(subject: &str, due: Due, at: Time) -> TimerChange {
        TimerChange::Set {
            body: TimerBody {
                subject: subject.to_string(),
                due,
            },
            at,
        }
    }

    pub fn cancel(subject: &str, due: &Due) -> TimerChange {
        TimerChange::Cancel {
            id: due.id(subject),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_keep_their_stored_form() {
        let cases = [
            (Due::Ack, json!({"subject": "inc-a-1", "due": "ack"})),
            (
                Due::Escalate { level: 2 },
                json!({"subject": "inc-a-1", "due": "escalate", "level": 2}),
            ),
            (Due::Status, json!({"subject": "inc-a-1", "due": "status"})),
            (
                Due::Step {
                    step: "page".into(),
                },
                json!({"subject": "inc-a-1", "due": "step", "step": "page"}),
            ),
            (
                Due::Request,
                json!({"subject": "inc-a-1", "due": "request"}),
            ),
            (
                Due::Report { percent: 90 },
                json!({"subject": "inc-a-1", "due": "report", "percent": 90}),
            ),
        ];
        for (due, stored) in cases {
            let body = TimerBody {
                subject: "inc-a-1".into(),
                due,
            };
            assert_eq!(serde_json::to_value(&body).unwrap(), stored);
            assert_eq!(serde_json::from_value::<TimerBody>(stored).unwrap(), body);
        }
    }
}
