//! Erasing one person (a unit) from everything ripcord keeps: the raw
//! event lines of the journal, the samples in stored snapshots, and the
//! sampled lines of evidence bundles (each replaced by a purged copy under
//! its new address, its incidents pointed at it). What a legal hold keeps
//! is left and counted. Every change is audited; the purge itself is kept
//! as a document (kind `purge`) that names the unit only by its SHA-256,
//! so that a running server applies a purge made by `ripcord purge` on
//! the store to the samples it holds in memory.

use anyhow::Context;
use ripcord_core::Time;
use ripcord_core::evidence::{self, address};
use ripcord_core::purge::{Unit, unit_key};
use ripcord_govern::record::{INCIDENT, Incident};
use ripcord_store::{Batch, Doc, Held, PendingAudit, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::hub::Hub;
use crate::hub::govern::read_docs;
use crate::hub::snapshot::ServiceSnapshot;

/// The document kind of purges.
pub const PURGE: &str = "purge";

/// Journal entries read per page.
const PAGE: i64 = 256;

/// What a purge did, as stored and answered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Purged {
    pub id: String,
    /// SHA-256 (hex) of the unit's id: the id itself is not kept.
    pub unit_key: String,
    pub reason: String,
    pub by: String,
    pub at: String,
    pub journal_entries: u64,
    pub journal_lines: u64,
    /// Lines forgotten from the samples of stored snapshots and of the
    /// services' live state.
    pub sample_lines: u64,
    pub bundles: u64,
    pub bundle_lines: u64,
    /// (old address, new address) of each purged bundle.
    pub replaced: Vec<(String, String)>,
    /// Lines a legal hold kept, everywhere.
    pub held_lines: u64,
    pub held_bundles: u64,
    /// Stored snapshots this build cannot read (left as they are).
    pub unreadable_snapshots: u64,
}

/// Who purges, why and when.
pub struct Request<'a> {
    pub unit: &'a str,
    pub reason: &'a str,
    pub by: &'a str,
    pub now: Time,
}

/// Purges the unit from the store; the caller applies it to live state.
pub async fn purge_store(
    store: &dyn Store,
    req: &Request<'_>,
    held: &Held,
) -> anyhow::Result<Purged> {
    let unit = Unit::new(req.unit);
    let mut purged = Purged {
        id: format!("purge-{}-{}", &unit.key()[..12], req.now.0),
        unit_key: unit.key(),
        reason: req.reason.to_string(),
        by: req.by.to_string(),
        at: req.now.to_rfc3339(),
        ..Purged::default()
    };
    journal(store, &unit, held, req, &mut purged).await?;
    snapshots(store, &unit, held, req, &mut purged).await?;
    bundles(store, &unit, held, req, &mut purged).await?;
    store.commit(&[record(&purged, req)]).await?;
    Ok(purged)
}

/// Purges through a running server: the store, then the samples it holds
/// in memory.
pub async fn purge(hub: &Hub, req: &Request<'_>, held: &Held) -> anyhow::Result<Purged> {
    let mut purged = purge_store(&*hub.store, req, held).await?;
    let (forgotten, kept) = apply(hub, &purged, held).await?;
    purged.sample_lines += forgotten;
    purged.held_lines += kept;
    Ok(purged)
}

/// Applies a stored purge to a server's live state.
pub async fn apply(hub: &Hub, purged: &Purged, held: &Held) -> anyhow::Result<(u64, u64)> {
    let key = purged.unit_key.clone();
    let erase = move |line: &str| unit_key(line).as_deref() == Some(key.as_str());
    hub.forget(&erase, &purged.replaced, held).await
}

/// Every purge stored, oldest first.
pub async fn stored(store: &dyn Store) -> anyhow::Result<Vec<Purged>> {
    read_docs(store, PURGE, None)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))
}

fn audit(
    req: &Request<'_>,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> PendingAudit {
    PendingAudit {
        at_ms: req.now.0,
        principal: req.by.to_string(),
        action: action.into(),
        subject: subject.into(),
        detail,
    }
}

/// The purge's own document and audit record, with its counts.
fn record(purged: &Purged, req: &Request<'_>) -> Batch {
    let body = json!(purged);
    Batch {
        docs: vec![Doc {
            kind: PURGE.into(),
            id: purged.id.clone(),
            service: String::new(),
            created_ms: req.now.0,
            body: body.clone(),
        }],
        audit: vec![audit(
            req,
            "purge.unit",
            &format!("unit:{}", purged.unit_key),
            body,
        )],
        answered_at_ms: req.now.0,
        ..Batch::default()
    }
}

async fn journal(
    store: &dyn Store,
    unit: &Unit,
    held: &Held,
    req: &Request<'_>,
    purged: &mut Purged,
) -> anyhow::Result<()> {
    let needles = unit.needles();
    let mut after = 0;
    loop {
        let page = store
            .events_containing(needles.as_deref(), after, PAGE)
            .await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.seq;
        let mut batch = Batch {
            answered_at_ms: req.now.0,
            ..Batch::default()
        };
        let (mut entries, mut lines) = (0, 0);
        for entry in &page {
            let Some((body, removed)) = unit.strip(&entry.body) else {
                continue;
            };
            if entry
                .release_id
                .as_ref()
                .is_some_and(|r| held.releases.contains(r))
            {
                purged.held_lines += removed;
                continue;
            }
            batch.rewrites.push((entry.seq, body));
            entries += 1;
            lines += removed;
        }
        if entries == 0 {
            continue;
        }
        let detail =
            json!({"unit_key": unit.key(), "journal_entries": entries, "journal_lines": lines});
        batch.audit.push(audit(
            req,
            "purge.journal",
            &format!("unit:{}", unit.key()),
            detail,
        ));
        store.commit(&[batch]).await?;
        purged.journal_entries += entries;
        purged.journal_lines += lines;
    }
}

/// The samples inside the stored snapshots (of services whose current
/// release no hold keeps).
async fn snapshots(
    store: &dyn Store,
    unit: &Unit,
    held: &Held,
    req: &Request<'_>,
    purged: &mut Purged,
) -> anyhow::Result<()> {
    for service in store.services().await? {
        let Some(mut stored) = store.snapshot(&service).await? else {
            continue;
        };
        let Ok(mut body) = ServiceSnapshot::decode(&stored.body) else {
            purged.unreadable_snapshots += 1;
            continue;
        };
        let Some(sample) = body.sample.as_mut() else {
            continue;
        };
        let release = store.releases(Some(&service)).await?.pop().map(|r| r.id);
        if release.is_some_and(|r| held.releases.contains(&r)) {
            purged.held_lines += sample.lines().iter().filter(|l| unit.named_by(l)).count() as u64;
            continue;
        }
        let n = sample.forget(|l| unit.named_by(l)) as u64;
        if n == 0 {
            continue;
        }
        stored.body = body.encode().map_err(anyhow::Error::msg)?;
        let detail = json!({"unit_key": unit.key(), "service": service, "sample_lines": n});
        let batch = Batch {
            snapshots: vec![stored],
            audit: vec![audit(req, "purge.snapshot", &service, detail)],
            answered_at_ms: req.now.0,
            ..Batch::default()
        };
        store.commit(&[batch]).await?;
        purged.sample_lines += n;
    }
    Ok(())
}

/// Evidence bundles: each one naming the unit is replaced by a copy
/// without those lines, and its incidents are pointed at the copy.
async fn bundles(
    store: &dyn Store,
    unit: &Unit,
    held: &Held,
    req: &Request<'_>,
    purged: &mut Purged,
) -> anyhow::Result<()> {
    let incidents: Vec<Incident> = read_docs(store, INCIDENT, None)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let mut after = String::new();
    loop {
        let page = store.blob_addresses(&after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.clone();
        for old in &page {
            let Some(bytes) = store.blob(old).await? else {
                continue;
            };
            // Blobs that are not bundles hold no event lines.
            let Ok(mut bundle) = evidence::open(old, &bytes) else {
                continue;
            };
            let n = bundle.events.iter().filter(|l| unit.named_by(l)).count() as u64;
            if n == 0 {
                continue;
            }
            if held.blobs.contains(old) {
                purged.held_bundles += 1;
                purged.held_lines += n;
                continue;
            }
            bundle.events.retain(|l| !unit.named_by(l));
            bundle.events_purged += n;
            let copy = bundle.canonical().into_bytes();
            let new = address(&copy);
            let batch = replace_bundle(old, (&new, copy), &incidents, (unit, n), req)
                .with_context(|| format!("bundle {old}"))?;
            store.commit(&[batch]).await?;
            purged.bundles += 1;
            purged.bundle_lines += n;
            purged.replaced.push((old.clone(), new));
        }
    }
}

fn replace_bundle(
    old: &str,
    (new, bytes): (&str, Vec<u8>),
    incidents: &[Incident],
    (unit, lines): (&Unit, u64),
    req: &Request<'_>,
) -> anyhow::Result<Batch> {
    let mut batch = Batch {
        blobs: vec![(new.to_string(), bytes)],
        forget_blobs: vec![old.to_string()],
        answered_at_ms: req.now.0,
        ..Batch::default()
    };
    for inc in incidents
        .iter()
        .filter(|i| i.evidence.as_deref() == Some(old))
    {
        let mut inc = inc.clone();
        inc.evidence = Some(new.to_string());
        batch.docs.push(Doc {
            kind: INCIDENT.into(),
            id: inc.id.clone(),
            service: inc.service.clone(),
            created_ms: req.now.0,
            body: serde_json::to_value(&inc)?,
        });
    }
    let detail = json!({"unit_key": unit.key(), "from": old, "to": new, "bundle_lines": lines});
    batch.audit.push(audit(req, "purge.evidence", old, detail));
    Ok(batch)
}
