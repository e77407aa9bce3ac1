//! A release action (promote, pause, resume, roll back, re-release,
//! approve, reject), shared by the API's route and the dashboard's forms so
//! that both take the same path through rights, scope and idempotency.

use axum::http::StatusCode;
use ripcord_core::engine::{Command, Phase};
use ripcord_store::{ReleaseRecord, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::authorize::require_action;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ingest::durable;

/// Release `id`: 404 when there is none, 403 when it belongs to a service
/// outside the token's scope.
pub async fn release_in_scope(
    app: &Shared,
    principal: &Principal,
    id: &str,
) -> Result<ReleaseRecord, ApiError> {
    let record = app
        .hub
        .store
        .release(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("release \"{id}\" does not exist")))?;
    principal.require_service(&record.service)?;
    Ok(record)
}

/// A release action as the API and the dashboard's forms send it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub action: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Runs a release action for `principal`: the one path of
/// `POST /v1/releases/{id}/actions` and of the dashboard's buttons, with
/// the same decision rights and idempotency keys. The status is 200, or
/// 202 while the action waits for approvals.
pub async fn act(
    app: &Shared,
    principal: &Principal,
    id: &str,
    req: ActionBody,
) -> Result<(StatusCode, Value), ApiError> {
    let command = Command::parse(&req.action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "action: \"{}\" is not one of promote, pause, resume, rollback, re_release, approve, reject",
            req.action
        ))
    })?;
    require_action(app, principal, &req.action)?;
    // Before the stored answers: a retried key must not show another
    // service's release either.
    let record = release_in_scope(app, principal, id).await?;
    let key = req
        .idempotency_key
        .as_ref()
        .map(|k| format!("action:{id}:{k}"));
    if let Some(key) = &key
        && let Some(first) = app.hub.store.answer(key).await?
    {
        return replayed(&first, &req.action, id);
    }
    let service = app.hub.known(&record.service)?;
    let current = service.state.lock().await.current.clone();
    let Some(current) = current.filter(|c| c.id == id) else {
        return Err(ApiError::conflict(format!(
            "release \"{id}\" is superseded; act on the service's latest release"
        )));
    };
    // Rolling back what is already rolling back or rolled back is the same
    // as doing it once.
    let settled = matches!(
        (&command, current.state),
        (Command::Rollback, Phase::RollingBack | Phase::RolledBack)
            | (Command::Pause, Phase::Paused)
    );
    if settled {
        let answer = json!({
            "action": req.action,
            "release": current,
            "changed": false,
            "reason": req.reason,
            "decisions": [],
        });
        return Ok((StatusCode::OK, answer));
    }
    let (answer, pending) = app
        .hub
        .command(&service, command, key, req.reason, principal)
        .await?;
    if let Some(pending) = pending {
        durable(pending).await?;
    }
    // A request waiting for approvals is accepted, not done.
    let status = if answer.waits() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, json!(answer)))
}

/// The stored answer to an idempotency key used before: the same answer
/// for the same action, 422 for another.
fn replayed(first: &str, action: &str, id: &str) -> Result<(StatusCode, Value), ApiError> {
    let value: Value = serde_json::from_str(first).map_err(|e| {
        StoreError::Corrupt(format!(
            "the answer to an idempotency key of release \"{id}\": {e}"
        ))
    })?;
    if value["action"] != json!(action) {
        return Err(ApiError::unprocessable(
            format!(
                "idempotency_key: already used for {} on release \"{id}\"; use a new key for a different action",
                value["action"]
            ),
            json!([{"path": "idempotency_key", "message": "used for another action"}]),
        ));
    }
    Ok((StatusCode::OK, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored answer that does not parse is an error naming it, not an
    /// empty answer (which would read as "used for another action").
    #[test]
    fn an_unreadable_stored_answer_is_an_error_that_names_it() {
        let e =
            replayed("{\"action\":", "pause", "svc-1").map_or_else(|e| e, |_| panic!("replayed"));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            e.message.starts_with(
                "stored record is unreadable: the answer to an idempotency key of release \"svc-1\": "
            ),
            "{}",
            e.message
        );
    }
}
