//! Playbook `check` and `verify` steps: data-integrity checks after a
//! rollback and the rollback's verification, computed from the store's own
//! journal and audit log.

use std::collections::BTreeSet;

use ripcord_core::Time;
use ripcord_core::assign::is_candidate;
use ripcord_core::limits::EventLimits;
use ripcord_core::ndjson::{Line, parse_line};
use ripcord_core::policy::governance::CheckKind;
use ripcord_core::policy::{Bound, Criterion, Direction, Policy, SignalKind};
use ripcord_core::time::Dur;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::hub::{Hub, ReleaseView};
use crate::journal::Kind;
use ripcord_core::engine::Phase;
use ripcord_govern::record::Incident;

/// Journal entries are read this many at a time.
const PAGE: i64 = 512;

/// An event of the current release's journal, reduced to what checks need.
struct Seen {
    ts: Time,
    version: String,
    unit: String,
    values: Vec<(String, f64)>,
}

/// Every event line journaled since the service's latest release start.
async fn events_since_start(hub: &Hub, service: &str) -> Result<Vec<Seen>, ApiError> {
    let Some(mut from) = hub.store.last_start(service).await? else {
        return Ok(Vec::new());
    };
    let mut seen = Vec::new();
    loop {
        let page = hub.store.journal(service, from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for entry in page.iter().filter(|e| e.kind == Kind::Events.as_str()) {
            for line in entry.body.lines() {
                if let Ok(Line::Event(ev)) = parse_line(line.as_bytes()) {
                    seen.push(Seen {
                        ts: ev.ts,
                        version: ev.version.to_string(),
                        unit: ev.unit.to_string(),
                        values: ev.values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    });
                }
            }
        }
    }
    Ok(seen)
}

/// Runs the checks on the service's current release (`view`).
pub async fn run(
    hub: &Hub,
    view: Option<&ReleaseView>,
    checks: &[CheckKind],
) -> Result<Vec<Value>, ApiError> {
    // The journal is read once for every check that needs it.
    let needs_events = checks.iter().any(|c| *c != CheckKind::StoreIntegrity);
    let seen = match view {
        Some(v) if needs_events => events_since_start(hub, &v.service).await?,
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for check in checks {
        let (ok, detail) = match check {
            CheckKind::EventsKept => events_kept(hub, view, &seen).await?,
            CheckKind::BaselineAssigned => baseline_assigned(view, &seen),
            CheckKind::StoreIntegrity => store_integrity(hub).await?,
        };
        out.push(json!({"check": check.as_str(), "ok": ok, "detail": detail}));
    }
    Ok(out)
}

/// Every event acknowledged for the release (its counters) is in the
/// durable journal, and nothing more.
async fn events_kept(
    hub: &Hub,
    view: Option<&ReleaseView>,
    seen: &[Seen],
) -> Result<(bool, Value), ApiError> {
    let Some(view) = view else {
        return Ok((false, json!("the service has no release")));
    };
    let journaled = seen
        .iter()
        .filter(|e| e.version == view.baseline || e.version == view.candidate)
        .count() as u64;
    // A re-release continues the same journal: count the whole chain.
    let mut counted = view.events.baseline + view.events.candidate;
    let mut previous = view.previous.clone();
    while let Some(id) = previous {
        let Some(r) = hub.store.release(&id).await? else {
            break;
        };
        let earlier: ReleaseView = serde_json::from_value(r.body)
            .map_err(|e| ApiError::unavailable(format!("release {id} is unreadable: {e}")))?;
        counted += earlier.events.baseline + earlier.events.candidate;
        previous = earlier.previous;
    }
    let detail = json!({"acknowledged": counted, "journaled": journaled});
    Ok((counted == journaled, detail))
}

/// The release is rolled back and every unit seen during it is now served
/// the baseline by the same function `/v1/assign` uses.
fn baseline_assigned(view: Option<&ReleaseView>, seen: &[Seen]) -> (bool, Value) {
    let Some(view) = view else {
        return (false, json!("the service has no release"));
    };
    let units: BTreeSet<&str> = seen.iter().map(|e| e.unit.as_str()).collect();
    let on_candidate = units
        .iter()
        .filter(|u| is_candidate(&view.service, u, view.share))
        .count();
    let ok = view.state == Phase::RolledBack && on_candidate == 0;
    let detail = json!({
        "state": view.state,
        "share": view.share,
        "units_checked": units.len(),
        "units_on_candidate": on_candidate,
    });
    (ok, detail)
}

/// SQLite's integrity check and the audit chain recomputed end to end.
async fn store_integrity(hub: &Hub) -> Result<(bool, Value), ApiError> {
    let problems = hub.store.integrity().await?;
    let mut text = String::new();
    let mut from = 1;
    loop {
        let page = hub.store.audit(from, 1000).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for l in &page {
            text.push_str(&l.line);
            text.push('\n');
        }
    }
    let chain = match ripcord_core::audit::verify(&text) {
        Ok(v) => json!({"ok": true, "records": v.records}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let ok = problems.is_empty() && chain["ok"] == json!(true);
    Ok((ok, json!({"sqlite": problems, "audit_chain": chain})))
}

/// The rollback's verification: over `hold` after mitigation, the
/// baseline meets every absolute criterion of the policy.
pub async fn verify(
    hub: &Hub,
    target: (&Policy, Option<&ReleaseView>),
    inc: &Incident,
    hold: Dur,
    now: Time,
) -> Result<Value, ApiError> {
    let (policy, view) = target;
    let Some(from) = inc.mitigated_at.as_deref().and_then(Time::parse_rfc3339) else {
        return Err(ApiError::conflict(format!(
            "incident {} is not mitigated yet; verification watches the baseline after the rollback",
            inc.id
        )));
    };
    let to = from + hold;
    if now < to {
        return Err(ApiError::conflict(format!(
            "verification needs {hold} of data after the rollback; run it from {}",
            to.to_rfc3339()
        )));
    }
    let Some(view) = view else {
        return Err(ApiError::conflict("the service has no release"));
    };
    let seen = events_since_start(hub, &view.service).await?;
    let window: Vec<&Seen> = seen
        .iter()
        .filter(|e| e.version == view.baseline && e.ts >= from && e.ts < to)
        .collect();
    let criteria: Vec<Value> = policy
        .criteria
        .iter()
        .filter(|c| c.across.is_none())
        .filter_map(|c| match c.bound {
            Bound::Absolute(b) => Some(judge(policy, c, b, &window, &hub.options.limits)),
            _ => None,
        })
        .collect();
    let ok = !window.is_empty() && criteria.iter().all(|c| c["ok"] == json!(true));
    Ok(json!({
        "ok": ok,
        "from": from.to_rfc3339(),
        "to": to.to_rfc3339(),
        "baseline_events": window.len(),
        "criteria": criteria,
    }))
}

/// One absolute criterion on the baseline's events in the window. Counts
/// are clamped as the engine clamps them (the journal may predate today's
/// limits): a negative or oversized flag count cannot verify a failing
/// stage, nor a rate exceed 1.
fn judge(
    policy: &Policy,
    c: &Criterion,
    bound: f64,
    window: &[&Seen],
    limits: &EventLimits,
) -> Value {
    let signal = &policy.signals[c.signal];
    let value = |e: &Seen, f: &str| e.values.iter().find(|(k, _)| k == f).map(|(_, v)| *v);
    let (observed, samples) = match &signal.kind {
        SignalKind::Rate {
            numerator,
            denominator,
        } => {
            let (num, den) = window
                .iter()
                .filter_map(|e| Some((value(e, numerator).unwrap_or(0.0), value(e, denominator)?)))
                .map(|(x, n)| {
                    let n = limits.count(n);
                    (limits.count(x).min(n), n)
                })
                .fold((0.0, 0.0), |(a, b), (x, n)| (a + x, b + n));
            ((den > 0.0).then(|| num / den), den as u64)
        }
        SignalKind::Score { field, .. } => {
            let xs: Vec<f64> = window
                .iter()
                .filter_map(|e| value(e, field).map(|v| limits.value(v)))
                .collect();
            let mean = (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
            (mean, xs.len() as u64)
        }
        SignalKind::Latency { field } => {
            let mut xs: Vec<f64> = window
                .iter()
                .filter_map(|e| value(e, field).map(|v| limits.value(v)))
                .collect();
            xs.sort_by(f64::total_cmp);
            let q = c.quantile.unwrap_or(0.5);
            let at = ((xs.len() as f64 * q).ceil() as usize).saturating_sub(1);
            (xs.get(at).copied(), xs.len() as u64)
        }
        SignalKind::Category { .. } => (None, 0),
    };
    let ok = observed.is_some_and(|o| match signal.direction {
        Direction::HigherIsWorse => o <= bound,
        Direction::LowerIsWorse => o >= bound,
    });
    json!({
        "criterion": c.name,
        "observed": observed,
        "bound": bound,
        "samples": samples,
        "ok": ok,
    })
}
