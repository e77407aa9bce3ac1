//! `ripcord serve`: the live service, on the embedded store or PostgreSQL.
//!
//! Settings come from flags, then environment variables (`RIPCORD_*`), then
//! the config file (`ripcord.yaml` by default, if present), then defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ripcord_core::Dur;
use ripcord_core::engine::EventLimits;
use ripcord_core::policy::units::parse_duration;
use ripcord_govern::regulatory::check_class;
use ripcord_govern::{RegulatoryClass, RegulatoryClasses};
use ripcord_server::audit_sign::CheckpointChannels;
use ripcord_server::auth::{RoleSpec, Roles};
use ripcord_server::notify::{ChannelConfig, check_all};
use ripcord_server::report::regulatory::{Provider, Regulation, SystemId};
use ripcord_server::retention::Retention;
use ripcord_server::sinks::{Allowed, Range};
use ripcord_store::{DataClass, StoreSpec};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::store::StoreArg;

#[derive(Args)]
pub struct ServeArgs {
    /// Where the admin token, the keys and (without --store) the store
    /// live [default: ./ripcord-data].
    #[arg(long, env = "RIPCORD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArg,
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "RIPCORD_LISTEN")]
    listen: Option<SocketAddr>,
    /// A directory of policy files to load at start.
    #[arg(long, env = "RIPCORD_POLICIES")]
    policies: Option<PathBuf>,
    /// The audit log's signing key, outside the data dir [default:
    /// ~/.config/ripcord/audit.key, or under $XDG_CONFIG_HOME].
    #[arg(long, env = "RIPCORD_AUDIT_KEY")]
    audit_key: Option<PathBuf>,
    /// A file every signed audit checkpoint is appended to, one JSON line
    /// each (`ripcord audit verify --checkpoints`).
    #[arg(long, env = "RIPCORD_AUDIT_CHECKPOINTS")]
    audit_checkpoints: Option<PathBuf>,
    /// Notification channels (of the config's `channels:`) every signed
    /// audit checkpoint is also sent to, comma-separated.
    #[arg(long, env = "RIPCORD_AUDIT_CHECKPOINT_CHANNELS", value_delimiter = ',')]
    audit_checkpoint_channels: Option<Vec<String>>,
    /// Address ranges webhook sinks may reach besides public addresses,
    /// comma-separated: loopback, private, link_local [default: none].
    #[arg(long, env = "RIPCORD_WEBHOOKS_ALLOW", value_delimiter = ',', value_parser = range)]
    webhooks_allow: Option<Vec<Range>>,
    /// Config file [default: ./ripcord.yaml when it exists].
    #[arg(long, env = "RIPCORD_CONFIG")]
    config: Option<PathBuf>,
    /// With a PostgreSQL store: the leader lease's period; several
    /// `ripcord serve` on one database elect one leader, the others stand
    /// by and take over within two periods [default: 5s].
    #[arg(long, env = "RIPCORD_LEASE")]
    lease: Option<String>,
    /// With a PostgreSQL store: the URL other replicas' clients reach this
    /// one at, named in the lease [default: http://<listen address>].
    #[arg(long, env = "RIPCORD_ADVERTISE")]
    advertise: Option<String>,
    /// How often a running release's criteria are recorded for
    /// `GET /v1/releases/{id}/series`, 1s to 1h; long releases double it
    /// so that a release keeps at most 10,080 points [default: 60s].
    #[arg(long, env = "RIPCORD_SERIES_EVERY")]
    series_every: Option<String>,
    /// Also take events from a NATS JetStream stream on this server
    /// (nats://HOST:PORT), through a durable pull consumer; see
    /// docs/sources.md.
    #[arg(long, env = "RIPCORD_NATS")]
    nats: Option<String>,
    /// With --nats: the stream to consume (created by the operator).
    #[arg(long, env = "RIPCORD_NATS_STREAM")]
    nats_stream: Option<String>,
    /// With --nats: the durable consumer's name, created or bound
    /// [default: ripcord].
    #[arg(long, env = "RIPCORD_NATS_CONSUMER")]
    nats_consumer: Option<String>,
    /// With --nats: only the stream's messages on this subject filter
    /// (`events.>`) [default: all].
    #[arg(long, env = "RIPCORD_NATS_SUBJECT")]
    nats_subject: Option<String>,
}

/// `nats:` in `ripcord.yaml` and the `--nats*` flags, each flag winning
/// over its key.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NatsConfig {
    url: Option<String>,
    stream: Option<String>,
    consumer: Option<String>,
    subject: Option<String>,
}

impl NatsConfig {
    fn lower(self) -> anyhow::Result<Option<ripcord_server::nats::Source>> {
        let Some(url) = &self.url else {
            if self.stream.is_some() || self.consumer.is_some() || self.subject.is_some() {
                anyhow::bail!("--nats-stream, --nats-consumer and --nats-subject need --nats URL");
            }
            return Ok(None);
        };
        let source = ripcord_server::nats::Source::new(
            url,
            self.stream.as_deref(),
            self.consumer.as_deref(),
            self.subject.as_deref(),
        )?;
        Ok(Some(source))
    }
}

/// `--series-every`: a duration from a second to an hour.
fn series_every(text: &str) -> anyhow::Result<Dur> {
    let every = parse_duration(text).map_err(|e| anyhow::anyhow!("--series-every: {e}"))?;
    if !(1_000..=3_600_000).contains(&every.0) {
        anyhow::bail!("--series-every: must be between 1s and 1h, got {text}");
    }
    Ok(every)
}

/// Replicas elect a leader on a PostgreSQL store; an SQLite file has one
/// server.
fn cluster(
    store: &ripcord_store::StoreSpec,
    lease: Option<&str>,
    advertise: Option<String>,
) -> anyhow::Result<Option<ripcord_server::cluster::Cluster>> {
    let on_postgres = matches!(store, ripcord_store::StoreSpec::Postgres(_));
    if !on_postgres {
        if lease.is_some() || advertise.is_some() {
            anyhow::bail!("--lease and --advertise need a PostgreSQL store (--store postgres://…)");
        }
        return Ok(None);
    }
    let lease = match lease {
        Some(text) => parse_duration(text).map_err(|e| anyhow::anyhow!("--lease: {e}"))?,
        None => Dur::from_secs(5),
    };
    if !(200..=600_000).contains(&lease.0) {
        anyhow::bail!("--lease: must be between 200ms and 10m");
    }
    Ok(Some(ripcord_server::cluster::Cluster {
        node: advertise.unwrap_or_default(),
        lease: std::time::Duration::from_millis(lease.0.unsigned_abs()),
    }))
}

/// `ripcord.yaml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    /// `postgres://USER@HOST:PORT/DB` or `sqlite://PATH`.
    pub store: Option<StoreSpec>,
    listen: Option<SocketAddr>,
    policies: Option<PathBuf>,
    audit_key: Option<PathBuf>,
    audit_checkpoints: Option<PathBuf>,
    /// Channels every signed checkpoint is sent to: `[audit-witness]`.
    #[serde(default)]
    audit_checkpoint_channels: Vec<String>,
    /// Webhook deliveries: `{allow: [loopback, private, link_local],
    /// timeout: 10s}`.
    #[serde(default)]
    webhooks: WebhooksConfig,
    /// Custom roles: `auditor: {inherits: viewer, permissions: [audit_read]}`.
    #[serde(default)]
    roles: BTreeMap<String, RoleSpec>,
    /// Notification channels by name.
    #[serde(default)]
    channels: BTreeMap<String, ChannelConfig>,
    /// What one event may claim (`limits: {max_outputs: 10000}`).
    #[serde(default)]
    limits: Limits,
    /// How long each class of data is kept (`retention: {raw_events: 30d}`).
    #[serde(default)]
    retention: RetentionConfig,
    /// A NATS JetStream source: `{url: nats://…, stream: EVENTS}`.
    #[serde(default)]
    nats: NatsConfig,
    /// Regulatory classes with their reporting deadlines, the provider
    /// and the systems' registrations (`docs/governance.md`).
    #[serde(default)]
    pub regulatory: RegulatoryConfig,
}

/// `regulatory:` — the class table (replacing the EU AI Act Article 73
/// default when given), the provider and each service's registration.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegulatoryConfig {
    framework: Option<String>,
    classes: Option<BTreeMap<String, ClassConfig>>,
    #[serde(default)]
    provider: Provider,
    #[serde(default)]
    systems: BTreeMap<String, SystemId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassConfig {
    /// The reporting period from awareness (`2d`, `15d`).
    deadline: Spanned<String>,
    #[serde(default)]
    description: String,
}

impl RegulatoryConfig {
    /// The validated regulation; a problem names its key, and a class's
    /// deadline its line and column.
    pub fn lower(&self, origin: &str) -> anyhow::Result<Regulation> {
        let defaults = RegulatoryClasses::default();
        let framework = self
            .framework
            .clone()
            .unwrap_or_else(|| defaults.framework.clone());
        let classes = match &self.classes {
            None if self.framework.is_none() => defaults,
            None => RegulatoryClasses::new(framework, defaults.classes().to_vec())
                .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?,
            Some(table) => {
                let mut classes = Vec::with_capacity(table.len());
                for (name, c) in table {
                    classes.push(lower_class(origin, name, c)?);
                }
                RegulatoryClasses::new(framework, classes)
                    .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?
            }
        };
        Ok(Regulation {
            classes,
            provider: self.provider.clone(),
            systems: self.systems.clone(),
        })
    }
}

fn lower_class(origin: &str, name: &str, c: &ClassConfig) -> anyhow::Result<RegulatoryClass> {
    let at = &c.deadline.referenced;
    let here = format!("{origin}:{}:{}", at.line(), at.column());
    let deadline = parse_duration(&c.deadline.value)
        .map_err(|e| anyhow::anyhow!("{here}: regulatory.classes.{name}.deadline: {e}"))?;
    let class = RegulatoryClass {
        name: name.to_string(),
        description: c.description.clone(),
        deadline,
    };
    check_class(&class).map_err(|e| anyhow::anyhow!("{here}: {e}"))?;
    Ok(class)
}

/// `retention:` — each class's period (`30d`, `12h`) and the task's pace;
/// what is not given keeps its default (`Retention::default()`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetentionConfig {
    raw_events: Option<String>,
    decisions: Option<String>,
    evidence: Option<String>,
    audit: Option<String>,
    every: Option<String>,
    batch: Option<i64>,
}

impl RetentionConfig {
    fn lower(&self, origin: &str) -> anyhow::Result<Retention> {
        let mut out = Retention::default();
        let duration = |name: &str, text: &str, min: Dur, max: Dur| {
            let d = parse_duration(text)
                .map_err(|e| anyhow::anyhow!("{origin}: retention.{name}: {e}"))?;
            if d < min || d > max {
                anyhow::bail!(
                    "{origin}: retention.{name}: must be between {} and {}, got {text}",
                    show(min),
                    show(max)
                );
            }
            Ok(d)
        };
        let classes = [
            (DataClass::RawEvents, &self.raw_events),
            (DataClass::Decisions, &self.decisions),
            (DataClass::Evidence, &self.evidence),
            (DataClass::Audit, &self.audit),
        ];
        for (class, text) in classes {
            if let Some(text) = text {
                let keep = duration(
                    class.as_str(),
                    text,
                    Dur::from_mins(1),
                    Dur(100 * 365 * DAY),
                )?;
                out.keep.insert(class, keep);
            }
        }
        if let Some(text) = &self.every {
            let every = duration("every", text, Dur::from_secs(1), Dur(DAY))?;
            out.every = std::time::Duration::from_millis(every.0.unsigned_abs());
        }
        if let Some(batch) = self.batch {
            if !(1..=10_000).contains(&batch) {
                anyhow::bail!("{origin}: retention.batch: must be from 1 to 10000, got {batch}");
            }
            out.batch = batch;
        }
        Ok(out)
    }
}

const DAY: i64 = 86_400_000;

/// A bound as people write it: `1m`, `1d`, `36500d`.
fn show(d: Dur) -> String {
    match d.0 {
        ms if ms % DAY == 0 => format!("{}d", ms / DAY),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms / 1000),
    }
}

/// `limits:` — per-event bounds; each defaults to `EventLimits::default()`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_outputs: Option<f64>,
    max_value: Option<f64>,
}

impl Limits {
    fn lower(&self, origin: &str) -> anyhow::Result<EventLimits> {
        let defaults = EventLimits::default();
        let positive = |name: &str, v: Option<f64>, default: f64| match v {
            None => Ok(default),
            Some(v) if (1.0..=1e15).contains(&v) => Ok(v),
            Some(v) => Err(anyhow::anyhow!(
                "{origin}: limits.{name}: must be a number from 1 to 1e15, got {v}"
            )),
        };
        Ok(EventLimits {
            max_outputs: positive("max_outputs", self.max_outputs, defaults.max_outputs)?,
            max_value: positive("max_value", self.max_value, defaults.max_value)?,
        })
    }
}

/// `webhooks:` in `ripcord.yaml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Ranges sinks may reach beyond the public internet.
    #[serde(default)]
    allow: Vec<Range>,
    /// One delivery attempt that takes longer fails (`10s`).
    timeout: Option<String>,
}

/// A `--webhooks-allow` item.
fn range(text: &str) -> Result<Range, String> {
    match text.trim() {
        "loopback" => Ok(Range::Loopback),
        "private" => Ok(Range::Private),
        "link_local" => Ok(Range::LinkLocal),
        other => Err(format!(
            "\"{other}\" is not one of loopback, private, link_local"
        )),
    }
}

impl FileConfig {
    /// The built-in roles and the file's own; errors name the key.
    pub fn roles(&self, origin: &Path) -> anyhow::Result<Roles> {
        Roles::with_custom(&self.roles).map_err(|e| anyhow::anyhow!("{}: {e}", origin.display()))
    }
}

/// The config file in use: the explicit one, else `./ripcord.yaml` if it
/// exists.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None if Path::new("ripcord.yaml").exists() => Some(PathBuf::from("ripcord.yaml")),
        None => None,
    }
}

pub fn read_config(explicit: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = config_path(explicit) else {
        return Ok(FileConfig::default());
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: FileConfig =
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    check_all(&file.channels).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(file)
}

pub fn config(args: ServeArgs) -> anyhow::Result<ripcord_server::Config> {
    let file = read_config(args.config.as_deref())?;
    let roles = match config_path(args.config.as_deref()) {
        Some(path) => file.roles(&path)?,
        None => Roles::built_in(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("ripcord-data"));
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
    let mut config = ripcord_server::Config::new(data_dir, listen);
    config.store = args.store.store.or(file.store);
    config.cluster = cluster(&config.store_spec(), args.lease.as_deref(), args.advertise)?;
    config.policies = args.policies.or(file.policies);
    if let Some(text) = &args.series_every {
        config.series.every = series_every(text)?;
    }
    config.audit_key = args.audit_key.or(file.audit_key);
    config.audit_checkpoints = args.audit_checkpoints.or(file.audit_checkpoints);
    let allow = args.webhooks_allow.unwrap_or(file.webhooks.allow);
    config.webhooks.allowed = Allowed::with(&allow);
    if let Some(text) = &file.webhooks.timeout {
        let d = parse_duration(text).map_err(|e| anyhow::anyhow!("webhooks.timeout: {e}"))?;
        if !(1..=300_000).contains(&d.0) {
            anyhow::bail!("webhooks.timeout: must be between 1ms and 5m, got {text}");
        }
        config.webhooks.timeout = std::time::Duration::from_millis(d.0.unsigned_abs());
    }
    config.roles = roles;
    config.channels = file.channels;
    let origin = config_path(args.config.as_deref())
        .map_or_else(|| "ripcord.yaml".to_string(), |p| p.display().to_string());
    config.audit_checkpoint_channels = args
        .audit_checkpoint_channels
        .unwrap_or(file.audit_checkpoint_channels);
    CheckpointChannels::resolve(&config.audit_checkpoint_channels, &config.channels)
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    config.engine.limits = file.limits.lower(&origin)?;
    config.retention = file.retention.lower(&origin)?;
    let nats = NatsConfig {
        url: args.nats.or(file.nats.url),
        stream: args.nats_stream.or(file.nats.stream),
        consumer: args.nats_consumer.or(file.nats.consumer),
        subject: args.nats_subject.or(file.nats.subject),
    };
    config.nats = nats.lower()?;
    config.regulatory = file.regulatory.lower(&origin)?;
    Ok(config)
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = config(args)?;
    logs();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// The server's warnings (a retention pass that failed, a NATS server out
/// of reach) on stderr, beside what `serve` prints itself; `RUST_LOG`
/// chooses others.
fn logs() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,ripcord_server=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn serve(config: ripcord_server::Config) -> anyhow::Result<()> {
    let starting = ripcord_server::bind(config.clone()).await?;
    if starting.in_cluster() {
        eprintln!(
            "ripcord following on http://{} until it holds the lease (store: {})",
            starting.addr,
            config.store_spec()
        );
    }
    let server = starting.lead().await?;
    if server.token_created {
        eprintln!(
            "created the admin token in {} (mode 0600); send it as `Authorization: Bearer <token>`",
            server.token_path.display()
        );
    } else {
        eprintln!("admin token: {}", server.token_path.display());
    }
    eprintln!(
        "audit checkpoints are signed with key {} (verify: ripcord audit verify --public-key <key>)",
        server.audit_public_key
    );
    eprintln!(
        "ripcord serving on http://{} (store: {})",
        server.addr,
        config.store_spec()
    );
    tokio::select! {
        () = shutdown_signal() => {}
        why = server.lost() => {
            // Its engines are stale now: a fresh process follows.
            anyhow::bail!("stopped leading ({why}); exiting so that a supervisor restarts ripcord as a follower");
        }
    }
    eprintln!("shutting down: finishing requests in flight");
    server.shutdown().await?;
    eprintln!("stopped; everything acknowledged is stored");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            data_dir: None,
            store: StoreArg::default(),
            listen: None,
            policies: None,
            audit_key: None,
            audit_checkpoints: None,
            audit_checkpoint_channels: None,
            webhooks_allow: None,
            config: None,
            lease: None,
            advertise: None,
            series_every: None,
            nats: None,
            nats_stream: None,
            nats_consumer: None,
            nats_subject: None,
        }
    }

    #[test]
    fn the_nats_source_comes_from_flags_then_the_config_file() {
        let c = from_yaml("nats: {url: nats://10.0.0.5:4222, stream: EVENTS}\n").unwrap();
        let source = c.nats.unwrap();
        assert_eq!(source.url, "nats://10.0.0.5:4222");
        assert_eq!(source.stream, "EVENTS");
        assert_eq!(source.consumer, "ripcord");
        assert_eq!(source.subject, None);
        let mut a = args();
        a.nats = Some("nats://127.0.0.1:4222".into());
        a.nats_stream = Some("S".into());
        a.nats_consumer = Some("rc-1".into());
        a.nats_subject = Some("events.>".into());
        let source = config(a).unwrap().nats.unwrap();
        assert_eq!(
            (source.consumer.as_str(), source.subject.as_deref()),
            ("rc-1", Some("events.>"))
        );
        assert!(config(args()).unwrap().nats.is_none());
        for (yaml, error) in [
            ("nats: {stream: S}", "need --nats URL"),
            ("nats: {url: nats://h:4222}", "--nats-stream: required"),
            (
                "nats: {url: nats://h:4222, stream: a.b}",
                "--nats-stream: \"a.b\"",
            ),
            ("nats: {urll: x}", "unknown field `urll`"),
        ] {
            let e = from_yaml(yaml).map(|_| ()).unwrap_err();
            assert!(e.contains(error), "{yaml}: {e}");
        }
    }

    #[test]
    fn series_every_takes_a_duration_from_a_second_to_an_hour() {
        let with = |text: Option<&str>| {
            let mut a = args();
            a.series_every = text.map(str::to_string);
            config(a).map(|c| c.series.every).map_err(|e| e.to_string())
        };
        assert_eq!(with(None), Ok(Dur::from_secs(60)));
        assert_eq!(with(Some("15s")), Ok(Dur::from_secs(15)));
        assert_eq!(with(Some("1h")), Ok(Dur::from_mins(60)));
        assert_eq!(
            with(Some("500ms")),
            Err("--series-every: must be between 1s and 1h, got 500ms".into())
        );
        assert_eq!(
            with(Some("2h")),
            Err("--series-every: must be between 1s and 1h, got 2h".into())
        );
        assert!(with(Some("often")).is_err_and(|e| e.starts_with("--series-every: ")));
    }

    #[test]
    fn flags_win_over_the_config_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ripcord.yaml");
        std::fs::write(&file, "data_dir: /srv/ripcord\nlisten: 127.0.0.1:9000\n").unwrap();
        let mut a = args();
        a.config = Some(file.clone());
        let c = config(a).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/ripcord"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        let mut a = args();
        a.config = Some(file);
        a.listen = Some("127.0.0.1:7171".parse().unwrap());
        let c = config(a).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7171");
        assert_eq!(c.data_dir, PathBuf::from("/srv/ripcord"));
    }

    /// The config from `yaml`, or its error's text.
    fn from_yaml(yaml: &str) -> Result<ripcord_server::Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ripcord.yaml");
        std::fs::write(&file, yaml).unwrap();
        let mut a = args();
        a.config = Some(file);
        config(a).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn retention_periods_come_from_the_config_and_mistakes_name_the_key() {
        let c = from_yaml("retention: {raw_events: 7d, every: 30s, batch: 100}\n").unwrap();
        let keep = |class| c.retention.keep(class).0;
        assert_eq!(keep(DataClass::RawEvents), 7 * DAY);
        // What is not given keeps its default.
        assert_eq!(keep(DataClass::Audit), 2190 * DAY);
        assert_eq!(c.retention.every, std::time::Duration::from_secs(30));
        assert_eq!(c.retention.batch, 100);
        for (yaml, error) in [
            ("retention: {raw_events: soon}", "retention.raw_events: "),
            (
                "retention: {audit: 10s}",
                "retention.audit: must be between 1m and 36500d, got 10s",
            ),
            (
                "retention: {every: 2d}",
                "retention.every: must be between 1s and 1d, got 2d",
            ),
            (
                "retention: {batch: 0}",
                "retention.batch: must be from 1 to 10000, got 0",
            ),
            ("retention: {raw_event: 1d}", "unknown field `raw_event`"),
        ] {
            let e = from_yaml(yaml).map(|_| ()).unwrap_err();
            assert!(e.contains(error), "{yaml}: {e}");
        }
    }

    #[test]
    fn regulatory_classes_default_to_article_73_and_mistakes_name_the_key() {
        let days = |c: &ripcord_server::Config, name: &str| {
            c.regulatory.classes.get(name).map(|x| x.deadline.0 / DAY)
        };
        let c = config(args()).unwrap();
        assert_eq!(c.regulatory.classes.framework, "EU AI Act Article 73");
        assert_eq!(days(&c, "widespread_infringement"), Some(2));
        assert_eq!(days(&c, "critical_infrastructure"), Some(2));
        assert_eq!(days(&c, "death"), Some(10));
        assert_eq!(days(&c, "serious_incident"), Some(15));
        let c = from_yaml(
            "regulatory:\n  framework: Internal policy 7\n  provider: {name: Example AI GmbH}\n  classes:\n    outage: {deadline: 3d, description: any outage}\n    breach: {deadline: 12h}\n",
        )
        .unwrap();
        assert_eq!(c.regulatory.classes.framework, "Internal policy 7");
        assert_eq!(c.regulatory.classes.classes().len(), 2);
        assert_eq!(days(&c, "outage"), Some(3));
        assert_eq!(days(&c, "death"), None);
        assert_eq!(c.regulatory.provider.name, "Example AI GmbH");
        for (yaml, error) in [
            (
                "regulatory:\n  classes:\n    death: {deadline: soon}\n",
                "ripcord.yaml:3:23: regulatory.classes.death.deadline: ",
            ),
            (
                "regulatory:\n  classes:\n    death: {deadline: 5m}\n",
                "ripcord.yaml:3:23: regulatory.classes.death.deadline: must be between 1h and 366d",
            ),
            (
                "regulatory:\n  classes:\n    Death: {deadline: 1d}\n",
                "regulatory.classes.Death: a class name is 1 to 64 of a-z, 0-9, _ and -",
            ),
            (
                "regulatory:\n  classes: {}\n",
                "regulatory.classes: must have 1 to 32 classes, got 0",
            ),
            (
                "regulatory:\n  classes:\n    death: {deadlin: 1d}\n",
                "unknown field `deadlin`",
            ),
            ("regulatory:\n  provider: {nme: x}\n", "unknown field `nme`"),
        ] {
            let e = from_yaml(yaml).map(|_| ()).unwrap_err();
            assert!(e.contains(error), "{yaml}: {e}");
        }
    }

    #[test]
    fn the_documented_regulatory_example_loads() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/governance.md"),
        )
        .unwrap();
        let yaml = doc
            .split("```yaml\n")
            .find(|block| block.starts_with("regulatory:"))
            .and_then(|block| block.split("```").next())
            .unwrap();
        let c = from_yaml(yaml).unwrap();
        let r = &c.regulatory;
        let names: Vec<&str> = r
            .classes
            .classes()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "death",
                "internal_sev1",
                "serious_incident",
                "widespread_infringement"
            ]
        );
        assert_eq!(
            r.classes.get("internal_sev1").map(|c| c.deadline.0),
            Some(DAY / 2)
        );
        assert_eq!(r.provider.name, "Example AI GmbH");
        assert_eq!(r.systems["support-bot"].registration, "EU-DB-0042");
    }

    #[test]
    fn the_store_comes_from_the_flag_then_the_config_file_then_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ripcord.yaml");
        std::fs::write(
            &file,
            "data_dir: /srv/ripcord\nstore: postgres://rc@db:5432/ripcord\n",
        )
        .unwrap();
        let c = config(args()).unwrap();
        assert_eq!(c.store_spec().to_string(), "ripcord-data/ripcord.db");
        let mut a = args();
        a.config = Some(file.clone());
        let c = config(a).unwrap();
        assert_eq!(c.store_spec().to_string(), "postgres://rc@db:5432/ripcord");
        let mut a = args();
        a.config = Some(file.clone());
        a.store.store = Some("sqlite:///tmp/x.db".parse().unwrap());
        let c = config(a).unwrap();
        assert_eq!(c.store_spec().to_string(), "/tmp/x.db");
        std::fs::write(&file, "store: mysql://rc@db/ripcord\n").unwrap();
        let mut a = args();
        a.config = Some(file);
        let err = config(a).err().unwrap().to_string();
        assert!(
            err.contains("expected postgres://USER@HOST:PORT/DB"),
            "{err}"
        );
    }

    #[test]
    fn custom_roles_come_from_the_config_file_and_mistakes_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ripcord.yaml");
        std::fs::write(
            &file,
            "roles:\n  auditor: {inherits: viewer, permissions: [audit_read]}\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(file.clone());
        let c = config(a).unwrap();
        let auditor = c.roles.permissions("auditor").unwrap();
        assert_eq!(auditor.len(), 2);
        std::fs::write(&file, "roles:\n  auditor: {permissions: [audit_raed]}\n").unwrap();
        let mut a = args();
        a.config = Some(file);
        let err = config(a).err().unwrap().to_string();
        assert!(
            err.contains("ripcord.yaml: roles.auditor.permissions[0]: unknown permission \"audit_raed\"; did you mean \"audit_read\"?"),
            "{err}"
        );
    }

    #[test]
    fn the_audit_key_checkpoints_and_webhook_ranges_come_from_the_file_or_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ripcord.yaml");
        std::fs::write(
            &file,
            "audit_key: /etc/ripcord/audit.key\naudit_checkpoints: /var/log/ck.jsonl\n\
             webhooks: {allow: [loopback, private], timeout: 2s}\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(file.clone());
        let c = config(a).unwrap();
        assert_eq!(c.audit_key, Some(PathBuf::from("/etc/ripcord/audit.key")));
        assert_eq!(
            c.audit_checkpoints,
            Some(PathBuf::from("/var/log/ck.jsonl"))
        );
        assert_eq!(
            c.webhooks.allowed,
            Allowed::with(&[Range::Loopback, Range::Private])
        );
        assert_eq!(c.webhooks.timeout, std::time::Duration::from_secs(2));
        let mut a = args();
        a.config = Some(file.clone());
        a.webhooks_allow = Some(vec![]);
        assert_eq!(config(a).unwrap().webhooks.allowed, Allowed::default());
        std::fs::write(&file, "webhooks: {allow: [metadata]}\n").unwrap();
        let mut a = args();
        a.config = Some(file);
        assert!(config(a).is_err());
    }

    #[test]
    fn checkpoint_channels_name_configured_channels_that_do_not_page() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ripcord.yaml");
        let channels = "channels:\n  witness:\n    kind: webhook\n    url: https://w.example/ck\n    \
                        secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n  page:\n    kind: pagerduty\n    \
                        routing_key: k\n";
        let with = |list: &str| {
            std::fs::write(
                &file,
                format!("{channels}audit_checkpoint_channels: {list}\n"),
            )
            .unwrap();
            let mut a = args();
            a.config = Some(file.clone());
            config(a).map_err(|e| e.to_string())
        };
        assert_eq!(
            with("[witness]").unwrap().audit_checkpoint_channels,
            ["witness"]
        );
        let mut a = args();
        a.config = Some(file.clone());
        a.audit_checkpoint_channels = Some(vec![]);
        assert!(
            config(a).unwrap().audit_checkpoint_channels.is_empty(),
            "the flag wins"
        );
        assert_eq!(
            with("[wtiness]").unwrap_err(),
            format!(
                "{}: audit_checkpoint_channels: \"wtiness\" is not a channel of this server's \
                 config (channels: page, witness)",
                file.display()
            )
        );
        assert!(
            with("[page]")
                .unwrap_err()
                .contains("\"page\" is a PagerDuty channel"),
            "a checkpoint a minute would page someone"
        );
    }

    #[test]
    fn a_typo_in_the_config_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ripcord.yaml");
        std::fs::write(&file, "data_dri: /srv\n").unwrap();
        let mut a = args();
        a.config = Some(file);
        let err = config(a).err().unwrap().to_string();
        assert!(err.contains("data_dri"), "{err}");
        assert!(err.contains("ripcord.yaml"), "{err}");
    }

    #[test]
    fn channels_come_from_the_config_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ripcord.yaml");
        std::fs::write(
            &file,
            "channels:\n  page:\n    kind: pagerduty\n    routing_key: k\n  \
             chat:\n    kind: slack\n    url: https://hooks.slack.com/services/T\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(file.clone());
        let c = config(a).unwrap();
        assert_eq!(c.channels.keys().collect::<Vec<_>>(), ["chat", "page"]);
        assert_eq!(
            c.channels["page"],
            ChannelConfig::Pagerduty {
                url: ripcord_server::notify::PAGERDUTY_URL.into(),
                routing_key: "k".into()
            }
        );
        std::fs::write(
            &file,
            "channels:\n  chat:\n    kind: slack\n    url: nope\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(file);
        let err = config(a).err().unwrap().to_string();
        assert!(
            err.contains("ripcord.yaml: channels.chat.url: must be an http"),
            "{err}"
        );
    }
}
