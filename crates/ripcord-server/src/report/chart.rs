//! SVG charts of the deciding signals, drawn with plotters' SVG backend.
//!
//! plotters is built without its `ttf` feature, so it lays text out with
//! its own size estimate and needs no system fonts: the chart renders the
//! same on a bare CI machine, and the viewer's browser picks the font.

use plotters::prelude::*;
use serde_json::Value;

use ripcord_core::Time;

/// One line of a chart: minutes since the incident opened → value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The estimate and the window estimate of `criterion` at every decision
/// that carried its evidence, in minutes relative to `opened`.
pub fn deciding_series(decisions: &[String], criterion: &str, opened: Time) -> Vec<Series> {
    let mut estimate = Vec::new();
    let mut window = Vec::new();
    let mut strength = Vec::new();
    for line in decisions {
        let Ok(d) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(at) = d["at"].as_str().and_then(Time::parse_rfc3339) else {
            continue;
        };
        let x = (at - opened).0 as f64 / 60_000.0;
        let evidence = d["explanation"]["evidence"].as_array();
        for e in evidence.into_iter().flatten() {
            if e["criterion"].as_str() != Some(criterion) {
                continue;
            }
            if let Some(y) = e["estimate"].as_f64() {
                estimate.push((x, y));
            }
            if let Some(y) = e["window_estimate"].as_f64() {
                window.push((x, y));
            }
            if let (Some(stat), Some(limit)) = (e["statistic"].as_f64(), e["threshold"].as_f64())
                && limit > 0.0
            {
                strength.push((x, stat / limit));
            }
        }
    }
    // Tests without a point estimate (the flagged-event likelihood ratio)
    // are charted by their evidence: the e-value over the threshold it
    // must reach, which crosses 1 when the test decides.
    if !estimate.is_empty() || !window.is_empty() {
        strength.clear();
    }
    [
        ("estimate", estimate),
        ("window estimate", window),
        ("e-value / threshold", strength),
    ]
    .into_iter()
    .map(|(name, points)| Series {
        name: name.into(),
        points: one_per_instant(points),
    })
    .filter(|s| !s.points.is_empty())
    .collect()
}

/// Sorted by time, keeping the first point of each instant: a breach and
/// the firing it causes carry the same evidence at the same moment.
fn one_per_instant(mut points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points.dedup_by(|later, earlier| later.0 == earlier.0);
    points
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The chart as an SVG document: one polyline per series, a dot per
/// point, and a grey vertical line where the incident opened (x = 0).
pub fn svg(title: &str, series: &[Series]) -> anyhow::Result<String> {
    let (x0, x1, y0, y1) = extent(series);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("minutes since the incident opened")
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_error)?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(draw_error)?
                .label(&s.name);
            chart
                .draw_series(s.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(draw_error)?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, y0), (0.0, y1)],
                RGBColor(120, 120, 120).stroke_width(1),
            )))
            .map_err(draw_error)?;
        legend(&root, series).map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(out)
}

/// Series names as coloured text in the top-right corner. Drawn by hand
/// rather than with plotters' legend, whose sample lines would be more
/// polylines in the document.
fn legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = 40 + 18 * i as i32;
        root.draw(&Rectangle::new(
            [(560, y - 9), (572, y + 3)],
            color.filled(),
        ))?;
        root.draw(&Text::new(s.name.clone(), (578, y - 9), ("sans-serif", 13)))?;
    }
    Ok(())
}

/// The axes' ranges: every point and x = 0, with a margin.
fn extent(series: &[Series]) -> (f64, f64, f64, f64) {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = (0.0f64, 0.0f64);
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in points() {
        (x0, x1) = (x0.min(*x), x1.max(*x));
        (y0, y1) = (y0.min(*y), y1.max(*y));
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    let pad_x = ((x1 - x0) * 0.05).max(1.0);
    let pad_y = ((y1 - y0) * 0.1).max(y1.abs() * 0.1).max(1e-6);
    (x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y)
}

fn draw_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}
