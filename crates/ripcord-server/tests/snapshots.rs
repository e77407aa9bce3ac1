//! Restart from a snapshot: the server snapshots a live release at most
//! once a minute of its clock, in the transaction of the journal entry it
//! covers; a restart restores it and replays only the journal after it,
//! and ends where the full replay would. A snapshot it cannot use is
//! passed over for the full replay. The first test runs on both stores:
//! on PostgreSQL it is the server's end-to-end check (ingest, snapshot,
//! restart, the same state).

use std::time::Duration;

use crate::support::{Result, Running, start_with};
use ripcord_core::{Dur, Time};
use ripcord_server::clock::Clock;
use ripcord_server::hub::Recovery;
use ripcord_store::testing::TestDatabase;
use ripcord_store::{Batch, Snapshot, Store, StoreSpec};
use serde_json::{Value, json};

/// A server on `store` (`None`: the embedded one) with a release at 30%.
async fn started(store: Option<StoreSpec>) -> Result<(Running, Clock, String)> {
    let clock = Clock::manual(Time(ripcord_server::clock::wall_now().0 / 1000 * 1000));
    let manual = clock.clone();
    let run = start_with(move |c| {
        c.store = store;
        c.clock = manual;
        c.tick = Duration::from_secs(3600);
    })
    .await?;
    let id = run.release_at_30().await?;
    Ok((run, clock, id))
}

/// Three minutes of traffic, a batch of events and a tick each 61 s.
async fn traffic(run: &Running, clock: &Clock) -> Result {
    for round in 0..3 {
        let ts = clock.now().to_rfc3339();
        let events: Vec<Value> = (0..60)
            .map(|i| {
                json!({"ts": ts, "service": "support-bot",
                       "version": if i % 3 == 0 { "v2" } else { "v1" },
                       "unit": format!("u-{round}-{i}"),
                       "values": {"outputs": 1, "moderation_fail": 0, "latency_ms": 700}})
            })
            .collect();
        let (status, body) = run.post("/v1/events", &Value::Array(events)).await?;
        // Every event accepted, and durable.
        assert_eq!((status, &body["accepted"]), (202, &json!(60)), "{body}");
        clock.advance(Dur::from_secs(61));
        run.server.app.hub.tick_all().await;
    }
    Ok(())
}

async fn recovery(run: &Running) -> Recovery {
    let service = run
        .server
        .app
        .hub
        .service("support-bot")
        .expect("recovered");
    service.state.lock().await.recovery
}

async fn entries_after(store: &dyn Store, seq: i64) -> Result<usize> {
    Ok(store.journal("support-bot", seq + 1, 100_000).await?.len())
}

async fn a_restart_loads_the_snapshot_and_replays_only_the_journal_after_it(
    store: Option<StoreSpec>,
) -> Result {
    let (run, clock, id) = started(store).await?;
    traffic(&run, &clock).await?;
    let store = run.server.app.hub.store.clone();
    let snap = store
        .snapshot("support-bot")
        .await?
        .expect("a snapshot was taken");
    let start = store
        .last_start("support-bot")
        .await?
        .expect("a release started");
    assert!(
        snap.journal_seq > start,
        "{} after {start}",
        snap.journal_seq
    );
    let after = entries_after(&*store, snap.journal_seq).await?;
    let before = run.get_json(&format!("/v1/releases/{id}")).await?;
    let run = run.restart().await?;
    assert_eq!(
        recovery(&run).await,
        Recovery {
            snapshot: Some(snap.journal_seq),
            replayed: after,
        }
    );
    assert_eq!(run.get_json(&format!("/v1/releases/{id}")).await?, before);
    assert_eq!(
        run.server
            .app
            .hub
            .store
            .journal_count("support-bot", "events")
            .await?,
        3
    );
    let log: String = run
        .server
        .app
        .hub
        .store
        .audit(1, 10_000)
        .await?
        .iter()
        .map(|l| format!("{}\n", l.line))
        .collect();
    assert!(
        ripcord_core::audit::verify(&log).is_ok(),
        "the audit chain verifies"
    );
    run.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_restart_loads_the_snapshot_and_replays_only_the_journal_after_it() -> Result {
    a_restart_loads_the_snapshot_and_replays_only_the_journal_after_it(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_restart_loads_the_snapshot_and_replays_only_the_journal_after_it() -> Result
{
    let db = TestDatabase::create().await;
    a_restart_loads_the_snapshot_and_replays_only_the_journal_after_it(Some(db.url.parse()?)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_cannot_be_used_is_passed_over_for_the_full_replay() -> Result {
    let (run, clock, id) = started(None).await?;
    traffic(&run, &clock).await?;
    let store = run.server.app.hub.store.clone();
    let start = store
        .last_start("support-bot")
        .await?
        .expect("a release started");
    let snap = store
        .snapshot("support-bot")
        .await?
        .expect("a snapshot was taken");
    let before = run.get_json(&format!("/v1/releases/{id}")).await?;
    // Damaged bytes in place of the snapshot, with a journal entry of its own.
    let (last, _) = store.last_seqs().await?;
    let damaged = Batch {
        journal: vec![ripcord_store::JournalEntry {
            seq: last + 1,
            service: "other".into(),
            kind: "tick".into(),
            body: "{}".into(),
        }],
        snapshots: vec![Snapshot {
            body: b"not a snapshot".to_vec(),
            ..snap
        }],
        ..Batch::default()
    };
    store.commit(&[damaged]).await?;
    let run = run.restart().await?;
    let everything = entries_after(&*store, start - 1).await?;
    assert_eq!(
        recovery(&run).await,
        Recovery {
            snapshot: None,
            replayed: everything,
        }
    );
    assert_eq!(run.get_json(&format!("/v1/releases/{id}")).await?, before);
    run.server.shutdown().await?;
    Ok(())
}
