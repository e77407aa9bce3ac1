//! Issuing, listing and revoking API tokens, shared by `ripcord token` (on
//! the store file) and `/v1/tokens` (in the server). The token is returned
//! once, to be shown once; the store keeps its SHA-256 only.

use ripcord_core::policy::units::parse_duration;
use ripcord_core::{Dur, Time};
use ripcord_store::{PendingAudit, Store, StoreError, TokenRecord};
use serde_json::{Value, json};

use super::{RESERVED, Roles};

/// Services one token may be scoped to.
pub const MAX_SERVICES: usize = 64;

/// What to issue, as asked.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub name: String,
    pub role: String,
    /// How long it is valid; `None`: until revoked.
    pub expires: Option<Dur>,
    /// Whose token it is; `None`: the token's name.
    pub person: Option<String>,
    /// The services it may act on; empty: every service.
    pub services: Vec<String>,
}

/// A token just made: the secret (to show once) and what was stored.
#[derive(Debug)]
pub struct Made {
    pub token: String,
    pub record: TokenRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A field of the request is wrong; the message starts with its name.
    #[error("{0}")]
    Invalid(String),
    #[error("name: a token named \"{0}\" exists already (revoked or not); pick another name")]
    Exists(String),
    #[error("name: there is no token named \"{0}\"")]
    NotFound(String),
    #[error("making a random token: {0}")]
    Random(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Token and person names become principals in the audit log: keep them
/// plain, and keep the server's own names (in any case) for the server.
fn check_name(field: &str, name: &str) -> Result<(), TokenError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        && !name.chars().all(|c| c == '.');
    if !ok {
        return Err(TokenError::Invalid(format!(
            "{field}: \"{name}\" must be 1–64 characters of letters, digits, '-', '_', '.' or \
             '@', and not only dots"
        )));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(TokenError::Invalid(format!(
            "{field}: \"{name}\" is reserved for the server's own principals ({}); pick another",
            RESERVED.join(", ")
        )));
    }
    Ok(())
}

/// The services a token is scoped to: valid service names, no repeats.
fn check_services(services: &[String]) -> Result<(), TokenError> {
    if services.len() > MAX_SERVICES {
        return Err(TokenError::Invalid(format!(
            "services: {} given; at most {MAX_SERVICES}",
            services.len()
        )));
    }
    for (i, service) in services.iter().enumerate() {
        crate::names::check_name(&format!("services[{i}]"), service)
            .map_err(|e| TokenError::Invalid(e.message))?;
        if services[..i].contains(service) {
            return Err(TokenError::Invalid(format!(
                "services[{i}]: \"{service}\" is listed twice"
            )));
        }
    }
    Ok(())
}

/// `30d`, `12h`, `90m` …; `never` for no expiry.
pub fn parse_expires(text: &str) -> Result<Option<Dur>, TokenError> {
    if text.trim() == "never" {
        return Ok(None);
    }
    let d = parse_duration(text).map_err(|e| TokenError::Invalid(format!("expires: {e}")))?;
    if d.0 <= 0 {
        return Err(TokenError::Invalid(format!(
            "expires: \"{text}\" must be longer than zero (or \"never\")"
        )));
    }
    Ok(Some(d))
}

/// Makes and stores a token for `by`, at `now`.
pub async fn issue(
    store: &dyn Store,
    roles: &Roles,
    request: &NewToken,
    by: &str,
    now: Time,
) -> Result<Made, TokenError> {
    check_name("name", &request.name)?;
    if let Some(person) = &request.person {
        check_name("person", person)?;
    }
    check_services(&request.services)?;
    roles
        .check(&request.role)
        .map_err(|m| TokenError::Invalid(format!("role: {m}")))?;
    let token = super::new_token()?;
    let record = TokenRecord {
        name: request.name.clone(),
        role: request.role.clone(),
        hash: ripcord_core::audit::hex(&super::digest(&token)),
        created_at_ms: now.0,
        expires_at_ms: request.expires.map(|d| (now + d).0),
        revoked_at_ms: None,
        created_by: by.to_string(),
        person: request
            .person
            .clone()
            .unwrap_or_else(|| request.name.clone()),
        services: request.services.clone(),
    };
    let detail = json!({
        "role": record.role,
        "person": record.person,
        "services": record.services,
        "expires_at": record.expires_at_ms.map(|t| Time(t).to_rfc3339()),
    });
    let audit = audit(now, by, "token.create", &record.name, detail);
    if !store.put_token(&record, &audit).await? {
        return Err(TokenError::Exists(request.name.clone()));
    }
    Ok(Made { token, record })
}

/// Revokes a token; revoking a revoked one changes nothing and answers
/// with its first revocation.
pub async fn revoke(
    store: &dyn Store,
    name: &str,
    by: &str,
    now: Time,
) -> Result<TokenRecord, TokenError> {
    let audit = audit(now, by, "token.revoke", name, json!({}));
    store.revoke_token(name, now.0, &audit).await?;
    store
        .tokens()
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| TokenError::NotFound(name.to_string()))
}

/// Whether a token works now.
pub fn state(record: &TokenRecord, now: Time) -> &'static str {
    if record.revoked_at_ms.is_some() {
        "revoked"
    } else if record.expires_at_ms.is_some_and(|t| t <= now.0) {
        "expired"
    } else {
        "active"
    }
}

/// A token as shown by the API and the CLI: never its hash.
pub fn view(record: &TokenRecord, now: Time) -> Value {
    let at = |ms: Option<i64>| ms.map(|t| Time(t).to_rfc3339());
    json!({
        "name": record.name,
        "role": record.role,
        "state": state(record, now),
        "created_at": Time(record.created_at_ms).to_rfc3339(),
        "created_by": record.created_by,
        "person": record.person,
        "services": record.services,
        "expires_at": at(record.expires_at_ms),
        "revoked_at": at(record.revoked_at_ms),
    })
}

fn audit(now: Time, by: &str, action: &str, subject: &str, detail: Value) -> PendingAudit {
    PendingAudit {
        at_ms: now.0,
        principal: by.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        detail,
    }
}
