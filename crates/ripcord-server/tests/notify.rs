//! Incident notifications end to end, with real parts on loopback: the
//! outbox worker delivering to a real SMTP server (Python `aiosmtpd`,
//! `smtp_sink.py`) and to an HTTP receiver that records what Slack and
//! PagerDuty would get; plus the built-in templates' exact output.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Result, repo_root, require_python};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use ripcord_server::notify::{
    self, Audience, ChannelConfig, NotifyError, NotifyKind, Part, TemplateSource,
};
use ripcord_store::{Batch, OutboxEntry, SqlStore, Store};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::AsyncBufReadExt;

const AT: i64 = 1_795_000_000_000;
const WAIT: Duration = Duration::from_secs(20);

/// The outbox worker over a fresh store, stopped when dropped.
struct Worker {
    store: Arc<dyn Store>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Worker {
    async fn start() -> Result<Worker> {
        let store: Arc<dyn Store> = Arc::new(SqlStore::in_memory().await?);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // The receivers here listen on loopback.
        let delivery = ripcord_server::webhooks::Delivery {
            allowed: ripcord_server::sinks::Allowed::with(&[
                ripcord_server::sinks::Range::Loopback,
            ]),
            ..Default::default()
        };
        tokio::spawn(ripcord_server::webhooks::run(
            store.clone(),
            delivery,
            stopped,
        ));
        Ok(Worker { store, stop })
    }

    async fn enqueue(&self, entries: Vec<OutboxEntry>) -> Result {
        let batch = Batch {
            outbox: entries,
            ..Batch::default()
        };
        Ok(self.store.commit(&[batch]).await?)
    }

    /// Waits until nothing is left to deliver.
    async fn drained(&self) -> Result {
        let deadline = Instant::now() + WAIT;
        while self.store.outbox_counts().await?.pending > 0 {
            if Instant::now() > deadline {
                return Err("the outbox did not drain".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Records every POST by path; answers 500 to the first `fail_first`
/// requests of each path, then 202 (PagerDuty's answer) or 200.
#[derive(Default)]
struct Receiver {
    fail_first: usize,
    got: Mutex<Vec<(String, HeaderMap, Value, u16)>>,
}

async fn receive(
    State(rx): State<Arc<Receiver>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Ok(mut got) = rx.got.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let before = got.iter().filter(|(p, ..)| *p == path).count();
    let status = if before < rx.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if path == "pagerduty" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    got.push((path, headers, value, status.as_u16()));
    status
}

async fn receiver(fail_first: usize) -> Result<(String, Arc<Receiver>)> {
    let rx = Arc::new(Receiver {
        fail_first,
        ..Receiver::default()
    });
    let app = Router::new()
        .route("/{path}", post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((base, rx))
}

fn bodies(rx: &Receiver, path: &str) -> Vec<(Value, u16)> {
    rx.got
        .lock()
        .map(|g| {
            g.iter()
                .filter(|(p, ..)| p == path)
                .map(|(_, _, v, s)| (v.clone(), *s))
                .collect()
        })
        .unwrap_or_default()
}

fn facts_resolved() -> Value {
    let mut facts = notify::sample_facts();
    facts["incident"]["state"] = json!("resolved");
    facts["incident"]["acknowledged_at"] = json!("2026-11-26T09:16:00Z");
    facts["incident"]["acknowledged_by"] = json!("alice");
    facts["incident"]["mitigated_at"] = json!("2026-11-26T09:17:00Z");
    facts["incident"]["resolved_at"] = json!("2026-11-26T09:40:00Z");
    facts["incident"]["next_update_by"] = Value::Null;
    facts
}

fn message(
    name: &str,
    channel: &ChannelConfig,
    kind: NotifyKind,
    template: &str,
    facts: &Value,
    at_ms: i64,
) -> OutboxEntry {
    notify::message(name, channel, kind, &[], template, facts, at_ms)
        .unwrap_or_else(|e| panic!("{e}"))
}

// ---- templates ---------------------------------------------------------

#[test]
fn the_oncall_template_is_terse_with_the_numbers() {
    let r = notify::render(&[], "oncall", &notify::sample_facts()).unwrap();
    assert_eq!(r.subject, "[CRITICAL] support-bot open: refusals-up on v13");
    assert_eq!(
        r.body,
        "support-bot v13: refusal rate above bound\n\
         Incident inc-0001: critical, open, escalation level 0\n\
         Trigger: refusals-up (critical) -> rollback\n\
         Release: rel-42, v12 -> v13 at 5% of traffic\n\
         Signals:\n\
         - refusal_rate: refusal estimate 0.07 (window 0.08), 95% interval [0.05, inf), bound candidate - baseline <= 0.02\n\
         \n\
         Acknowledge by 2026-11-26T09:19:00Z.\n\
         Next update by 2026-11-26T09:44:00Z.\n\
         http://127.0.0.1:7070/v1/incidents/inc-0001\n"
    );
}

#[test]
fn the_stakeholder_template_is_plain_language() {
    let r = notify::render(&[], "stakeholders", &notify::sample_facts()).unwrap();
    assert_eq!(
        r.subject,
        "Incident open: support-bot v13: refusal rate above bound"
    );
    assert_eq!(
        r.body,
        "What happened: at 2026-11-26T09:14:00Z ripcord saw the new version of support-bot (v13) \
         cross a critical limit (\"refusals-up\") while it served 5% of traffic.\n\
         \n\
         Impact: up to 5% of support-bot's traffic went to the new version while the problem \
         lasted; the rest stayed on v12.\n\
         \n\
         What is being done: the on-call team has been alerted; traffic is being moved back to v12.\n\
         \n\
         Next update by: 2026-11-26T09:44:00Z.\n"
    );
    let resolved = notify::render(&[], "stakeholders", &facts_resolved()).unwrap();
    assert!(
        resolved
            .body
            .contains("What is being done: resolved at 2026-11-26T09:40:00Z.\n"),
        "{}",
        resolved.body
    );
    assert!(
        resolved
            .body
            .ends_with("Next update by: no further updates planned.\n")
    );
}

#[test]
fn the_status_page_template_says_nothing_internal() {
    let facts = notify::sample_facts();
    let r = notify::render(&[], "status_page", &facts).unwrap();
    assert_eq!(r.subject, "support-bot: investigating");
    assert_eq!(
        r.body,
        "We are investigating degraded responses from support-bot for some requests.\n\
         Next update by 2026-11-26T09:44:00Z.\n"
    );
    // No release, version, trigger, person or figure reaches customers.
    let resolved = notify::render(&[], "status_page", &facts_resolved()).unwrap();
    let text = format!("{}\n{}", resolved.subject, resolved.body);
    assert_eq!(
        text,
        "support-bot: resolved\nThe issue affecting support-bot has been resolved. \
         Thank you for your patience.\n"
    );
    for internal in [
        "rel-42",
        "v12",
        "v13",
        "refusals-up",
        "alice",
        "0.07",
        "5%",
        "inc-0001",
    ] {
        assert!(
            !r.body.contains(internal) && !text.contains(internal),
            "{internal}"
        );
    }
}

#[test]
fn drills_are_marked_in_every_subject() {
    let mut facts = notify::sample_facts();
    facts["incident"]["kind"] = json!("drill");
    for name in ["oncall", "stakeholders", "status_page"] {
        let r = notify::render(&[], name, &facts).unwrap();
        assert!(r.subject.starts_with("[DRILL] "), "{name}: {}", r.subject);
    }
}

#[test]
fn a_status_update_carries_its_message() {
    let mut facts = notify::sample_facts();
    facts["message"] = json!("Rollback done; watching error rates.");
    let r = notify::render(&[], "oncall", &facts).unwrap();
    assert!(
        r.body
            .contains("\nUpdate: Rollback done; watching error rates.\n"),
        "{}",
        r.body
    );
}

fn custom(name: &str, subject: Option<&str>, body: &str) -> TemplateSource {
    TemplateSource {
        name: name.into(),
        audience: Audience::Stakeholders,
        subject: subject.map(str::to_string),
        body: body.into(),
    }
}

#[test]
fn policy_templates_override_and_add_by_name() {
    let overrides = [
        custom("oncall", Some("page {{ service }}"), "{{ trigger.name }}"),
        custom("exec", None, "{{ service }} is {{ incident.state }}"),
    ];
    let facts = notify::sample_facts();
    let r = notify::render(&overrides, "oncall", &facts).unwrap();
    assert_eq!(
        (r.subject.as_str(), r.body.as_str()),
        ("page support-bot", "refusals-up\n")
    );
    // Without its own subject a template takes its audience's built-in one.
    let r = notify::render(&overrides, "exec", &facts).unwrap();
    assert_eq!(
        (r.subject.as_str(), r.body.as_str()),
        (
            "Incident open: support-bot v13: refusal rate above bound",
            "support-bot is open\n"
        )
    );
    assert_eq!(
        notify::render(&overrides, "nope", &facts)
            .unwrap_err()
            .to_string(),
        "no template named \"nope\" (known: exec, oncall, stakeholders, status_page)"
    );
}

#[test]
fn template_errors_name_the_template_the_part_and_the_line() {
    let facts = notify::sample_facts();
    let broken = [custom(
        "ops",
        None,
        "first\nsecond\n{% if service %}\nnever closed\n",
    )];
    let err = notify::render(&broken, "ops", &facts).unwrap_err();
    let NotifyError::Template {
        name, part, line, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((name.as_str(), *part, *line), ("ops", Part::Body, Some(4)));
    assert!(
        err.to_string()
            .starts_with("template \"ops\", body line 4: syntax error"),
        "{err}"
    );
    // A value the facts do not have is an error, not an empty string.
    let typo = [custom("ops", Some("{{ incident.sevrity }}"), "ok")];
    let err = notify::render(&typo, "ops", &facts).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("template \"ops\", subject line 1: undefined value"),
        "{err}"
    );
    assert_eq!(
        notify::check(&broken[0]).unwrap_err(),
        notify::render(&broken, "ops", &facts).unwrap_err()
    );
}

// ---- channel config ----------------------------------------------------

#[test]
fn channels_parse_strictly_and_check_their_values() {
    let yaml = "pd:\n  kind: pagerduty\n  routing_key: abc\n\
                mail:\n  kind: email\n  smtp: 127.0.0.1:2525\n  from: ripcord@example.com\n  to: [oncall@example.com]\n";
    let channels: BTreeMap<String, ChannelConfig> = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(
        channels["pd"],
        ChannelConfig::Pagerduty {
            url: notify::PAGERDUTY_URL.into(),
            routing_key: "abc".into()
        }
    );
    assert_eq!(notify::check_all(&channels), Ok(()));
    let typo = "s:\n  kind: slack\n  ur: http://x\n";
    let err = serde_saphyr::from_str::<BTreeMap<String, ChannelConfig>>(typo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ur"), "{err}");
    let bad = |yaml: &str| {
        let channels: BTreeMap<String, ChannelConfig> = serde_saphyr::from_str(yaml).unwrap();
        notify::check_all(&channels).unwrap_err().to_string()
    };
    assert_eq!(
        bad("s:\n  kind: slack\n  url: hooks.slack.com/x\n"),
        "channels.s.url: must be an http:// or https:// URL, got \"hooks.slack.com/x\""
    );
    assert_eq!(
        bad("m:\n  kind: email\n  smtp: localhost\n  from: a@b.c\n  to: [d@e.f]\n"),
        "channels.m.smtp: must be host:port, got \"localhost\""
    );
    assert!(
        bad("m:\n  kind: email\n  smtp: h:25\n  from: a@b.c\n  to: [d@e.f, nobody]\n")
            .starts_with("channels.m.to[1]: \"nobody\" is not a mail address")
    );
    assert!(
        bad("w:\n  kind: webhook\n  url: http://x/h\n  secret: plain\n")
            .starts_with("channels.w.secret: must start with whsec_")
    );
}

// ---- outbox entries ----------------------------------------------------

#[test]
fn entry_ids_are_stable_per_event_and_pagerduty_keys_per_release_and_trigger() {
    let pd = ChannelConfig::Pagerduty {
        url: "http://127.0.0.1:9/pagerduty".into(),
        routing_key: "R".into(),
    };
    let facts = notify::sample_facts();
    let open = message("pd", &pd, NotifyKind::Open, "oncall", &facts, AT);
    let again = message("pd", &pd, NotifyKind::Open, "oncall", &facts, AT);
    let resolve = message(
        "pd",
        &pd,
        NotifyKind::Resolve,
        "oncall",
        &facts_resolved(),
        AT + 1,
    );
    let other = message("pd2", &pd, NotifyKind::Open, "oncall", &facts, AT);
    assert_eq!(open, again);
    assert!(
        open.id.starts_with("ntf_") && open.id.len() == 36,
        "{}",
        open.id
    );
    assert_ne!(open.id, resolve.id);
    assert_ne!(open.id, other.id);
    assert_eq!(open.kind, "pagerduty");
    assert_eq!(open.service, "support-bot");
    let key =
        |e: &OutboxEntry| serde_json::from_str::<Value>(&e.payload).unwrap()["dedup_key"].clone();
    assert_eq!(key(&open), json!("rel-42/refusals-up"));
    assert_eq!(key(&open), key(&resolve));
    let mut no_id = facts.clone();
    no_id["incident"].as_object_mut().unwrap().remove("id");
    assert_eq!(
        notify::message("pd", &pd, NotifyKind::Open, &[], "oncall", &no_id, AT).unwrap_err(),
        NotifyError::Facts("incident.id is missing or not a string".into())
    );
}

// ---- delivery ----------------------------------------------------------

#[tokio::test]
async fn slack_and_pagerduty_receive_their_documented_payloads() -> Result {
    let (base, rx) = receiver(0).await?;
    let worker = Worker::start().await?;
    let slack = ChannelConfig::Slack {
        url: format!("{base}/slack"),
    };
    let pd = ChannelConfig::Pagerduty {
        url: format!("{base}/pagerduty"),
        routing_key: "0123456789abcdef0123456789abcdef".into(),
    };
    let facts = notify::sample_facts();
    let open = message("pd", &pd, NotifyKind::Open, "oncall", &facts, AT);
    worker
        .enqueue(vec![
            message("chat", &slack, NotifyKind::Open, "oncall", &facts, AT),
            open.clone(),
        ])
        .await?;
    worker.drained().await?;
    // The same event again (a retry after a crash) is not sent twice.
    worker
        .enqueue(vec![
            open,
            message(
                "pd",
                &pd,
                NotifyKind::Resolve,
                "oncall",
                &facts_resolved(),
                AT + 60_000,
            ),
        ])
        .await?;
    worker.drained().await?;

    let rendered = notify::render(&[], "oncall", &facts)?;
    let slack_got = bodies(&rx, "slack");
    assert_eq!(slack_got.len(), 1);
    assert_eq!(
        slack_got[0].0,
        json!({
            "text": "[CRITICAL] support-bot open: refusals-up on v13",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "[CRITICAL] support-bot open: refusals-up on v13"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": rendered.body.replace('>', "&gt;").replace('<', "&lt;")}},
            ],
        })
    );
    let pd_got = bodies(&rx, "pagerduty");
    assert_eq!(pd_got.len(), 2, "{pd_got:#?}");
    assert_eq!(
        pd_got[0],
        (
            json!({
                "routing_key": "0123456789abcdef0123456789abcdef",
                "event_action": "trigger",
                "dedup_key": "rel-42/refusals-up",
                "client": "ripcord",
                "client_url": "http://127.0.0.1:7070/v1/incidents/inc-0001",
                "links": [{"href": "http://127.0.0.1:7070/v1/incidents/inc-0001", "text": "ripcord incident"}],
                "payload": {
                    "summary": "[CRITICAL] support-bot open: refusals-up on v13",
                    "source": "support-bot",
                    "severity": "critical",
                    "timestamp": "2026-11-18T11:06:40.000Z",
                    "component": "v13",
                    "custom_details": {
                        "body": rendered.body,
                        "incident": "inc-0001",
                        "release": facts["release"],
                        "trigger": facts["trigger"],
                        "signals": facts["signals"],
                    },
                },
            }),
            202
        )
    );
    assert_eq!(
        pd_got[1],
        (
            json!({
                "routing_key": "0123456789abcdef0123456789abcdef",
                "event_action": "resolve",
                "dedup_key": "rel-42/refusals-up",
            }),
            202
        )
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_delivery_is_retried_until_accepted() -> Result {
    let (base, rx) = receiver(1).await?;
    let worker = Worker::start().await?;
    let slack = ChannelConfig::Slack {
        url: format!("{base}/slack"),
    };
    let facts = notify::sample_facts();
    worker
        .enqueue(vec![message(
            "chat",
            &slack,
            NotifyKind::Update,
            "stakeholders",
            &facts,
            AT,
        )])
        .await?;
    worker.drained().await?;
    let got = bodies(&rx, "slack");
    assert_eq!(
        got.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        vec![500, 200]
    );
    assert_eq!(got[0].0, got[1].0, "a retry sends the same message");
    assert_eq!(worker.store.outbox_counts().await?.delivered, 1);
    Ok(())
}

#[tokio::test]
async fn webhook_channels_are_signed_the_standard_webhooks_way() -> Result {
    let (base, rx) = receiver(0).await?;
    let worker = Worker::start().await?;
    let secret = ripcord_server::webhooks::new_secret();
    let hook = ChannelConfig::Webhook {
        url: format!("{base}/hook"),
        secret: secret.clone(),
    };
    let facts = notify::sample_facts();
    let entry = message(
        "audit-hook",
        &hook,
        NotifyKind::Escalate,
        "oncall",
        &facts,
        AT,
    );
    worker.enqueue(vec![entry.clone()]).await?;
    worker.drained().await?;
    let got = rx.got.lock().map_err(|e| e.to_string())?.clone();
    assert_eq!(got.len(), 1);
    let (_, headers, body, _) = &got[0];
    let header = |n: &str| headers[n].to_str().unwrap_or_default().to_string();
    assert_eq!(header("webhook-id"), entry.id);
    // Checked from the specification, not with the server's own `sign`.
    let key = STANDARD.decode(secret.trim_start_matches("whsec_"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)?;
    mac.update(
        format!(
            "{}.{}.{}",
            entry.id,
            header("webhook-timestamp"),
            entry.payload
        )
        .as_bytes(),
    );
    assert_eq!(
        header("webhook-signature"),
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    );
    assert_eq!(body["type"], json!("incident.escalate"));
    assert_eq!(body["data"]["facts"], facts);
    assert_eq!(body["data"]["template"], json!("oncall"));
    Ok(())
}

/// `smtp_sink.py` on a free loopback port; killed when dropped.
struct SmtpSink {
    port: u16,
    out: std::path::PathBuf,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    async fn start(fail_first: usize) -> Result<SmtpSink> {
        require_python("aiosmtpd");
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("mail.ndjson");
        let script = repo_root().join("crates/ripcord-server/tests/smtp_sink.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(&script)
            .arg(&out)
            .args(["--fail-first", &fail_first.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        tokio::time::timeout(WAIT, tokio::io::BufReader::new(stdout).read_line(&mut line))
            .await??;
        let port = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| format!("smtp_sink.py said {line:?}"))?
            .parse()?;
        Ok(SmtpSink {
            port,
            out,
            _child: child,
            _dir: dir,
        })
    }

    fn received(&self) -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        Ok(text
            .lines()
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()?)
    }
}

#[tokio::test]
async fn email_goes_out_over_smtp_and_a_temporary_failure_is_retried() -> Result {
    let sink = SmtpSink::start(1).await?;
    let worker = Worker::start().await?;
    let email = ChannelConfig::Email {
        smtp: format!("127.0.0.1:{}", sink.port),
        from: "ripcord@example.com".into(),
        to: vec!["oncall@example.com".into(), "lead@example.com".into()],
        starttls: false,
    };
    notify::check_all(&BTreeMap::from([("mail".to_string(), email.clone())]))?;
    let facts = notify::sample_facts();
    let entry = message("mail", &email, NotifyKind::Open, "oncall", &facts, AT);
    worker.enqueue(vec![entry.clone()]).await?;
    worker.drained().await?;
    let got = sink.received()?;
    assert_eq!(got.len(), 1, "{got:#?}");
    let mail = &got[0];
    // The first DATA was refused with 451; the worker's retry got through.
    assert_eq!(mail["attempt"], json!(2));
    assert_eq!(mail["mail_from"], json!("ripcord@example.com"));
    assert_eq!(
        mail["rcpt_tos"],
        json!(["oncall@example.com", "lead@example.com"])
    );
    assert_eq!(mail["from"], json!("ripcord@example.com"));
    assert_eq!(mail["to"], json!("oncall@example.com, lead@example.com"));
    assert_eq!(
        mail["subject"],
        json!("[CRITICAL] support-bot open: refusals-up on v13")
    );
    assert_eq!(mail["message_id"], json!(format!("<{}@ripcord>", entry.id)));
    assert_eq!(mail["content_type"], json!("text/plain"));
    let body = mail["body"]
        .as_str()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    // The mail adds a line end of its own after the body.
    assert_eq!(
        body.trim_end(),
        notify::render(&[], "oncall", &facts)?.body.trim_end()
    );
    for fact in [
        "inc-0001",
        "refusals-up",
        "rel-42",
        "estimate 0.07",
        "[0.05, inf)",
    ] {
        assert!(body.contains(fact), "{fact} missing from {body}");
    }
    Ok(())
}

#[test]
fn the_documented_channels_example_is_valid() {
    let doc = std::fs::read_to_string(repo_root().join("docs/notifications.md")).unwrap();
    let yaml = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    #[derive(serde::Deserialize)]
    struct File {
        channels: BTreeMap<String, ChannelConfig>,
    }
    let file: File = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(
        file.channels.keys().collect::<Vec<_>>(),
        ["ops-chat", "ops-hook", "pager", "stakeholders-mail"]
    );
    assert_eq!(notify::check_all(&file.channels), Ok(()));
}
