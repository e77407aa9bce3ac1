//! Threshold reviews: when a release settles (promoted or rolled back) a
//! pending review is stored with the change that settled it; a worker,
//! off the request path, replays the service's last releases from the
//! journal through the engine under a grid of bounds
//! (`ripcord_core::review`) and stores the result. Accepting a review
//! writes its suggested bounds as a new policy version whose YAML cites
//! the review.
//!
//! Releases are labelled by how they ended: rolled back is a known
//! regression, promoted is known good; drills and releases still running
//! are replayed but not counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ripcord_core::Time;
use ripcord_core::engine::ShareSource;
use ripcord_core::policy::edit::set_bound;
use ripcord_core::policy::load_policy;
use ripcord_core::review::{Input, Labelled, Outcome, Review, review};
use ripcord_store::{Batch, Store};
use serde_json::{Value, json as jv};
use tokio::sync::watch;

use crate::error::ApiError;
pub use crate::hub::review::{
    Acceptance, Change, REVIEW, REVIEWER, Record, Status, id_of, outcome_of, request, to_doc,
};
use crate::hub::{Hub, ReleaseView, audit};
use crate::leader::{self, Server};
use crate::report::replays::{Owned, first_share, lines, segments, stream};

/// How much a review replays.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewOptions {
    /// The last N releases of the service (this one included).
    pub releases: usize,
    /// Journal inputs (event lines and ticks) replayed per release at most.
    pub max_inputs: usize,
}

impl Default for ReviewOptions {
    fn default() -> ReviewOptions {
        ReviewOptions {
            releases: 20,
            max_inputs: 200_000,
        }
    }
}

/// Builds pending reviews until stopped: woken when a release settles, and
/// every few seconds in case a wake-up came before the request was stored.
/// Stops with the replica's leadership, as the other writers of the leader.
pub async fn run<S: Server>(app: Arc<S>, options: ReviewOptions, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = build_pending(app.hub(), &options).await {
            tracing::warn!("threshold reviews: {e:#}");
        }
        tokio::select! {
            _ = app.hub().reviews_due.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = leader::stopped(&mut stop, app.as_ref()) => return,
        }
    }
}

async fn build_pending(hub: &Hub, options: &ReviewOptions) -> anyhow::Result<()> {
    for doc in hub.store.docs(REVIEW, None).await? {
        let created = doc.created_ms;
        let mut record: Record = serde_json::from_value(doc.body)
            .with_context(|| format!("review {} as stored", doc.id))?;
        if record.status != Status::Pending {
            continue;
        }
        let now = hub.now();
        let action = match build(hub.store.as_ref(), &record, options).await {
            Ok(r) => {
                record.review = Some(r);
                record.status = Status::Ready;
                "review.created"
            }
            Err(e) => {
                record.error = Some(format!("{e:#}"));
                record.status = Status::Failed;
                "review.failed"
            }
        };
        record.built_at = Some(now.to_rfc3339());
        let mut batch = Batch::default();
        let detail = jv!({
            "release": record.release,
            "suggestions": record.review.as_ref().map_or(0, |r| {
                r.criteria.iter().filter(|c| c.suggestion.is_some()).count()
            }),
            "error": record.error,
        });
        batch
            .audit
            .push(audit(now, REVIEWER, action, &record.id, detail));
        batch.docs.push(to_doc(&record, created));
        let durable = hub.writer.submit(batch).await;
        crate::ingest::durable(durable)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    Ok(())
}

/// Replays the last releases up to the reviewed one.
async fn build(store: &dyn Store, rec: &Record, options: &ReviewOptions) -> anyhow::Result<Review> {
    let all = segments(store, &rec.service).await?;
    let end = all
        .iter()
        .position(|s| s.start.release == rec.release)
        .with_context(|| format!("release {} is not in the journal", rec.release))?;
    let window = &all[end.saturating_sub(options.releases.saturating_sub(1))..=end];
    let policy_record = store
        .policy_version(&rec.service, rec.policy_version)
        .await?
        .with_context(|| format!("policy version {} is not stored", rec.policy_version))?;
    let policy = load_policy(&policy_record.yaml, "policy")
        .map_err(|d| anyhow::anyhow!("stored policy no longer loads:\n{d}"))?;
    let views: BTreeMap<String, ReleaseView> = store
        .releases(Some(&rec.service))
        .await?
        .into_iter()
        .filter_map(|r| Some((r.id, serde_json::from_value(r.body).ok()?)))
        .collect();
    let owned: Vec<(String, Owned, Outcome)> = window
        .iter()
        .map(|s| {
            let id = s.start.release.clone();
            let outcome = views.get(&id).map_or(Outcome::Unknown, outcome_of);
            let l = lines(s, &rec.service, first_share(s, &policy));
            (id, l, outcome)
        })
        .collect();
    let (max_inputs, lateness) = (
        options.max_inputs,
        ripcord_core::engine::EngineOptions::default().lateness,
    );
    // The replay is CPU work: off the async workers.
    let built = tokio::task::spawn_blocking(move || {
        let releases: Vec<Labelled> = owned
            .iter()
            .map(|(id, l, outcome)| Labelled {
                stream: stream(id, l),
                outcome: *outcome,
            })
            .collect();
        review(&Input {
            policy: &policy,
            releases: &releases,
            lateness,
            share_source: ShareSource::Engine,
            max_items: max_inputs,
        })
    })
    .await?;
    Ok(built)
}

/// One review, as stored.
pub async fn get(store: &dyn Store, id: &str) -> Result<Record, ApiError> {
    let doc = store
        .doc(REVIEW, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("review \"{id}\" does not exist")))?;
    crate::hub::govern::read_doc(doc)
}

/// A service's reviews, newest first.
pub async fn list(store: &dyn Store, service: &str) -> Result<Vec<Record>, ApiError> {
    let mut all: Vec<Record> = crate::hub::govern::read_docs(store, REVIEW, Some(service)).await?;
    all.reverse();
    Ok(all)
}

/// Writes the review's suggestions (all, or those of `only`) into the
/// current policy as a new version citing the review; the review becomes
/// accepted. Refused when the policy moved on since the reviewed version.
pub async fn accept(
    hub: &Hub,
    id: &str,
    only: Option<&[String]>,
    by: &str,
) -> Result<Value, ApiError> {
    // One accept at a time: two at once would both read the same policy
    // version as current and each write a policy from it.
    static ACCEPTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ACCEPTING.lock().await;
    let mut rec = get(hub.store.as_ref(), id).await?;
    let review = match (rec.status, &rec.review) {
        (Status::Ready, Some(r)) => r,
        (Status::Accepted, _) => {
            let v = rec.accepted.as_ref().map_or(0, |a| a.policy_version);
            return Err(ApiError::conflict(format!(
                "review \"{id}\" was already accepted as policy version {v}"
            )));
        }
        (Status::Failed, _) => {
            return Err(ApiError::conflict(format!(
                "review \"{id}\" failed: {}",
                rec.error.as_deref().unwrap_or("unknown error")
            )));
        }
        _ => {
            return Err(ApiError::conflict(format!(
                "review \"{id}\" is still being built; try again shortly"
            )));
        }
    };
    let changes = chosen(review, only)?;
    let current =
        hub.store.policy(&rec.service).await?.ok_or_else(|| {
            ApiError::not_found(format!("service \"{}\" has no policy", rec.service))
        })?;
    if current.version != rec.policy_version {
        return Err(ApiError::conflict(format!(
            "review \"{id}\" varied policy version {}, but the current one is {}: \
             the bounds it suggests may no longer apply",
            rec.policy_version, current.version
        )));
    }
    let mut yaml = current.yaml.clone();
    for c in changes.iter().rev() {
        let comment = format!(
            "threshold review {id}: {} {} {} -> {} (accepted by {by})",
            c.criterion, c.bound_kind, c.from, c.to
        );
        yaml = set_bound(&yaml, (&c.criterion, &c.bound_kind), c.to, &comment)
            .map_err(|e| ApiError::conflict(format!("criteria.{}: {e}", c.criterion)))?;
    }
    let result = hub.put_policy(&rec.service, &yaml, by).await?;
    let version = result["version"].as_i64().unwrap_or(current.version);
    let now = hub.now();
    rec.status = Status::Accepted;
    rec.accepted = Some(Acceptance {
        by: by.into(),
        at: now.to_rfc3339(),
        policy_version: version,
        changes: changes.clone(),
    });
    let mut batch = Batch::default();
    batch.audit.push(audit(
        now,
        by,
        "review.accepted",
        id,
        jv!({"service": rec.service, "policy_version": version, "changes": changes}),
    ));
    let created = Time::parse_rfc3339(&rec.requested_at).map_or(now.0, |t| t.0);
    batch.docs.push(to_doc(&rec, created));
    crate::ingest::durable(hub.writer.submit(batch).await).await?;
    Ok(jv!({"review": rec, "policy": result}))
}

/// The suggestions to write: every one, or those named (each must exist
/// and have a suggestion).
fn chosen(review: &Review, only: Option<&[String]>) -> Result<Vec<Change>, ApiError> {
    let change = |c: &ripcord_core::review::CriterionReview| {
        c.suggestion.as_ref().map(|s| Change {
            criterion: c.criterion.clone(),
            bound_kind: c.bound_kind.clone(),
            from: s.from,
            to: s.to,
        })
    };
    let out: Vec<Change> = match only {
        None => review.criteria.iter().filter_map(change).collect(),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let c = review
                    .criteria
                    .iter()
                    .find(|c| c.criterion == *n)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "criteria[{i}]: \"{n}\" is not in the review"
                        ))
                    })?;
                change(c).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "criteria[{i}]: the review suggests no change to \"{n}\""
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if out.is_empty() {
        return Err(ApiError::conflict("the review suggests no change"));
    }
    Ok(out)
}

/// The review as markdown: per criterion, the grid with the current bound
/// and the suggestion marked, each release's closest approach, the
/// suggestion's effect.
pub fn to_markdown(rec: &Record) -> String {
    let mut out = format!(
        "# Threshold review {}\n\n{} release {} ({}), policy version {}: {}.\n",
        rec.id,
        rec.service,
        rec.release,
        outcome_word(rec.outcome),
        rec.policy_version,
        status_word(rec)
    );
    let Some(r) = &rec.review else {
        if let Some(e) = &rec.error {
            out.push_str(&format!("\n{e}\n"));
        }
        return out;
    };
    out.push_str(&format!(
        "\n{} releases replayed: {} promoted, {} rolled back.\n",
        r.releases.len(),
        r.good,
        r.bad
    ));
    if !r.truncated.is_empty() {
        out.push_str(&format!("Cut short: {}.\n", r.truncated.join(", ")));
    }
    for c in &r.criteria {
        out.push_str(&criterion_markdown(c));
    }
    out
}

fn criterion_markdown(c: &ripcord_core::review::CriterionReview) -> String {
    let ms = |v: Option<i64>| v.map_or("—".to_string(), |m| ripcord_core::Dur(m).to_string());
    let mut out = format!(
        "\n## {}\n\n| {} | false alarms | detections | slowest detection | |\n|---:|---:|---:|---:|---|\n",
        c.criterion, c.bound_kind
    );
    let to = c.suggestion.as_ref().map(|s| s.to);
    for row in &c.rows {
        let mark = match (row.current, to == Some(row.bound)) {
            (true, _) => "← current",
            (false, true) => "← suggested",
            _ => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {mark} |\n",
            row.bound,
            row.false_alarms,
            row.detections,
            ms(row.detection_ms_max)
        ));
    }
    out.push_str("\n| release | outcome | peak evidence / threshold | estimate | bound | breached after |\n|---|---|---:|---:|---:|---:|\n");
    let num = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.3}"));
    for a in &c.approaches {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            a.release,
            outcome_word(a.outcome),
            num(a.peak_evidence),
            num(a.estimate),
            num(a.limit),
            ms(a.breached_after_ms)
        ));
    }
    match &c.suggestion {
        Some(s) => out.push_str(&format!("\nSuggested: {}\n", s.effect)),
        None => out.push_str("\nNo change suggested.\n"),
    }
    out
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Good => "promoted",
        Outcome::Bad => "rolled back",
        Outcome::Unknown => "not counted",
    }
}

fn status_word(rec: &Record) -> String {
    match (rec.status, &rec.accepted) {
        (Status::Accepted, Some(a)) => format!(
            "accepted by {} at {} as policy version {}",
            a.by, a.at, a.policy_version
        ),
        (Status::Pending, _) => "pending".into(),
        (Status::Failed, _) => "failed".into(),
        _ => "ready".into(),
    }
}
