//! The exports of a rolled-back release (`after_rollback.export`): its
//! incidents' evidence bundles and its decision records, sent to the team
//! the policy names through a webhook channel of the server, by the
//! outbox (signed, retried), in the transaction that records the export
//! in the rule and the audit log.

use ripcord_core::Time;
use ripcord_core::policy::governance::ExportPart;
use ripcord_govern::record::{INCIDENT, Incident};
use ripcord_store::{Batch, Store};
use serde_json::{Value, json};

use super::{DataRule, ExportState, ExportStatus, doc, record};
use crate::error::ApiError;
use crate::hub::Hub;
use crate::hub::govern::read_docs;
use crate::notify::{self, ChannelConfig};

/// Decision records one export carries at most (the first ones).
pub const MAX_DECISIONS: usize = 1000;

/// Decision lines read per page.
const PAGE: i64 = 500;

/// Sends (or refuses) each pending export of `rule`, in one transaction
/// with the rule's document and an audit record per export.
pub async fn run(hub: &Hub, mut rule: DataRule, now: Time) -> Result<(), ApiError> {
    let mut batch = Batch {
        answered_at_ms: now.0,
        ..Batch::default()
    };
    for i in 0..rule.exports.len() {
        if rule.exports[i].state != ExportStatus::Pending {
            continue;
        }
        let mut export = rule.exports[i].clone();
        let channel = hub.channels.get().and_then(|c| c.get(&export.channel));
        match channel {
            Some(channel @ ChannelConfig::Webhook { .. }) => {
                let (payload, counts) = payload(&*hub.store, &rule, &export).await?;
                let id = delivery_id(&rule, &export);
                batch.outbox.push(notify::delivery(
                    id.clone(),
                    &rule.service,
                    channel,
                    &payload,
                    now.0,
                ));
                export.state = ExportStatus::Sent;
                export.delivery = Some(id.clone());
                let detail = json!({
                    "release": rule.release, "version": rule.version, "to": export.to,
                    "channel": export.channel, "what": export.what, "delivery": id,
                    "bundles": counts.0, "decisions": counts.1,
                });
                batch
                    .audit
                    .push(record(now, "after_rollback.export", &rule.release, detail));
            }
            found => {
                let why = match found {
                    None => format!(
                        "no channel `{}` in the server's configuration",
                        export.channel
                    ),
                    Some(c) => format!(
                        "channel `{}` is a {} channel; exports go to webhook channels",
                        export.channel,
                        c.kind().as_str()
                    ),
                };
                tracing::warn!(
                    "after rollback: export of {} to {}: {why}",
                    rule.release,
                    export.to
                );
                let detail = json!({
                    "release": rule.release, "to": export.to,
                    "channel": export.channel, "why": why,
                });
                batch.audit.push(record(
                    now,
                    "after_rollback.export_refused",
                    &rule.release,
                    detail,
                ));
                export.state = ExportStatus::Refused;
                export.why = Some(why);
            }
        }
        export.at = Some(now.to_rfc3339());
        rule.exports[i] = export;
    }
    batch.docs.push(doc(&rule, now, json!(rule)));
    hub.store.commit(&[batch]).await?;
    Ok(())
}

/// The same export of the same release always has the same id, so a
/// retried pass does not queue a second delivery.
fn delivery_id(rule: &DataRule, export: &ExportState) -> String {
    let seed = format!("{}\0{}\0{}", rule.release, export.channel, export.to);
    let hash = ripcord_core::evidence::address(seed.as_bytes());
    format!("exp_{}", &hash[..32])
}

/// The export's body, and how many bundles and decisions it carries.
async fn payload(
    store: &dyn Store,
    rule: &DataRule,
    export: &ExportState,
) -> Result<(Value, (usize, usize)), ApiError> {
    let mut body = json!({
        "type": "ripcord.after_rollback.export",
        "to": export.to,
        "service": rule.service,
        "release": rule.release,
        "version": rule.version,
        "baseline": rule.baseline,
        "rolled_back_at": rule.rolled_back_at,
    });
    let mut counts = (0, 0);
    if export.what.contains(&ExportPart::Evidence) {
        let bundles = bundles(store, rule).await?;
        counts.0 = bundles.len();
        body["evidence"] = Value::Array(bundles);
    }
    if export.what.contains(&ExportPart::Decisions) {
        let (decisions, truncated) = decisions(store, rule).await?;
        counts.1 = decisions.len();
        body["decisions"] = Value::Array(decisions);
        body["decisions_truncated"] = Value::Bool(truncated);
    }
    Ok((body, counts))
}

/// Each incident of the release with its bundle (`null` when retention
/// took it already).
async fn bundles(store: &dyn Store, rule: &DataRule) -> Result<Vec<Value>, ApiError> {
    let incidents: Vec<Incident> = read_docs(store, INCIDENT, Some(&rule.service)).await?;
    let mut out = Vec::new();
    for inc in incidents
        .iter()
        .filter(|i| i.release.as_deref() == Some(rule.release.as_str()))
    {
        let Some(address) = &inc.evidence else {
            continue;
        };
        let bundle = match store.blob(address).await? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            None => Value::Null,
        };
        out.push(json!({"incident": inc.id, "address": address, "bundle": bundle}));
    }
    Ok(out)
}

/// The release's decision records, oldest first, at most
/// [`MAX_DECISIONS`]; whether there were more.
async fn decisions(store: &dyn Store, rule: &DataRule) -> Result<(Vec<Value>, bool), ApiError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.decisions(&rule.service, 0, after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok((out, false));
        };
        after = last.seq;
        for entry in &page {
            let Ok(value) = serde_json::from_str::<Value>(&entry.line) else {
                continue;
            };
            if value["explanation"]["release"] != rule.engine_release.as_str() {
                continue;
            }
            if out.len() == MAX_DECISIONS {
                return Ok((out, true));
            }
            out.push(value);
        }
    }
}
