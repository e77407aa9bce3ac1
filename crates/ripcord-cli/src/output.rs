//! Decisions as the user reads them: the NDJSON record (shared with the
//! server, in `ripcord_core::record`) and the text timeline.

use std::io::{self, Write};

use ripcord_core::engine::pct;
use ripcord_core::record::DecisionRecord;
use ripcord_core::{Decision, Time};

pub fn write_ndjson(w: &mut impl Write, d: &Decision) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &DecisionRecord::from(d))?;
    w.write_all(b"\n")
}

/// One timeline line: offset from the release start, wall time, what, why.
pub fn write_text(w: &mut impl Write, d: &Decision, start: Option<Time>) -> io::Result<()> {
    // Whole seconds read better in a timeline; the NDJSON keeps milliseconds.
    let offset = start.map_or_else(String::new, |s| {
        let secs = ripcord_core::Dur((d.at - s).0 / 1000 * 1000);
        format!("+{:<8}", secs.to_string())
    });
    let what = match (d.action, &d.criterion, &d.trigger) {
        (Some(a), _, _) => match d.share {
            Some(share) => format!("{} → {}%", a.as_str(), pct(share)),
            None => a.as_str().to_string(),
        },
        (None, Some(c), _) => format!("{} {c}", d.kind.as_str()),
        (None, None, Some(t)) => format!("{} {t}", d.kind.as_str()),
        _ => d.kind.as_str().to_string(),
    };
    writeln!(w, "{offset} {}  {what}", d.at)?;
    writeln!(w, "{:>12}{}", "", d.explanation.summary)
}
