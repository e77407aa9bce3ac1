//! Server-drawn SVG charts for a criterion's tile: no script, no library,
//! a few kilobytes each. Every chart carries a title and a description in
//! words, so a screen reader gets the figures the lines show.

use std::fmt::Write;

/// One recorded (or live) reading of a criterion, as the charts need it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Milliseconds since the epoch.
    pub at: i64,
    pub candidate_rate: Option<f64>,
    pub baseline_rate: Option<f64>,
    pub estimate: Option<f64>,
    pub interval: Option<(f64, f64)>,
    pub statistic: Option<f64>,
    pub threshold: Option<f64>,
    pub limit: Option<f64>,
}

const W: f64 = 520.0;
const H: f64 = 150.0;
/// Left margin for the axis labels, and the others.
const LEFT: f64 = 56.0;
const PAD: f64 = 10.0;
const BOTTOM: f64 = 22.0;

/// A line: its points, its CSS class and its name in the legend.
struct Line<'a> {
    points: Vec<(i64, f64)>,
    class: &'a str,
    name: &'a str,
}

/// The plot's scales.
struct Frame {
    t0: i64,
    t1: i64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, t: i64) -> f64 {
        let span = (self.t1 - self.t0).max(1) as f64;
        LEFT + (t - self.t0) as f64 / span * (W - LEFT - PAD)
    }

    fn y(&self, v: f64) -> f64 {
        let span = (self.y1 - self.y0).max(f64::MIN_POSITIVE);
        let v = v.clamp(self.y0, self.y1);
        H - BOTTOM - (v - self.y0) / span * (H - BOTTOM - PAD)
    }
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// The candidate's and the baseline's rate (or mean) over the window.
pub fn rates(id: &str, samples: &[Sample]) -> String {
    let pick = |f: fn(&Sample) -> Option<f64>| -> Vec<(i64, f64)> {
        samples
            .iter()
            .filter_map(|s| finite(f(s)).map(|v| (s.at, v)))
            .collect()
    };
    let lines = [
        Line {
            points: pick(|s| s.candidate_rate),
            class: "candidate",
            name: "candidate",
        },
        Line {
            points: pick(|s| s.baseline_rate),
            class: "baseline",
            name: "baseline",
        },
    ];
    let desc = describe(&lines);
    plot(
        id,
        "Candidate and baseline over the window",
        &desc,
        &lines,
        None,
        None,
    )
}

/// The test's estimate with its anytime-valid interval, against the bound.
pub fn estimate(id: &str, samples: &[Sample]) -> String {
    let points: Vec<(i64, f64)> = samples
        .iter()
        .filter_map(|s| finite(s.estimate).map(|v| (s.at, v)))
        .collect();
    let band: Vec<(i64, f64, f64)> = samples
        .iter()
        .filter_map(|s| s.interval.map(|(lo, hi)| (s.at, lo, hi)))
        .filter(|(_, lo, _)| lo.is_finite())
        .collect();
    let limit = samples.iter().rev().find_map(|s| finite(s.limit));
    let lines = [Line {
        points,
        class: "estimate",
        name: "estimate",
    }];
    let mut desc = describe(&lines);
    if let Some(l) = limit {
        let _ = write!(desc, " The bound is {}.", num(l));
    }
    if let Some((_, lo, hi)) = band.last() {
        let _ = write!(desc, " The interval is {} to {}.", num(*lo), num(*hi));
    }
    plot(
        id,
        "Estimate, confidence band and bound",
        &desc,
        &lines,
        Some(&band),
        limit.map(|l| (l, "bound")),
    )
}

/// The e-value against the threshold at which the test rejects, on a log
/// scale (both grow by orders of magnitude).
pub fn evidence(id: &str, samples: &[Sample]) -> String {
    let points: Vec<(i64, f64)> = samples
        .iter()
        .filter_map(|s| finite(s.statistic).map(|v| (s.at, v.max(1e-12).log10())))
        .collect();
    let threshold = samples
        .iter()
        .rev()
        .find_map(|s| finite(s.threshold))
        .map(|t| t.max(1e-12).log10());
    let lines = [Line {
        points,
        class: "statistic",
        name: "log10 e-value",
    }];
    let mut desc = describe(&lines);
    if let Some(t) = threshold {
        let _ = write!(desc, " The test rejects at log10 e-value {}.", num(t));
    }
    plot(
        id,
        "Test statistic against its threshold",
        &desc,
        &lines,
        None,
        threshold.map(|t| (t, "threshold")),
    )
}

fn describe(lines: &[Line<'_>]) -> String {
    let parts: Vec<String> = lines
        .iter()
        .map(|l| match l.points.last() {
            Some((_, v)) => format!("{} now {}", l.name, num(*v)),
            None => format!("{}: no data yet", l.name),
        })
        .collect();
    format!("{}.", parts.join("; "))
}

/// A number as the charts print it: 4 significant digits.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return if v > 0.0 { "∞".into() } else { "–".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 8) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn plot(
    id: &str,
    title: &str,
    desc: &str,
    lines: &[Line<'_>],
    band: Option<&[(i64, f64, f64)]>,
    rule: Option<(f64, &str)>,
) -> String {
    let Some(frame) = frame(lines, band, rule.map(|r| r.0)) else {
        return empty(id, title);
    };
    let mut svg = open(id, title, desc);
    axes(&mut svg, &frame);
    if let Some(band) = band.filter(|b| b.len() > 1) {
        band_path(&mut svg, &frame, band);
    }
    if let Some((v, name)) = rule {
        let y = frame.y(v);
        let _ = write!(
            svg,
            r#"<line class="rule" x1="{LEFT}" x2="{x2:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="label" x="{x2:.1}" y="{ty:.1}" text-anchor="end">{name} {v}</text>"#,
            x2 = W - PAD,
            ty = y - 3.0,
            v = num(v)
        );
    }
    for line in lines.iter().filter(|l| !l.points.is_empty()) {
        polyline(&mut svg, &frame, line);
    }
    legend(&mut svg, lines);
    svg.push_str("</svg>");
    svg
}

fn frame(lines: &[Line<'_>], band: Option<&[(i64, f64, f64)]>, rule: Option<f64>) -> Option<Frame> {
    let times = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .chain(band.unwrap_or_default().iter().map(|b| b.0));
    let (t0, t1) = times.fold(None, |acc: Option<(i64, i64)>, t| {
        Some(acc.map_or((t, t), |(a, b)| (a.min(t), b.max(t))))
    })?;
    let values = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(band.unwrap_or_default().iter().flat_map(|b| [b.1, b.2]))
        .chain(rule)
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        return None;
    }
    // Rates start at zero; otherwise a little room around the data.
    let y0 = if lo >= 0.0 && lo <= hi * 0.5 { 0.0 } else { lo };
    let room = ((hi - y0) * 0.08).max(hi.abs() * 0.02).max(1e-9);
    Some(Frame {
        t0,
        t1: t1.max(t0 + 1),
        y0: if y0 == 0.0 { 0.0 } else { y0 - room },
        y1: hi + room,
    })
}

fn open(id: &str, title: &str, desc: &str) -> String {
    format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        esc(title),
        esc(desc)
    )
}

fn empty(id: &str, title: &str) -> String {
    let mut svg = open(id, title, "No readings yet.");
    let _ = write!(
        svg,
        r#"<text class="label" x="{x}" y="{y}" text-anchor="middle">no readings yet</text></svg>"#,
        x = W / 2.0,
        y = H / 2.0
    );
    svg
}

fn axes(svg: &mut String, f: &Frame) {
    let base = H - BOTTOM;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" x2="{x2}" y1="{base}" y2="{base}"/><line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{PAD}" y2="{base}"/>"#,
        x2 = W - PAD
    );
    for v in [f.y0, (f.y0 + f.y1) / 2.0, f.y1] {
        let _ = write!(
            svg,
            r#"<text class="label" x="{x}" y="{y:.1}" text-anchor="end">{}</text>"#,
            num(v),
            x = LEFT - 4.0,
            y = f.y(v) + 4.0
        );
    }
    let _ = write!(
        svg,
        r#"<text class="label" x="{LEFT}" y="{y}">{}</text><text class="label" x="{x}" y="{y}" text-anchor="end">{}</text>"#,
        clock(f.t0),
        clock(f.t1),
        x = W - PAD,
        y = H - 6.0
    );
}

/// A time of day in UTC (`14:59:57Z`); the day is on the page.
fn clock(ms: i64) -> String {
    let text = ripcord_core::Time(ms).to_rfc3339();
    text.get(11..19).map_or(text.clone(), |t| format!("{t}Z"))
}

fn band_path(svg: &mut String, f: &Frame, band: &[(i64, f64, f64)]) {
    let mut d = String::new();
    for (i, (t, _, hi)) in band.iter().enumerate() {
        let hi = if hi.is_finite() { *hi } else { f.y1 };
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { "L" },
            f.x(*t),
            f.y(hi)
        );
    }
    for (t, lo, _) in band.iter().rev() {
        let _ = write!(d, "L{:.1},{:.1}", f.x(*t), f.y(*lo));
    }
    let _ = write!(svg, r#"<path class="band" d="{d}Z"/>"#);
}

fn polyline(svg: &mut String, f: &Frame, line: &Line<'_>) {
    let mut points = String::new();
    for (t, v) in &line.points {
        let _ = write!(points, "{:.1},{:.1} ", f.x(*t), f.y(*v));
    }
    let _ = write!(
        svg,
        r#"<polyline class="{}" points="{}"/>"#,
        line.class,
        points.trim_end()
    );
    if let Some((t, v)) = line.points.last() {
        let _ = write!(
            svg,
            r#"<circle class="{}" cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
            line.class,
            f.x(*t),
            f.y(*v)
        );
    }
}

fn legend(svg: &mut String, lines: &[Line<'_>]) {
    let mut x = LEFT + 6.0;
    for line in lines {
        let _ = write!(
            svg,
            r#"<text class="legend {}" x="{x:.1}" y="{y}">— {}</text>"#,
            line.class,
            line.name,
            y = PAD + 8.0
        );
        x += 12.0 + 7.0 * line.name.len() as f64;
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, c: f64, b: f64) -> Sample {
        Sample {
            at,
            candidate_rate: Some(c),
            baseline_rate: Some(b),
            estimate: Some(c / b),
            interval: Some((c / b * 0.5, f64::INFINITY)),
            statistic: Some(10f64.powi(at as i32)),
            threshold: Some(100.0),
            limit: Some(1.2),
        }
    }

    #[test]
    fn the_band_and_the_bound_are_drawn_and_said_in_words() {
        let samples = [sample(1, 0.02, 0.01), sample(2, 0.03, 0.01)];
        let svg = estimate("c1", &samples);
        assert!(svg.contains(r#"<path class="band""#), "{svg}");
        assert!(svg.contains("bound 1.2"), "{svg}");
        assert!(
            svg.contains("<desc id=\"c1-d\">estimate now 3. The bound is 1.2. The interval is 1.5 to ∞.</desc>"),
            "{svg}"
        );
        let ev = evidence("c2", &samples);
        assert!(ev.contains("log10 e-value now 2."), "{ev}");
        assert!(ev.contains("threshold 2"), "{ev}");
    }

    #[test]
    fn no_readings_draw_an_empty_chart_not_a_broken_one() {
        let svg = rates("c3", &[]);
        assert!(svg.contains("no readings yet"), "{svg}");
        let nan = Sample {
            at: 5,
            candidate_rate: Some(f64::NAN),
            ..Sample::default()
        };
        assert!(rates("c4", &[nan]).contains("no readings yet"));
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(0.012345), "0.01235");
        assert_eq!(num(1234.6), "1235");
        assert_eq!(num(1.2), "1.2");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::INFINITY), "∞");
    }
}
