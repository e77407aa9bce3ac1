//! What the pages show, built from the hub and the store: release rows,
//! criterion tiles, timelines. Figures come from the running engine
//! (`Engine::readings`) and its recorded series; nothing is computed
//! twice.

use ripcord_core::decision::Evidence;
use ripcord_core::engine::{Reading, SrmReading, Verdict};
use ripcord_core::{Dur, Time};
use serde_json::{Value, json};

use super::chart::{self, Sample, num};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::app::Shared;
use crate::hub::{ReleaseView, series};

/// Series points read for one release page (about a day at the default
/// cadence of one a minute); older ones are left to the API's paging.
const SERIES_POINTS: i64 = 1500;
/// Points drawn per chart.
const DRAWN: usize = 240;
/// Decisions read for one release's timeline.
const DECISIONS: i64 = 2000;

/// The running engine's figures for a service's current release.
pub struct Live {
    pub release: String,
    pub readings: Vec<Reading>,
    pub srm: Option<SrmReading>,
    pub assign_calls: u64,
}

/// The live figures of `service`, if it runs a release.
pub async fn live(app: &Shared, service: &str) -> Option<Live> {
    let known = app.hub.service(service)?;
    let assign_calls = known
        .assign_calls
        .load(std::sync::atomic::Ordering::Relaxed);
    let state = known.state.lock().await;
    let release = state.current.as_ref()?.id.clone();
    let engine = state.engine.as_ref()?;
    Some(Live {
        release,
        readings: engine.readings(),
        srm: engine.srm(),
        assign_calls,
    })
}

/// Every service's latest release the principal may see, by service.
pub async fn current_releases(
    app: &Shared,
    principal: &Principal,
) -> Result<Vec<ReleaseView>, ApiError> {
    let records = app.hub.store.current_releases().await?;
    let mut views: Vec<ReleaseView> = records
        .into_iter()
        .filter(|r| principal.scope.allows(&r.service))
        .filter_map(|r| serde_json::from_value(r.body).ok())
        .collect();
    views.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(views)
}

/// One line of the releases page.
pub fn row(view: &ReleaseView, live: Option<&Live>, now: Time) -> Value {
    let live = live.filter(|l| l.release == view.id);
    let criteria: Vec<Value> = live.map_or_else(Vec::new, |l| {
        l.readings
            .iter()
            .map(|r| json!({"name": r.evidence.criterion, "verdict": verdict(r.verdict)}))
            .collect()
    });
    json!({
        "id": view.id,
        "service": view.service,
        "baseline": view.baseline,
        "candidate": view.candidate,
        "state": phase(view),
        "share": percent(view.share),
        "in_step": duration(now - step_started(view)),
        "drill": view.drill,
        "criteria": criteria,
        "health": health(view, live),
    })
}

/// The release's state in words, with a mark that does not rely on colour.
pub fn phase(view: &ReleaseView) -> Value {
    use ripcord_core::engine::Phase;
    let (mark, tone) = match view.state {
        Phase::RollingBack | Phase::RolledBack => ("↩", "bad"),
        Phase::Paused => ("‖", "warn"),
        Phase::Promoted => ("✓", "good"),
        _ => ("▶", "neutral"),
    };
    json!({"key": view.state.as_str(), "text": view.state.as_str().replace('_', " "), "mark": mark, "tone": tone})
}

/// A verdict as the pages show it: a word, a mark and a tone.
pub fn verdict(v: Verdict) -> Value {
    let (text, mark, tone) = match v {
        Verdict::Ok => ("ok", "✓", "good"),
        Verdict::Watching => ("watching", "◐", "warn"),
        Verdict::Breached => ("breached", "✕", "bad"),
        Verdict::NoData => ("no data", "–", "muted"),
    };
    json!({"key": v.as_str(), "text": text, "mark": mark, "tone": tone})
}

/// When the release's current step began: its last share move, or its
/// start.
fn step_started(view: &ReleaseView) -> Time {
    view.moves
        .last()
        .map(|m| m.at.as_str())
        .or(Some(view.created_at.as_str()))
        .and_then(Time::parse_rfc3339)
        .unwrap_or(Time(0))
}

/// Events per version, assignment calls, and the sample-ratio check.
fn health(view: &ReleaseView, live: Option<&Live>) -> Value {
    let srm = live.and_then(|l| l.srm).map(|s| {
        let share = s.candidate / (s.candidate + s.baseline).max(1.0);
        let expected = s.expected / (s.candidate + s.baseline).max(1.0);
        let (text, tone) = if s.fired {
            ("mismatch: halted", "bad")
        } else if s.e_value >= s.threshold / 10.0 {
            ("drifting", "warn")
        } else {
            ("ok", "good")
        };
        json!({
            "text": text,
            "tone": tone,
            "detail": format!(
                "candidate {} of units, {} expected; e-value {} of {}",
                percent(share), percent(expected), num(s.e_value), num(s.threshold)
            ),
        })
    });
    let no_data = live.is_some_and(|l| {
        !l.readings.is_empty() && l.readings.iter().all(|r| r.verdict == Verdict::NoData)
    });
    json!({
        "baseline_events": view.events.baseline,
        "candidate_events": view.events.candidate,
        "arriving": !no_data,
        "assign_calls": live.map(|l| l.assign_calls),
        "srm": srm,
    })
}

pub fn percent(x: f64) -> String {
    let p = x * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// A duration in the largest two units that matter.
pub fn duration(d: Dur) -> String {
    let s = d.0.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// One tile per criterion: the live verdict and figures, the recorded
/// series drawn as charts, the explanation and the breakdown.
pub async fn tiles(
    app: &Shared,
    view: &ReleaseView,
    live: Option<&Live>,
) -> Result<Vec<Value>, ApiError> {
    let live = live.filter(|l| l.release == view.id);
    let mut points = recorded(app, view).await?;
    // The readings of this moment, as one more point of the same shape.
    if let Some(l) = live {
        let now = series::point(view, &l.readings, app.hub.now());
        points.push((now.at_ms, now.body));
    }
    let names = criterion_names(live, &points);
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let samples: Vec<Sample> = points
                .iter()
                .filter_map(|(at, body)| sample_of_point(*at, body, name))
                .collect();
            let samples = thin(samples, DRAWN);
            let reading =
                live.and_then(|l| l.readings.iter().find(|r| r.evidence.criterion == *name));
            tile(i, name, reading, &samples)
        })
        .collect())
}

/// The release's recent recorded series, (ms, point) oldest first: at
/// most [`SERIES_POINTS`] at the cadence the release is recorded at now
/// (which slows as it ages, so a long release still shows its whole run).
async fn recorded(app: &Shared, view: &ReleaseView) -> Result<Vec<(i64, Value)>, ApiError> {
    let now = app.hub.now();
    let every = series::cadence(&app.hub.series, view, now);
    let start = Time::parse_rfc3339(&view.created_at).map_or(0, |t| t.0);
    let from = start.max(now.0.saturating_sub(every.0.saturating_mul(SERIES_POINTS)));
    let points = app.hub.store.series(&view.id, from, SERIES_POINTS).await?;
    Ok(points.into_iter().map(|p| (p.at_ms, p.body)).collect())
}

/// At most `keep` samples, evenly spaced, the newest always among them:
/// a chart is a few hundred pixels wide, and the page stays light however
/// many points a long release recorded.
fn thin(samples: Vec<Sample>, keep: usize) -> Vec<Sample> {
    if samples.len() <= keep || keep < 2 {
        return samples;
    }
    let step = samples.len().div_ceil(keep - 1);
    let last = samples.len() - 1;
    samples
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == last)
        .map(|(_, s)| s)
        .collect()
}

/// The criteria to draw: the live ones, else those the series recorded.
fn criterion_names(live: Option<&Live>, points: &[(i64, Value)]) -> Vec<String> {
    if let Some(l) = live.filter(|l| !l.readings.is_empty()) {
        return l
            .readings
            .iter()
            .map(|r| r.evidence.criterion.clone())
            .collect();
    }
    let mut names: Vec<String> = Vec::new();
    for (_, body) in points {
        for c in body["criteria"].as_array().into_iter().flatten() {
            if let Some(n) = c["criterion"].as_str()
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_string());
            }
        }
    }
    names
}

fn tile(i: usize, name: &str, reading: Option<&Reading>, samples: &[Sample]) -> Value {
    let id = format!("t{i}");
    let last = samples.last();
    let ev = reading.map(|r| &r.evidence);
    json!({
        "id": id,
        "name": name,
        "verdict": reading.map(|r| verdict(r.verdict)),
        "signal": ev.map(|e| e.signal.as_str()),
        "test": ev.map(|e| e.test),
        "bound": ev.map(|e| e.bound.as_str()),
        "words": ev.map(words),
        "statistic": last.and_then(|s| s.statistic).map(num),
        "threshold": last.and_then(|s| s.threshold).map(num),
        "breakdown": ev.map(breakdown).unwrap_or_default(),
        "rates": chart::rates(&format!("{id}r"), samples),
        "estimate": chart::estimate(&format!("{id}e"), samples),
        "evidence": chart::evidence(&format!("{id}s"), samples),
        "points": samples.len(),
    })
}

/// The evidence in a sentence: where the estimate stands against the bound
/// and how strong the evidence is.
fn words(e: &Evidence) -> String {
    let estimate = e.estimate.map_or("no estimate yet".to_string(), num);
    let interval = e.interval.map_or(String::new(), |(lo, hi)| {
        format!(" (interval {} to {})", num(lo), num(hi))
    });
    let strength = if e.statistic >= e.threshold {
        "enough evidence to reject"
    } else {
        "not enough evidence to reject"
    };
    format!(
        "Bound: {}. Estimate {estimate}{interval} over {} candidate samples; e-value {} of the {} needed at {}% confidence: {strength}.",
        e.bound,
        e.candidate.n,
        num(e.statistic),
        num(e.threshold),
        num(e.confidence * 100.0),
    )
}

fn breakdown(e: &Evidence) -> Vec<Value> {
    e.breakdown
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "value": num(p.value),
                "reference": p.reference.map(num),
                "contribution": p.contribution.map(num),
                "interval": p.interval.map(|(lo, hi)| format!("{} to {}", num(lo), num(hi))),
                "n": p.n,
            })
        })
        .collect()
}

/// A criterion's figures from a recorded series point.
fn sample_of_point(at: i64, body: &Value, name: &str) -> Option<Sample> {
    let c = body["criteria"]
        .as_array()?
        .iter()
        .find(|c| c["criterion"] == json!(name))?;
    let interval = c["interval"].as_array().and_then(|v| {
        Some((
            v.first()?.as_f64()?,
            v.get(1)?.as_f64().unwrap_or(f64::INFINITY),
        ))
    });
    Some(Sample {
        at,
        candidate_rate: c["candidate_rate"].as_f64(),
        baseline_rate: c["baseline_rate"].as_f64(),
        estimate: c["estimate"].as_f64(),
        interval,
        statistic: c["statistic"].as_f64(),
        threshold: c["threshold"].as_f64(),
        limit: c["limit"].as_f64(),
    })
}

/// The decisions of one release, newest first, as timeline lines.
pub async fn decisions(app: &Shared, view: &ReleaseView) -> Result<Vec<Value>, ApiError> {
    let from = Time::parse_rfc3339(&view.created_at).map_or(0, |t| t.0);
    let entries = app
        .hub
        .store
        .decisions(&view.service, from, 0, DECISIONS)
        .await?;
    let mut lines: Vec<Value> = entries
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(&d.line).ok())
        .filter(|d| d["explanation"]["release"] == json!(view.engine_release))
        .map(|d| {
            let action = d["action"].as_str().unwrap_or_default().to_string();
            json!({
                "at": d["at"],
                "kind": d["kind"].as_str().unwrap_or_default().replace('_', " "),
                "action": action.replace('_', " "),
                "action_key": action,
                "stage": action.starts_with("rollback"),
                "share": d["share"].as_f64().map(percent),
                "summary": d["explanation"]["summary"],
                "criterion": d["explanation"]["criterion"],
            })
        })
        .collect();
    lines.reverse();
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_shares_read_as_people_write_them() {
        assert_eq!(duration(Dur(59_000)), "59s");
        assert_eq!(duration(Dur(61_000)), "1m 1s");
        assert_eq!(duration(Dur(3_660_000)), "1h 1m");
        assert_eq!(duration(Dur(90_000_000)), "1d 1h");
        assert_eq!(duration(Dur(-5)), "0s");
        assert_eq!(percent(0.05), "5%");
        assert_eq!(percent(0.125), "12.5%");
    }

    #[test]
    fn thinning_keeps_the_first_and_the_newest_and_at_most_the_count() {
        let samples: Vec<Sample> = (0..1000)
            .map(|i| Sample {
                at: i,
                ..Sample::default()
            })
            .collect();
        let kept = thin(samples, 240);
        assert!(kept.len() <= 240, "{}", kept.len());
        assert_eq!(kept.first().map(|s| s.at), Some(0));
        assert_eq!(kept.last().map(|s| s.at), Some(999));
        let few: Vec<Sample> = (0..5)
            .map(|i| Sample {
                at: i,
                ..Sample::default()
            })
            .collect();
        assert_eq!(thin(few, 240).len(), 5);
    }

    #[test]
    fn a_series_point_gives_its_criterion_and_an_open_interval() {
        let body = json!({"criteria": [
            {"criterion": "other", "estimate": 9.0},
            {"criterion": "halluc", "estimate": 1.5, "interval": [1.1, null],
             "candidate_rate": 0.03, "baseline_rate": 0.02, "statistic": 40.0,
             "threshold": 100.0, "limit": 1.2},
        ]});
        let s = sample_of_point(7, &body, "halluc").unwrap();
        assert_eq!(s.interval, Some((1.1, f64::INFINITY)));
        assert_eq!(s.estimate, Some(1.5));
        assert_eq!(s.limit, Some(1.2));
        assert!(sample_of_point(7, &body, "missing").is_none());
    }
}
