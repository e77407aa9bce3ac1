//! The dashboard's pages and forms. Reads go to the hub and the store as
//! the API's do; every form goes through the API's own path (`act`, the
//! hub's incident commands) and comes back to its page (303).

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use ripcord_core::engine::Phase;
use ripcord_govern::IncidentCommand;
use ripcord_govern::record::{Incident, REQUEST, Request};
use ripcord_govern::words::{IncidentKind, RequestState, StepKindName, StepStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::view::{self, Live};
use super::{UiError, Viewer, frame, render, with};
use crate::dashboard::AuditCheck;
use crate::error::ApiError;
use crate::evidence_archive::{Failure, export};
use crate::http::act::{ActionBody, act, release_in_scope};
use crate::http::app::Shared;
use crate::hub::ReleaseView;
use crate::hub::govern::read_docs;
use crate::incidents::Ask;
use crate::ingest::durable;
use crate::report::{Format, Input, render as render_report, source};

type Page = Result<Html<String>, UiError>;

/// The what-if of a report looks at the releases of this many days before
/// the incident (`ripcord report`'s default).
const REPORT_DAYS: u32 = 7;
/// Audit records shown per page.
const AUDIT_PAGE: i64 = 100;
/// The audit log is verified on the page up to this many records; the
/// rest is `ripcord audit verify`'s (a page view stays fast).
const AUDIT_VERIFY_MAX: i64 = 200_000;

/// `GET /ui/`: one line per service's latest release.
pub async fn releases(State(app): State<Shared>, Extension(viewer): Extension<Viewer>) -> Page {
    let views = view::current_releases(&app, &viewer.principal).await?;
    let now = app.hub.now();
    let mut rows = Vec::with_capacity(views.len());
    for v in &views {
        let live = view::live(&app, &v.service).await;
        rows.push(view::row(v, live.as_ref(), now));
    }
    let ctx = with(frame(&app, &viewer, "releases"), json!({"rows": rows}));
    render("releases.html", ctx)
}

#[derive(Deserialize, Default)]
pub struct NoteQuery {
    note: Option<String>,
}

/// What a form's redirect says happened (fixed words, never the query's).
fn note(q: &NoteQuery) -> Option<&'static str> {
    match q.note.as_deref()? {
        "done" => Some("Done."),
        "waiting" => Some("Requested: it waits for the approvals the policy asks for."),
        _ => None,
    }
}

/// `GET /ui/releases/{id}`: tiles, actions, timeline, share moves.
pub async fn release(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(q): Query<NoteQuery>,
) -> Page {
    let record = release_in_scope(&app, &viewer.principal, &id).await?;
    let view: ReleaseView = serde_json::from_value(record.body)
        .map_err(|e| ApiError::unserialisable("the release record", e))?;
    let live = view::live(&app, &view.service).await;
    let live = live.filter(|l| l.release == view.id);
    let tiles = view::tiles(&app, &view, live.as_ref()).await?;
    let timeline = view::decisions(&app, &view).await?;
    let requests = pending_requests(&app, &view).await?;
    let incidents: Vec<Value> = app
        .hub
        .incidents(Some(&view.service), None, None)
        .await?
        .iter()
        .filter(|i| i.release.as_deref() == Some(view.id.as_str()))
        .map(incident_line)
        .collect();
    let key = crate::auth::new_token().map_err(|e| ApiError::unavailable(e.to_string()))?;
    let page = json!({
        "release": view,
        "state": view::phase(&view),
        "share": view::percent(view.share),
        "position": position(&view),
        "actions": actions(&view, live.as_ref()),
        "idempotency_key": key,
        "tiles": tiles,
        "timeline": timeline,
        "moves": moves(&view),
        "requests": requests,
        "incidents": incidents,
        "note": note(&q),
    });
    render("release.html", with(frame(&app, &viewer, "releases"), page))
}

/// Where the release is in its plan, in words.
fn position(view: &ReleaseView) -> Option<String> {
    match (view.stage, view.step) {
        (Some(stage), _) => Some(format!("rollback stage {}", stage + 1)),
        (None, Some(step)) => Some(format!("step {} of {}", step + 1, view.steps.len())),
        (None, None) => None,
    }
}

/// The actions the release's state admits; the frame's `can` hides those
/// the role lacks (and the server refuses them anyway).
fn actions(view: &ReleaseView, live: Option<&Live>) -> Value {
    let running = live.is_some();
    let s = view.state;
    let settled = matches!(s, Phase::RolledBack | Phase::Promoted);
    json!({
        "pause": running && !settled && s != Phase::Paused && s != Phase::RollingBack,
        "resume": running && s == Phase::Paused,
        "rollback": running && !settled && s != Phase::RollingBack,
        "promote": running && !settled && s != Phase::RollingBack,
        "re_release": s == Phase::RolledBack,
    })
}

fn moves(view: &ReleaseView) -> Vec<Value> {
    view.moves
        .iter()
        .rev()
        .map(|m| {
            json!({
                "at": m.at,
                "from": view::percent(m.from),
                "to": view::percent(m.to),
                "state": m.state.as_str().replace('_', " "),
                "by": m.by,
                "why": m.why,
            })
        })
        .collect()
}

async fn pending_requests(app: &Shared, view: &ReleaseView) -> Result<Vec<Value>, ApiError> {
    let all: Vec<Request> = read_docs(&*app.hub.store, REQUEST, Some(&view.service)).await?;
    Ok(all
        .iter()
        .filter(|r| r.release == view.id || r.release == view.engine_release)
        .map(|r| {
            json!({
                "id": r.id,
                "action": r.action.as_str(),
                "state": r.state.as_str(),
                "pending": r.state == RequestState::Pending,
                "requested_by": r.requested_by,
                "requested_at": r.requested_at,
                "reason": r.reason,
                "roles": r.roles,
                "quorum": r.quorum,
                "votes": r.votes.iter().map(|v| json!({
                    "by": v.by, "approve": v.approve, "at": v.at, "note": v.note,
                })).collect::<Vec<_>>(),
                "deadline": r.deadline,
            })
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionForm {
    action: String,
    reason: String,
    idempotency_key: String,
    #[allow(dead_code)] // checked by the guard
    csrf: String,
}

/// `POST /ui/releases/{id}/actions`: a button of the release page.
pub async fn action(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Result<Response, UiError> {
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Err(UiError(ApiError::bad_request(
            "reason: say why; the audit log and the incident keep it",
        )));
    }
    let body = ActionBody {
        action: form.action,
        reason: Some(reason.to_string()),
        idempotency_key: Some(form.idempotency_key),
    };
    let (status, _) = act(&app, &viewer.principal, &id, body).await?;
    let note = if status == StatusCode::ACCEPTED {
        "waiting"
    } else {
        "done"
    };
    Ok(Redirect::to(&format!("/ui/releases/{}?note={note}", path_part(&id))).into_response())
}

/// A path segment as it goes into a link.
fn path_part(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn incident_line(i: &Incident) -> Value {
    json!({
        "id": i.id,
        "service": i.service,
        "title": i.title,
        "kind": i.kind.as_str(),
        "severity": i.severity.as_str(),
        "state": i.state.as_str(),
        "opened_at": i.opened_at,
        "ack_by": i.ack_by,
        "acknowledged_at": i.acknowledged_at,
        "drill": i.kind == IncidentKind::Drill,
    })
}

/// `GET /ui/incidents`: every incident the person may see, newest first.
pub async fn incidents(State(app): State<Shared>, Extension(viewer): Extension<Viewer>) -> Page {
    let mut all = app.hub.incidents(None, None, None).await?;
    all.retain(|i| viewer.principal.scope.allows(&i.service));
    all.sort_by(|a, b| b.opened_at.cmp(&a.opened_at));
    let lines: Vec<Value> = all.iter().map(incident_line).collect();
    render(
        "incidents.html",
        with(
            frame(&app, &viewer, "incidents"),
            json!({"incidents": lines}),
        ),
    )
}

/// `GET /ui/drills`: every drill the person may see, newest first.
pub async fn drills(State(app): State<Shared>, Extension(viewer): Extension<Viewer>) -> Page {
    let mut all = app.drills.list(&app.hub, None).await?;
    all.retain(|d| viewer.principal.scope.allows(&d.service));
    let lines: Vec<Value> = all
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "name": d.name,
                "service": d.service,
                "started_at": d.started_at,
                "state": d.state,
                "unattended": d.unattended,
                "failed": d.failed_lines(),
            })
        })
        .collect();
    render(
        "drills.html",
        with(frame(&app, &viewer, "drills"), json!({"drills": lines})),
    )
}

/// `GET /ui/drills/{id}`: the drill's scorecard and scripted steps.
pub async fn drill(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Page {
    let d = app.drills.get(&app.hub, &id).await?;
    viewer.principal.require_service(&d.service)?;
    render(
        "drill.html",
        with(frame(&app, &viewer, "drills"), json!({"drill": d})),
    )
}

async fn incident_in_scope(app: &Shared, viewer: &Viewer, id: &str) -> Result<Incident, UiError> {
    let inc = app.hub.incident(id).await?;
    viewer.principal.require_service(&inc.service)?;
    Ok(inc)
}

/// `GET /ui/incidents/{id}`: timeline, acknowledgement, steps, approvals.
pub async fn incident(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(q): Query<NoteQuery>,
) -> Page {
    let inc = incident_in_scope(&app, &viewer, &id).await?;
    let now = app.hub.now();
    let overdue = |due: &str| ripcord_core::Time::parse_rfc3339(due).is_some_and(|t| t < now);
    let steps: Vec<Value> = inc
        .steps
        .iter()
        .map(|s| {
            let open = matches!(s.status, StepStatus::Pending | StepStatus::Overdue);
            json!({
                "name": s.name,
                "playbook": s.playbook,
                "kind": s.kind.as_str(),
                "owner": s.owner,
                "due_at": s.due_at,
                "status": s.status.as_str(),
                "open": open,
                "overdue": s.status == StepStatus::Overdue || (open && overdue(&s.due_at)),
                "done_at": s.done_at,
                "done_by": s.done_by,
                "note": s.note,
                "manual": s.kind == StepKindName::Manual,
            })
        })
        .collect();
    let ack_overdue = inc.acknowledged_at.is_none() && inc.ack_by.as_deref().is_some_and(overdue);
    let report_overdue = inc
        .regulatory
        .as_ref()
        .is_some_and(|r| r.reported_at.is_none() && overdue(&r.due_at));
    let page = json!({
        "report_overdue": report_overdue,
        "incident": inc,
        "line": incident_line(&inc),
        "steps": steps,
        "ack_overdue": ack_overdue,
        "timeline": inc.timeline.iter().rev().collect::<Vec<_>>(),
        "note": note(&q),
    });
    render(
        "incident.html",
        with(frame(&app, &viewer, "incidents"), page),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteForm {
    #[serde(default)]
    note: String,
    #[allow(dead_code)] // checked by the guard
    csrf: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusForm {
    message: String,
    #[serde(default)]
    next_update_in: String,
    #[allow(dead_code)] // checked by the guard
    csrf: String,
}

fn optional(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Runs an incident request as the API does, then back to the incident.
async fn ask(app: &Shared, viewer: &Viewer, id: &str, a: Ask) -> Result<Response, UiError> {
    let (_, pending) = app.hub.incident_ask(id, a, &viewer.principal).await?;
    durable(pending).await?;
    Ok(Redirect::to(&format!("/ui/incidents/{}?note=done", path_part(id))).into_response())
}

pub async fn acknowledge(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<NoteForm>,
) -> Result<Response, UiError> {
    let a = Ask::Command(IncidentCommand::Acknowledge {
        note: optional(&form.note),
    });
    ask(&app, &viewer, &id, a).await
}

pub async fn status(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<StatusForm>,
) -> Result<Response, UiError> {
    let a = Ask::Command(IncidentCommand::Status {
        message: form.message,
        next_update_in: optional(&form.next_update_in),
        channels: None,
        template: None,
    });
    ask(&app, &viewer, &id, a).await
}

pub async fn step(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((id, name)): Path<(String, String)>,
    axum::Form(form): axum::Form<NoteForm>,
) -> Result<Response, UiError> {
    let a = Ask::Step {
        name,
        note: optional(&form.note),
    };
    ask(&app, &viewer, &id, a).await
}

/// `GET /ui/incidents/{id}/evidence`: the bundle frozen when the incident
/// opened, as the same verified `.tar.gz` `ripcord evidence export` writes.
pub async fn evidence(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let inc = incident_in_scope(&app, &viewer, &id).await?;
    let (address, archive) =
        export(app.hub.store.as_ref(), &inc.id)
            .await
            .map_err(|e| match e {
                Failure::Unverified(why) => {
                    ApiError::conflict(format!("the evidence does not verify: {why}"))
                }
                Failure::Other(e) => ApiError::not_found(format!("{e:#}")),
            })?;
    let name = format!(
        "attachment; filename=\"evidence-{}.tar.gz\"",
        address.get(..12).unwrap_or(&address)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        archive,
    )
        .into_response())
}

/// `GET /ui/incidents/{id}/report`: the post-incident report as
/// `ripcord report INCIDENT --format html` writes it. Its what-if replays
/// a week of releases, so one is drawn at a time; others get 429.
pub async fn report(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let inc = incident_in_scope(&app, &viewer, &id).await?;
    let Some(_turn) = app.dashboard.report_turn() else {
        return Err(UiError(ApiError::overloaded(2)));
    };
    let store = app.hub.store.as_ref();
    let failed = |e: anyhow::Error| UiError(ApiError::unavailable(format!("the report: {e:#}")));
    let doc = source::load_incident(store, &inc.id)
        .await
        .map_err(failed)?;
    let decisions = source::release_decisions(store, &doc)
        .await
        .map_err(failed)?;
    let whatif = source::load_whatif(store, &doc, REPORT_DAYS)
        .await
        .map_err(failed)?;
    let input = Input {
        doc: &doc,
        decisions: &decisions,
        whatif: whatif.as_ref(),
    };
    let rendered = render_report(&input, Format::Html, &inc.id).map_err(failed)?;
    // The report is one self-contained file: its own inline stylesheet
    // and SVG, and nothing else.
    let policy =
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'";
    Ok((
        [(header::CONTENT_SECURITY_POLICY, policy)],
        Html(rendered.text),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

/// `GET /ui/policies/{service}`: the policy, its versions and a diff.
pub async fn policy(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(service): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Page {
    viewer.principal.require_service(&service)?;
    let history = app.hub.store.policy_history(&service).await?;
    let Some(latest) = history.iter().map(|p| p.version).max() else {
        return Err(UiError(ApiError::not_found(format!(
            "service \"{service}\" has no policy"
        ))));
    };
    let to = q.to.unwrap_or(latest);
    let from = q.from.unwrap_or(to - 1);
    let text = |v: i64| {
        history
            .iter()
            .find(|p| p.version == v)
            .map(|p| p.yaml.as_str())
    };
    let Some(to_text) = text(to) else {
        return Err(UiError(ApiError::not_found(format!(
            "to: policy version {to} of \"{service}\" does not exist"
        ))));
    };
    let diff = text(from).map(|from_text| diff_lines(from_text, to_text));
    let mut versions: Vec<Value> = history
        .iter()
        .map(|p| json!({"version": p.version, "created_at": p.created_at}))
        .collect();
    versions.reverse();
    let page = json!({
        "service": service,
        "latest": latest,
        "from": from,
        "to": to,
        "yaml": to_text,
        "versions": versions,
        "diff": diff,
    });
    render("policy.html", with(frame(&app, &viewer, "policies"), page))
}

/// A line diff: each line with its sign (`+`, `-` or a space).
fn diff_lines(from: &str, to: &str) -> Vec<Value> {
    similar::TextDiff::from_lines(from, to)
        .iter_all_changes()
        .map(|c| {
            let (sign, kind) = match c.tag() {
                similar::ChangeTag::Insert => ("+", "added"),
                similar::ChangeTag::Delete => ("-", "removed"),
                similar::ChangeTag::Equal => (" ", "same"),
            };
            json!({"sign": sign, "kind": kind, "text": c.value().trim_end_matches('\n')})
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after: Option<i64>,
}

/// `GET /ui/audit`: a page of the audit log and the chain's verification.
pub async fn audit(
    State(app): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<AuditQuery>,
) -> Page {
    let check = verification(&app).await?;
    // Without a cursor, the newest page: what an on-call engineer looks for.
    let newest = (check.head - AUDIT_PAGE).max(0);
    let after = q.after.unwrap_or(newest).max(0);
    let lines = app
        .hub
        .store
        .audit(after.saturating_add(1), AUDIT_PAGE)
        .await?;
    let records: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l.line).ok())
        .map(|r| {
            let at = r["at"]
                .as_i64()
                .map(|ms| ripcord_core::Time(ms).to_rfc3339());
            json!({
                "seq": r["seq"], "at": at, "principal": r["principal"],
                "action": r["action"], "subject": r["subject"],
                "detail": compact(&r["detail"]),
            })
        })
        .collect();
    let next = (lines.len() as i64 == AUDIT_PAGE).then(|| lines.last().map(|l| l.seq));
    let page = json!({
        "records": records,
        "after": after,
        "previous": (after > 0).then(|| (after - AUDIT_PAGE).max(0)),
        "next": next.flatten(),
        "check": check_json(&check),
    });
    render("audit.html", with(frame(&app, &viewer, "audit"), page))
}

/// A record's detail in one short line.
fn compact(detail: &Value) -> String {
    let text = if detail.is_null() {
        String::new()
    } else {
        detail.to_string()
    };
    if text.chars().count() > 160 {
        let cut: String = text.chars().take(160).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The chain verified from its first record to the head (at most
/// [`AUDIT_VERIFY_MAX`] records), remembered until the head moves: the
/// records are read each time, the hashing is done once per head.
async fn verification(app: &Shared) -> Result<AuditCheck, UiError> {
    const CHUNK: i64 = 10_000;
    let mut text = String::new();
    let (mut from, mut read, mut head) = (1i64, 0i64, 0i64);
    loop {
        let page = app.hub.store.audit(from, CHUNK).await?;
        for l in &page {
            text.push_str(&l.line);
            text.push('\n');
        }
        read += page.len() as i64;
        head = page.last().map_or(head, |l| l.seq);
        from = head + 1;
        if (page.len() as i64) < CHUNK || read >= AUDIT_VERIFY_MAX {
            break;
        }
    }
    let cached = app.dashboard.audit.lock().ok().and_then(|c| c.clone());
    if let Some(c) = cached.filter(|c| c.head == head) {
        return Ok(c);
    }
    let check = AuditCheck {
        head,
        outcome: ripcord_core::audit::verify(&text),
        partial: read >= AUDIT_VERIFY_MAX,
    };
    if let Ok(mut slot) = app.dashboard.audit.lock() {
        *slot = Some(check.clone());
    }
    Ok(check)
}

fn check_json(c: &AuditCheck) -> Value {
    match &c.outcome {
        Ok(v) => json!({
            "ok": true,
            "records": v.records,
            "pruned_through": v.pruned_through,
            "checkpoints": v.checkpoints,
            "signed_upto": v.signed_upto,
            "head": c.head,
            "partial": c.partial,
        }),
        Err(b) => json!({"ok": false, "seq": b.seq, "why": b.why, "head": c.head}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_marks_added_and_removed_lines() {
        let d = diff_lines("a: 1\nb: 2\n", "a: 1\nb: 3\n");
        let signs: Vec<&str> = d.iter().map(|l| l["sign"].as_str().unwrap()).collect();
        assert_eq!(signs, [" ", "-", "+"]);
        assert_eq!(d[2]["text"], "b: 3");
    }

    #[test]
    fn a_redirect_note_is_one_of_ours_never_the_query_text() {
        let q = |n: &str| NoteQuery {
            note: Some(n.into()),
        };
        assert_eq!(note(&q("done")), Some("Done."));
        assert_eq!(note(&q("<script>")), None);
    }
}
