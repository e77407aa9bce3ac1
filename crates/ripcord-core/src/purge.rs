//! Erasing one unit (a person) from raw event lines: which lines name it,
//! and bodies and samples without them.
//!
//! A line names the unit when its top-level `unit` is the unit's id, or the
//! form redaction gives a hashed field (`"sha256:<hex>"` of the id's
//! canonical JSON), so that a purge finds the person in evidence bundles
//! whose policy hashed units as well as in the raw journal.

use serde_json::Value;

use crate::audit::canonical_json;
use crate::evidence::address;

/// The unit to erase, in both forms it can appear in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    id: String,
    hashed: String,
}

impl Unit {
    pub fn new(id: &str) -> Unit {
        let canonical = canonical_json(&Value::String(id.to_string()));
        Unit {
            id: id.to_string(),
            hashed: format!("sha256:{}", address(canonical.as_bytes())),
        }
    }

    /// What a purge record keeps instead of the id: the lowercase hex
    /// SHA-256 of the id's bytes.
    pub fn key(&self) -> String {
        address(self.id.as_bytes())
    }

    /// Texts of which every line naming the unit contains at least one
    /// (a cheap filter before parsing): the id itself, and the escapes JSON
    /// allows for it (`\u` for any character, `\/` for a slash). `None`
    /// when the id needs escaping itself: every line must be parsed.
    pub fn needles(&self) -> Option<Vec<String>> {
        let plain = self
            .id
            .chars()
            .all(|c| c != '"' && c != '\\' && !c.is_control());
        if !plain || self.id.is_empty() {
            return None;
        }
        let mut needles = vec![self.id.clone(), "\\u".to_string()];
        if self.id.contains('/') {
            needles.push("\\/".to_string());
        }
        Some(needles)
    }

    /// Whether this raw event line names the unit.
    pub fn named_by(&self, line: &str) -> bool {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else {
            return false;
        };
        map.get("unit")
            .and_then(Value::as_str)
            .is_some_and(|u| u == self.id || u == self.hashed)
    }

    /// An NDJSON body without the lines naming the unit, and how many were
    /// removed; `None` when no line names it.
    pub fn strip(&self, body: &str) -> Option<(String, u64)> {
        let mut kept = String::with_capacity(body.len());
        let mut removed = 0;
        for line in body.split_inclusive('\n') {
            if self.named_by(line.trim_end_matches(['\n', '\r'])) {
                removed += 1;
            } else {
                kept.push_str(line);
            }
        }
        (removed > 0).then_some((kept, removed))
    }
}

/// The key ([`Unit::key`]) of the unit a raw event line names in plain
/// form; `None` for a line without one. What a purge recorded by key
/// (not by id) is matched against.
pub fn unit_key(line: &str) -> Option<String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    map.get("unit")
        .and_then(Value::as_str)
        .map(|u| address(u.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{Redaction, redact_line};

    #[test]
    fn a_body_loses_exactly_the_lines_of_the_unit_in_plain_or_hashed_form() {
        let unit = Unit::new("u-7");
        let hashed = redact_line(
            r#"{"unit":"u-7","version":"v2"}"#,
            &Redaction {
                drop: vec![],
                hash: vec!["unit".into()],
            },
        )
        .unwrap();
        let body = format!(
            "{{\"unit\":\"u-7\",\"version\":\"v1\"}}\n{{\"unit\":\"u-70\",\"version\":\"v1\"}}\n\
             {hashed}\n{{\"prompt\":\"u-7\",\"unit\":\"u-8\"}}\n"
        );
        let (kept, removed) = unit.strip(&body).unwrap();
        assert_eq!(removed, 2);
        assert_eq!(
            kept,
            "{\"unit\":\"u-70\",\"version\":\"v1\"}\n{\"prompt\":\"u-7\",\"unit\":\"u-8\"}\n"
        );
        assert_eq!(unit.strip(&kept), None);
    }

    #[test]
    fn every_way_json_can_spell_the_id_is_among_the_needles() {
        let unit = Unit::new("org/u-7");
        let needles = unit.needles().unwrap();
        assert_eq!(needles, ["org/u-7", "\\u", "\\/"]);
        for line in [
            r#"{"unit":"org/u-7"}"#,
            r#"{"unit":"org\/u-7"}"#,
            r#"{"unit":"\u006frg/u-7"}"#,
        ] {
            assert!(unit.named_by(line), "{line}");
            assert!(needles.iter().any(|n| line.contains(n.as_str())), "{line}");
        }
        assert_eq!(Unit::new("user-42").needles().unwrap(), ["user-42", "\\u"]);
        assert_eq!(Unit::new("a\"b").needles(), None);
        assert_eq!(Unit::new("zoë").needles().unwrap(), ["zoë", "\\u"]);
        assert_eq!(Unit::new("u").key().len(), 64);
        assert_eq!(unit_key(r#"{"unit":"u"}"#), Some(Unit::new("u").key()));
        assert_eq!(unit_key(r#"{"version":"v1"}"#), None);
    }
}
