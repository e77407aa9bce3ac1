//! `ripcord template preview`: renders a communication template with
//! sample (or given) incident facts, as text or as a channel's payload.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use ripcord_core::time::Time;
use ripcord_server::notify::{
    self, Audience, ChannelConfig, NotifyError, NotifyKind, Part, TemplateSource,
};

#[derive(Args)]
pub struct TemplateArgs {
    #[command(subcommand)]
    command: TemplateCommand,
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Print a template rendered with sample facts: the subject and body,
    /// or with --channel-kind the payload that channel would receive.
    Preview(PreviewArgs),
}

#[derive(Args)]
struct PreviewArgs {
    /// The template: oncall, stakeholders, status_page, or one the policy
    /// or --template-file defines.
    name: String,
    /// A policy file whose templates override the built-ins.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Incident facts (JSON) instead of the sample facts.
    #[arg(long)]
    facts: Option<PathBuf>,
    /// A template file (minijinja) named NAME: an optional first line
    /// `Subject: ...`, a blank line, then the body.
    #[arg(long)]
    template_file: Option<PathBuf>,
    /// Whose built-in subject a --template-file without a Subject line uses.
    #[arg(long, value_enum, default_value = "oncall")]
    audience: AudienceArg,
    /// Print the JSON payload this kind of channel would receive.
    #[arg(long, value_enum)]
    channel_kind: Option<KindArg>,
    /// The incident event the payload announces (PagerDuty maps it to
    /// trigger, acknowledge or resolve).
    #[arg(long, value_enum, default_value = "open")]
    event: EventArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Webhook,
    Slack,
    Pagerduty,
    Email,
}

#[derive(Clone, Copy, ValueEnum)]
enum AudienceArg {
    Oncall,
    Stakeholders,
    StatusPage,
}

#[derive(Clone, Copy, ValueEnum)]
enum EventArg {
    Open,
    Escalate,
    Update,
    Acknowledge,
    Resolve,
}

pub fn run(args: TemplateArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TemplateCommand::Preview(a) => preview(a),
    }
}

fn preview(args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let facts = match &args.facts {
        Some(path) => read_facts(path)?,
        None => notify::sample_facts(),
    };
    let mut overrides = Vec::new();
    if let Some(path) = &args.policy {
        let policy = match crate::cmd::policy::load(path)? {
            Ok(p) => p,
            Err(code) => return Ok(code),
        };
        overrides.extend(notify::from_policy(&policy.governance.templates));
    }
    let mut body_offset = 0;
    if let Some(path) = &args.template_file {
        let (source, offset) = read_template_file(path, &args.name, args.audience.into())?;
        body_offset = offset;
        overrides.push(source);
    }
    let rendered = notify::render(&overrides, &args.name, &facts)
        .map_err(|e| located(e, args.template_file.as_deref(), body_offset))?;
    match args.channel_kind {
        None => print!("Subject: {}\n\n{}", rendered.subject, rendered.body),
        Some(kind) => {
            let at_ms = facts["incident"]["opened_at"]
                .as_str()
                .and_then(Time::parse_rfc3339)
                .map_or(0, |t| t.0);
            let payload = notify::channel_payload(
                &example_channel(kind),
                args.event.into(),
                &args.name,
                &rendered,
                &facts,
                at_ms,
            )?;
            println!("{}", serde_json::to_string_pretty(&payload)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_facts(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let facts: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    anyhow::ensure!(
        facts.is_object(),
        "{}: the facts must be a JSON object",
        path.display()
    );
    Ok(facts)
}

/// Reads a template file; returns it and how many lines precede its body.
fn read_template_file(
    path: &Path,
    name: &str,
    audience: Audience,
) -> anyhow::Result<(TemplateSource, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (subject, body, offset) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("Subject:") => {
            let subject = first.trim_start_matches("Subject:").trim().to_string();
            match rest.split_once('\n') {
                Some((blank, body)) if blank.trim().is_empty() => (Some(subject), body, 2),
                _ => (Some(subject), rest, 1),
            }
        }
        _ => (None, text.as_str(), 0),
    };
    let source = TemplateSource {
        name: name.to_string(),
        audience,
        subject,
        body: body.to_string(),
    };
    Ok((source, offset))
}

/// Points a template error at the file's own line numbers.
fn located(e: NotifyError, file: Option<&Path>, body_offset: usize) -> anyhow::Error {
    match (e, file) {
        (
            NotifyError::Template {
                part,
                line,
                message,
                ..
            },
            Some(path),
        ) => {
            let line = match part {
                Part::Subject => Some(1),
                Part::Body => line.map(|l| l + body_offset),
            };
            let at = line.map(|l| format!(":{l}")).unwrap_or_default();
            anyhow::anyhow!("{}{at}: {} {message}", path.display(), part.as_str())
        }
        (e, _) => e.into(),
    }
}

/// A channel of the kind, with placeholders where the payload shows
/// configuration.
fn example_channel(kind: KindArg) -> ChannelConfig {
    match kind {
        KindArg::Webhook => ChannelConfig::Webhook {
            url: "https://hooks.example.com/ripcord".into(),
            secret: String::new(),
        },
        KindArg::Slack => ChannelConfig::Slack {
            url: "https://hooks.slack.com/services/EXAMPLE".into(),
        },
        KindArg::Pagerduty => ChannelConfig::Pagerduty {
            url: notify::PAGERDUTY_URL.into(),
            routing_key: "<routing key>".into(),
        },
        KindArg::Email => ChannelConfig::Email {
            smtp: "localhost:25".into(),
            from: "ripcord@example.com".into(),
            to: vec!["oncall@example.com".into()],
            starttls: false,
        },
    }
}

impl From<AudienceArg> for Audience {
    fn from(a: AudienceArg) -> Audience {
        match a {
            AudienceArg::Oncall => Audience::Oncall,
            AudienceArg::Stakeholders => Audience::Stakeholders,
            AudienceArg::StatusPage => Audience::StatusPage,
        }
    }
}

impl From<EventArg> for NotifyKind {
    fn from(e: EventArg) -> NotifyKind {
        match e {
            EventArg::Open => NotifyKind::Open,
            EventArg::Escalate => NotifyKind::Escalate,
            EventArg::Update => NotifyKind::Update,
            EventArg::Acknowledge => NotifyKind::Acknowledge,
            EventArg::Resolve => NotifyKind::Resolve,
        }
    }
}
