//! Where a report's inputs come from in the store: the incident with its
//! release's versions, the release's decision lines, the what-if table.

use anyhow::{Context, bail};
use ripcord_core::Time;
use ripcord_core::whatif::Table;
use ripcord_govern::record::{INCIDENT, Incident};
use ripcord_govern::{IncidentReport, ReleaseFacts};
use ripcord_store::Store;
use serde_json::Value;

/// The incident as stored, with the versions of its release.
pub async fn load_incident(store: &dyn Store, incident: &str) -> anyhow::Result<IncidentReport> {
    let Some(doc) = store.doc(INCIDENT, incident).await? else {
        bail!("incident {incident:?} is not in the store");
    };
    let incident: Incident = serde_json::from_value(doc.body)
        .with_context(|| format!("incident {incident} as stored"))?;
    with_release(store, incident).await
}

/// The incident with the versions of its release, as stored.
pub async fn with_release(store: &dyn Store, incident: Incident) -> anyhow::Result<IncidentReport> {
    let release = match &incident.release {
        Some(id) => match store.release(id).await? {
            Some(r) => Some(
                serde_json::from_value::<ReleaseFacts>(r.body)
                    .with_context(|| format!("release {id} as stored"))?,
            ),
            None => None,
        },
        None => None,
    };
    Ok(IncidentReport { incident, release })
}

/// The what-if table for the incident: its release and the service's
/// other releases of the week before, replayed under a grid of bounds and
/// `for` durations (`report::replays`).
pub async fn load_whatif(
    store: &dyn Store,
    doc: &IncidentReport,
    days: u32,
) -> anyhow::Result<Option<Table>> {
    super::replays::load(store, doc, days).await
}

/// The decisions of the incident's release: the service's decisions from a
/// day before the incident opened whose release is `baseline->candidate`.
pub async fn release_decisions(
    store: &dyn Store,
    doc: &IncidentReport,
) -> anyhow::Result<Vec<String>> {
    const DAY_MS: i64 = 86_400_000;
    const PAGE: i64 = 10_000;
    let opened = Time::parse_rfc3339(&doc.incident.opened_at).with_context(|| {
        format!(
            "incident.opened_at {:?} is not RFC 3339",
            doc.incident.opened_at
        )
    })?;
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .decisions(&doc.incident.service, opened.0 - DAY_MS, after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        // The store's lines are the server's own records.
        let ours = |l: &String| serde_json::from_str(l).is_ok_and(|r| of_release(&r, doc));
        out.extend(page.into_iter().map(|d| d.line).filter(ours));
    }
    Ok(out)
}

/// Whether a decision record belongs to the incident's release (the engine
/// names releases `service:baserecord->candidate#generation`); an incident
/// without a release has none.
pub fn of_release(record: &Value, doc: &IncidentReport) -> bool {
    let Some(r) = &doc.release else {
        return false;
    };
    let release = format!("{}:{}->{}#", doc.incident.service, r.baseline, r.candidate);
    record["explanation"]["release"]
        .as_str()
        .is_some_and(|r| r.starts_with(&release))
}
