//! Permissions and roles: the built-in roles of the governance plan and
//! custom roles from the config (`roles:` in `ripcord.yaml`), lowered from
//! what the user wrote ([`RoleSpec`]) into a validated [`Roles`] table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

/// What a request may do. Each route needs exactly one (see
/// `auth::routes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Every GET of the API: policies, versions, releases, decisions, sinks.
    Read,
    /// Sending events.
    Ingest,
    /// Asking which version a unit gets (`/v1/assign`, OFREP).
    Assign,
    ReleaseStart,
    /// Pause and resume.
    ReleasePause,
    /// Request a promotion, a rollback or a re-release.
    ReleaseRequest,
    /// Approve or reject what waits for approval.
    Approve,
    IncidentAck,
    /// Status updates, manual playbook steps, running playbook steps.
    IncidentUpdate,
    /// Resolve and review incidents, sign off reviews.
    IncidentClose,
    PolicyWrite,
    /// Versions, webhook sinks, notification channels.
    Manage,
    TokenManage,
    Retention,
    AuditRead,
}

impl Permission {
    pub const ALL: [Permission; 15] = [
        Permission::Read,
        Permission::Ingest,
        Permission::Assign,
        Permission::ReleaseStart,
        Permission::ReleasePause,
        Permission::ReleaseRequest,
        Permission::Approve,
        Permission::IncidentAck,
        Permission::IncidentUpdate,
        Permission::IncidentClose,
        Permission::PolicyWrite,
        Permission::Manage,
        Permission::TokenManage,
        Permission::Retention,
        Permission::AuditRead,
    ];

    /// The name used in config files and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Ingest => "ingest",
            Permission::Assign => "assign",
            Permission::ReleaseStart => "release_start",
            Permission::ReleasePause => "release_pause",
            Permission::ReleaseRequest => "release_request",
            Permission::Approve => "approve",
            Permission::IncidentAck => "incident_ack",
            Permission::IncidentUpdate => "incident_update",
            Permission::IncidentClose => "incident_close",
            Permission::PolicyWrite => "policy_write",
            Permission::Manage => "manage",
            Permission::TokenManage => "token_manage",
            Permission::Retention => "retention",
            Permission::AuditRead => "audit_read",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The built-in roles, in the order they are listed.
pub const BUILT_IN: [&str; 6] = [
    "viewer",
    "service",
    "operator",
    "release_manager",
    "safety_lead",
    "admin",
];

fn built_in(role: &str) -> Option<Vec<Permission>> {
    use Permission::*;
    let operator = [Read, IncidentAck, ReleasePause, IncidentUpdate];
    Some(match role {
        "viewer" => vec![Read],
        // Producers: send events and ask for assignments, nothing else.
        "service" => vec![Ingest, Assign],
        "operator" => operator.to_vec(),
        // Release managers run incidents too; safety and fairness ones
        // they cannot close (the incident checks the role).
        "release_manager" => vec![Read, Approve, ReleaseRequest, ReleaseStart, IncidentClose],
        "safety_lead" => [&operator[..], &[Approve, IncidentClose]].concat(),
        "admin" => Permission::ALL.to_vec(),
        _ => return None,
    })
}

/// A custom role as written in the config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// A built-in or another custom role whose permissions this one has too.
    #[serde(default)]
    pub inherits: Option<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// A config's `roles:` that does not make sense; `key` is its place in the
/// file (`roles.auditor.permissions[0]`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RoleError {
    pub key: String,
    pub message: String,
}

/// Every role this server knows, with its permissions.
#[derive(Clone, Debug, PartialEq)]
pub struct Roles {
    roles: BTreeMap<String, BTreeSet<Permission>>,
}

impl Default for Roles {
    fn default() -> Roles {
        Roles::built_in()
    }
}

impl Roles {
    /// Only the built-in roles.
    pub fn built_in() -> Roles {
        let roles = BUILT_IN
            .iter()
            .map(|r| {
                (
                    r.to_string(),
                    built_in(r).unwrap_or_default().into_iter().collect(),
                )
            })
            .collect();
        Roles { roles }
    }

    /// The built-in roles plus the config's custom ones.
    pub fn with_custom(specs: &BTreeMap<String, RoleSpec>) -> Result<Roles, RoleError> {
        let mut roles = Roles::built_in();
        for name in specs.keys() {
            check_role_name(name).map_err(|message| RoleError {
                key: format!("roles.{name}"),
                message,
            })?;
            if roles.roles.contains_key(name) {
                return Err(RoleError {
                    key: format!("roles.{name}"),
                    message: "is a built-in role and cannot be redefined; pick another name".into(),
                });
            }
        }
        for name in specs.keys() {
            let permissions = resolve(specs, name, &mut Vec::new())?;
            roles.roles.insert(name.clone(), permissions);
        }
        Ok(roles)
    }

    pub fn permissions(&self, role: &str) -> Option<&BTreeSet<Permission>> {
        self.roles.get(role)
    }

    pub fn allows(&self, role: &str, permission: Permission) -> bool {
        self.permissions(role)
            .is_some_and(|p| p.contains(&permission))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> + Clone {
        self.roles.keys().map(String::as_str)
    }

    /// `Ok` if the role exists, else a message listing the roles and the
    /// likely one.
    pub fn check(&self, role: &str) -> Result<(), String> {
        if self.roles.contains_key(role) {
            return Ok(());
        }
        Err(unknown("role", role, self.names()))
    }
}

/// Role names go into token records and messages: keep them plain.
fn check_role_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err("a role name is 1–64 characters of lowercase letters, digits, '_' or '-'".into())
    }
}

/// The permissions of custom role `name`, following `inherits`; `path` is
/// the chain so far, to refuse cycles.
fn resolve(
    specs: &BTreeMap<String, RoleSpec>,
    name: &str,
    path: &mut Vec<String>,
) -> Result<BTreeSet<Permission>, RoleError> {
    if let Some(permissions) = built_in(name) {
        return Ok(permissions.into_iter().collect());
    }
    let Some(spec) = specs.get(name) else {
        let from = path.last().cloned().unwrap_or_default();
        let known = BUILT_IN
            .iter()
            .copied()
            .chain(specs.keys().map(String::as_str));
        return Err(RoleError {
            key: format!("roles.{from}.inherits"),
            message: unknown("role", name, known),
        });
    };
    if path.iter().any(|p| p == name) {
        return Err(RoleError {
            key: format!("roles.{name}.inherits"),
            message: format!("roles inherit in a cycle: {} → {name}", path.join(" → ")),
        });
    }
    path.push(name.to_string());
    let mut permissions = match &spec.inherits {
        Some(parent) => resolve(specs, parent, path)?,
        None => BTreeSet::new(),
    };
    path.pop();
    for (i, p) in spec.permissions.iter().enumerate() {
        let permission = Permission::parse(p).ok_or_else(|| RoleError {
            key: format!("roles.{name}.permissions[{i}]"),
            message: unknown("permission", p, Permission::ALL.iter().map(|p| p.as_str())),
        })?;
        permissions.insert(permission);
    }
    Ok(permissions)
}

/// "unknown role "x"; did you mean "y"? (known: a, b, c)".
fn unknown<'a>(what: &str, word: &str, known: impl Iterator<Item = &'a str> + Clone) -> String {
    let guess = known
        .clone()
        .map(|o| (strsim::jaro_winkler(word, o), o))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o);
    let list: Vec<&str> = known.collect();
    match guess {
        Some(g) => format!(
            "unknown {what} \"{word}\"; did you mean \"{g}\"? (known: {})",
            list.join(", ")
        ),
        None => format!("unknown {what} \"{word}\" (known: {})", list.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(yaml: &str) -> BTreeMap<String, RoleSpec> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    /// docs/api.md's role table says what the code does: each built-in
    /// role's permissions, with "what `operator` has" expanded.
    #[test]
    fn the_role_table_in_docs_api_matches_the_code() {
        let doc = include_str!("../../../../docs/api.md");
        let roles = Roles::built_in();
        let mut seen = Vec::new();
        for line in doc.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, role, permissions, _] = cells[..] else {
                continue;
            };
            let role = role.trim_matches('`');
            if !BUILT_IN.contains(&role) {
                continue;
            }
            let mut documented = BTreeSet::new();
            if permissions == "every permission" {
                documented.extend(Permission::ALL.iter().copied());
            }
            for word in permissions.split('`').skip(1).step_by(2) {
                match roles.permissions(word) {
                    Some(inherited) => documented.extend(inherited.iter().copied()),
                    None => {
                        let p = Permission::ALL.iter().find(|p| p.as_str() == word);
                        documented.insert(*p.unwrap_or_else(|| panic!("{role}: {word}?")));
                    }
                }
            }
            assert_eq!(
                Some(&documented),
                roles.permissions(role),
                "docs/api.md, role {role}"
            );
            seen.push(role);
        }
        assert_eq!(seen, BUILT_IN, "every built-in role is in the table once");
    }

    #[test]
    fn built_in_roles_have_the_plans_permissions() {
        use Permission::*;
        let roles = Roles::built_in();
        let of = |r: &str| {
            roles
                .permissions(r)
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(of("viewer"), [Read]);
        assert_eq!(of("service"), [Ingest, Assign]);
        assert_eq!(
            of("operator"),
            [Read, ReleasePause, IncidentAck, IncidentUpdate]
        );
        assert_eq!(
            of("release_manager"),
            [Read, ReleaseStart, ReleaseRequest, Approve, IncidentClose]
        );
        assert_eq!(
            of("safety_lead"),
            [
                Read,
                ReleasePause,
                Approve,
                IncidentAck,
                IncidentUpdate,
                IncidentClose
            ]
        );
        assert_eq!(of("admin"), Permission::ALL);
    }

    #[test]
    fn a_custom_role_inherits_and_adds() {
        let roles = Roles::with_custom(&specs(
            "auditor: {inherits: viewer, permissions: [audit_read]}\n\
             lead_auditor: {inherits: auditor, permissions: [retention]}\n",
        ))
        .unwrap();
        use Permission::*;
        let of = |r: &str| {
            roles
                .permissions(r)
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(of("auditor"), [Read, AuditRead]);
        assert_eq!(of("lead_auditor"), [Read, Retention, AuditRead]);
        assert!(roles.check("auditor").is_ok());
    }

    #[test]
    fn mistakes_name_the_key_and_suggest() {
        let err = |yaml: &str| Roles::with_custom(&specs(yaml)).unwrap_err().to_string();
        assert_eq!(
            err("auditor: {inherits: viewer, permissions: [read, audit_reed]}"),
            "roles.auditor.permissions[1]: unknown permission \"audit_reed\"; did you mean \
             \"audit_read\"? (known: read, ingest, assign, release_start, release_pause, \
             release_request, approve, incident_ack, incident_update, incident_close, \
             policy_write, manage, token_manage, retention, audit_read)"
        );
        assert_eq!(
            err("auditor: {inherits: veiwer}"),
            "roles.auditor.inherits: unknown role \"veiwer\"; did you mean \"viewer\"? \
             (known: viewer, service, operator, release_manager, safety_lead, admin, auditor)"
        );
        assert_eq!(
            err("a: {inherits: b}\nb: {inherits: a}"),
            "roles.a.inherits: roles inherit in a cycle: a → b → a"
        );
        assert_eq!(
            err("admin: {permissions: [read]}"),
            "roles.admin: is a built-in role and cannot be redefined; pick another name"
        );
        assert!(err("Big Boss: {}").starts_with("roles.Big Boss: a role name is"));
        assert!(
            Roles::built_in()
                .check("operater")
                .unwrap_err()
                .contains("did you mean \"operator\"")
        );
    }
}
