//! Who is asking and what they may do.
//!
//! A request's bearer token resolves to a [`Principal`] (a name and a
//! role): either the admin token kept in `<data-dir>/admin.token` (made on
//! first start, mode 0600; principal `admin`, role `admin`) or a token from
//! the store's `tokens` table (`ripcord token create`, `POST /v1/tokens`).
//! Only SHA-256 digests of tokens are kept, and digests are compared in
//! constant time. The route table ([`routes`]) says which [`Permission`]
//! each route needs and the role table ([`Roles`]) which permissions each
//! role has; the middleware ([`http::authorize`]) joins the two.

pub mod roles;
pub mod routes;
pub mod tokens;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ripcord_core::Time;
use ripcord_store::Store;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use roles::{Permission, RoleError, RoleSpec, Roles};

use crate::error::ApiError;

/// The principal and role of the admin token file.
pub const ADMIN: &str = "admin";

/// Names that stand for the server itself in the audit log (`engine`
/// acts on triggers and timers, `policies-dir` loads the policies
/// directory, `admin` is the admin token file); no token may take one, in
/// any case.
pub const RESERVED: &[&str] = &[ADMIN, "ripcord", ENGINE, "policies-dir"];

/// The principal of the engine's own decisions in the audit log.
pub const ENGINE: &str = "engine";

/// Who made a request: the token's name, its role, the person it belongs
/// to and the services it may act on. The auth middleware puts it into
/// the request's extensions; handlers that change anything take it (an
/// extractor, `http::extract`) and record `name` in the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: String,
    /// Separation of duties compares persons, not token names.
    pub person: String,
    pub scope: Scope,
}

/// The services a token may act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Services(std::collections::BTreeSet<String>),
}

impl Scope {
    /// A stored list: empty means every service.
    pub fn from_list(services: &[String]) -> Scope {
        if services.is_empty() {
            Scope::All
        } else {
            Scope::Services(services.iter().cloned().collect())
        }
    }

    pub fn allows(&self, service: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Services(set) => set.contains(service),
        }
    }
}

impl Principal {
    /// The principal as the governance machine names who acts.
    pub fn person(&self) -> ripcord_govern::Person<'_> {
        ripcord_govern::Person {
            name: &self.name,
            role: &self.role,
            person: &self.person,
        }
    }

    /// 403 unless the token may act on `service`.
    pub fn require_service(&self, service: &str) -> Result<(), ApiError> {
        if self.scope.allows(service) {
            return Ok(());
        }
        Err(ApiError::forbidden(self.out_of_scope(service)))
    }

    /// Why this token may not act on `service`.
    pub fn out_of_scope(&self, service: &str) -> String {
        let allowed = match &self.scope {
            Scope::All => String::new(),
            Scope::Services(set) => set.iter().cloned().collect::<Vec<_>>().join(", "),
        };
        format!(
            "service: token \"{}\" is scoped to {allowed}; it may not act on \"{service}\"",
            self.name
        )
    }
}

/// The tokens a server accepts and the roles it knows.
pub struct Tokens {
    admin: [u8; 32],
    pub roles: Roles,
}

/// Where the admin token lives, and whether this start created it.
pub struct Issued {
    pub tokens: Tokens,
    pub path: PathBuf,
    pub created: bool,
}

/// SHA-256 of a token as presented (surrounding white space ignored).
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// A new random token: `rc_` and 64 hex digits.
pub fn new_token() -> std::io::Result<String> {
    Ok(format!("rc_{}", ripcord_core::audit::hex(&random_32()?)))
}

impl Tokens {
    /// Reads the admin token from the data dir, creating it if missing.
    pub fn load_or_create(data_dir: &Path, roles: Roles) -> std::io::Result<Issued> {
        let path = data_dir.join("admin.token");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(Issued {
                tokens: Tokens {
                    admin: digest(&text),
                    roles,
                },
                path,
                created: false,
            });
        }
        let token = new_token()?;
        write_private(&path, &token)?;
        Ok(Issued {
            tokens: Tokens {
                admin: digest(&token),
                roles,
            },
            path,
            created: true,
        })
    }

    /// The principal an `Authorization` header value stands for, looked
    /// up on every request so that a revocation counts from the next one.
    /// 401 when there is no valid token.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        authorization: Option<&str>,
        now: Time,
    ) -> Result<Principal, ApiError> {
        let Some(token) = authorization.and_then(bearer) else {
            return Err(ApiError::unauthorized(
                "Authorization: a bearer token is required (`ripcord token create`, or the admin \
                 token in <data-dir>/admin.token)",
            ));
        };
        self.authenticate_digest(store, digest(token), now).await
    }

    /// The principal a token's digest stands for (a dashboard session
    /// keeps the digest, not the token); 401 like [`Tokens::authenticate`].
    pub async fn authenticate_digest(
        &self,
        store: &dyn Store,
        presented: [u8; 32],
        now: Time,
    ) -> Result<Principal, ApiError> {
        if bool::from(presented.ct_eq(&self.admin)) {
            return Ok(Principal {
                name: ADMIN.into(),
                role: ADMIN.into(),
                person: ADMIN.into(),
                scope: Scope::All,
            });
        }
        let hash = ripcord_core::audit::hex(&presented);
        let found = store.token_by_hash(&hash).await?;
        // The lookup is by digest; the comparison that decides is the
        // constant-time one.
        let record = found.filter(|r| {
            ripcord_core::audit::unhex::<32>(&r.hash)
                .is_some_and(|stored| bool::from(stored.ct_eq(&presented)))
        });
        let Some(record) = record else {
            return Err(ApiError::unauthorized(
                "Authorization: the bearer token is not one this server issued",
            ));
        };
        if let Some(at) = record.revoked_at_ms {
            return Err(ApiError::unauthorized(format!(
                "Authorization: token revoked at {} (token \"{}\")",
                Time(at).to_rfc3339(),
                record.name
            )));
        }
        if let Some(at) = record.expires_at_ms.filter(|at| *at <= now.0) {
            return Err(ApiError::unauthorized(format!(
                "Authorization: token expired at {} (token \"{}\")",
                Time(at).to_rfc3339(),
                record.name
            )));
        }
        Ok(Principal {
            scope: Scope::from_list(&record.services),
            name: record.name,
            role: record.role,
            person: record.person,
        })
    }

    /// 403 unless the principal's role has the permission; `what` names
    /// what was asked, for the message.
    pub fn require(
        &self,
        principal: &Principal,
        permission: Permission,
        what: &str,
    ) -> Result<(), ApiError> {
        if self.roles.permissions(&principal.role).is_none() {
            return Err(ApiError::forbidden(format!(
                "role \"{}\" of token \"{}\" is not defined in this server's config",
                principal.role, principal.name
            )));
        }
        if self.roles.allows(&principal.role, permission) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "role \"{}\" lacks permission \"{permission}\", which {what} needs",
            principal.role
        )))
    }
}

/// The token of an `Authorization` value; the scheme is case-insensitive
/// (RFC 9110).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// The key that seals webhook secrets in the store (32 random bytes, hex,
/// mode 0600), made on first start at `path` — by default
/// `<data-dir>/secrets.key`, beside the database but not in it, so that a
/// copy of the database alone does not reveal the secrets.
pub fn secrets_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return ripcord_core::audit::unhex::<32>(text.trim()).ok_or_else(|| {
            std::io::Error::other(format!("{}: not 64 hex digits", path.display()))
        });
    }
    let key = random_32()?;
    write_private(path, &ripcord_core::audit::hex(&key))?;
    Ok(key)
}

pub(crate) fn random_32() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes)
}

/// Writes a secret to a new file only its owner can read, durably.
pub(crate) fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_else_passes() {
        assert_eq!(bearer("Bearer rc_1"), Some("rc_1"));
        assert_eq!(bearer("bearer rc_1"), Some("rc_1"));
        assert_eq!(bearer("BEARER rc_1"), Some("rc_1"));
        assert_eq!(bearer("Basic cmM6MQ=="), None);
        assert_eq!(bearer("Bearerrc_1"), None);
        assert_eq!(bearer("rc_1"), None);
    }
}
