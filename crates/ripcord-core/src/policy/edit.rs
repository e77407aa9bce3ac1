//! Edits of a policy file's text that keep every other byte: comments,
//! order and layout stay as people wrote them.

use super::load_policy;
use super::yaml::{self, Node, Value};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EditError {
    #[error("the policy does not parse: line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "criteria.{criterion}.{kind} is not written in the policy file (a scenario preset supplies it); write it there first"
    )]
    NotInFile { criterion: String, kind: String },
    #[error("criteria.{criterion}.{kind}: the edited policy does not load:\n{why}")]
    Invalid {
        criterion: String,
        kind: String,
        why: String,
    },
}

/// The policy text with `criteria.<criterion>.<kind>` set to `value` and
/// `comment` (one line, `# ` added) put first; the result is checked to
/// load.
pub fn set_bound(
    text: &str,
    (criterion, kind): (&str, &str),
    value: f64,
    comment: &str,
) -> Result<String, EditError> {
    let root = yaml::parse(text).map_err(|e| EditError::Syntax {
        line: e.line,
        column: e.column,
        message: e.message.clone(),
    })?;
    let not_in_file = || EditError::NotInFile {
        criterion: criterion.into(),
        kind: kind.into(),
    };
    let node = get(&root, "criteria")
        .and_then(|c| get(c, criterion))
        .and_then(|c| get(c, kind))
        .ok_or_else(not_in_file)?;
    let (line, column) = (node.pos.line, node.pos.column);
    let mut lines: Vec<&str> = text.split('\n').collect();
    let target = lines.get(line.wrapping_sub(1)).ok_or_else(not_in_file)?;
    let start = char_offset(target, column).ok_or_else(not_in_file)?;
    let rest = &target[start..];
    // A plain scalar ends at a flow separator, a comment or the line's end.
    let len = rest.find([',', '}', ']', '#', '\r']).unwrap_or(rest.len());
    let len = rest[..len].trim_end().len();
    let edited = format!("{}{}{}", &target[..start], value, &rest[len..]);
    lines[line - 1] = &edited;
    let comment = comment.replace(['\n', '\r'], " ");
    let out = format!("# {comment}\n{}", lines.join("\n"));
    load_policy(&out, "policy.yaml").map_err(|d| EditError::Invalid {
        criterion: criterion.into(),
        kind: kind.into(),
        why: d.to_string(),
    })?;
    Ok(out)
}

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, n)| n),
        _ => None,
    }
}

/// The byte offset of a 1-based character column.
fn char_offset(line: &str, column: usize) -> Option<usize> {
    if column == 0 {
        return None;
    }
    line.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(line.len()))
        .nth(column - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "service: s
signals:
  m: {category: safety, kind: rate, denominator: outputs}
criteria:
  rel:
    signal: m
    max_ratio: 1.5   # agreed with safety
  flow: {signal: m, absolute: 2%, window: 5m}
triggers:
  t: {when: rel, severity: major, action: pause}
rollout:
  steps: [{share: 0.5, hold: 1h}]
";

    #[test]
    fn a_bound_is_replaced_in_place_with_a_comment_on_top() {
        let out = set_bound(POLICY, ("rel", "max_ratio"), 1.25, "review r-1").unwrap();
        assert!(out.starts_with("# review r-1\nservice: s\n"));
        assert!(out.contains("    max_ratio: 1.25   # agreed with safety\n"));
        let out = set_bound(POLICY, ("flow", "absolute"), 0.015, "x").unwrap();
        assert!(out.contains("  flow: {signal: m, absolute: 0.015, window: 5m}\n"));
        assert_eq!(
            out.len(),
            POLICY.len() + "# x\n".len() + "0.015".len() - "2%".len()
        );
    }

    #[test]
    fn what_is_not_in_the_file_or_would_not_load_is_refused() {
        assert!(matches!(
            set_bound(POLICY, ("nope", "max_ratio"), 1.2, "x"),
            Err(EditError::NotInFile { .. })
        ));
        let e = set_bound(POLICY, ("rel", "max_ratio"), 0.5, "x").unwrap_err();
        assert!(matches!(e, EditError::Invalid { .. }), "{e}");
    }
}
