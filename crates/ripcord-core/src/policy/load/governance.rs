//! Lowering the governance sections (`rights`, `incidents`, `playbooks`,
//! `templates`, `evidence`) into [`Governance`], with the same diagnostics
//! as the rest of the loader: every problem, its path and line, and a
//! suggestion when a name looks like a typo.

use super::super::governance::*;
use super::*;

const RIGHT: &[&str] = &["roles", "quorum", "separation", "within", "on_timeout"];
const INCIDENTS: &[&str] = &["ack", "escalation", "status_every"];
const ACK: &[&str] = &["critical", "major", "minor"];
const LEVEL: &[&str] = &["after", "channels", "template"];
const PLAYBOOK: &[&str] = &["triggers", "steps", "description"];
const STEP: &[&str] = &[
    "name",
    "kind",
    "owner",
    "within",
    "action",
    "template",
    "channels",
    "checks",
    "hold",
    "description",
];
const STEP_KINDS: &[&str] = &["manual", "action", "communicate", "check", "verify"];
const TEMPLATE: &[&str] = &["audience", "subject", "body", "description"];
const EVIDENCE: &[&str] = &["sample", "redact"];
const AFTER_ROLLBACK: &[&str] = &["raw_events", "evidence", "export"];
const EXPORT: &[&str] = &["to", "what", "channel"];
/// More raw events than this would make every incident's bundle heavy
/// without making the analysis better.
const MAX_SAMPLE: u64 = 100_000;

/// Names other sections refer to, as declared (valid or not), so a
/// reference to a declared but broken entry is not reported twice.
struct Known<'a> {
    triggers: &'a [String],
    templates: Vec<String>,
}

/// The governance sections of the top-level mapping `top`; `triggers` are
/// the names of the policy's triggers (after merging the preset).
pub(super) fn lower_governance(
    cx: &mut Cx,
    top: &Fields<'_>,
    triggers: &[String],
) -> Option<Governance> {
    let mut templates: Vec<String> = BUILTIN_TEMPLATES.iter().map(|s| s.to_string()).collect();
    templates.extend(top.get("templates").map(names).unwrap_or_default());
    let known = Known {
        triggers,
        templates,
    };
    let d = Governance::default();
    let rights = section(top.get("rights"), d.rights, |n| lower_rights(cx, n));
    let incidents = section(top.get("incidents"), d.incidents, |n| {
        lower_incidents(cx, n, &known)
    });
    let playbooks = section(top.get("playbooks"), d.playbooks, |n| {
        lower_playbooks(cx, n, &known)
    });
    let templates = section(top.get("templates"), d.templates, |n| {
        lower_templates(cx, n)
    });
    let evidence = section(top.get("evidence"), d.evidence, |n| lower_evidence(cx, n));
    let after_rollback = section(top.get("after_rollback"), d.after_rollback, |n| {
        lower_after_rollback(cx, n)
    });
    Some(Governance {
        rights: rights?,
        incidents: incidents?,
        playbooks: playbooks?,
        templates: templates?,
        evidence: evidence?,
        after_rollback: after_rollback?,
    })
}

fn section<T>(
    node: Option<&Node>,
    default: T,
    lower: impl FnOnce(&Node) -> Option<T>,
) -> Option<T> {
    match node {
        Some(n) => lower(n),
        None => Some(default),
    }
}

/// A field the mapping must have; reports its absence at the mapping.
fn need<'a>(cx: &mut Cx, f: &Fields<'a>, field: &str, path: &str) -> Option<&'a Node> {
    let found = f.get(field);
    if found.is_none() {
        cx.error(f.node.pos, path, format!("missing field `{field}`"), None);
    }
    found
}

/// The entries of a mapping section such as `playbooks`.
fn entries<'a>(cx: &mut Cx, node: &'a Node, path: &str) -> Option<&'a [(Key, Node)]> {
    match &node.value {
        Value::Map(entries) => Some(entries),
        _ => {
            cx.error(
                node.pos,
                path,
                format!("expected a mapping, got {}", node.kind()),
                None,
            );
            None
        }
    }
}

/// The items of a list.
fn items<'a>(cx: &mut Cx, node: &'a Node, path: &str) -> Option<&'a [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        _ => {
            cx.error(
                node.pos,
                path,
                format!("expected a list, got {}", node.kind()),
                None,
            );
            None
        }
    }
}

/// Keeps every valid item; `None` if any one was invalid (and reported).
fn all<T>(items: &[Node], mut lower: impl FnMut(usize, &Node) -> Option<T>) -> Option<Vec<T>> {
    let out: Vec<T> = items
        .iter()
        .enumerate()
        .filter_map(|(i, n)| lower(i, n))
        .collect();
    (out.len() == items.len()).then_some(out)
}

/// A non-empty list of non-empty strings, e.g. `channels: [pager]`.
fn names_list(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<String>> {
    let list = items(cx, node, path)?;
    if list.is_empty() {
        cx.error(node.pos, path, "must not be empty", None);
        return None;
    }
    all(list, |_, n| cx.string(n, path))
}

/// A role name: not checked against the roles (the server's configuration
/// defines them), but it must be something a configuration could name.
pub(super) fn role(cx: &mut Cx, node: &Node, path: &str) -> Option<String> {
    let name = cx.string(node, path)?;
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        cx.error(
            node.pos,
            path,
            format!("invalid role name {name:?}"),
            Some("a role is a letter followed by letters, digits, `_` or `-`".into()),
        );
        return None;
    }
    Some(name)
}

/// How many distinct approvers: at least 1.
pub(super) fn lower_quorum(cx: &mut Cx, node: &Node, path: &str) -> Option<u32> {
    let n = cx.count(node, path)?;
    if n == 0 {
        cx.error(node.pos, path, "must be at least 1, got 0", None);
        return None;
    }
    match u32::try_from(n) {
        Ok(q) => Some(q),
        Err(_) => {
            cx.error(node.pos, path, format!("is too large: {n}"), None);
            None
        }
    }
}

fn positive_duration(cx: &mut Cx, node: &Node, path: &str) -> Option<Dur> {
    let d = cx.duration(node, path)?;
    if d <= Dur::ZERO {
        cx.error(node.pos, path, "must be longer than 0", None);
        return None;
    }
    Some(d)
}

fn boolean(cx: &mut Cx, node: &Node, path: &str) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            cx.error(
                node.pos,
                path,
                format!("expected true or false, got {}", describe(node)),
                None,
            );
            None
        }
    }
}

pub(super) fn timeout_choice(cx: &mut Cx, node: &Node, path: &str) -> Option<OnTimeout> {
    cx.choice(node, path, &["proceed", "hold"])
        .map(|i| [OnTimeout::Proceed, OnTimeout::Hold][i])
}

fn unknown(cx: &mut Cx, pos: Pos, path: &str, what: &str, name: &str, options: &[&str]) {
    let help = suggest(name, options.iter().copied())
        .map(|s| format!("did you mean `{s}`?"))
        .or_else(|| Some(format!("expected one of: {}", options.join(", "))));
    cx.error(pos, path, format!("unknown {what} `{name}`"), help);
}

fn lower_rights(cx: &mut Cx, node: &Node) -> Option<Vec<Right>> {
    let actions: Vec<&str> = ActionName::ALL.iter().map(|a| a.as_str()).collect();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries(cx, node, "rights")? {
        let action = ActionName::parse(&key.name);
        match action {
            None => unknown(cx, key.pos, "rights", "action", &key.name, &actions),
            Some(a) if seen.contains(&a) => cx.error(
                key.pos,
                "rights",
                format!("`{}` is given twice", key.name),
                None,
            ),
            Some(a) => seen.push(a),
        }
        let right = lower_right(cx, value, &format!("rights.{}", key.name));
        match (action, right) {
            (Some(action), Some(right)) => out.push(Right { action, ..right }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// One right; its `action` is filled in by the caller from the key.
fn lower_right(cx: &mut Cx, node: &Node, path: &str) -> Option<Right> {
    let f = cx.fields(node, path, RIGHT)?;
    let at = |field: &str| format!("{path}.{field}");
    let roles = need(cx, &f, "roles", path).and_then(|n| {
        let list = items(cx, n, &at("roles"))?;
        if list.is_empty() {
            cx.error(n.pos, &at("roles"), "needs at least one role", None);
            return None;
        }
        all(list, |_, r| role(cx, r, &at("roles")))
    });
    let quorum = opt(cx, f.get("quorum"), &at("quorum"), lower_quorum, 1);
    // Separation of duties is what makes an approval worth having.
    let separation = opt(cx, f.get("separation"), &at("separation"), boolean, true);
    let within = need(cx, &f, "within", path).and_then(|n| cx.duration(n, &at("within")));
    let on_timeout =
        need(cx, &f, "on_timeout", path).and_then(|n| timeout_choice(cx, n, &at("on_timeout")));
    Some(Right {
        action: ActionName::Rollback,
        roles: roles?,
        quorum: quorum?,
        separation: separation?,
        within: within?,
        on_timeout: on_timeout?,
    })
}

fn lower_incidents(cx: &mut Cx, node: &Node, known: &Known<'_>) -> Option<IncidentRules> {
    let f = cx.fields(node, "incidents", INCIDENTS)?;
    let d = IncidentRules::default();
    let ack = section(f.get("ack"), d.ack, |n| lower_ack(cx, n));
    let escalation = section(f.get("escalation"), d.escalation, |n| {
        lower_escalation(cx, n, known)
    });
    let status_every = match f.get("status_every") {
        Some(n) => positive_duration(cx, n, "incidents.status_every").map(Some),
        None => Some(None),
    };
    Some(IncidentRules {
        ack: ack?,
        escalation: escalation?,
        status_every: status_every?,
    })
}

fn lower_ack(cx: &mut Cx, node: &Node) -> Option<AckDeadlines> {
    let f = cx.fields(node, "incidents.ack", ACK)?;
    let d = AckDeadlines::default();
    let mut deadline = |name: &str, default: Dur| match f.get(name) {
        Some(n) => positive_duration(cx, n, &format!("incidents.ack.{name}")),
        None => Some(default),
    };
    let critical = deadline("critical", d.critical);
    let major = deadline("major", d.major);
    let minor = deadline("minor", d.minor);
    Some(AckDeadlines {
        critical: critical?,
        major: major?,
        minor: minor?,
    })
}

fn lower_escalation(cx: &mut Cx, node: &Node, known: &Known<'_>) -> Option<Vec<EscalationLevel>> {
    let path = "incidents.escalation";
    let list = items(cx, node, path)?;
    // The latest `after` so far: each level must come no earlier.
    let mut latest: Option<Dur> = None;
    all(list, |i, item| {
        let p = format!("{path}[{i}]");
        let f = cx.fields(item, &p, LEVEL)?;
        let after_node = need(cx, &f, "after", &p);
        let after = after_node.and_then(|n| cx.duration(n, &format!("{p}.after")));
        let mut in_order = true;
        if let (Some(prev), Some(now), Some(n)) = (latest, after, after_node)
            && now < prev
        {
            cx.error(
                n.pos,
                &format!("{p}.after"),
                format!("`after` must not decrease from level to level ({prev} then {now})"),
                None,
            );
            in_order = false;
        }
        latest = latest.max(after);
        let channels =
            need(cx, &f, "channels", &p).and_then(|n| names_list(cx, n, &format!("{p}.channels")));
        let template = match f.get("template") {
            Some(n) => template_ref(cx, n, &format!("{p}.template"), known).map(Some),
            None => Some(None),
        };
        let level = EscalationLevel {
            after: after?,
            channels: channels?,
            template: template?,
        };
        in_order.then_some(level)
    })
}

/// A template's name, which the policy declares or the server has built in.
fn template_ref(cx: &mut Cx, node: &Node, path: &str, known: &Known<'_>) -> Option<String> {
    let name = cx.string(node, path)?;
    if known.templates.contains(&name) {
        return Some(name);
    }
    let help = suggest(&name, known.templates.iter().map(String::as_str))
        .map(|s| format!("did you mean `{s}`?"))
        .or_else(|| {
            Some(format!(
                "declare it under `templates:` or use a built-in one: {}",
                BUILTIN_TEMPLATES.join(", ")
            ))
        });
    cx.error(node.pos, path, format!("unknown template `{name}`"), help);
    None
}

fn lower_playbooks(cx: &mut Cx, node: &Node, known: &Known<'_>) -> Option<Vec<Playbook>> {
    let list = entries(cx, node, "playbooks")?;
    let out: Vec<Playbook> = list
        .iter()
        .filter_map(|(k, v)| lower_playbook(cx, &k.name, v, known))
        .collect();
    (out.len() == list.len()).then_some(out)
}

fn lower_playbook(cx: &mut Cx, name: &str, node: &Node, known: &Known<'_>) -> Option<Playbook> {
    let path = format!("playbooks.{name}");
    let f = cx.fields(node, &path, PLAYBOOK)?;
    let triggers = match f.get("triggers") {
        Some(n) => playbook_triggers(cx, n, &format!("{path}.triggers"), known),
        None => Some(Vec::new()),
    };
    let steps = need(cx, &f, "steps", &path).and_then(|n| lower_steps(cx, n, &path, known));
    Some(Playbook {
        name: name.to_string(),
        triggers: triggers?,
        steps: steps?,
    })
}

fn playbook_triggers(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    known: &Known<'_>,
) -> Option<Vec<String>> {
    let list = items(cx, node, path)?;
    if list.is_empty() {
        cx.error(
            node.pos,
            path,
            "must not be empty",
            Some("leave `triggers` out to apply the playbook to every trigger".into()),
        );
        return None;
    }
    all(list, |_, n| {
        let name = cx.string(n, path)?;
        if known.triggers.contains(&name) {
            return Some(name);
        }
        let help = suggest(&name, known.triggers.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .or_else(|| {
                Some(format!(
                    "this policy's triggers: {}",
                    known.triggers.join(", ")
                ))
            });
        cx.error(n.pos, path, format!("unknown trigger `{name}`"), help);
        None
    })
}

fn lower_steps(
    cx: &mut Cx,
    node: &Node,
    playbook: &str,
    known: &Known<'_>,
) -> Option<Vec<PlaybookStep>> {
    let path = format!("{playbook}.steps");
    let list = items(cx, node, &path)?;
    if list.is_empty() {
        cx.error(node.pos, &path, "needs at least one step", None);
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    all(list, |i, item| {
        let p = format!("{path}[{i}]");
        let step = lower_step(cx, item, &p, known);
        // Checked on the raw name, so a broken step's name still counts.
        let Some(name_node) = field(item, "name") else {
            return step;
        };
        let Value::Str(name) = &name_node.value else {
            return step;
        };
        if names.contains(name) {
            cx.error(
                name_node.pos,
                &format!("{p}.name"),
                format!("step name `{name}` is used twice in this playbook"),
                None,
            );
            return None;
        }
        names.push(name.clone());
        step
    })
}

/// A field's value, in a mapping that has it.
fn field<'a>(node: &'a Node, name: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v),
        _ => None,
    }
}

fn lower_step(cx: &mut Cx, node: &Node, path: &str, known: &Known<'_>) -> Option<PlaybookStep> {
    let f = cx.fields(node, path, STEP)?;
    let at = |field: &str| format!("{path}.{field}");
    let name = need(cx, &f, "name", path).and_then(|n| cx.string(n, &at("name")));
    let owner = need(cx, &f, "owner", path).and_then(|n| role(cx, n, &at("owner")));
    let within = need(cx, &f, "within", path).and_then(|n| cx.duration(n, &at("within")));
    let kind = need(cx, &f, "kind", path)
        .and_then(|n| cx.choice(n, &at("kind"), STEP_KINDS))
        .and_then(|k| lower_step_kind(cx, &f, STEP_KINDS[k], path, known));
    Some(PlaybookStep {
        name: name?,
        owner: owner?,
        within: within?,
        kind: kind?,
    })
}

/// The fields that go with each kind of step.
fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "action" => &["action"],
        "communicate" => &["template", "channels"],
        "check" => &["checks"],
        "verify" => &["hold"],
        _ => &[],
    }
}

fn lower_step_kind(
    cx: &mut Cx,
    f: &Fields<'_>,
    kind: &str,
    path: &str,
    known: &Known<'_>,
) -> Option<StepKind> {
    let own = kind_fields(kind);
    let mut ok = true;
    for (key, _) in f.entries {
        let extra = STEP_KINDS
            .iter()
            .any(|k| kind_fields(k).contains(&key.name.as_str()));
        if extra && !own.contains(&key.name.as_str()) {
            let message = format!("`{}` does not apply to a `{kind}` step", key.name);
            cx.error(key.pos, path, message, None);
            ok = false;
        }
    }
    let at = |field: &str| format!("{path}.{field}");
    let mut needs = |field: &str| {
        let n = f.get(field);
        if n.is_none() {
            cx.error(
                f.node.pos,
                path,
                format!("a `{kind}` step needs `{field}`"),
                None,
            );
        }
        n
    };
    let (a, b) = match own {
        [] => (None, None),
        [x] => (needs(x), None),
        [x, y, ..] => (needs(x), needs(y)),
    };
    let step = match kind {
        "manual" => Some(StepKind::Manual),
        "action" => action_name(cx, a?, &at("action")).map(|action| StepKind::Action { action }),
        "communicate" => {
            let template = a.and_then(|n| template_ref(cx, n, &at("template"), known));
            let channels = b.and_then(|n| names_list(cx, n, &at("channels")));
            Some(StepKind::Communicate {
                template: template?,
                channels: channels?,
            })
        }
        "check" => lower_checks(cx, a?, &at("checks")).map(|checks| StepKind::Check { checks }),
        _ => positive_duration(cx, a?, &at("hold")).map(|hold| StepKind::Verify { hold }),
    };
    step.filter(|_| ok)
}

fn action_name(cx: &mut Cx, node: &Node, path: &str) -> Option<ActionName> {
    let names: Vec<&str> = ActionName::ALL.iter().map(|a| a.as_str()).collect();
    cx.choice(node, path, &names).map(|i| ActionName::ALL[i])
}

fn lower_checks(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<CheckKind>> {
    let names: Vec<&str> = CheckKind::ALL.iter().map(|c| c.as_str()).collect();
    let list = items(cx, node, path)?;
    if list.is_empty() {
        cx.error(
            node.pos,
            path,
            "must not be empty",
            Some(format!("one or more of: {}", names.join(", "))),
        );
        return None;
    }
    all(list, |_, n| {
        let name = cx.string(n, path)?;
        match CheckKind::ALL.into_iter().find(|c| c.as_str() == name) {
            Some(c) => Some(c),
            None => {
                unknown(cx, n.pos, path, "check", &name, &names);
                None
            }
        }
    })
}

fn lower_templates(cx: &mut Cx, node: &Node) -> Option<Vec<TemplateDef>> {
    let list = entries(cx, node, "templates")?;
    let out: Vec<TemplateDef> = list
        .iter()
        .filter_map(|(k, v)| lower_template(cx, &k.name, v))
        .collect();
    (out.len() == list.len()).then_some(out)
}

fn lower_template(cx: &mut Cx, name: &str, node: &Node) -> Option<TemplateDef> {
    let path = format!("templates.{name}");
    let f = cx.fields(node, &path, TEMPLATE)?;
    let at = |field: &str| format!("{path}.{field}");
    let audiences: Vec<&str> = Audience::ALL.iter().map(|a| a.as_str()).collect();
    let audience = need(cx, &f, "audience", &path)
        .and_then(|n| cx.choice(n, &at("audience"), &audiences))
        .map(|i| Audience::ALL[i]);
    let subject = match f.get("subject") {
        Some(n) => jinja(cx, n, &at("subject")).map(Some),
        None => Some(None),
    };
    let body = need(cx, &f, "body", &path).and_then(|n| jinja(cx, n, &at("body")));
    Some(TemplateDef {
        name: name.to_string(),
        audience: audience?,
        subject: subject?,
        body: body?,
    })
}

/// A string that must be valid Jinja syntax; a syntax error is reported at
/// its line in the policy file when the template is a literal block (`|`).
fn jinja(cx: &mut Cx, node: &Node, path: &str) -> Option<String> {
    let text = cx.string(node, path)?;
    let env = minijinja::Environment::new();
    let Err(e) = env.template_from_str(&text) else {
        return Some(text);
    };
    let detail = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    let (pos, where_) = template_place(cx, node, &text, &e);
    cx.error(
        pos,
        path,
        format!("template syntax error: {detail}{where_}"),
        None,
    );
    None
}

/// Where in the file a template error is: exact for a literal block
/// scalar (`body: |`), whose lines are the file's lines from where the
/// node starts; otherwise the string's start, with the template's own line
/// in the message.
fn template_place(cx: &Cx, node: &Node, text: &str, e: &minijinja::Error) -> (Pos, String) {
    let lines = text.lines().count().max(1);
    let line = e.line().unwrap_or(1).clamp(1, lines);
    if !is_literal_block(&cx.source, node) {
        let where_ = if lines > 1 {
            format!(" (line {line} of the template)")
        } else {
            String::new()
        };
        return (node.pos, where_);
    }
    let column = e
        .range()
        .and_then(|r| text.get(..r.start))
        .map_or(0, |before| {
            before.chars().rev().take_while(|c| *c != '\n').count()
        });
    let pos = Pos {
        line: node.pos.line + line - 1,
        column: node.pos.column + column,
        source: Source::File,
    };
    (pos, String::new())
}

/// A `|` block scalar: its node starts on the first content line, and the
/// line above ends with the `|` indicator (`|`, `|-`, `|+`, `|2`).
fn is_literal_block(source: &str, node: &Node) -> bool {
    if node.pos.source != Source::File || node.pos.line < 2 {
        return false;
    }
    let Some(above) = source.lines().nth(node.pos.line - 2) else {
        return false;
    };
    let above = above.split(" #").next().unwrap_or(above).trim_end();
    let indicator =
        above.trim_end_matches(['-', '+', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    indicator.ends_with(": |") || indicator.ends_with("- |") || indicator == "|"
}

fn lower_evidence(cx: &mut Cx, node: &Node) -> Option<EvidenceRules> {
    let f = cx.fields(node, "evidence", EVIDENCE)?;
    let d = EvidenceRules::default();
    let sample = match f.get("sample") {
        Some(n) => sample_size(cx, n),
        None => Some(d.sample),
    };
    let (drop, hash) = match f.get("redact") {
        Some(n) => lower_redact(cx, n)?,
        None => (d.drop, d.hash),
    };
    Some(EvidenceRules {
        sample: sample?,
        drop,
        hash,
    })
}

fn sample_size(cx: &mut Cx, node: &Node) -> Option<usize> {
    let n = cx.count(node, "evidence.sample")?;
    if n > MAX_SAMPLE {
        let message = format!("must be at most {MAX_SAMPLE}, got {n}");
        cx.error(node.pos, "evidence.sample", message, None);
        return None;
    }
    usize::try_from(n).ok()
}

fn lower_redact(cx: &mut Cx, node: &Node) -> Option<(Vec<String>, Vec<String>)> {
    let f = cx.fields(node, "evidence.redact", &["drop", "hash"])?;
    let drop = match f.get("drop") {
        Some(n) => field_paths(cx, n, "evidence.redact.drop"),
        None => Some(Vec::new()),
    };
    let hash = match f.get("hash") {
        Some(n) => field_paths(cx, n, "evidence.redact.hash"),
        None => Some(Vec::new()),
    };
    let (drop, hash) = (drop?, hash?);
    if let (Some(both), Some(n)) = (hash.iter().find(|h| drop.contains(h)), f.get("hash")) {
        let message = format!("`{both}` is both dropped and hashed");
        cx.error(
            n.pos,
            "evidence.redact.hash",
            message,
            Some("keep it in one list".into()),
        );
        return None;
    }
    Some((drop, hash))
}

/// Dotted paths into the raw event's JSON, such as `segment.user`.
fn field_paths(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<String>> {
    let list = items(cx, node, path)?;
    all(list, |_, n| {
        let p = cx.string(n, path)?;
        if p.split('.').any(str::is_empty) {
            cx.error(
                n.pos,
                path,
                format!("invalid field path {p:?}"),
                Some("name a field of the event, with dots between levels: segment.user".into()),
            );
            return None;
        }
        Some(p)
    })
}

fn lower_after_rollback(cx: &mut Cx, node: &Node) -> Option<AfterRollback> {
    let f = cx.fields(node, "after_rollback", AFTER_ROLLBACK)?;
    let keep = match f.get("raw_events") {
        Some(n) => raw_events_keep(cx, n).map(Some),
        None => Some(None),
    };
    let hold = match f.get("evidence") {
        Some(n) => evidence_hold(cx, n),
        None => Some(EvidenceHold::None),
    };
    let exports = match f.get("export") {
        Some(n) => lower_exports(cx, n),
        None => Some(Vec::new()),
    };
    Some(AfterRollback {
        raw_events_keep: keep?,
        evidence_hold: hold?,
        exports: exports?,
    })
}

/// `export: [{to: safety-team, what: [evidence, decisions], channel: x}]`.
fn lower_exports(cx: &mut Cx, node: &Node) -> Option<Vec<Export>> {
    let path = "after_rollback.export";
    let list = items(cx, node, path)?;
    if list.len() > AfterRollback::MAX_EXPORTS {
        let message = format!(
            "at most {} exports, got {}",
            AfterRollback::MAX_EXPORTS,
            list.len()
        );
        cx.error(node.pos, path, message, None);
        return None;
    }
    all(list, |i, item| {
        let p = format!("{path}[{i}]");
        let f = cx.fields(item, &p, EXPORT)?;
        let to = need(cx, &f, "to", &p).and_then(|n| role(cx, n, &format!("{p}.to")));
        let what = need(cx, &f, "what", &p).and_then(|n| export_parts(cx, n, &format!("{p}.what")));
        let channel =
            need(cx, &f, "channel", &p).and_then(|n| cx.string(n, &format!("{p}.channel")));
        Some(Export {
            to: to?,
            what: what?,
            channel: channel?,
        })
    })
}

fn export_parts(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<ExportPart>> {
    let names: Vec<&str> = ExportPart::ALL.iter().map(|p| p.as_str()).collect();
    let list = items(cx, node, path)?;
    if list.is_empty() {
        let help = Some(format!("one or more of: {}", names.join(", ")));
        cx.error(node.pos, path, "must not be empty", help);
        return None;
    }
    let mut seen = Vec::new();
    all(list, |_, n| {
        let part = cx.choice(n, path, &names).map(|i| ExportPart::ALL[i])?;
        if seen.contains(&part) {
            cx.error(
                n.pos,
                path,
                format!("`{}` is given twice", part.as_str()),
                None,
            );
            return None;
        }
        seen.push(part);
        Some(part)
    })
}

/// `raw_events: {keep: 30d}`: from the rollback, at most ten years.
fn raw_events_keep(cx: &mut Cx, node: &Node) -> Option<Dur> {
    let path = "after_rollback.raw_events";
    let f = cx.fields(node, path, &["keep"])?;
    let n = need(cx, &f, "keep", path)?;
    let at = "after_rollback.raw_events.keep";
    let keep = cx.duration(n, at)?;
    if keep < Dur::ZERO || keep > AfterRollback::MAX_KEEP {
        let message = format!("must be between 0s and 3650d, got {keep}");
        cx.error(n.pos, at, message, None);
        return None;
    }
    Some(keep)
}

/// `evidence: {hold: while_incident_open}`.
fn evidence_hold(cx: &mut Cx, node: &Node) -> Option<EvidenceHold> {
    let path = "after_rollback.evidence";
    let f = cx.fields(node, path, &["hold"])?;
    let n = need(cx, &f, "hold", path)?;
    let names: Vec<&str> = EvidenceHold::ALL.iter().map(|h| h.as_str()).collect();
    cx.choice(n, "after_rollback.evidence.hold", &names)
        .map(|i| EvidenceHold::ALL[i])
}
