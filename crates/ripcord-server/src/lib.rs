//! ripcord's live service: the HTTP API over the engine, durable on the
//! embedded store, with the assignment API, OFREP and signed webhooks.
//!
//! [`start`] opens the store, rebuilds every engine from its journal, loads
//! the policies directory, and serves until [`Server::shutdown`].

pub mod approvals;
pub mod assignment;
pub mod audit_sign;
pub mod auth;
pub mod checks;
pub mod clock;
pub mod cluster;
pub mod dashboard;
pub mod data_rules;
pub mod drills;
pub mod error;
pub mod evidence_archive;
pub mod follow;
pub mod holds;
pub mod http;
pub mod hub;
pub mod incidents;
pub mod ingest;
pub mod journal;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod nats;
pub mod notify;
pub mod notify_bridge;
pub mod openapi;
pub mod otlp;
pub mod prometheus;
pub mod purge;
pub mod regulatory;
pub mod report;
pub mod retention;
pub mod reviews;
pub mod rollback_rule;
pub mod sinks;
pub mod slow;
pub mod webhook_secret;
pub mod webhooks;
pub mod writer;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use ripcord_core::engine::EngineOptions;
use ripcord_core::policy::load_policy;
use ripcord_store::{Store, StoreSpec};
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::{Roles, Tokens};
use crate::http::App;
use crate::hub::Hub;

/// Requests (including reading their bodies) that take longer fail with 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Config {
    /// The admin token, the default store and the default keys live here.
    pub data_dir: PathBuf,
    /// Where the store is; `None`: `ripcord.db` in `data_dir`.
    pub store: Option<StoreSpec>,
    pub listen: SocketAddr,
    /// A directory of policy files loaded (as new versions where changed)
    /// at start.
    pub policies: Option<PathBuf>,
    pub engine: EngineOptions,
    /// How often the engines are ticked with the wall clock.
    pub tick: Duration,
    /// How often a running release's criteria are recorded as a series
    /// point (`--series-every`), and how many points a release keeps (see
    /// `hub::series`).
    pub series: hub::series::SeriesOptions,
    /// How many releases a threshold review replays, and how much of each.
    pub reviews: reviews::ReviewOptions,
    /// Ingest requests handled at once; more are answered 429.
    pub ingest_slots: usize,
    /// Of those, how many one token may hold.
    pub ingest_slots_per_token: usize,
    /// The slowest ingest body a slot is held for.
    pub ingest_body_rate: slow::BodyRate,
    /// A connection whose request line and headers take longer is closed.
    pub header_read_timeout: Duration,
    /// Requests (including reading their bodies) that take longer get 408.
    pub request_timeout: Duration,
    /// How often a signed checkpoint is added to the audit log (when it
    /// has new records).
    pub checkpoint_every: Duration,
    /// The audit signing key's file (`--audit-key`); `None`: the default
    /// place outside the data dir ([`audit_sign::default_audit_key`]).
    pub audit_key: Option<PathBuf>,
    /// A file each signed checkpoint is appended to (`--audit-checkpoints`).
    pub audit_checkpoints: Option<PathBuf>,
    /// Notification channels (of `channels`) each signed checkpoint is
    /// sent to (`audit_checkpoint_channels:`).
    pub audit_checkpoint_channels: Vec<String>,
    /// Webhook deliveries: the per-attempt timeout and the address ranges
    /// sinks may reach (`webhooks:` in `ripcord.yaml`).
    pub webhooks: webhooks::Delivery,
    /// The built-in roles and the config's custom ones (`roles:`).
    pub roles: Roles,
    /// Notification channels by name (`ripcord.yaml` `channels:`), named
    /// by policies' escalation levels and communicate steps.
    pub channels: BTreeMap<String, notify::ChannelConfig>,
    /// The clock the server reads: the wall clock unless a test sets a
    /// manual one.
    pub clock: clock::Clock,
    /// The key that seals webhook secrets in the store; `None`:
    /// `<data-dir>/secrets.key`.
    pub secrets_key: Option<PathBuf>,
    /// How long each class of data is kept (`retention:`).
    pub retention: retention::Retention,
    /// Several replicas on one store, one leader (`--lease`); `None`: this
    /// process is the only one.
    pub cluster: Option<cluster::Cluster>,
    /// A NATS JetStream stream to consume events from (`--nats`), while
    /// this replica leads.
    pub nats: Option<nats::Source>,
    /// Regulatory classes with their reporting deadlines, the provider
    /// and the systems' registrations (`regulatory:`).
    pub regulatory: report::regulatory::Regulation,
}

impl Config {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Config {
        Config {
            data_dir,
            store: None,
            listen,
            policies: None,
            engine: EngineOptions::default(),
            tick: Duration::from_millis(1000),
            series: hub::series::SeriesOptions::default(),
            reviews: reviews::ReviewOptions::default(),
            ingest_slots: http::INGEST_SLOTS,
            ingest_slots_per_token: http::INGEST_SLOTS_PER_TOKEN,
            ingest_body_rate: slow::BodyRate::default(),
            header_read_timeout: slow::HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            checkpoint_every: Duration::from_secs(60),
            audit_key: None,
            audit_checkpoints: None,
            audit_checkpoint_channels: Vec::new(),
            webhooks: webhooks::Delivery::default(),
            roles: Roles::built_in(),
            channels: BTreeMap::new(),
            clock: clock::Clock::Wall,
            secrets_key: None,
            retention: retention::Retention::default(),
            cluster: None,
            nats: None,
            regulatory: report::regulatory::Regulation::default(),
        }
    }

    /// The store: `store`, else `ripcord.db` in the data dir.
    pub fn store_spec(&self) -> StoreSpec {
        StoreSpec::or_default(self.store.clone(), &self.data_dir)
    }
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub token_path: PathBuf,
    /// Whether this start created the admin token.
    pub token_created: bool,
    /// The public key of the audit checkpoints (hex).
    pub audit_public_key: String,
    /// Also this replica's place in a cluster (`App::membership`).
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// What the listener serves: the full router once this replica leads (or,
/// alone, has recovered); before and after, a follower's router (in a
/// cluster) or a retryable 503 (alone, while it recovers).
struct Switch {
    inner: std::sync::RwLock<Option<axum::Router>>,
    standby: Option<axum::Router>,
}

impl Switch {
    fn set(&self, router: Option<axum::Router>) {
        if let Ok(mut inner) = self.inner.write() {
            *inner = router;
        }
    }

    fn router(self: &Arc<Switch>) -> axum::Router {
        axum::Router::new()
            .fallback(switched)
            .with_state(self.clone())
    }
}

async fn switched(
    axum::extract::State(switch): axum::extract::State<Arc<Switch>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use tower::ServiceExt;
    let inner = switch.inner.read().ok().and_then(|r| r.clone());
    match inner.or_else(|| switch.standby.clone()) {
        Some(router) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => error::ApiError::unavailable("starting: recovering from the store; retry")
            .into_response(),
    }
}

/// A router with the request timeout and the panic guard around it.
fn guarded(router: axum::Router, config: &Config) -> axum::Router {
    router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(axum::middleware::map_response(timeout_body))
        .layer(CatchPanicLayer::new())
}

/// Opens the store, recovers, and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    bind(config).await?.lead().await
}

/// A server that has opened its store and answers on its address, but
/// neither leads nor has recovered yet: a follower's answers (in a cluster) until
/// [`Starting::lead`] returns.
pub struct Starting {
    pub addr: SocketAddr,
    config: Config,
    store: Arc<dyn Store>,
    tokens: Arc<Tokens>,
    token_path: PathBuf,
    token_created: bool,
    signer: Arc<ed25519_dalek::SigningKey>,
    signing: audit_sign::Signing,
    membership: Option<Arc<cluster::Membership>>,
    switch: Arc<Switch>,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    /// A follower's refreshing of its assignments (in a cluster).
    following: Option<tokio::task::JoinHandle<()>>,
}

/// Checks the config, opens the store and starts answering (a follower's
/// answers) on the listen address.
pub async fn bind(config: Config) -> anyhow::Result<Starting> {
    notify::check_all(&config.channels)?;
    private_data_dir(&config.data_dir, &config.store_spec())?;
    let issued = Tokens::load_or_create(&config.data_dir, config.roles.clone())
        .context("the admin token")?;
    let key_path = match &config.audit_key {
        Some(p) => p.clone(),
        None => audit_sign::default_audit_key()
            .context("the audit key: neither XDG_CONFIG_HOME nor HOME is set; pass --audit-key")?,
    };
    let signer = Arc::new(
        audit_sign::audit_key(&key_path, &config.data_dir)
            .with_context(|| format!("the audit key {}", key_path.display()))?,
    );
    let signing = signing(&config, signer.clone())?;
    let secrets_path = config
        .secrets_key
        .clone()
        .unwrap_or_else(|| config.data_dir.join("secrets.key"));
    let secrets = auth::secrets_key(&secrets_path)
        .with_context(|| format!("the secrets key {}", secrets_path.display()))?;
    let store: Arc<dyn Store> = Arc::new(
        ripcord_store::open(&config.store_spec())
            .await?
            .sealing_secrets(&secrets)?,
    );
    // The listener answers at once: a follower's answers until this replica
    // leads (or, alone, has recovered).
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let membership = config.cluster.clone().map(|mut c| {
        if c.node.is_empty() {
            c.node = format!("http://{addr}");
        }
        cluster::Membership::new(c)
    });
    let tokens = Arc::new(issued.tokens);
    let (stop, stopped) = watch::channel(false);
    let follower = membership.clone().map(|m| {
        follow::Follower::new(
            m,
            tokens.clone(),
            store.clone(),
            config.clock.clone(),
            config.request_timeout,
        )
    });
    let following = follower
        .clone()
        .map(|f| tokio::spawn(follow::run(f, stopped.clone())));
    let switch = Arc::new(Switch {
        inner: std::sync::RwLock::new(None),
        standby: follower.map(|f| guarded(http::follower_router(f), &config)),
    });
    let serving = tokio::spawn(slow::serve(
        listener,
        switch.router(),
        config.header_read_timeout,
        stopped.clone(),
    ));
    Ok(Starting {
        addr,
        config,
        store,
        tokens,
        token_path: issued.path,
        token_created: issued.created,
        signer,
        signing,
        membership,
        switch,
        stop,
        stopped,
        serving,
        following,
    })
}

impl Starting {
    /// Whether it follows until it holds a lease (several replicas on one store).
    pub fn in_cluster(&self) -> bool {
        self.membership.is_some()
    }

    /// Waits to lead (at once when alone), recovers from the store, and
    /// serves everything.
    pub async fn lead(self) -> anyhow::Result<Server> {
        let Starting {
            addr,
            config,
            store,
            tokens,
            token_path,
            token_created,
            signer,
            signing,
            membership,
            switch,
            stop,
            stopped,
            serving,
            following,
        } = self;
        // Renewing starts as soon as the lease is won; the writer it
        // watches exists once recovery has built the hub.
        let recovered: Arc<std::sync::OnceLock<Arc<App>>> = Arc::default();
        let mut keeping = None;
        if let Some(m) = &membership {
            let (_, won) = cluster::lead(&*store, m)
                .await
                .context("taking the lease")?;
            let failed = {
                let recovered = recovered.clone();
                move || {
                    recovered
                        .get()
                        .is_some_and(|app| app.hub.writer.has_failed())
                }
            };
            let keep = cluster::keep(store.clone(), m.clone(), won, failed, stopped.clone());
            keeping = Some(tokio::spawn(keep));
        }
        // What an earlier run left unsigned (it crashed, or another process
        // appended) is signed before anything new is added.
        signing
            .checkpoint(&*store, 0)
            .await
            .context("signing the audit log's unsigned tail")?;
        let hub = Hub::load(store.clone(), config.engine.clone())
            .await
            .context("recovering from the store")?
            .with_clock(config.clock.clone())
            .with_series(config.series)
            .with_reviews(config.reviews.releases > 0);
        if let Some(dir) = &config.policies {
            load_policies(&hub, dir).await?;
        }
        metrics::handle();
        let app = Arc::new(App {
            hub,
            tokens,
            ingest_slots: slow::IngestSlots::new(
                config.ingest_slots,
                config.ingest_slots_per_token,
            ),
            body_rate: config.ingest_body_rate,
            sinks_allowed: config.webhooks.allowed.clone(),
            retention: retention::Status::new(config.retention.clone()),
            membership: membership.clone(),
            dashboard: dashboard::Dashboard::default(),
            otlp_responses: otlp::Responses::default(),
            drills: drills::Drills::default(),
        });
        let router = guarded(http::router(app.clone()), &config);
        let base = match &membership {
            Some(m) => m.cluster.node.clone(),
            None => format!("http://{addr}"),
        };
        let _ = app.hub.link_base.set(base);
        let _ = app.hub.channels.set(config.channels.clone());
        let _ = app.hub.regulation.set(config.regulatory.clone());
        switch.set(Some(router));
        let audit_public_key = ripcord_core::audit::hex(signer.verifying_key().as_bytes());
        let mut workers = vec![
            tokio::spawn(tick(app.clone(), config.tick, stopped.clone())),
            tokio::spawn(retention(app.clone(), stopped.clone())),
            tokio::spawn(audit_sign::run(store.clone(), signing, stopped.clone())),
            tokio::spawn(webhooks::run(
                store.clone(),
                delivery(&config),
                stopped.clone(),
            )),
        ];
        if let Some(source) = &config.nats {
            workers.push(tokio::spawn(nats::run(
                app.clone(),
                source.clone(),
                stopped.clone(),
            )));
        }
        workers.push(tokio::spawn(prometheus::run(app.clone(), stopped.clone())));
        if config.reviews.releases > 0 {
            workers.push(tokio::spawn(reviews::run(
                app.clone(),
                config.reviews.clone(),
                stopped.clone(),
            )));
        }
        workers.extend(following);
        workers.extend(keeping);
        let _ = recovered.set(app.clone());
        if let Some(m) = &membership {
            workers.push(tokio::spawn(step_down(m.clone(), switch, stopped)));
        }
        Ok(Server {
            addr,
            token_path,
            token_created,
            audit_public_key,
            app,
            stop,
            serving,
            workers,
        })
    }
}

impl leader::Server for App {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn membership(&self) -> Option<&Arc<cluster::Membership>> {
        self.membership.as_ref()
    }
}

/// How checkpoints are signed with `key`, and where they are published:
/// the operator's file and channels, both checked now rather than at the
/// first checkpoint.
fn signing(
    config: &Config,
    key: Arc<ed25519_dalek::SigningKey>,
) -> anyhow::Result<audit_sign::Signing> {
    let file = match &config.audit_checkpoints {
        Some(p) => Some(
            audit_sign::Publisher::open(p, &config.data_dir)
                .with_context(|| format!("--audit-checkpoints {}", p.display()))?,
        ),
        None => None,
    };
    let channels = audit_sign::CheckpointChannels::resolve(
        &config.audit_checkpoint_channels,
        &config.channels,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    Ok(audit_sign::Signing {
        key,
        every: config.checkpoint_every,
        file,
        channels,
        clock: config.clock.clone(),
    })
}

/// The files of the data dir hold the store (webhook secrets, the audit
/// log) and the admin token: the dir is made (or set) 0700, and the store
/// file 0600 before SQLite opens it — SQLite gives its `-wal` and `-shm`
/// files the store file's mode. Files left by older versions are set
/// 0600 too.
///
/// An SQLite store elsewhere gets its file made 0600 the same way; a
/// PostgreSQL store has no file (and the data dir no empty `ripcord.db`
/// that a command without `--store` would mistake for the store).
pub fn private_data_dir(dir: &Path, store: &StoreSpec) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let private = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {} to {mode:o}", path.display()))
    };
    private(dir, 0o700)?;
    if let StoreSpec::Sqlite(db) = store {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(db)
            .with_context(|| format!("creating {}", db.display()))?;
    }
    for name in [
        "ripcord.db",
        "ripcord.db-wal",
        "ripcord.db-shm",
        "admin.token",
        "audit.key",
        "secrets.key",
    ] {
        let path = dir.join(name);
        if path.exists() {
            private(&path, 0o600)?;
        }
    }
    Ok(())
}

/// The timeout layer answers 408 with an empty body; give it our shape.
async fn timeout_body(response: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Our own 408s (a body below the minimum rate) have their body.
    if response.status() != StatusCode::REQUEST_TIMEOUT
        || response
            .headers()
            .contains_key(axum::http::header::CONTENT_TYPE)
    {
        return response;
    }
    let mut err = error::ApiError::bad_request(
        "the request took longer than the server allows (30 s unless configured): a body sent too slowly?",
    );
    err.status = StatusCode::REQUEST_TIMEOUT;
    err.code = "timeout";
    err.into_response()
}

/// Loads every `*.yaml` / `*.yml` in `dir` through the same path as
/// `PUT /v1/policies/{service}`.
async fn load_policies(hub: &Hub, dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for file in files {
        let yaml = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let origin = file.display().to_string();
        let policy = load_policy(&yaml, &origin).map_err(|d| anyhow::anyhow!("{d}"))?;
        hub.put_policy(&policy.service, &yaml, "policies-dir")
            .await
            .map_err(|e| anyhow::anyhow!("{origin}: {}", e.message))?;
    }
    Ok(())
}

/// Once this replica stops leading, the listener answers as a follower
/// and the writer takes nothing more: its engines are stale.
async fn step_down(
    membership: Arc<cluster::Membership>,
    switch: Arc<Switch>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        why = membership.lost() => {
            switch.set(None);
            tracing::error!("no longer leading ({why}): restart this process to stand by");
        }
        _ = stop.changed() => {}
    }
}

/// The retention task: a pass every `retention.every`, until stopped.
async fn retention(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(app.retention.config.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                if let Err(e) = retention::pass(&app.hub, &app.retention).await {
                    tracing::warn!("retention: the pass failed: {}", e.message);
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn tick(app: Arc<App>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                app.hub.tick_all().await;
                app.hub.run_timers().await;
                app.drills.run(&app.hub).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// The webhook worker's settings, with the config's webhook channels
/// trusted as the operator's own.
fn delivery(config: &Config) -> webhooks::Delivery {
    let mut delivery = config.webhooks.clone();
    delivery.clock = config.clock.clone();
    for channel in config.channels.values() {
        if let notify::ChannelConfig::Webhook { url, .. } = channel {
            delivery.trusted.insert(url.clone());
        }
    }
    delivery
}

impl Server {
    /// Stops accepting, finishes in-flight requests, stops the workers and
    /// waits until everything queued is durable.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.serving.await??;
        for w in self.workers {
            let _ = w.await;
        }
        self.app
            .hub
            .writer
            .flush()
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        // After the last write: a follower may take over at once.
        if let Some(m) = &self.app.membership {
            self.app.hub.store.release_lease(&m.cluster.node).await?;
        }
        Ok(())
    }

    /// Resolves when this replica stops leading (never, alone).
    pub async fn lost(&self) -> String {
        match &self.app.membership {
            Some(m) => m.lost().await,
            None => std::future::pending().await,
        }
    }
}
