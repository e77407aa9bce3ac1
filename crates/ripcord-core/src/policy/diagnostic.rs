//! Problems found in a policy, each with its place, rendered like a
//! compiler's: `file:line:col: error: message`, the line, a caret, a hint.

use std::fmt;

/// One problem in a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub message: String,
    /// Where in the document, e.g. `criteria.moderation_rel.max_ratio`.
    pub path: String,
    /// 1-based; 0 when the problem has no single place (a scenario preset).
    pub line: usize,
    pub column: usize,
    pub help: Option<String>,
}

/// Every problem of one policy file, with the text to quote from.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostics {
    pub origin: String,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            render(f, &self.origin, &self.source, d)?;
        }
        Ok(())
    }
}

fn render(f: &mut fmt::Formatter<'_>, origin: &str, source: &str, d: &Diagnostic) -> fmt::Result {
    if d.line == 0 {
        writeln!(f, "{origin}: error: {}", d.message)?;
    } else {
        writeln!(f, "{origin}:{}:{}: error: {}", d.line, d.column, d.message)?;
    }
    if let Some(text) = d.line.checked_sub(1).and_then(|i| source.lines().nth(i)) {
        let number = d.line.to_string();
        let pad = " ".repeat(number.len());
        writeln!(f, "{pad} |")?;
        writeln!(f, "{number} | {text}")?;
        // Columns count characters; tabs keep their width in the caret line.
        let lead: String = text
            .chars()
            .take(d.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        writeln!(f, "{pad} | {lead}^")?;
    }
    if !d.path.is_empty() {
        writeln!(f, "  = at: {}", d.path)?;
    }
    if let Some(help) = &d.help {
        writeln!(f, "  = help: {help}")?;
    }
    Ok(())
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_quotes_its_line_with_a_caret() {
        let d = Diagnostics {
            origin: "policy.yaml".into(),
            source: "service: x\ncriteria:\n  a: {sigal: b}\n".into(),
            items: vec![Diagnostic {
                message: "unknown field `sigal`".into(),
                path: "criteria.a".into(),
                line: 3,
                column: 7,
                help: Some("did you mean `signal`?".into()),
            }],
        };
        assert_eq!(
            d.to_string(),
            "policy.yaml:3:7: error: unknown field `sigal`\n  |\n3 |   a: {sigal: b}\n  |       ^\n  = at: criteria.a\n  = help: did you mean `signal`?\n"
        );
    }
}
