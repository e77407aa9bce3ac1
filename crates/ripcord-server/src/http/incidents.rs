//! Incidents: declare, list and read them, and move one through its
//! lifecycle (acknowledge, status updates, mitigate, resolve, review,
//! playbook steps).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::extract::{JsonBody, NoteBody, OptionalBody, QueryParams};
use super::paging::{self, PageQuery};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::incidents::Ask;
use crate::ingest::durable;
use crate::regulatory::ClassifyAsk;
use crate::report::regulatory::{Narrative, markdown};
use ripcord_govern::IncidentCommand;
use ripcord_govern::ReportStage;
use ripcord_govern::record::ActionItem;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/incidents", get(list).post(declare))
        .route("/v1/incidents/{id}", get(one))
        .route("/v1/incidents/{id}/acknowledge", post(acknowledge))
        .route("/v1/incidents/{id}/status", post(status))
        .route("/v1/incidents/{id}/mitigate", post(mitigate))
        .route("/v1/incidents/{id}/resolve", post(resolve))
        .route("/v1/incidents/{id}/review", post(review))
        .route("/v1/incidents/{id}/steps/{step}", post(step))
        .route("/v1/incidents/{id}/classify", post(classify))
        .route(
            "/v1/incidents/{id}/regulatory-reports",
            get(reports).post(file_report),
        )
        .route(
            "/v1/incidents/{id}/regulatory-reports/draft",
            get(draft_report),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    service: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(app): State<Shared>,
    p: Principal,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(service) = &q.service {
        p.require_service(service)?;
    }
    let mut found = app
        .hub
        .incidents(q.service.as_deref(), q.state.as_deref(), q.kind.as_deref())
        .await?;
    found.retain(|i| p.scope.allows(&i.service));
    let page = PageQuery {
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(paging::page("incidents", found, page)?))
}

async fn one(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inc = app.hub.incident(&id).await?;
    p.require_service(&inc.service)?;
    Ok(Json(json!(inc)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclareBody {
    service: String,
    kind: String,
    severity: String,
    title: String,
}

async fn declare(
    State(app): State<Shared>,
    p: Principal,
    JsonBody(req): JsonBody<DeclareBody>,
) -> Result<Response, ApiError> {
    p.require_service(&req.service)?;
    let service = app.hub.known(&req.service)?;
    let (inc, pending) = app
        .hub
        .declare(&service, &req.kind, &req.severity, req.title, &p)
        .await?;
    durable(pending).await?;
    Ok((StatusCode::CREATED, Json(json!(inc))).into_response())
}

async fn ask(app: &Shared, id: &str, ask: Ask, p: &Principal) -> Result<Json<Value>, ApiError> {
    let (inc, pending) = app.hub.incident_ask(id, ask, p).await?;
    durable(pending).await?;
    Ok(Json(json!(inc)))
}

async fn acknowledge(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    OptionalBody(b): OptionalBody<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    ask(
        &app,
        &id,
        Ask::Command(IncidentCommand::Acknowledge { note: b.note }),
        &p,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    message: String,
    #[serde(default)]
    next_update_in: Option<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    template: Option<String>,
}

async fn status(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<StatusBody>,
) -> Result<Json<Value>, ApiError> {
    let a = Ask::Command(IncidentCommand::Status {
        message: b.message,
        next_update_in: b.next_update_in,
        channels: b.channels,
        template: b.template,
    });
    ask(&app, &id, a, &p).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequiredNote {
    note: String,
}

async fn mitigate(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RequiredNote>,
) -> Result<Json<Value>, ApiError> {
    ask(
        &app,
        &id,
        Ask::Command(IncidentCommand::Mitigate { note: b.note }),
        &p,
    )
    .await
}

async fn resolve(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RequiredNote>,
) -> Result<Json<Value>, ApiError> {
    ask(
        &app,
        &id,
        Ask::Command(IncidentCommand::Resolve { note: b.note }),
        &p,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    summary: String,
    #[serde(default)]
    action_items: Vec<ActionItem>,
}

async fn review(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReviewBody>,
) -> Result<Json<Value>, ApiError> {
    let a = Ask::Command(IncidentCommand::Review {
        summary: b.summary,
        action_items: b.action_items,
    });
    ask(&app, &id, a, &p).await
}

async fn step(
    State(app): State<Shared>,
    p: Principal,
    Path((id, name)): Path<(String, String)>,
    OptionalBody(b): OptionalBody<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    ask(&app, &id, Ask::Step { name, note: b.note }, &p).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyBody {
    class: String,
    #[serde(default)]
    aware_at: Option<String>,
    #[serde(default)]
    affected: Option<u64>,
    #[serde(default)]
    harm: Option<String>,
}

async fn classify(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ClassifyBody>,
) -> Result<Json<Value>, ApiError> {
    let ask = ClassifyAsk {
        class: b.class,
        aware_at: b.aware_at,
        affected: b.affected,
        harm: b.harm,
    };
    let (inc, pending) = app.hub.classify(&id, ask, &p).await?;
    durable(pending).await?;
    Ok(Json(json!(inc)))
}

async fn reports(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inc = app.hub.incident(&id).await?;
    p.require_service(&inc.service)?;
    let reports = app.hub.regulatory_reports(&inc).await?;
    Ok(Json(
        json!({"incident": inc.id, "regulatory": inc.regulatory, "reports": reports}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    stage: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    affected: Option<u64>,
    #[serde(default)]
    harm: Option<String>,
    #[serde(default)]
    causal_analysis: Option<String>,
    #[serde(default)]
    corrective_actions: Vec<String>,
}

async fn file_report(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<FileBody>,
) -> Result<Response, ApiError> {
    let stage = ReportStage::parse(&b.stage).ok_or_else(|| {
        ApiError::bad_request(format!(
            "stage: \"{}\" is not one of initial, update, final",
            b.stage
        ))
    })?;
    let narrative = Narrative {
        description: b.description,
        occurred_at: b.occurred_at,
        affected: b.affected,
        harm: b.harm,
        causal_analysis: b.causal_analysis,
        corrective_actions: b.corrective_actions,
    };
    let (report, pending) = app.hub.file_report(&id, stage, narrative, &p).await?;
    durable(pending).await?;
    Ok((StatusCode::CREATED, Json(json!(report))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftQuery {
    format: Option<String>,
}

/// The report as it would be filed now, from the record alone.
async fn draft_report(
    State(app): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<DraftQuery>,
) -> Result<Response, ApiError> {
    let inc = app.hub.incident(&id).await?;
    p.require_service(&inc.service)?;
    let draft = app.hub.assemble(&inc, &Narrative::default(), None).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(json!(draft)).into_response()),
        Some("markdown") => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/markdown; charset=utf-8",
            )],
            markdown(&draft),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad_request(format!(
            "format: \"{other}\" is not one of json, markdown"
        ))),
    }
}
