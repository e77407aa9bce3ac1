//! The journal's entries, typed: what the hub writes for every engine input,
//! and what recovery, the data-integrity checks, the evidence sample and the
//! report's what-if read back. The store keeps each entry as a kind and a
//! text body; this module is the only code that knows their spelling.

use ripcord_core::Time;
use ripcord_core::engine::Command;
use serde::{Deserialize, Serialize};

/// A journal entry's kind, as the store's `kind` column spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A release start: the body is a [`Start`].
    Start,
    /// A batch of events: the body is their NDJSON lines, as received.
    Events,
    /// A clock tick: the body is the time in milliseconds.
    Tick,
    /// A person's command: the body is a [`CommandEntry`].
    Command,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Events => "events",
            Kind::Tick => "tick",
            Kind::Command => "command",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        [Kind::Start, Kind::Events, Kind::Tick, Kind::Command]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// One rollout step as a release start overrides it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepView {
    pub share: f64,
    /// Like `30m`; a release start may leave it out (30m, as in a policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
}

/// The body of a `start` entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Start {
    pub release: String,
    pub baseline: String,
    pub candidate: String,
    pub policy_version: i64,
    pub steps: Option<Vec<StepView>>,
    pub at_ms: i64,
}

/// The body of a `command` entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CommandEntry {
    #[serde(with = "command_name")]
    pub command: Command,
    pub at_ms: i64,
    /// Why the person acted, kept with the command.
    #[serde(default)]
    pub reason: Option<String>,
}

/// An entry read back.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Start(Start),
    /// The NDJSON body; its lines are parsed where they are used, since
    /// events borrow from their line.
    Events(String),
    Tick(Time),
    Command(CommandEntry),
}

impl Entry {
    pub fn kind(&self) -> Kind {
        match self {
            Entry::Start(_) => Kind::Start,
            Entry::Events(_) => Kind::Events,
            Entry::Tick(_) => Kind::Tick,
            Entry::Command(_) => Kind::Command,
        }
    }
}

/// Reads a stored entry; an unknown kind or a body that does not parse is
/// an error naming both (the journal is ours: it never holds one unless
/// the store was damaged or written by a newer version).
pub fn decode(kind: &str, body: &str) -> anyhow::Result<Entry> {
    let bad = |what: &str| anyhow::anyhow!("journal entry of kind {kind:?}: {what}");
    match Kind::parse(kind).ok_or_else(|| bad("unknown kind"))? {
        Kind::Start => Ok(Entry::Start(
            serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?,
        )),
        Kind::Events => Ok(Entry::Events(body.to_string())),
        Kind::Tick => Ok(Entry::Tick(Time(
            body.parse::<i64>().map_err(|e| bad(&e.to_string()))?,
        ))),
        Kind::Command => Ok(Entry::Command(
            serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?,
        )),
    }
}

/// The body a start entry is stored with. (Serialising it fails only on a
/// bug; the caller says so rather than journaling an empty body.)
pub fn start_body(start: &Start) -> serde_json::Result<String> {
    serde_json::to_string(start)
}

/// The body a command entry is stored with, failing like [`start_body`].
pub fn command_body(entry: &CommandEntry) -> serde_json::Result<String> {
    serde_json::to_string(entry)
}

/// A command is stored by its one name ([`Command::name`]).
mod command_name {
    use ripcord_core::engine::Command;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &Command, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Command, D::Error> {
        let name = String::deserialize(d)?;
        Command::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown command {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_they_were_written() -> anyhow::Result<()> {
        let start = Start {
            release: "svc-1".into(),
            baseline: "v1".into(),
            candidate: "v2".into(),
            policy_version: 3,
            steps: Some(vec![StepView {
                share: 0.05,
                hold: Some("30m".into()),
            }]),
            at_ms: 1_000,
        };
        assert_eq!(
            decode("start", &start_body(&start)?)?,
            Entry::Start(start.clone())
        );
        let command = CommandEntry {
            command: Command::ReRelease,
            at_ms: 2_000,
            reason: Some("fixed".into()),
        };
        let body = command_body(&command)?;
        assert_eq!(
            body,
            r#"{"command":"re_release","at_ms":2000,"reason":"fixed"}"#
        );
        assert_eq!(decode("command", &body)?, Entry::Command(command));
        assert_eq!(decode("tick", "5000")?, Entry::Tick(Time(5_000)));
        Ok(())
    }

    #[test]
    fn a_damaged_entry_is_an_error_naming_its_kind() {
        let err = |kind: &str, body: &str| {
            decode(kind, body).map_or_else(|e| e.to_string(), |_| "decoded".into())
        };
        assert_eq!(
            err("snapshot", "{}"),
            "journal entry of kind \"snapshot\": unknown kind"
        );
        assert_eq!(
            err("tick", "soon"),
            "journal entry of kind \"tick\": invalid digit found in string"
        );
        assert!(
            err("command", r#"{"command":"launch","at_ms":1}"#)
                .contains("unknown command \"launch\"")
        );
    }
}
