//! Faults between replicas and their PostgreSQL database, with real
//! `ripcord serve` processes: the leader cut off from the database by a
//! TCP proxy that stops forwarding (it stops before its lease ends; a
//! follower takes over; nothing it had in flight lands after), and every
//! session of the database terminated by `pg_terminate_backend`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ripcord_store::testing::TestDatabase;
use ripcord_store::{Store, StoreSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::postgres::ripcord;
use crate::recovery::{
    LEASE, Ledger, Sides, accounted, batch, no_duplicates, post, replica, sender, until_following,
};
use crate::support::{
    Serve, client, decisions, get_json, quiet_policy, set_up_release, until_ready,
};

/// A TCP proxy to the PostgreSQL server that can stop forwarding: the
/// connections stay open and nothing passes either way (a partition, not
/// a refusal), until it forwards again.
struct Proxy {
    addr: std::net::SocketAddr,
    forwarding: watch::Sender<bool>,
}

impl Proxy {
    async fn to(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (forwarding, _) = watch::channel(true);
        let gate = forwarding.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, gate.subscribe()));
                tokio::spawn(pipe(sr, cw, gate.subscribe()));
            }
        });
        Proxy { addr, forwarding }
    }

    fn cut(&self) {
        self.forwarding.send_replace(false);
    }

    fn heal(&self) {
        self.forwarding.send_replace(true);
    }
}

/// Copies `from` to `to`, holding what it read while the gate is shut.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if gate.wait_for(|open| *open).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if gate.wait_for(|open| *open).await.is_ok() {
        let _ = to.shutdown().await;
    }
}

/// The database URL with its host and port replaced by `addr`.
fn through(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let user = authority.split_once('@').map_or("", |(u, _)| u);
    format!("{scheme}://{user}@{addr}/{path}")
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split_once('/').unwrap().0;
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_string()
}

/// Events stored for the release, per side.
async fn stored(c: &reqwest::Client, s: &Serve, id: &str) -> Sides {
    let r = get_json(c, s, &format!("/v1/releases/{id}")).await.unwrap();
    (
        r["events"]["baseline"].as_u64().unwrap(),
        r["events"]["candidate"].as_u64().unwrap(),
    )
}

/// Two senders to `s` until `stop` (or until their requests fail).
fn senders(
    s: &Serve,
    rng: &mut StdRng,
    stop: &Arc<AtomicBool>,
    ledger: &Arc<Mutex<Ledger>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..2)
        .map(|_| {
            tokio::spawn(sender(
                s.base.clone(),
                s.token.clone(),
                rng.random(),
                stop.clone(),
                ledger.clone(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_stops_before_its_lease_ends() {
    let db = TestDatabase::create().await;
    let proxy = Proxy::to(host_port(&db.url)).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED_0004);
    let mut leader = replica(dir.path(), &through(&db.url, proxy.addr)).await;
    until_ready(&leader, Duration::from_secs(10)).await.unwrap();
    let follower = replica(dir.path(), &db.url).await;
    until_following(&follower, &leader).await;
    let policy = quiet_policy("ingest-svc");
    let release = set_up_release(&c, &leader, "ingest-svc", &policy, None)
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap().to_string();
    let watcher: Arc<dyn Store> = Arc::new(
        ripcord_store::open(&db.url.parse::<StoreSpec>().unwrap())
            .await
            .unwrap(),
    );

    // Ingest to the leader, then cut it off in the middle of it.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sending = senders(&leader, &mut rng, &stop, &ledger);
    tokio::time::sleep(Duration::from_millis(rng.random_range(300..700))).await;
    let before = watcher.lease().await.unwrap().unwrap();
    assert_eq!(before.holder, leader.base);
    proxy.cut();
    let cut = Instant::now();

    // It stops acting (the process exits) while its lease still holds.
    while !leader.exited() {
        assert!(cut.elapsed() < 2 * LEASE, "the cut-off leader kept going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped = cut.elapsed();
    let lease = watcher.lease().await.unwrap().unwrap();
    assert_eq!(
        (lease.holder.as_str(), lease.epoch),
        (leader.base.as_str(), before.epoch),
        "the lease changed hands before the old leader stopped: {lease:?}"
    );
    assert!(
        lease.now_ms < lease.expires_ms,
        "the old leader stopped {} ms after its lease ended",
        lease.now_ms - lease.expires_ms
    );
    stop.store(true, Ordering::SeqCst);
    for s in sending {
        s.await.unwrap();
    }

    // The follower leads within two lease periods of the cut, and takes
    // writes; then the partition heals, and what the old leader had in
    // flight arrives late.
    // When the cut falls in the middle of a protocol message, the old
    // leader's session is not idle in its transaction, and it would keep
    // the write lock until its connection ends (this proxy holds it open):
    // the follower ends it once the lease has expired.
    until_ready(&follower, (2 * LEASE).saturating_sub(cut.elapsed()))
        .await
        .unwrap();
    let took = cut.elapsed();
    let (body, sides) = batch(&mut rng, "ingest-svc", 200, (0.01, 0.01));
    assert!(post(&c, &follower.base, &follower.token, body).await);
    {
        let mut l = ledger.lock().unwrap();
        l.acked.0 += sides.0;
        l.acked.1 += sides.1;
    }
    let log = decisions(&c, &follower, "ingest-svc").await.unwrap();
    proxy.heal();
    tokio::time::sleep(LEASE).await;

    let lease = watcher.lease().await.unwrap().unwrap();
    assert_eq!(lease.holder, follower.base, "{lease:?}");
    assert_eq!(lease.epoch, before.epoch + 1, "{lease:?}");
    accounted(stored(&c, &follower, &id).await, &ledger.lock().unwrap());
    let after = decisions(&c, &follower, "ingest-svc").await.unwrap();
    no_duplicates(&after);
    assert_eq!(after, log, "decisions changed after the partition healed");
    let (code, out, err) = ripcord("", dir.path(), &["audit", "verify", "--store", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    eprintln!(
        "cut-off leader stopped {stopped:?} after the cut; the follower was ready after {took:?} (lease {LEASE:?}); {:?}",
        ledger.lock().unwrap().acked
    );
}

/// Two replicas on one store with a release of `ingest-svc`, and two
/// senders posting to the leader: the set-up of a fault during ingest.
struct Ingesting {
    store: String,
    dir: tempfile::TempDir,
    c: reqwest::Client,
    rng: StdRng,
    replicas: Vec<Serve>,
    id: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    sending: Vec<tokio::task::JoinHandle<()>>,
}

impl Ingesting {
    async fn start(store: &str, seed: u64) -> Ingesting {
        let dir = tempfile::tempdir().unwrap();
        let c = client().unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut replicas = vec![replica(dir.path(), store).await];
        until_ready(&replicas[0], Duration::from_secs(10))
            .await
            .unwrap();
        replicas.push(replica(dir.path(), store).await);
        until_following(&replicas[1], &replicas[0]).await;
        let policy = quiet_policy("ingest-svc");
        let release = set_up_release(&c, &replicas[0], "ingest-svc", &policy, None)
            .await
            .unwrap();
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let sending = senders(&replicas[0], &mut rng, &stop, &ledger);
        Ingesting {
            store: store.to_string(),
            dir,
            c,
            rng,
            replicas,
            id: release["id"].as_str().unwrap().to_string(),
            ledger,
            stop,
            sending,
        }
    }

    async fn stop_sending(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.sending.drain(..) {
            s.await.unwrap();
        }
    }

    /// Whoever leads within `within` (the same leader, or the follower)
    /// has every acknowledged event and takes more; no decision is
    /// doubled; the audit chain verifies. Which replica leads.
    async fn everything_kept(&mut self, within: Duration) -> usize {
        let i = ready_one(&self.c, &mut self.replicas, within).await;
        let leader = &self.replicas[i];
        let (body, sides) = batch(&mut self.rng, "ingest-svc", 200, (0.01, 0.01));
        assert!(post(&self.c, &leader.base, &leader.token, body).await);
        {
            let mut l = self.ledger.lock().unwrap();
            l.acked.0 += sides.0;
            l.acked.1 += sides.1;
        }
        let kept = stored(&self.c, leader, &self.id).await;
        accounted(kept, &self.ledger.lock().unwrap());
        no_duplicates(&decisions(&self.c, leader, "ingest-svc").await.unwrap());
        let verify = ["audit", "verify", "--store", self.store.as_str()];
        let (code, out, err) = ripcord("", self.dir.path(), &verify);
        assert_eq!(code, 0, "{out}{err}");
        i
    }

    fn acked(&self) -> Sides {
        self.ledger.lock().unwrap().acked
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_every_database_session_loses_no_acknowledged_event() {
    let db = TestDatabase::create().await;
    let mut run = Ingesting::start(&db.url, 0x5EED_0005).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let terminated = db.terminate_sessions().await;
    assert!(
        terminated >= 2,
        "only {terminated} sessions were terminated"
    );
    let at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.stop_sending().await;
    let i = run.everything_kept(3 * LEASE).await;
    eprintln!(
        "{terminated} sessions terminated; replica {i} was ready within {:?}; {:?}",
        at.elapsed(),
        run.acked()
    );
}

/// The first replica that is running and ready (it leads), within `within`.
async fn ready_one(c: &reqwest::Client, replicas: &mut [Serve], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        for (i, r) in replicas.iter_mut().enumerate() {
            if r.exited() {
                continue;
            }
            let ready = c.get(r.url("/readyz")).send().await;
            if ready.is_ok_and(|a| a.status() == 200) {
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no replica was ready within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills in [`seeded_kill_9s_across_three_replicas_lose_and_duplicate_nothing`]:
/// `RIPCORD_KILLS`, 10 by default (the 100 take a few minutes:
/// `RIPCORD_KILLS=100 scripts/test -p ripcord-cli faults::seeded`).
fn kills() -> usize {
    std::env::var("RIPCORD_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_kill_9s_across_three_replicas_lose_and_duplicate_nothing() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let c = client().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED_0006);
    let mut replicas = vec![replica(dir.path(), &db.url).await];
    until_ready(&replicas[0], Duration::from_secs(10))
        .await
        .unwrap();
    for _ in 0..2 {
        let next = replica(dir.path(), &db.url).await;
        until_following(&next, &replicas[0]).await;
        replicas.push(next);
    }
    let policy = quiet_policy("ingest-svc");
    let release = set_up_release(&c, &replicas[0], "ingest-svc", &policy, None)
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap().to_string();
    let mut leader = 0;
    let mut takeovers = Vec::new();
    let mut acked = (0, 0);
    for kill in 0..kills() {
        let before = stored(&c, &replicas[leader], &id).await;
        let log_before = decisions(&c, &replicas[leader], "ingest-svc")
            .await
            .unwrap();
        // One sender to the leader, one through a follower (forwarded).
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let follower = (leader + rng.random_range(1..3)) % 3;
        let sending: Vec<_> = [leader, follower]
            .into_iter()
            .map(|i| {
                tokio::spawn(sender(
                    replicas[i].base.clone(),
                    replicas[i].token.clone(),
                    rng.random(),
                    stop.clone(),
                    ledger.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        replicas[leader].kill9();
        let killed = Instant::now();
        stop.store(true, Ordering::SeqCst);
        for s in sending {
            s.await.unwrap();
        }
        let next = ready_one(&c, &mut replicas, 2 * LEASE).await;
        takeovers.push(killed.elapsed());

        let after = stored(&c, &replicas[next], &id).await;
        {
            let l = ledger.lock().unwrap();
            accounted((after.0 - before.0, after.1 - before.1), &l);
            acked = (acked.0 + l.acked.0, acked.1 + l.acked.1);
        }
        let log_after = decisions(&c, &replicas[next], "ingest-svc").await.unwrap();
        no_duplicates(&log_after);
        assert!(
            log_after.starts_with(&log_before),
            "kill {kill}: decisions were lost"
        );
        // A new replica in place of the killed one.
        replicas[leader] = replica(dir.path(), &db.url).await;
        until_following(&replicas[leader], &replicas[next]).await;
        leader = next;
    }
    let (code, out, err) = ripcord("", dir.path(), &["audit", "verify", "--store", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    takeovers.sort();
    eprintln!(
        "{} kill -9s of the leader across 3 replicas: takeover min {:?}, median {:?}, max {:?} \
         (lease {LEASE:?}); {acked:?} events acknowledged, none lost",
        takeovers.len(),
        takeovers[0],
        takeovers[takeovers.len() / 2],
        takeovers[takeovers.len() - 1],
    );
}

/// A PostgreSQL server of the test's own (`initdb` into a temporary
/// directory, a free loopback port), so that it can be restarted without
/// touching the server the other tests share. As root it runs as the
/// `postgres` user, which `initdb` requires.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "/usr/lib/postgresql/15/bin".into());
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let chown = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success(), "chown of the private cluster's directory");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres {
            dir,
            bin: bin.into(),
            port,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        pg.ctl("start");
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl ACTION` (start, restart, stop), waiting for it to finish.
    fn ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                action, "-w", "-m", "fast", "-D", &data, "-l", &log, "-o", &options,
            ],
        );
    }

    /// `tool` of the PostgreSQL binaries, as the `postgres` user when root.
    fn command(&self, tool: &str) -> std::process::Command {
        let path = self.bin.join(tool);
        if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e} (scripts/test installs PostgreSQL)"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let stop = ["stop", "-m", "immediate", "-D", &data];
        let _ = self.command("pg_ctl").args(stop).output();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_loses_no_acknowledged_event() {
    let pg = PrivatePostgres::start();
    let mut run = Ingesting::start(&pg.url(), 0x5EED_0007).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let restarting = Instant::now();
    let pg = tokio::task::spawn_blocking(move || {
        pg.ctl("restart");
        pg
    })
    .await
    .unwrap();
    let down = restarting.elapsed();
    run.stop_sending().await;
    // Once the database is back, a replica leads within two lease
    // periods: the leader (if it kept its lease), or the follower.
    let i = run.everything_kept(2 * LEASE).await;
    eprintln!(
        "PostgreSQL restarted in {down:?}; replica {i} was ready within {:?} of the restart's start; {:?}",
        restarting.elapsed(),
        run.acked()
    );
    drop(run);
    drop(pg);
}
