//! The post-incident report: an incident (with its release), its
//! release's decision lines and the what-if table in; markdown or HTML out.
//!
//! The report is built once as sections of paragraphs, tables and charts,
//! then written in either format, so the two always say the same thing.
//! HTML embeds each chart's SVG inline (one self-contained file). Markdown
//! links each chart as an SVG file written beside the report, because
//! markdown viewers differ in whether they show `data:` images, and an SVG
//! file can be opened on its own.

pub mod chart;
pub mod regulatory;
pub mod replays;
pub mod source;

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

use ripcord_core::whatif::{self, Table};
use ripcord_core::{Dur, Time};
use ripcord_govern::IncidentReport;
use ripcord_govern::record::{Entry, IncidentKind};

/// What the report shows of one deciding signal: the fields it reads of an
/// evidence record (`ripcord_core::record::EvidenceRecord`), which the
/// incident keeps as JSON in `signals`.
#[derive(Clone, Debug, Deserialize)]
pub struct Signal {
    pub criterion: String,
    pub signal: String,
    pub bound: String,
    pub estimate: Option<f64>,
    pub window_estimate: Option<f64>,
    /// `[low, high]`; a one-sided bound has `null` on its open side.
    pub interval: Option<[Option<f64>; 2]>,
    pub confidence: f64,
}

/// The incident's deciding signals, in its order; an evidence record
/// without the fields the report reads is an error naming it.
pub fn deciding_signals(doc: &IncidentReport) -> anyhow::Result<Vec<Signal>> {
    doc.incident
        .signals
        .iter()
        .enumerate()
        .map(|(i, v)| Signal::deserialize(v).with_context(|| format!("incident.signals[{i}]")))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

/// What the report is made of.
pub struct Input<'a> {
    pub doc: &'a IncidentReport,
    /// The release's decision lines (NDJSON as stored).
    pub decisions: &'a [String],
    pub whatif: Option<&'a Table>,
}

/// A chart to write beside a markdown report (or inlined in HTML).
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub criterion: String,
    /// File name for markdown: `<prefix>-<criterion>.svg`.
    pub file: String,
    pub svg: String,
}

pub struct Rendered {
    pub text: String,
    pub charts: Vec<Chart>,
}

/// The four figures of a review, each from its start instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durations {
    /// From the release start to the incident opening.
    pub detect: Option<Dur>,
    /// From the opening to each milestone.
    pub acknowledge: Option<Dur>,
    pub mitigate: Option<Dur>,
    pub resolve: Option<Dur>,
    /// The release start used for `detect`: the earliest of the first
    /// timeline entry and the first decision.
    pub release_start: Option<Time>,
}

fn time(text: Option<&str>) -> Option<Time> {
    text.and_then(Time::parse_rfc3339)
}

/// Computes the durations. A milestone not reached yet is `None`.
pub fn durations(doc: &IncidentReport, decisions: &[String]) -> Durations {
    let opened = time(Some(&doc.incident.opened_at));
    let first_decision = decisions
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|d| time(d["at"].as_str()))
        .min();
    let first_entry = doc
        .incident
        .timeline
        .iter()
        .filter_map(|e| time(Some(&e.at)))
        .min();
    let release_start = first_decision.into_iter().chain(first_entry).min();
    let since = |from: Option<Time>, to: Option<&str>| Some(time(to)? - from?);
    let i = &doc.incident;
    Durations {
        detect: since(release_start, Some(&i.opened_at)),
        acknowledge: since(opened, i.acknowledged_at.as_deref()),
        mitigate: since(opened, i.mitigated_at.as_deref()),
        resolve: since(opened, i.resolved_at.as_deref()),
        release_start,
    }
}

/// One block of a section.
enum Block {
    Para(String),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Chart(usize),
}

struct Section {
    title: &'static str,
    blocks: Vec<Block>,
}

/// The section titles, in order (tests and readers rely on them).
pub const SECTIONS: [&str; 7] = [
    "Summary",
    "Time to detect, acknowledge, mitigate, resolve",
    "Timeline",
    "Acknowledgement and approvals",
    "Deciding signals",
    "What-if",
    "Review",
];

/// Renders the report; `chart_prefix` names the SVG files of markdown.
pub fn render(input: &Input<'_>, format: Format, chart_prefix: &str) -> anyhow::Result<Rendered> {
    let signals = deciding_signals(input.doc)?;
    let charts = charts(input, &signals, chart_prefix)?;
    let sections = vec![
        summary(input.doc, &signals),
        times(input.doc, &durations(input.doc, input.decisions)),
        timeline(input.doc),
        approvals(input.doc),
        signals_section(&charts),
        what_if(input.whatif),
        review(input.doc),
    ];
    let title = format!(
        "Incident {}: {}",
        input.doc.incident.id, input.doc.incident.title
    );
    let text = match format {
        Format::Markdown => markdown(&title, &sections, &charts),
        Format::Html => html(&title, &sections, &charts),
    };
    Ok(Rendered { text, charts })
}

fn kv(rows: Vec<(&str, String)>) -> Block {
    Block::Table {
        head: vec!["".into(), "".into()],
        rows: rows.into_iter().map(|(k, v)| vec![k.into(), v]).collect(),
    }
}

fn table(head: &[&str], rows: Vec<Vec<String>>) -> Block {
    Block::Table {
        head: head.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

fn num(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.4}"))
}

fn summary(doc: &IncidentReport, signals: &[Signal]) -> Section {
    let i = &doc.incident;
    let release = doc.release.as_ref().map_or("—".into(), |r| {
        let share = r.share * 100.0;
        format!("{}: {} → {} at {share}%", r.id, r.baseline, r.candidate)
    });
    let trigger = i.trigger_facts();
    let mut blocks = Vec::new();
    if i.kind == IncidentKind::Drill {
        blocks.push(Block::Para(
            "This was a drill: it is kept out of the real figures.".into(),
        ));
    }
    blocks.push(kv(vec![
        ("Service", i.service.clone()),
        ("Release", release),
        ("Kind", i.kind.to_string()),
        ("Severity", i.severity.as_str().to_string()),
        ("State", i.state.to_string()),
        (
            "Trigger",
            format!(
                "{} ({}, {})",
                trigger.name,
                trigger.severity.as_str(),
                trigger.action
            ),
        ),
        ("Opened", i.opened_at.clone()),
        (
            "Evidence bundle",
            i.evidence.clone().unwrap_or_else(|| "—".into()),
        ),
    ]));
    let rows = signals
        .iter()
        .map(|s| {
            let interval = s.interval.map_or("—".into(), |[lo, hi]| {
                let end =
                    |x: Option<f64>, open: &str| x.map_or(open.to_string(), |x| format!("{x:.4}"));
                format!("[{}, {}]", end(lo, "−∞"), end(hi, "∞"))
            });
            vec![
                s.criterion.clone(),
                s.signal.clone(),
                s.bound.clone(),
                num(s.estimate),
                num(s.window_estimate),
                interval,
                s.confidence.to_string(),
            ]
        })
        .collect();
    blocks.push(table(
        &[
            "criterion",
            "signal",
            "bound",
            "estimate",
            "window estimate",
            "interval",
            "confidence",
        ],
        rows,
    ));
    Section {
        title: SECTIONS[0],
        blocks,
    }
}

fn dur(d: Option<Dur>) -> String {
    d.map_or("not yet".into(), |d| d.to_string())
}

fn times(doc: &IncidentReport, d: &Durations) -> Section {
    let i = &doc.incident;
    let or_dash = |s: Option<&str>| s.unwrap_or("—").to_string();
    let start = d.release_start.map(Time::to_rfc3339);
    let rows = vec![
        vec![
            "Time to detect".into(),
            or_dash(start.as_deref()),
            i.opened_at.clone(),
            dur(d.detect),
        ],
        vec![
            "Time to acknowledge".into(),
            i.opened_at.clone(),
            or_dash(i.acknowledged_at.as_deref()),
            dur(d.acknowledge),
        ],
        vec![
            "Time to mitigate".into(),
            i.opened_at.clone(),
            or_dash(i.mitigated_at.as_deref()),
            dur(d.mitigate),
        ],
        vec![
            "Time to resolve".into(),
            i.opened_at.clone(),
            or_dash(i.resolved_at.as_deref()),
            dur(d.resolve),
        ],
    ];
    Section {
        title: SECTIONS[1],
        blocks: vec![
            Block::Para("Detection is counted from the release start; the rest from the incident opening (mitigated = rollback complete).".into()),
            table(&["", "from", "to", "duration"], rows),
        ],
    }
}

fn timeline(doc: &IncidentReport) -> Section {
    let opened = time(Some(&doc.incident.opened_at));
    let mut entries: Vec<&Entry> = doc.incident.timeline.iter().collect();
    entries.sort_by_key(|e| time(Some(&e.at)));
    let rows = entries
        .into_iter()
        .map(|e| {
            let since = time(Some(&e.at))
                .zip(opened)
                .map_or("—".into(), |(at, o)| whatif::signed(at.0 - o.0));
            vec![
                e.at.clone(),
                since,
                e.kind.to_string(),
                e.actor.clone(),
                e.summary.clone(),
            ]
        })
        .collect::<Vec<_>>();
    let blocks = if rows.is_empty() {
        vec![Block::Para("The timeline is empty.".into())]
    } else {
        vec![table(
            &["at", "since opening", "kind", "actor", "summary"],
            rows,
        )]
    };
    Section {
        title: SECTIONS[2],
        blocks,
    }
}

fn approvals(doc: &IncidentReport) -> Section {
    let i = &doc.incident;
    let ack = match (&i.acknowledged_by, &i.acknowledged_at) {
        (Some(by), Some(at)) => {
            let after = time(Some(at))
                .zip(time(Some(&i.opened_at)))
                .map(|(a, o)| a - o);
            format!(
                "Acknowledged by {by} at {at}, {} after the incident opened.",
                dur(after)
            )
        }
        (Some(by), None) => format!("Acknowledged by {by}."),
        _ => "Not acknowledged.".into(),
    };
    let mut blocks = vec![Block::Para(ack)];
    if i.approvals.is_empty() {
        blocks.push(Block::Para("No approvals were recorded.".into()));
    } else {
        let rows = i
            .approvals
            .iter()
            .map(|a| {
                vec![
                    a.by.clone(),
                    a.role.clone(),
                    a.action.to_string(),
                    a.at.clone(),
                ]
            })
            .collect();
        blocks.push(table(&["by", "role", "action", "at"], rows));
    }
    Section {
        title: SECTIONS[3],
        blocks,
    }
}

fn charts(input: &Input<'_>, signals: &[Signal], prefix: &str) -> anyhow::Result<Vec<Chart>> {
    let Some(opened) = time(Some(&input.doc.incident.opened_at)) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in signals {
        let series = chart::deciding_series(input.decisions, &s.criterion, opened);
        if series.is_empty() {
            continue;
        }
        let title = format!("{} ({}): {}", s.criterion, s.signal, s.bound);
        out.push(Chart {
            criterion: s.criterion.clone(),
            file: format!("{prefix}-{}.svg", safe(&s.criterion)),
            svg: chart::svg(&title, &series)?,
        });
    }
    Ok(out)
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn signals_section(charts: &[Chart]) -> Section {
    let mut blocks: Vec<Block> = (0..charts.len()).map(Block::Chart).collect();
    if blocks.is_empty() {
        blocks.push(Block::Para(
            "No decision carried the deciding criteria's evidence.".into(),
        ));
    }
    Section {
        title: SECTIONS[4],
        blocks,
    }
}

fn what_if(table_: Option<&Table>) -> Section {
    let Some(t) = table_ else {
        return Section {
            title: SECTIONS[5],
            blocks: vec![Block::Para("Not computed for this report.".into())],
        };
    };
    let rows = t
        .rows
        .iter()
        .map(|r| {
            vec![
                r.bound.to_string(),
                r.sustain.to_string(),
                r.detection.map_or("never".into(), |d| d.to_string()),
                r.vs_actual_ms.map_or("—".into(), whatif::signed),
                r.false_alarms.to_string(),
                if r.current {
                    "← current policy".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let alarms = format!("false alarms (of {})", t.others);
    Section {
        title: SECTIONS[5],
        blocks: vec![
            Block::Para(format!(
                "Criterion {} (trigger {}) replayed through the engine under alternative bounds and `for` durations, on the incident's stream and on {} recent releases without an incident.",
                t.criterion, t.trigger, t.others
            )),
            table(
                &[
                    t.bound_kind,
                    "for",
                    "detects after release start",
                    "vs actual detection",
                    &alarms,
                    "",
                ],
                rows,
            ),
        ],
    }
}

fn review(doc: &IncidentReport) -> Section {
    let mut blocks = Vec::new();
    match &doc.incident.review {
        Some(r) => {
            blocks.push(Block::Para(format!(
                "Signed off by {} at {}.",
                r.signed_off_by, r.at
            )));
            if r.action_items.is_empty() {
                blocks.push(Block::Para("No action items.".into()));
            } else {
                let rows = r
                    .action_items
                    .iter()
                    .map(|a| {
                        let due = a.due.clone().unwrap_or_default();
                        vec![a.text.clone(), a.owner.clone(), due]
                    })
                    .collect();
                blocks.push(table(&["action item", "owner", "due"], rows));
            }
        }
        None => blocks.push(Block::Para("Not reviewed yet.".into())),
    }
    Section {
        title: SECTIONS[6],
        blocks,
    }
}

/// Text in markdown: raw HTML passes through markdown renderers, so
/// `&`, `<` and `>` from incident titles, notes and summaries are written
/// as entities (they render as the same characters).
fn md_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn md_cell(text: &str) -> String {
    md_text(text).replace('|', "\\|").replace('\n', " ")
}

fn markdown(title: &str, sections: &[Section], charts: &[Chart]) -> String {
    let mut out = format!("# {}\n", md_cell(title));
    for s in sections {
        out.push_str(&format!("\n## {}\n", s.title));
        for b in &s.blocks {
            out.push('\n');
            match b {
                Block::Para(p) => out.push_str(&format!("{}\n", md_text(p))),
                Block::Table { head, rows } => {
                    let line = |cells: &[String]| {
                        format!(
                            "| {} |\n",
                            cells
                                .iter()
                                .map(|c| md_cell(c))
                                .collect::<Vec<_>>()
                                .join(" | ")
                        )
                    };
                    out.push_str(&line(head));
                    out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
                    rows.iter().for_each(|r| out.push_str(&line(r)));
                }
                Block::Chart(i) => {
                    let c = &charts[*i];
                    out.push_str(&format!("![{}]({})\n", c.criterion, c.file));
                }
            }
        }
    }
    out
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(title: &str, sections: &[Section], charts: &[Chart]) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{t}</title>\n\
         <style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}\
         table{{border-collapse:collapse;margin:.5rem 0}}td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}}</style>\n\
         </head>\n<body>\n<h1>{t}</h1>\n",
        t = esc(title)
    );
    for s in sections {
        out.push_str(&format!("<section>\n<h2>{}</h2>\n", esc(s.title)));
        for b in &s.blocks {
            match b {
                Block::Para(p) => out.push_str(&format!("<p>{}</p>\n", esc(p))),
                Block::Table { head, rows } => {
                    out.push_str("<table>\n<tr>");
                    head.iter()
                        .for_each(|h| out.push_str(&format!("<th>{}</th>", esc(h))));
                    out.push_str("</tr>\n");
                    for r in rows {
                        out.push_str("<tr>");
                        r.iter()
                            .for_each(|c| out.push_str(&format!("<td>{}</td>", esc(c))));
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</table>\n");
                }
                Block::Chart(i) => {
                    let c = &charts[*i];
                    // The SVG document minus its XML declaration, inline.
                    let svg = c.svg.trim_start_matches(|ch| ch != '<');
                    let svg = match svg.strip_prefix("<?xml") {
                        Some(rest) => rest.split_once("?>").map_or(svg, |(_, r)| r.trim_start()),
                        None => svg,
                    };
                    out.push_str(&format!(
                        "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
                        esc(&c.criterion)
                    ));
                }
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::whatif::Row;

    fn doc() -> IncidentReport {
        serde_json::from_str(include_str!(
            "../../../ripcord-cli/tests/fixtures/incident.json"
        ))
        .unwrap()
    }

    /// The fixture's decisions of the incident's release.
    fn decisions() -> Vec<String> {
        include_str!("../../../ripcord-cli/tests/fixtures/decisions.ndjson")
            .lines()
            .filter(|l| l.contains("v12->v13"))
            .map(str::to_string)
            .collect()
    }

    fn table() -> Table {
        let row = |bound, mins, current, detection: Option<i64>, vs, alarms| Row {
            bound,
            sustain: Dur::from_mins(mins),
            current,
            detection: detection.map(Dur),
            vs_actual_ms: vs,
            false_alarms: alarms,
        };
        Table {
            criterion: "moderation_rel".into(),
            trigger: "safety_regression".into(),
            bound_kind: "max_ratio",
            others: 4,
            rows: vec![
                row(1.1, 0, false, Some(900_000), Some(-78_000), 2),
                row(1.2, 1, true, Some(978_000), Some(0), 0),
                row(2.0, 1, false, None, None, 0),
            ],
        }
    }

    #[test]
    fn durations_run_from_the_release_start_and_the_opening() {
        let d = durations(&doc(), &decisions());
        assert_eq!(d.release_start, Time::parse_rfc3339("2026-11-20T10:00:00Z"));
        assert_eq!(d.detect, Some(Dur(16 * 60_000 + 18_000)));
        assert_eq!(d.acknowledge, Some(Dur(3 * 60_000 + 30_000)));
        assert_eq!(d.mitigate, Some(Dur(5 * 60_000 + 52_000)));
        assert_eq!(d.resolve, Some(Dur(45 * 60_000)));
        let mut open = doc();
        open.incident.acknowledged_at = None;
        open.incident.resolved_at = None;
        let d = durations(&open, &[]);
        assert_eq!((d.acknowledge, d.resolve), (None, None));
        // Without decisions the first timeline entry is the start.
        assert_eq!(d.detect, Some(Dur(16 * 60_000 + 18_000)));
    }

    #[test]
    fn markdown_has_every_section_in_order_with_its_facts() {
        let r = render(
            &Input {
                doc: &doc(),
                decisions: &decisions(),
                whatif: Some(&table()),
            },
            Format::Markdown,
            "inc",
        )
        .unwrap();
        let headings: Vec<&str> = r.text.lines().filter(|l| l.starts_with('#')).collect();
        let mut expected = vec![
            "# Incident inc-20261120-1: support-bot v13: moderation failures ×2.6".to_string(),
        ];
        expected.extend(SECTIONS.iter().map(|s| format!("## {s}")));
        assert_eq!(headings, expected);
        for line in [
            "| Release | support-bot-1: v12 → v13 at 25% |",
            "| Time to detect | 2026-11-20T10:00:00.000Z | 2026-11-20T10:16:18.000Z | 16m18s |",
            "| Time to acknowledge | 2026-11-20T10:16:18.000Z | 2026-11-20T10:19:48.000Z | 3m30s |",
            "| Time to mitigate | 2026-11-20T10:16:18.000Z | 2026-11-20T10:22:10.000Z | 5m52s |",
            "| Time to resolve | 2026-11-20T10:16:18.000Z | 2026-11-20T11:01:18.000Z | 45m |",
            "| moderation_rel | moderation_fail | candidate ≤ 1.2 × baseline | 2.6230 | 4.1930 | [1.9000, ∞] | 0.95 |",
            "| 2026-11-20T10:00:00.000Z | −16m18s | action | bob | release v12 → v13 at 5% |",
            "| 2026-11-20T10:16:18.000Z | same | decision | engine | moderation_rel breached \\| ratio 2.623 |",
            "Acknowledged by alice at 2026-11-20T10:19:48.000Z, 3m30s after the incident opened.",
            "| bob | release_manager | rollback | 2026-11-20T10:17:05.000Z |",
            "![moderation_rel](inc-moderation_rel.svg)",
            "![hallucination_rel](inc-hallucination_rel.svg)",
            "| 1.2 | 1m | 16m18s | same | 0 | ← current policy |",
            "| 2 | 1m | never | — | 0 |  |",
            "Signed off by carol at 2026-11-21T09:00:00.000Z.",
            "| Add a German moderation canary | erin | 2026-12-01 |",
        ] {
            assert!(
                r.text.lines().any(|l| l == line),
                "missing {line:?} in\n{}",
                r.text
            );
        }
        // The timeline is in time order.
        let kinds: Vec<&str> = r
            .text
            .lines()
            .filter(|l| l.starts_with("| 2026-11-20T"))
            .filter_map(|l| l.split(" | ").nth(2))
            .collect();
        assert_eq!(
            kinds,
            [
                "action",
                "state",
                "decision",
                "notification",
                "acknowledgement",
                "state",
                "state"
            ]
        );
    }

    #[test]
    fn an_open_incident_says_what_has_not_happened_yet() {
        let mut d = doc();
        d.incident.mitigated_at = None;
        d.incident.review = None;
        d.incident.approvals.clear();
        let r = render(
            &Input {
                doc: &d,
                decisions: &[],
                whatif: None,
            },
            Format::Markdown,
            "x",
        )
        .unwrap();
        for line in [
            "| Time to mitigate | 2026-11-20T10:16:18.000Z | — | not yet |",
            "No approvals were recorded.",
            "No decision carried the deciding criteria's evidence.",
            "Not computed for this report.",
            "Not reviewed yet.",
        ] {
            assert!(
                r.text.lines().any(|l| l == line),
                "missing {line:?} in\n{}",
                r.text
            );
        }
        assert!(r.charts.is_empty());
    }

    /// The points of the polylines drawn with `stroke`, in document order
    /// (axes and ticks are black polylines too).
    fn polylines(svg: &str, stroke: &str) -> Vec<Vec<(f64, f64)>> {
        let xml = roxmltree::Document::parse(svg).unwrap();
        xml.descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(stroke))
            .map(|n| {
                let points = n.attribute("points").unwrap_or("").split_whitespace();
                points
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn charts_are_svg_with_one_line_per_series_and_a_point_per_decision() {
        let r = render(
            &Input {
                doc: &doc(),
                decisions: &decisions(),
                whatif: None,
            },
            Format::Markdown,
            "inc",
        )
        .unwrap();
        assert_eq!(r.charts.len(), 2);
        let moderation = &r.charts[0];
        assert_eq!(moderation.file, "inc-moderation_rel.svg");
        let xml = roxmltree::Document::parse(&moderation.svg).unwrap();
        let circles = xml
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count();
        // Estimate and window estimate at 4 instants (the breach and its
        // firing share one), then the opening line; two dots per instant.
        let estimate = polylines(&moderation.svg, "#1F77B4");
        let window = polylines(&moderation.svg, "#D62728");
        let opening = polylines(&moderation.svg, "#787878");
        assert_eq!((estimate.len(), window.len(), opening.len()), (1, 1, 1));
        assert_eq!(
            (estimate[0].len(), window[0].len(), opening[0].len()),
            (4, 4, 2)
        );
        // Both series start where the incident opened, and time runs right.
        assert_eq!(estimate[0][0].0, opening[0][0].0);
        assert!(estimate[0].windows(2).all(|w| w[0].0 < w[1].0));
        // The window estimate falls from 4.193 to 0.98: SVG y grows downwards.
        assert!(window[0][0].1 < window[0][3].1);
        assert_eq!(circles, 8);
        let texts: Vec<String> = xml
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(|t| t.trim().to_string())
            .collect();
        assert!(texts.iter().any(|t| t == "window estimate"), "{texts:?}");
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("moderation_rel (moderation_fail)")),
            "{texts:?}"
        );
        // One series (no window estimate), one point.
        let single = polylines(&r.charts[1].svg, "#1F77B4");
        assert_eq!(single.iter().map(Vec::len).collect::<Vec<_>>(), [1]);
        assert!(polylines(&r.charts[1].svg, "#D62728").is_empty());
    }

    #[test]
    fn markdown_escapes_raw_html_from_the_incident() {
        let mut d = doc();
        d.incident.title = "<img src=x onerror=alert(1)> & <b>".into();
        let r = render(
            &Input {
                doc: &d,
                decisions: &decisions(),
                whatif: Some(&table()),
            },
            Format::Markdown,
            "inc",
        )
        .unwrap();
        let first = r.text.lines().next().unwrap();
        assert_eq!(
            first,
            "# Incident inc-20261120-1: &lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;"
        );
        assert!(!r.text.contains("<img"), "{}", r.text);
        assert!(!r.text.contains("<b>"), "{}", r.text);
    }

    #[test]
    fn html_inlines_the_charts_and_escapes_text() {
        let mut d = doc();
        d.incident.title = "<script>alert(1)</script>".into();
        let r = render(
            &Input {
                doc: &d,
                decisions: &decisions(),
                whatif: Some(&table()),
            },
            Format::Html,
            "inc",
        )
        .unwrap();
        assert!(
            r.text.contains(
                "<h1>Incident inc-20261120-1: &lt;script&gt;alert(1)&lt;/script&gt;</h1>"
            )
        );
        assert!(!r.text.contains("<?xml"));
        let sections: Vec<&str> = r
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("<h2>"))
            .collect();
        assert_eq!(sections, SECTIONS.map(|s| format!("{s}</h2>")));
        // Well-formed after the doctype line: every chart is in the tree.
        let body = r.text.strip_prefix("<!doctype html>\n").unwrap();
        let xml = roxmltree::Document::parse(body).unwrap();
        let svgs = xml.descendants().filter(|n| n.has_tag_name("svg")).count();
        assert_eq!(svgs, 2);
    }
}
