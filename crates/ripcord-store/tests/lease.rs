//! The leader lease and the fence, on every backend: who gets the lease at
//! which epoch, by the database's clock, and that a deposed leader's store
//! writes nothing once a newer leader holds the lease.

use std::time::{Duration, Instant};

use ripcord_store::{
    Batch, DataClass, DecisionEntry, Held, Lease, PendingAudit, SqlStore, Store, StoreError,
};
use serde_json::json;

use crate::conformance::Place;

/// Long enough never to end during a test.
const LONG: i64 = 60_000;
/// Short enough for a test to wait out (the database's clock runs for real).
const SHORT: i64 = 200;

fn audit_by(principal: &str) -> PendingAudit {
    PendingAudit {
        at_ms: 1_000,
        principal: principal.into(),
        action: "test.write".into(),
        subject: "svc".into(),
        detail: json!({}),
    }
}

fn audited(principal: &str) -> Batch {
    Batch {
        audit: vec![audit_by(principal)],
        ..Batch::default()
    }
}

/// Asks for the lease for `holder` until it is granted (the holder before
/// it let it expire), checking that every refusal was while the lease was
/// live. Fails after five seconds.
async fn take_over(store: &dyn Store, holder: &str) -> Lease {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lease = store.acquire_lease(holder, LONG).await.unwrap();
        if lease.is_held_by(holder) {
            return lease;
        }
        assert!(lease.is_live(), "refused an expired lease: {lease:?}");
        assert!(Instant::now() < deadline, "never granted: {lease:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_first_holder_gets_epoch_1_and_a_renewal_keeps_it(place: Place) {
    let store = place.open().await;
    assert_eq!(store.lease().await.unwrap(), None);
    let first = store.acquire_lease("a", LONG).await.unwrap();
    assert!(first.is_held_by("a"), "{first:?}");
    assert_eq!(first.epoch, 1);
    assert_eq!(first.expires_ms, first.now_ms + LONG);
    let renewed = store.acquire_lease("a", 2 * LONG).await.unwrap();
    assert_eq!((renewed.holder.as_str(), renewed.epoch), ("a", 1));
    assert!(renewed.expires_ms > first.expires_ms, "{renewed:?}");
    let refused = store.acquire_lease("b", LONG).await.unwrap();
    assert!(!refused.is_held_by("b"));
    assert_eq!(
        (refused.holder.as_str(), refused.epoch, refused.expires_ms),
        ("a", 1, renewed.expires_ms)
    );
    let read = store.lease().await.unwrap().unwrap();
    assert_eq!((read.holder.as_str(), read.epoch), ("a", 1));
}

on_each_backend!(the_first_holder_gets_epoch_1_and_a_renewal_keeps_it);

async fn another_holder_gets_the_next_epoch_once_the_lease_expires(place: Place) {
    let (a, b) = (place.open().await, place.open().await);
    let held = a.acquire_lease("a", SHORT).await.unwrap();
    let taken = take_over(&b, "b").await;
    assert_eq!(taken.epoch, 2);
    assert!(taken.now_ms >= held.expires_ms, "{taken:?} before {held:?}");
    assert!(!a.acquire_lease("a", LONG).await.unwrap().is_held_by("a"));
}

on_each_backend!(another_holder_gets_the_next_epoch_once_the_lease_expires);

async fn a_released_lease_passes_at_once(place: Place) {
    let store = place.open().await;
    store.acquire_lease("a", LONG).await.unwrap();
    store.release_lease("b").await.unwrap();
    assert!(store.lease().await.unwrap().unwrap().is_held_by("a"));
    store.release_lease("a").await.unwrap();
    let next = store.acquire_lease("b", LONG).await.unwrap();
    assert!(next.is_held_by("b"), "{next:?}");
    assert_eq!(next.epoch, 2);
}

on_each_backend!(a_released_lease_passes_at_once);

fn decision(seq: i64) -> DecisionEntry {
    DecisionEntry {
        seq,
        service: "svc".into(),
        at_ms: 1_000,
        line: "{}".into(),
    }
}

/// Asserts that `result` is `Fenced` by `b`'s lease at epoch 2.
fn assert_fenced_by_b<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Fenced {
            held_by,
            epoch,
            ours,
        }) => assert_eq!((held_by.as_deref(), epoch, ours), (Some("b"), 2, 1)),
        other => panic!("not fenced: {other:?}"),
    }
}

/// A leader fenced at epoch 1 writes; a new leader takes the lease (epoch
/// 2) and fences; every kind of write of the old one then fails and stores
/// nothing, the new one's succeed, and an unfenced store is unaffected.
async fn a_deposed_leader_writes_nothing(place: Place) {
    let (a, b) = (place.open().await, place.open().await);
    let lease = a.acquire_lease("a", SHORT).await.unwrap();
    a.fence("a", lease.epoch);
    let first = Batch {
        decisions: vec![decision(1)],
        ..audited("a")
    };
    a.commit(&[first]).await.unwrap();
    let taken = take_over(&b, "b").await;
    b.fence("b", taken.epoch);

    let late = Batch {
        decisions: vec![decision(2)],
        ..audited("a")
    };
    assert_fenced_by_b(a.commit(&[late]).await);
    assert_fenced_by_b(a.put_policy("svc", "a: 1", "t", &audit_by("a")).await);
    let expired = a
        .expire(
            DataClass::Decisions,
            i64::MAX,
            10,
            &Held::default(),
            &audit_by("a"),
        )
        .await;
    assert_fenced_by_b(expired);
    assert_fenced_by_b(a.forget_answers("", i64::MAX).await);
    let message = a.commit(&[audited("a")]).await.unwrap_err().to_string();
    assert!(
        message.contains("a newer leader holds the lease (b at epoch 2"),
        "{message}"
    );

    assert_eq!(b.decisions("svc", 0, 0, 10).await.unwrap().len(), 1);
    assert_eq!(b.policy("svc").await.unwrap(), None);
    assert_eq!(b.audit(1, 10).await.unwrap().len(), 1);
    b.commit(&[audited("b")]).await.unwrap();
    let unfenced = place.open().await;
    unfenced.commit(&[audited("cli")]).await.unwrap();
    assert_eq!(principals(&b).await, ["a", "b", "cli"]);
}

on_each_backend!(a_deposed_leader_writes_nothing);

/// The principals of the audit log, in order.
async fn principals(store: &dyn Store) -> Vec<String> {
    store
        .audit(1, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(&l.line).unwrap();
            record["principal"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The old leader commits as fast as it can while the new one takes over:
/// in the order the database committed them, no write of epoch 1 comes
/// after the first write of epoch 2, and the old leader's writes stop with
/// `Fenced`.
async fn no_old_write_lands_after_the_new_leaders_first(place: Place) {
    let (a, b) = (std::sync::Arc::new(place.open().await), place.open().await);
    let lease = a.acquire_lease("a", SHORT).await.unwrap();
    a.fence("a", lease.epoch);
    let old = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut written = 0;
            loop {
                match a.commit(&[audited("a")]).await {
                    Ok(()) => written += 1,
                    Err(e) => return (written, e),
                }
            }
        })
    };
    let taken = take_over(&b, "b").await;
    b.fence("b", taken.epoch);
    b.commit(&[audited("b")]).await.unwrap();
    let (written, stopped) = old.await.unwrap();
    assert!(
        written > 0,
        "the old leader never wrote before the take-over"
    );
    assert!(matches!(stopped, StoreError::Fenced { .. }), "{stopped}");
    b.commit(&[audited("b")]).await.unwrap();
    let order = principals(&b).await;
    let first_b = order.iter().position(|p| p == "b").unwrap();
    assert_eq!(first_b, written, "{order:?}");
    assert!(order[first_b..].iter().all(|p| p == "b"), "{order:?}");
}

on_each_backend!(
    no_old_write_lands_after_the_new_leaders_first,
    (flavor = "multi_thread", worker_threads = 2)
);

/// In memory too (the one-connection store the server's tests use).
#[tokio::test]
async fn an_in_memory_store_leases_and_fences() {
    let store = SqlStore::in_memory().await.unwrap();
    let lease = store.acquire_lease("a", LONG).await.unwrap();
    store.fence("a", lease.epoch);
    store.commit(&[audited("a")]).await.unwrap();
    store.fence("a", lease.epoch + 1);
    match store.commit(&[audited("a")]).await {
        Err(StoreError::Fenced { held_by, epoch, .. }) => {
            assert_eq!((held_by.as_deref(), epoch), (Some("a"), 1))
        }
        other => panic!("not fenced: {other:?}"),
    }
}

/// On PostgreSQL: a lost leader's session that holds the write lock while
/// busy (here a long statement; in life, cut off in the middle of a
/// message, where the idle timeout does not reach) is ended by the replica
/// that takes the expired lease, which then holds it at once rather than
/// when the session would have let go (a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_leader_ends_a_lost_leaders_session_that_holds_the_write_lock() {
    use sqlx::Connection;
    let place = Place::postgres().await;
    let (a, b) = (place.open().await, place.open().await);
    let url = place.url().to_string();
    assert!(a.acquire_lease("a", SHORT).await.unwrap().is_held_by("a"));
    let (locked_tx, locked) = tokio::sync::oneshot::channel();
    let stuck = tokio::spawn(async move {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        // The store's write lock (`ripcord` in ASCII).
        sqlx::query("SELECT pg_advisory_xact_lock(32204078770516580)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let _ = locked_tx.send(());
        sqlx::query("SELECT pg_sleep(60)").execute(&mut *tx).await
    });
    locked.await.unwrap();
    let asked = Instant::now();
    let lease = loop {
        match b.acquire_lease("b", 2 * SHORT).await {
            Ok(lease) if lease.is_held_by("b") => break lease,
            // Refused while a's lease is live; a lock wait cut short.
            Ok(_) | Err(_) => {}
        }
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "b never took the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lease.epoch, 2);
    let ended = stuck.await.unwrap();
    assert!(ended.is_err(), "the stuck session was not ended: {ended:?}");
}
