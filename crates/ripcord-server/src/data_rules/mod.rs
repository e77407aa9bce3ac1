//! Data rules after a rollback (`after_rollback:` of the policy): when a
//! release rolls back, what its candidate's data becomes.
//!
//! The rollback records a rule (a governance document of kind
//! `data_rule`, one per release, written in the rollback's own batch):
//! the candidate version, when its raw events are due for purging, and
//! how long the evidence of the release's incidents is held. The
//! retention task runs the rules ([`run`]): once a rule is due, the
//! candidate's raw event lines of that release are removed from the
//! journal and from the samples the server keeps, unless a legal hold or
//! the rule's own evidence hold (an incident of the release still being
//! worked on) blocks it. Both outcomes are audited, with what and how
//! many lines, and which holds or incidents blocked it. The evidence hold
//! also joins [`crate::holds::held`], so that no deletion path (the
//! retention classes, a purge) takes the release's data, its incidents'
//! bundles or their audit records meanwhile.

use ripcord_core::Time;
use ripcord_govern::record::{INCIDENT, Incident};
use ripcord_store::{Batch, EventsEntry, Held, Store};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::holds::{self, Hold, Target};
use crate::hub::Hub;
use crate::hub::govern::read_docs;
pub use crate::rollback_rule::{
    Blockers, DATA_RULE, DataRule, ExportState, ExportStatus, RuleState, list, on_rollback,
};
use crate::rollback_rule::{doc, held_incidents, record};

/// Rules run per retention pass; the rest wait for the next one.
pub const RULES_PER_PASS: usize = 20;

/// Journal entries read per page.
const PAGE: i64 = 256;

/// What one pass did with one rule, for the retention report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub release: String,
    pub version: String,
    pub state: RuleState,
    /// Lines removed in this pass.
    pub purged_lines: u64,
    /// Due lines a hold kept, or lines waiting for a snapshot.
    pub kept_lines: u64,
    pub blocked_by: Blockers,
}

/// The active legal holds on the release or one of its incidents.
fn legal_holds(rule: &DataRule, holds: &[Hold], incidents: &[Incident]) -> Vec<String> {
    let of_release = |id: &str| {
        incidents
            .iter()
            .any(|i| i.id == id && i.release.as_deref() == Some(rule.release.as_str()))
    };
    holds
        .iter()
        .filter(|h| h.active())
        .filter(|h| match &h.on {
            Target::Release(id) => *id == rule.release,
            Target::Incident(id) => of_release(id),
        })
        .map(|h| h.id.clone())
        .collect()
}

/// One pass: the pending exports, then the rules that are due, at `now`.
pub async fn run(hub: &Hub, now: Time, held: &Held) -> Result<Vec<Outcome>, ApiError> {
    let store = &*hub.store;
    let exporting: Vec<DataRule> = list(store)
        .await?
        .into_iter()
        .filter(|r| r.exports.iter().any(|e| e.state == ExportStatus::Pending))
        .take(RULES_PER_PASS)
        .collect();
    for rule in exporting {
        export::run(hub, rule, now).await?;
    }
    let due: Vec<DataRule> = list(store)
        .await?
        .into_iter()
        .filter(|r| matches!(r.state, RuleState::Waiting | RuleState::Held))
        .filter(|r| r.purge_after_ms.is_some_and(|t| t <= now.0))
        .take(RULES_PER_PASS)
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let holds = holds::list(store).await?;
    let incidents: Vec<Incident> = read_docs(store, INCIDENT, None).await?;
    let mut outcomes = Vec::new();
    for rule in due {
        let blockers = Blockers {
            holds: legal_holds(&rule, &holds, &incidents),
            incidents: held_incidents(&rule, &incidents)
                .iter()
                .map(|i| i.id.clone())
                .collect(),
        };
        let outcome = if blockers.is_empty() {
            purge(hub, rule, now, held).await?
        } else {
            block(store, rule, blockers, now).await?
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// A due rule a hold blocks: audited when what blocks it changes (not
/// at every pass), with how many lines it keeps.
async fn block(
    store: &dyn Store,
    mut rule: DataRule,
    blockers: Blockers,
    now: Time,
) -> Result<Outcome, ApiError> {
    let lines = candidate_lines(store, &rule).await?;
    if rule.state != RuleState::Held || rule.blocked_by != blockers {
        rule.state = RuleState::Held;
        rule.blocked_by = blockers.clone();
        let body = json!(rule);
        let detail = json!({
            "release": rule.release,
            "version": rule.version,
            "what": "raw_events",
            "journal_lines": lines,
            "holds": blockers.holds,
            "incidents": blockers.incidents,
        });
        let batch = Batch {
            docs: vec![doc(&rule, now, body)],
            audit: vec![record(now, "after_rollback.held", &rule.release, detail)],
            answered_at_ms: now.0,
            ..Batch::default()
        };
        store.commit(&[batch]).await?;
        tracing::info!(
            "after rollback: {} of {} kept ({lines} lines) by {:?}",
            rule.version,
            rule.release,
            blockers
        );
    }
    Ok(Outcome {
        release: rule.release,
        version: rule.version,
        state: RuleState::Held,
        purged_lines: 0,
        kept_lines: lines,
        blocked_by: blockers,
    })
}

/// Needles for the store's cheap filter: the version's name, when it
/// needs no JSON escaping (otherwise every entry is read).
fn needles(version: &str) -> Option<Vec<String>> {
    let plain = version
        .chars()
        .all(|c| c != '"' && c != '\\' && !c.is_control());
    (plain && !version.is_empty()).then(|| vec![version.to_string()])
}

/// Whether a raw event line is of `version` (its top-level `version`).
fn of_version(line: &str, version: &str) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    map.get("version").and_then(Value::as_str) == Some(version)
}

/// The entry's body without the version's lines, and how many went;
/// `None` when it has none.
fn strip(body: &str, version: &str) -> Option<(String, u64)> {
    let mut kept = String::with_capacity(body.len());
    let mut removed = 0;
    for line in body.split_inclusive('\n') {
        if of_version(line.trim_end_matches(['\n', '\r']), version) {
            removed += 1;
        } else {
            kept.push_str(line);
        }
    }
    (removed > 0).then_some((kept, removed))
}

/// An `events` entry of the release with the version's lines stripped:
/// the entry, its new body, how many lines went.
type Found = (EventsEntry, String, u64);

/// The next page of journal entries after `after`: where the page ends
/// and the release's entries in it holding lines of the rule's version;
/// `None` after the last page.
async fn page(
    store: &dyn Store,
    rule: &DataRule,
    after: i64,
) -> Result<Option<(i64, Vec<Found>)>, ApiError> {
    let needles = needles(&rule.version);
    let page = store
        .events_containing(needles.as_deref(), after, PAGE)
        .await?;
    let Some(last) = page.last().map(|e| e.seq) else {
        return Ok(None);
    };
    let found = page
        .into_iter()
        .filter(|e| e.service == rule.service)
        .filter(|e| e.release_id.as_deref() == Some(rule.release.as_str()))
        .filter_map(|e| {
            let (body, n) = strip(&e.body, &rule.version)?;
            Some((e, body, n))
        })
        .collect();
    Ok(Some((last, found)))
}

/// How many of the release's journal lines are of the rule's version.
async fn candidate_lines(store: &dyn Store, rule: &DataRule) -> Result<u64, ApiError> {
    let (mut lines, mut after) = (0, 0);
    while let Some((last, found)) = page(store, rule, after).await? {
        lines += found.iter().map(|(_, _, n)| n).sum::<u64>();
        after = last;
    }
    Ok(lines)
}

/// The journal entries a restart no longer replays: those a snapshot
/// covers and those before the service's last release start.
async fn settled_through(store: &dyn Store, service: &str) -> Result<(i64, i64), ApiError> {
    let covered = store.snapshot(service).await?.map_or(0, |s| s.journal_seq);
    let start = store.last_start(service).await?.unwrap_or(0);
    Ok((covered, start))
}

/// Purges a due rule's raw events: the journal page by page (each page
/// audited), then the live samples; the rule is done once no line of
/// the version is left waiting for a snapshot.
async fn purge(hub: &Hub, mut rule: DataRule, now: Time, held: &Held) -> Result<Outcome, ApiError> {
    let store = &*hub.store;
    let (covered, start) = settled_through(store, &rule.service).await?;
    let (mut entries, mut lines, mut waiting) = (0u64, 0u64, 0u64);
    let mut after = 0;
    while let Some((last, found)) = page(store, &rule, after).await? {
        after = last;
        let (batch, done) = rewrite(&rule, found, (covered, start), now);
        waiting += done.waiting;
        if let Some(batch) = batch {
            store.commit(&[batch]).await?;
            entries += done.entries;
            lines += done.lines;
        }
    }
    let (service, version) = (rule.service.clone(), rule.version.clone());
    let erase = move |line: &str| of_service(line, &service) && of_version(line, &version);
    let (samples, _) = hub
        .forget(&erase, &[], held)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    rule.purged.journal_entries += entries;
    rule.purged.journal_lines += lines;
    rule.purged.sample_lines += samples;
    rule.blocked_by = Blockers::default();
    let done = waiting == 0;
    rule.state = if done {
        RuleState::Purged
    } else {
        RuleState::Waiting
    };
    if done {
        rule.purged_at = Some(now.to_rfc3339());
    }
    let mut batch = Batch {
        docs: vec![doc(&rule, now, json!(rule))],
        answered_at_ms: now.0,
        ..Batch::default()
    };
    if done {
        let detail = json!({
            "release": rule.release,
            "version": rule.version,
            "what": "raw_events",
            "journal_entries": rule.purged.journal_entries,
            "journal_lines": rule.purged.journal_lines,
            "sample_lines": rule.purged.sample_lines,
        });
        batch
            .audit
            .push(record(now, "after_rollback.purged", &rule.release, detail));
    }
    store.commit(&[batch]).await?;
    if lines + samples > 0 {
        tracing::info!(
            "after rollback: purged {lines} journal lines and {samples} sample lines of {} ({})",
            rule.version,
            rule.release
        );
    }
    Ok(Outcome {
        release: rule.release,
        version: rule.version,
        state: rule.state,
        purged_lines: lines + samples,
        kept_lines: waiting,
        blocked_by: Blockers::default(),
    })
}

/// What one page's rewrite does.
#[derive(Default)]
struct PageDone {
    entries: u64,
    lines: u64,
    /// Lines in entries a restart still replays (no snapshot covers them
    /// yet): left for a later pass.
    waiting: u64,
}

/// One page's rewrites, audited, as a batch (`None`: nothing to rewrite).
fn rewrite(
    rule: &DataRule,
    found: Vec<Found>,
    (covered, start): (i64, i64),
    now: Time,
) -> (Option<Batch>, PageDone) {
    let mut batch = Batch {
        answered_at_ms: now.0,
        ..Batch::default()
    };
    let mut done = PageDone::default();
    let mut last = 0;
    for (entry, body, n) in found {
        if entry.seq > covered && entry.seq >= start {
            done.waiting += n;
            continue;
        }
        batch.rewrites.push((entry.seq, body));
        done.entries += 1;
        done.lines += n;
        last = last.max(entry.seq);
    }
    if done.entries == 0 {
        return (None, done);
    }
    batch.unreplayable.push((rule.service.clone(), last));
    let detail = json!({
        "release": rule.release,
        "version": rule.version,
        "what": "raw_events",
        "journal_entries": done.entries,
        "journal_lines": done.lines,
        "through_seq": last,
    });
    batch.audit.push(record(
        now,
        "after_rollback.purge_journal",
        &rule.release,
        detail,
    ));
    (Some(batch), done)
}

/// Whether a raw event line names `service` (lines without one are the
/// service's own: ingest takes the service from the path).
fn of_service(line: &str, service: &str) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    map.get("service")
        .and_then(Value::as_str)
        .is_none_or(|s| s == service)
}

mod export;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_versions_lines_are_stripped() {
        let body = "{\"version\":\"v2\",\"unit\":\"a\"}\n{\"version\": \"v1\"}\n{\"version\":\"v2\"}\nnot json\n";
        let (kept, n) = strip(body, "v2").unwrap_or_default();
        assert_eq!(n, 2);
        assert_eq!(kept, "{\"version\": \"v1\"}\nnot json\n");
        assert_eq!(strip(body, "v3"), None);
    }
}
