//! The audit log's signing key and the checkpoints published outside the
//! store. The key lives outside the data dir (`--audit-key`), and every
//! signed checkpoint is appended to a file the operator chooses
//! (`--audit-checkpoints`) and sent to the notification channels the
//! operator names (`audit_checkpoint_channels:`), so that neither a copy
//! of the data dir nor write access to the database is enough to rewrite
//! the log unnoticed.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ripcord_core::Time;
use ripcord_store::{AuditLine, OutboxEntry, Store, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::auth::{random_32, write_private};
use crate::clock::Clock;
use crate::notify::{self, ChannelConfig, ChannelKind};

/// The audit log's signing key: 32 random bytes, hex, in the file at
/// `path` (mode 0600), made on first start. The file must not be inside
/// `data_dir`: whoever can rewrite the database could then re-sign it.
pub fn audit_key(path: &Path, data_dir: &Path) -> std::io::Result<ed25519_dalek::SigningKey> {
    refuse_inside(path, data_dir)?;
    if let Ok(text) = std::fs::read_to_string(path) {
        return parse_key(path, &text);
    }
    let legacy = data_dir.join("audit.key");
    if legacy.exists() {
        return Err(std::io::Error::other(format!(
            "{} is inside the data dir, where whoever can write the database could re-sign \
             it; move it out (mv {} {}) or name its new place with --audit-key",
            legacy.display(),
            legacy.display(),
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let seed = random_32()?;
    // Written aside and linked into place, so that two servers starting at
    // once agree on one key and none reads a half-written file.
    let aside = path.with_extension(format!(
        "new-{}",
        &ripcord_core::audit::hex(&random_32()?)[..16]
    ));
    write_private(&aside, &ripcord_core::audit::hex(&seed))?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(ed25519_dalek::SigningKey::from_bytes(&seed)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            parse_key(path, &std::fs::read_to_string(path)?)
        }
        Err(e) => Err(e),
    }
}

/// The key's default place, outside any data dir:
/// `$XDG_CONFIG_HOME/ripcord/audit.key`, else `~/.config/ripcord/audit.key`.
pub fn default_audit_key() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(config.join("ripcord").join("audit.key"))
}

fn parse_key(path: &Path, text: &str) -> std::io::Result<ed25519_dalek::SigningKey> {
    let seed = ripcord_core::audit::unhex::<32>(text.trim())
        .ok_or_else(|| std::io::Error::other(format!("{}: not 64 hex digits", path.display())))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Refuses a key path inside the data dir (compared after resolving
/// links, so `data/../data/k` and symlinks count too).
fn refuse_inside(path: &Path, data_dir: &Path) -> std::io::Result<()> {
    if inside(path, data_dir) {
        return Err(std::io::Error::other(format!(
            "--audit-key {}: the signing key must live outside the data dir {}, or whoever \
             can write the database could re-sign it",
            path.display(),
            data_dir.display()
        )));
    }
    Ok(())
}

/// Whether the file at `path` would be inside `dir`.
fn inside(path: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    resolve(parent).starts_with(resolve(dir))
}

/// Appends each signed checkpoint's export line to a file, durably, as one
/// JSON line (`ripcord audit verify --checkpoints FILE` reads it back).
pub struct Publisher {
    path: PathBuf,
}

impl Publisher {
    /// Opens (or creates) the file now, so that a wrong path stops the
    /// start rather than the first checkpoint.
    pub fn open(path: &Path, data_dir: &Path) -> std::io::Result<Publisher> {
        let publisher = Publisher {
            path: path.to_path_buf(),
        };
        if inside(path, data_dir) {
            tracing::warn!(
                "--audit-checkpoints {} is inside the data dir: a copy there proves little; \
                 publish where the database's writers cannot",
                path.display()
            );
        }
        publisher.append("")?;
        Ok(publisher)
    }

    /// Appends `line` (without its newline) and syncs.
    pub fn append(&self, line: &str) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(&self.path)?;
        if !line.is_empty() {
            writeln!(file, "{line}")?;
            file.sync_all()?;
        }
        Ok(())
    }
}

/// The notification channels (`channels:` in `ripcord.yaml`) that every
/// signed checkpoint is also sent to, named by `audit_checkpoint_channels`.
#[derive(Clone, Debug, Default)]
pub struct CheckpointChannels(Vec<(String, ChannelConfig)>);

impl CheckpointChannels {
    /// Looks `names` up among the configured channels. PagerDuty channels
    /// are refused: a checkpoint every period would page someone each time.
    pub fn resolve(
        names: &[String],
        channels: &BTreeMap<String, ChannelConfig>,
    ) -> Result<CheckpointChannels, String> {
        let known = || channels.keys().cloned().collect::<Vec<_>>().join(", ");
        let one = |name: &String| match channels.get(name) {
            None => Err(format!(
                "audit_checkpoint_channels: \"{name}\" is not a channel of this server's config \
                 (channels: {})",
                known()
            )),
            Some(c) if c.kind() == ChannelKind::Pagerduty => Err(format!(
                "audit_checkpoint_channels: \"{name}\" is a PagerDuty channel, which a checkpoint \
                 every period would page; name a webhook, Slack or email channel"
            )),
            Some(c) => Ok((name.clone(), c.clone())),
        };
        names
            .iter()
            .map(one)
            .collect::<Result<_, _>>()
            .map(CheckpointChannels)
    }

    /// One outbox delivery per channel for the checkpoint record `line`,
    /// made at `at_ms`.
    pub fn deliveries(&self, line: &AuditLine, at_ms: i64) -> Vec<OutboxEntry> {
        self.0
            .iter()
            .filter_map(|(name, channel)| {
                let payload = checkpoint_payload(channel, line, at_ms)?;
                // Checkpoints vouch for the whole log, no one service.
                let id = checkpoint_entry_id(name, line.seq);
                let mut entry = notify::delivery(id, "", channel, &payload, at_ms);
                entry.idempotency_key = Some(checkpoint_key(line.seq));
                Some(entry)
            })
            .collect()
    }
}

/// What a channel receives for a checkpoint: the record's export line
/// whole, which is what `ripcord audit verify --checkpoints FILE` reads
/// (one such line per checkpoint). `None` for PagerDuty, which
/// [`CheckpointChannels::resolve`] refuses.
fn checkpoint_payload(channel: &ChannelConfig, line: &AuditLine, at_ms: i64) -> Option<Value> {
    let upto = line.seq - 1;
    let summary = format!(
        "ripcord audit checkpoint: record {} signs records 1-{upto}",
        line.seq
    );
    Some(match channel {
        ChannelConfig::Webhook { .. } => json!({
            "type": "audit.checkpoint",
            "timestamp": Time(at_ms).to_rfc3339(),
            "idempotency_key": checkpoint_key(line.seq),
            "data": {"seq": line.seq, "upto": upto, "line": line.line},
        }),
        ChannelConfig::Slack { .. } => json!({"text": format!("{summary}\n```{}```", line.line)}),
        ChannelConfig::Email {
            from, to, starttls, ..
        } => json!({
            "from": from,
            "to": to,
            "subject": summary,
            "body": format!("{}\n", line.line),
            "starttls": starttls,
        }),
        ChannelConfig::Pagerduty { .. } => return None,
    })
}

/// The idempotency key of checkpoint record `seq`, in its webhook payload
/// and header.
fn checkpoint_key(seq: i64) -> String {
    format!("audit/checkpoint/{seq}")
}

/// `ckp_<seq>_` + 16 hex digits of the channel's name (names may hold
/// characters a `webhook-id` header cannot): the same on every attempt.
fn checkpoint_entry_id(channel: &str, seq: i64) -> String {
    let digest: [u8; 32] = Sha256::digest(channel.as_bytes()).into();
    format!("ckp_{seq}_{}", &ripcord_core::audit::hex(&digest)[..16])
}

/// How checkpoints are made and where they are published.
pub struct Signing {
    pub key: Arc<ed25519_dalek::SigningKey>,
    pub every: Duration,
    pub file: Option<Publisher>,
    pub channels: CheckpointChannels,
    /// The server's clock: the checkpoints' times.
    pub clock: Clock,
}

impl Signing {
    /// Adds a signed checkpoint over the log's head, unless the head is at
    /// or before `only_after`; its channel deliveries are queued in the
    /// same transaction, then it is appended to the file. Returns the
    /// checkpoint record's sequence number.
    pub async fn checkpoint(
        &self,
        store: &dyn Store,
        only_after: i64,
    ) -> Result<Option<i64>, StoreError> {
        let key = &self.key;
        let sign =
            |upto: i64, head: [u8; 32]| ripcord_core::audit::checkpoint_detail(key, upto, &head);
        let at = self.clock.now().0;
        let publish = |line: &AuditLine| self.channels.deliveries(line, at);
        let Some(line) = store.checkpoint(at, only_after, &sign, &publish).await? else {
            return Ok(None);
        };
        if let Some(file) = &self.file
            && let Err(e) = file.append(&line.line)
        {
            tracing::error!("publishing checkpoint {} to its file: {e}", line.seq);
        }
        Ok(Some(line.seq))
    }
}

/// Adds a signed checkpoint every period and a last one at shutdown.
pub async fn run(store: Arc<dyn Store>, signing: Signing, mut stop: watch::Receiver<bool>) {
    let mut last = 0;
    let start = tokio::time::Instant::now() + signing.every;
    let mut interval = tokio::time::interval_at(start, signing.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let stopping = tokio::select! {
            _ = interval.tick() => false,
            _ = stop.changed() => true,
        };
        match signing.checkpoint(&*store, last).await {
            Ok(Some(seq)) => last = seq,
            Ok(None) => {}
            Err(e) => tracing::warn!("audit checkpoint: {e}"),
        }
        if stopping {
            return;
        }
    }
}
