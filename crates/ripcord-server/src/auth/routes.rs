//! The one table of what each route needs. The auth middleware looks every
//! request up here by method and matched path; a route that is not listed
//! is refused, so a new route cannot be open by accident.

use axum::http::Method;

use super::Permission;
use super::Permission::*;

/// What a route asks of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// No token: health, readiness, metrics and the API description.
    Open,
    Permission(Permission),
    /// `POST /v1/releases/{id}/actions`: the permission depends on the
    /// action in the body ([`ACTIONS`]); the handler checks it.
    Action,
}

/// (method, path as routed, need). HEAD is looked up as GET.
pub const ROUTES: &[(&str, &str, Need)] = &[
    ("GET", "/healthz", Need::Open),
    ("GET", "/readyz", Need::Open),
    ("GET", "/v1/cluster", Need::Open),
    ("GET", "/metrics", Need::Open),
    ("GET", "/openapi.json", Need::Open),
    ("POST", "/v1/events", Need::Permission(Ingest)),
    ("POST", "/otlp/v1/traces", Need::Permission(Ingest)),
    ("POST", "/otlp/v1/logs", Need::Permission(Ingest)),
    (
        "PUT",
        "/v1/policies/{service}",
        Need::Permission(PolicyWrite),
    ),
    ("GET", "/v1/policies/{service}", Need::Permission(Read)),
    (
        "GET",
        "/v1/policies/{service}/versions",
        Need::Permission(Read),
    ),
    (
        "POST",
        "/v1/services/{service}/versions",
        Need::Permission(Manage),
    ),
    (
        "GET",
        "/v1/services/{service}/versions",
        Need::Permission(Read),
    ),
    (
        "GET",
        "/v1/services/{service}/versions/{version}",
        Need::Permission(Read),
    ),
    (
        "PUT",
        "/v1/services/{service}/webhooks",
        Need::Permission(Manage),
    ),
    (
        "GET",
        "/v1/services/{service}/webhooks",
        Need::Permission(Read),
    ),
    ("POST", "/v1/releases", Need::Permission(ReleaseStart)),
    ("GET", "/v1/releases", Need::Permission(Read)),
    ("GET", "/v1/releases/{id}", Need::Permission(Read)),
    ("GET", "/v1/releases/{id}/series", Need::Permission(Read)),
    ("POST", "/v1/releases/{id}/actions", Need::Action),
    ("GET", "/v1/assign", Need::Permission(Assign)),
    ("GET", "/v1/decisions", Need::Permission(Read)),
    (
        "POST",
        "/ofrep/v1/evaluate/flags/{key}",
        Need::Permission(Assign),
    ),
    ("POST", "/ofrep/v1/evaluate/flags", Need::Permission(Assign)),
    ("POST", "/v1/tokens", Need::Permission(TokenManage)),
    ("GET", "/v1/tokens", Need::Permission(TokenManage)),
    ("DELETE", "/v1/tokens/{name}", Need::Permission(TokenManage)),
    ("GET", "/v1/audit", Need::Permission(AuditRead)),
    ("GET", "/v1/retention", Need::Permission(Read)),
    ("POST", "/v1/retention/run", Need::Permission(Retention)),
    ("GET", "/v1/holds", Need::Permission(Read)),
    ("POST", "/v1/holds", Need::Permission(Retention)),
    ("POST", "/v1/holds/{id}/lift", Need::Permission(Retention)),
    ("POST", "/v1/purge", Need::Permission(Retention)),
    ("GET", "/v1/drills", Need::Permission(Read)),
    ("POST", "/v1/drills", Need::Permission(ReleaseStart)),
    ("GET", "/v1/drills/{id}", Need::Permission(Read)),
    ("GET", "/v1/incidents", Need::Permission(Read)),
    ("POST", "/v1/incidents", Need::Permission(IncidentUpdate)),
    ("GET", "/v1/incidents/{id}", Need::Permission(Read)),
    (
        "GET",
        "/v1/services/{service}/reviews",
        Need::Permission(Read),
    ),
    ("GET", "/v1/reviews/{id}", Need::Permission(Read)),
    (
        "POST",
        "/v1/reviews/{id}/accept",
        Need::Permission(PolicyWrite),
    ),
    (
        "POST",
        "/v1/incidents/{id}/acknowledge",
        Need::Permission(IncidentAck),
    ),
    (
        "POST",
        "/v1/incidents/{id}/status",
        Need::Permission(IncidentUpdate),
    ),
    (
        "POST",
        "/v1/incidents/{id}/mitigate",
        Need::Permission(IncidentClose),
    ),
    (
        "POST",
        "/v1/incidents/{id}/resolve",
        Need::Permission(IncidentClose),
    ),
    (
        "POST",
        "/v1/incidents/{id}/review",
        Need::Permission(IncidentClose),
    ),
    (
        "POST",
        "/v1/incidents/{id}/steps/{step}",
        Need::Permission(IncidentUpdate),
    ),
    (
        "POST",
        "/v1/incidents/{id}/classify",
        Need::Permission(IncidentUpdate),
    ),
    (
        "GET",
        "/v1/incidents/{id}/regulatory-reports",
        Need::Permission(Read),
    ),
    (
        "POST",
        "/v1/incidents/{id}/regulatory-reports",
        Need::Permission(IncidentUpdate),
    ),
    (
        "GET",
        "/v1/incidents/{id}/regulatory-reports/draft",
        Need::Permission(Read),
    ),
    ("GET", "/v1/requests", Need::Permission(Read)),
    ("GET", "/v1/requests/{id}", Need::Permission(Read)),
    (
        "POST",
        "/v1/requests/{id}/approve",
        Need::Permission(Approve),
    ),
    (
        "POST",
        "/v1/requests/{id}/reject",
        Need::Permission(Approve),
    ),
];

/// The dashboard's routes (`/ui/…`). Each needs a logged-in session
/// besides what the table says (`Open`: nothing more); the login form and
/// the static assets are outside this table and need nothing.
pub const UI_ROUTES: &[(&str, &str, Need)] = &[
    ("GET", "/ui", Need::Permission(Read)),
    ("GET", "/ui/", Need::Permission(Read)),
    ("GET", "/ui/events", Need::Permission(Read)),
    ("POST", "/ui/logout", Need::Open),
    ("GET", "/ui/releases/{id}", Need::Permission(Read)),
    ("POST", "/ui/releases/{id}/actions", Need::Action),
    ("GET", "/ui/incidents", Need::Permission(Read)),
    ("GET", "/ui/drills", Need::Permission(Read)),
    ("GET", "/ui/drills/{id}", Need::Permission(Read)),
    ("GET", "/ui/incidents/{id}", Need::Permission(Read)),
    ("GET", "/ui/incidents/{id}/evidence", Need::Permission(Read)),
    ("GET", "/ui/incidents/{id}/report", Need::Permission(Read)),
    (
        "POST",
        "/ui/incidents/{id}/acknowledge",
        Need::Permission(IncidentAck),
    ),
    (
        "POST",
        "/ui/incidents/{id}/status",
        Need::Permission(IncidentUpdate),
    ),
    (
        "POST",
        "/ui/incidents/{id}/steps/{step}",
        Need::Permission(IncidentUpdate),
    ),
    ("GET", "/ui/policies/{service}", Need::Permission(Read)),
    ("GET", "/ui/audit", Need::Permission(AuditRead)),
];

/// Release actions and the permission each needs.
pub const ACTIONS: &[(&str, Permission)] = &[
    ("pause", ReleasePause),
    ("resume", ReleasePause),
    ("promote", ReleaseRequest),
    ("rollback", ReleaseRequest),
    ("re_release", ReleaseRequest),
    ("approve", Approve),
    ("reject", Approve),
];

/// What `method path` needs, if the table says.
pub fn need(method: &Method, path: &str) -> Option<Need> {
    lookup(ROUTES, method, path)
}

fn lookup(table: &[(&str, &str, Need)], method: &Method, path: &str) -> Option<Need> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    table
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, need)| *need)
}

/// What the dashboard's `method path` needs besides a session, if the
/// table says.
pub fn ui_need(method: &Method, path: &str) -> Option<Need> {
    lookup(UI_ROUTES, method, path)
}

/// The permission a release action needs; `None` for an unknown action.
pub fn action(name: &str) -> Option<Permission> {
    ACTIONS.iter().find(|(a, _)| *a == name).map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_listed_once() {
        for (i, (m, p, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[i + 1..].iter().any(|(m2, p2, _)| m2 == m && p2 == p),
                "{m} {p} is listed twice"
            );
        }
        assert_eq!(
            need(&Method::HEAD, "/v1/releases"),
            Some(Need::Permission(Read))
        );
        assert_eq!(need(&Method::PATCH, "/v1/releases"), None);
    }
}
