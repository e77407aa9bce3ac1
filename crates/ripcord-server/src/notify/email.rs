//! Sends an email outbox entry over SMTP (lettre): plain text, with the
//! entry's id as the Message-ID so that a repeat after a lost answer can be
//! recognised by the receiving side.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ripcord_store::OutboxEntry;
use serde::Deserialize;

use super::smtp_address;

const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The payload of an email outbox entry.
#[derive(Deserialize)]
struct Mail {
    from: String,
    to: Vec<String>,
    subject: String,
    body: String,
    #[serde(default)]
    starttls: bool,
}

/// Delivers one entry; the error text goes to the outbox's `last_error`.
pub async fn send(entry: &OutboxEntry) -> Result<(), String> {
    let mail: Mail = serde_json::from_str(&entry.payload)
        .map_err(|e| format!("the email payload is unreadable: {e}"))?;
    let address = entry
        .url
        .strip_prefix("smtp://")
        .ok_or_else(|| format!("not an smtp:// address: {}", entry.url))?;
    let (host, port) = smtp_address(address)?;
    let message = build(&entry.id, &mail)?;
    let transport = if mail.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
            .map_err(|e| format!("STARTTLS to {host}: {e}"))?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
    }
    .port(port)
    .timeout(Some(SMTP_TIMEOUT))
    .build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {host}:{port}: {e}"))
}

fn build(id: &str, mail: &Mail) -> Result<Message, String> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| format!("{a:?} is not a mail address: {e}"))
    };
    let mut builder = Message::builder()
        .from(mailbox(&mail.from)?)
        .subject(mail.subject.as_str())
        .message_id(Some(format!("<{id}@ripcord>")))
        .header(ContentType::TEXT_PLAIN);
    for to in &mail.to {
        builder = builder.to(mailbox(to)?);
    }
    builder
        .body(mail.body.clone())
        .map_err(|e| format!("building the message: {e}"))
}
