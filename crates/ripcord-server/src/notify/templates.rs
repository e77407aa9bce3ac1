//! Communication templates (minijinja): a subject and a body per template,
//! rendered with an incident's facts. Three are built in, one per audience
//! (`oncall`, `stakeholders`, `status_page`); a policy's templates override
//! them or add more by name.
//!
//! Printing a value the facts do not have is an error (so a typo in a
//! template shows at preview time, not as an empty line in a page), while
//! `{% if x %}` on a missing value is simply false, so optional facts such
//! as `message` need no `is defined` guards.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::json;

use super::NotifyError;

/// Who a template is written for: on-call people get terse text with the
/// numbers, stakeholders plain language, a status page nothing internal
/// beyond the service's name.
pub use ripcord_core::policy::governance::Audience;

/// A template as a policy (or a file) gives it. Without a subject, the
/// built-in subject of its audience is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSource {
    pub name: String,
    pub audience: Audience,
    pub subject: Option<String>,
    pub body: String,
}

/// A policy's `templates:` as template sources.
pub fn from_policy(defs: &[ripcord_core::policy::governance::TemplateDef]) -> Vec<TemplateSource> {
    defs.iter()
        .map(|d| TemplateSource {
            name: d.name.clone(),
            audience: d.audience,
            subject: d.subject.clone(),
            body: d.body.clone(),
        })
        .collect()
}

/// A rendered template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Which half of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Subject,
    Body,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Body => "body",
        }
    }
}

const DRILL: &str = r#"{% if incident.kind == "drill" %}[DRILL] {% endif %}"#;

const ONCALL_SUBJECT: &str = r#"[{{ incident.severity|upper }}] {{ service }} {{ incident.state }}: {{ trigger.name }} on {{ release.candidate }}"#;

const ONCALL_BODY: &str = r#"{{ incident.title }}
Incident {{ incident.id }}: {{ incident.severity }}, {{ incident.state }}, escalation level {{ incident.escalation_level }}
Trigger: {{ trigger.name }} ({{ trigger.severity }}) -> {{ trigger.action }}
Release: {{ release.id }}, {{ release.baseline }} -> {{ release.candidate }} at {{ release.share|percent }} of traffic
Signals:
{% for s in signals %}
- {{ s.criterion }}: {{ s.signal }}{% if s.estimate is defined and s.estimate is not none %} estimate {{ s.estimate }}{% endif %}{% if s.window_estimate is defined and s.window_estimate is not none %} (window {{ s.window_estimate }}){% endif %}{% if s.interval is defined and s.interval is not none %}, {{ s.confidence|percent }} interval {{ s.interval|interval }}{% endif %}, bound {{ s.bound }}
{% else %}
- none
{% endfor %}

{% if message %}
Update: {{ message }}
{% endif %}
{% if incident.acknowledged_by %}
Acknowledged by {{ incident.acknowledged_by }} at {{ incident.acknowledged_at }}.
{% elif incident.ack_by %}
Acknowledge by {{ incident.ack_by }}.
{% endif %}
{% if incident.next_update_by %}
Next update by {{ incident.next_update_by }}.
{% endif %}
{% if regulatory %}
Regulatory: {{ regulatory.class }} under {{ regulatory.framework }}, aware at {{ regulatory.aware_at }}; {% if regulatory.reported_at %}reported at {{ regulatory.reported_at }}{% else %}report due by {{ regulatory.due_at }}{% endif %}.
{% endif %}
{{ link }}
"#;

const STAKEHOLDERS_SUBJECT: &str = r#"Incident {{ incident.state }}: {{ incident.title }}"#;

const STAKEHOLDERS_BODY: &str = r#"What happened: at {{ incident.opened_at }} ripcord saw the new version of {{ service }} ({{ release.candidate }}) cross a {{ incident.severity }} limit ("{{ trigger.name }}") while it served {{ release.share|percent }} of traffic.

Impact: up to {{ release.share|percent }} of {{ service }}'s traffic went to the new version while the problem lasted; the rest stayed on {{ release.baseline }}.

What is being done: {% if incident.resolved_at %}resolved at {{ incident.resolved_at }}{% elif incident.mitigated_at %}traffic is back on {{ release.baseline }} since {{ incident.mitigated_at }}; the team is confirming that all is well{% elif incident.acknowledged_by %}{{ incident.acknowledged_by }} is handling it{% if trigger.action == "rollback" %}; traffic is being moved back to {{ release.baseline }}{% endif %}{% else %}the on-call team has been alerted{% if trigger.action == "rollback" %}; traffic is being moved back to {{ release.baseline }}{% endif %}{% endif %}.

{% if message %}
{{ message }}

{% endif %}
Next update by: {{ incident.next_update_by or "no further updates planned" }}.
"#;

const STATUS_SUBJECT: &str = r#"{{ service }}: {% if incident.resolved_at %}resolved{% elif incident.mitigated_at %}monitoring{% else %}investigating{% endif %}"#;

const STATUS_BODY: &str = r#"{% if incident.resolved_at %}
The issue affecting {{ service }} has been resolved. Thank you for your patience.
{% elif incident.mitigated_at %}
We have applied a fix for the issue affecting {{ service }} and are monitoring the results.
{% else %}
We are investigating degraded responses from {{ service }} for some requests.
{% endif %}
{% if incident.next_update_by %}
Next update by {{ incident.next_update_by }}.
{% endif %}
"#;

/// The built-in template of an audience: (subject, body).
pub fn builtin(audience: Audience) -> (String, &'static str) {
    let (subject, body) = match audience {
        Audience::Oncall => (ONCALL_SUBJECT, ONCALL_BODY),
        Audience::Stakeholders => (STAKEHOLDERS_SUBJECT, STAKEHOLDERS_BODY),
        Audience::StatusPage => (STATUS_SUBJECT, STATUS_BODY),
    };
    (format!("{DRILL}{subject}"), body)
}

/// The built-in templates as sources, in audience order.
pub fn builtins() -> Vec<TemplateSource> {
    [
        Audience::Oncall,
        Audience::Stakeholders,
        Audience::StatusPage,
    ]
    .into_iter()
    .map(|audience| {
        let (subject, body) = builtin(audience);
        TemplateSource {
            name: audience.as_str().to_string(),
            audience,
            subject: Some(subject),
            body: body.to_string(),
        }
    })
    .collect()
}

/// Renders template `name`: from `overrides` when one has that name, else
/// a built-in.
pub fn render(
    overrides: &[TemplateSource],
    name: &str,
    facts: &serde_json::Value,
) -> Result<Rendered, NotifyError> {
    let source = find(overrides, name)?;
    let subject = source
        .subject
        .clone()
        .unwrap_or_else(|| builtin(source.audience).0);
    let env = environment();
    let context = Value::from(minijinja::value::Serde(facts));
    let subject = render_part(&env, name, Part::Subject, &subject, &context)?;
    let body = render_part(&env, name, Part::Body, &source.body, &context)?;
    // A subject is one line: mail headers and page titles have no room for more.
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Rendered {
        subject,
        body: body.trim_end().to_string() + "\n",
    })
}

/// Checks that a template parses, without facts (for policy loading).
pub fn check(source: &TemplateSource) -> Result<(), NotifyError> {
    let env = environment();
    let parts = [
        (Part::Subject, source.subject.as_deref()),
        (Part::Body, Some(source.body.as_str())),
    ];
    for (part, text) in parts {
        if let Some(text) = text {
            env.template_from_str(text)
                .map_err(|e| template_error(&source.name, part, &e))?;
        }
    }
    Ok(())
}

fn find(overrides: &[TemplateSource], name: &str) -> Result<TemplateSource, NotifyError> {
    if let Some(found) = overrides.iter().find(|t| t.name == name) {
        return Ok(found.clone());
    }
    if let Some(found) = builtins().into_iter().find(|t| t.name == name) {
        return Ok(found);
    }
    let mut known: Vec<String> = builtins().into_iter().map(|t| t.name).collect();
    known.extend(overrides.iter().map(|t| t.name.clone()));
    known.sort();
    known.dedup();
    Err(NotifyError::UnknownTemplate {
        name: name.to_string(),
        known,
    })
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // Block tags on their own lines leave no blank lines behind.
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_filter("percent", percent);
    env.add_filter("interval", interval);
    env
}

fn render_part(
    env: &Environment<'static>,
    name: &str,
    part: Part,
    text: &str,
    context: &Value,
) -> Result<String, NotifyError> {
    let template = env
        .template_from_str(text)
        .map_err(|e| template_error(name, part, &e))?;
    template
        .render(context.clone())
        .map_err(|e| template_error(name, part, &e))
}

fn template_error(name: &str, part: Part, e: &minijinja::Error) -> NotifyError {
    NotifyError::Template {
        name: name.to_string(),
        part,
        line: e.line(),
        message: e
            .detail()
            .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind())),
    }
}

/// `0.05|percent` is `5%`; up to two decimals, trailing zeros dropped.
fn percent(value: f64) -> String {
    let text = format!("{:.2}", value * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// `[0.05, none]|interval` is `[0.05, inf)`: an open side has no bound.
fn interval(value: Value) -> String {
    let side = |i: usize| {
        value
            .get_item(&Value::from(i))
            .ok()
            .filter(|v| !v.is_none() && !v.is_undefined())
    };
    match (side(0), side(1)) {
        (Some(lo), Some(hi)) => format!("[{lo}, {hi}]"),
        (Some(lo), None) => format!("[{lo}, inf)"),
        (None, Some(hi)) => format!("(-inf, {hi}]"),
        (None, None) => "(-inf, inf)".to_string(),
    }
}

/// Realistic facts for previews and tests, in the shape the incident code
/// produces.
pub fn sample_facts() -> serde_json::Value {
    json!({
        "incident": {
            "id": "inc-0001",
            "kind": "real",
            "severity": "critical",
            "state": "open",
            "title": "support-bot v13: refusal rate above bound",
            "opened_at": "2026-11-26T09:14:00Z",
            "ack_by": "2026-11-26T09:19:00Z",
            "acknowledged_at": null,
            "acknowledged_by": null,
            "mitigated_at": null,
            "resolved_at": null,
            "next_update_by": "2026-11-26T09:44:00Z",
            "escalation_level": 0
        },
        "service": "support-bot",
        "release": {"id": "rel-42", "baseline": "v12", "candidate": "v13", "share": 0.05},
        "trigger": {"name": "refusals-up", "severity": "critical", "action": "rollback"},
        "signals": [{
            "criterion": "refusal_rate",
            "signal": "refusal",
            "bound": "candidate - baseline <= 0.02",
            "estimate": 0.07,
            "window_estimate": 0.08,
            "interval": [0.05, null],
            "confidence": 0.95
        }],
        "message": null,
        "link": "http://127.0.0.1:7070/v1/incidents/inc-0001"
    })
}
