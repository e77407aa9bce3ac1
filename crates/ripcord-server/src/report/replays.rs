//! The report's what-if: the incident's release and the service's other
//! recent releases (those without a real incident), read back from the
//! server's journal and replayed through the same engine under a grid of
//! alternative bounds and `for` durations.

use std::collections::BTreeSet;

use crate::journal::{Entry, Start, decode};
use anyhow::Context;
use ripcord_core::Time;
use ripcord_core::engine::EngineOptions;
use ripcord_core::engine::ShareSource;
use ripcord_core::event::Release;
use ripcord_core::ndjson::{Line, parse_line};
use ripcord_core::policy::{Bound, Policy, load_policy};
use ripcord_core::time::Dur;
use ripcord_core::whatif::{Item, Question, Stream, Table, what_if};
use ripcord_govern::IncidentReport;
use ripcord_govern::record::{EntryKind, INCIDENT, Incident, IncidentKind};
use ripcord_store::Store;

use crate::report::deciding_signals;

const PAGE: i64 = 2048;

/// One release's journal: its start and the inputs fed after it.
pub(crate) struct Segment {
    pub(crate) start: Start,
    entries: Vec<Entry>,
}

pub(crate) async fn segments(store: &dyn Store, service: &str) -> anyhow::Result<Vec<Segment>> {
    let mut out: Vec<Segment> = Vec::new();
    let mut from = 0;
    loop {
        let page = store.journal(service, from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for e in page {
            let entry =
                decode(&e.kind, &e.body).with_context(|| format!("journal entry {}", e.seq))?;
            match entry {
                Entry::Start(start) => out.push(Segment {
                    start,
                    entries: Vec::new(),
                }),
                other => {
                    if let Some(s) = out.last_mut() {
                        s.entries.push(other);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A segment's replayable inputs, owned (a stream borrows them): a tick's
/// time, or a line.
pub(crate) type Owned = Vec<(Option<Time>, String)>;

/// The replayable lines of a segment.
pub(crate) fn lines(seg: &Segment, service: &str, first_share: f64) -> Owned {
    let declare = Release {
        ts: Time(seg.start.at_ms),
        service: service.to_string(),
        baseline: seg.start.baseline.clone(),
        candidate: seg.start.candidate.clone(),
        share: first_share,
    };
    let mut out = vec![(None, ripcord_core::ndjson::release_to_line(&declare))];
    for entry in &seg.entries {
        match entry {
            Entry::Events(body) => out.extend(body.lines().map(|l| (None, l.to_string()))),
            Entry::Tick(at) => out.push((Some(*at), String::new())),
            // People's commands are not replayed: the what-if asks what
            // the policy alone would have done.
            Entry::Command(_) | Entry::Start(_) => {}
        }
    }
    out
}

pub(crate) fn stream<'a>(name: &str, owned: &'a [(Option<Time>, String)]) -> Stream<'a> {
    let items = owned
        .iter()
        .filter_map(|(tick, line)| match tick {
            Some(t) => Some(Item::Tick(*t)),
            None => parse_line(line.as_bytes()).ok().map(Item::Line),
        })
        .filter(|i| !matches!(i, Item::Line(Line::Blank)))
        .collect();
    Stream::new(name, items)
}

/// The grid around the current bound: tighter and looser, never past what
/// the loader accepts (ratios stay above 1).
fn bound_grid(bound: Bound) -> Vec<f64> {
    let b = bound.value();
    let mut grid: Vec<f64> = [0.9, 1.1, 1.25, 1.5]
        .iter()
        .map(|f| (b * f * 1000.0).round() / 1000.0)
        .collect();
    if let Bound::MaxRatio(r) = bound {
        grid.retain(|x| *x > 1.0 && (*x - r).abs() > 1e-9);
        // Around a ratio, vary the excess over 1.
        grid.extend([1.0 + (r - 1.0) * 0.5, 1.0 + (r - 1.0) * 2.0]);
    }
    grid.sort_by(f64::total_cmp);
    grid.dedup();
    grid
}

pub(crate) fn first_share(seg: &Segment, policy: &Policy) -> f64 {
    match &seg.start.steps {
        Some(steps) => steps.first().map_or(1.0, |s| s.share),
        None => policy.rollout.steps.first().map_or(1.0, |s| s.share),
    }
}

/// The what-if table for the incident, or `None` when the incident has no
/// trigger or release to replay.
/// Other releases replayed for false alarms are those started in the
/// `days` before the incident.
pub async fn load(
    store: &dyn Store,
    doc: &IncidentReport,
    days: u32,
) -> anyhow::Result<Option<Table>> {
    let inc = &doc.incident;
    let (Some(release), Some(trigger)) = (&doc.release, &inc.trigger) else {
        return Ok(None);
    };
    let lookback = Dur::from_secs(i64::from(days) * 24 * 3600);
    let all = segments(store, &inc.service).await?;
    let Some(seg) = all.iter().find(|s| s.start.release == release.id) else {
        return Ok(None);
    };
    let Some(record) = store
        .policy_version(&inc.service, seg.start.policy_version)
        .await?
    else {
        return Ok(None);
    };
    let policy = load_policy(&record.yaml, "policy")
        .map_err(|d| anyhow::anyhow!("stored policy no longer loads:\n{d}"))?;
    let Some(trigger) = policy.triggers.iter().find(|t| t.name == trigger.name) else {
        return Ok(None);
    };
    let signals = deciding_signals(doc)?;
    let Some(criterion) = signals
        .first()
        .map(|s| s.criterion.clone())
        .filter(|c| policy.criterion_index(c).is_some())
    else {
        return Ok(None);
    };
    let c = &policy.criteria[policy.criterion_index(&criterion).unwrap_or(0)];
    let incidents_real = real_incident_releases(store, &inc.service).await?;
    let opened = Time::parse_rfc3339(&inc.opened_at).unwrap_or(Time(0));
    let own = lines(seg, &inc.service, first_share(seg, &policy));
    let others_owned: Vec<(String, Owned)> = all
        .iter()
        .filter(|s| s.start.release != release.id)
        .filter(|s| !incidents_real.contains(&s.start.release))
        .filter(|s| s.start.at_ms >= opened.0 - lookback.0 && s.start.at_ms <= opened.0)
        .map(|s| {
            (
                s.start.release.clone(),
                lines(s, &inc.service, first_share(s, &policy)),
            )
        })
        .collect();
    let incident = stream(&release.id, &own);
    let others: Vec<Stream> = others_owned.iter().map(|(n, l)| stream(n, l)).collect();
    let detected = inc
        .timeline
        .iter()
        .find(|e| e.kind == EntryKind::Signal)
        .and_then(|e| Time::parse_rfc3339(&e.at));
    let question = Question {
        policy: &policy,
        criterion: &criterion,
        trigger: &trigger.name,
        bounds: bound_grid(c.bound),
        sustains: vec![Dur::from_secs(0), Dur::from_secs(60), Dur::from_secs(300)],
        incident: &incident,
        detected_at: detected,
        others: &others,
        lateness: EngineOptions::default().lateness,
        share_source: ShareSource::Engine,
    };
    Ok(Some(what_if(&question)?))
}

/// Releases that had a real incident: they are not "normal" traffic.
async fn real_incident_releases(
    store: &dyn Store,
    service: &str,
) -> anyhow::Result<BTreeSet<String>> {
    let mut releases = BTreeSet::new();
    for d in store.docs(INCIDENT, Some(service)).await? {
        let inc: Incident = serde_json::from_value(d.body)
            .with_context(|| format!("incident {} as stored", d.id))?;
        if inc.kind == IncidentKind::Real {
            releases.extend(inc.release);
        }
    }
    Ok(releases)
}
