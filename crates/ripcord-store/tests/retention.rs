//! Retention and purge, against the trait: every backend deletes by age
//! without touching what a legal hold keeps or what a restart replays.

use std::collections::BTreeSet;

use ripcord_store::testing::TestDatabase;
use ripcord_store::{
    Batch, DataClass, DecisionEntry, Expired, Held, JournalEntry, PendingAudit, SeriesPoint,
    Snapshot, SqlStore, Store,
};
use serde_json::json;

const DAY: i64 = 86_400_000;

fn record(at_ms: i64, subject: &str) -> PendingAudit {
    PendingAudit {
        at_ms,
        principal: "tester".into(),
        action: "test".into(),
        subject: subject.into(),
        detail: json!({}),
    }
}

/// One engine input of service `svc` in release `release`, made at day
/// `day`: its journal entry (seq), a decision (seq) and an audit record.
fn input(seq: i64, kind: &str, release: &str, day: i64) -> Batch {
    Batch {
        journal: vec![JournalEntry {
            seq,
            service: "svc".into(),
            kind: kind.into(),
            body: format!("{{\"unit\":\"u-{seq}\"}}\n"),
        }],
        decisions: vec![DecisionEntry {
            seq,
            service: "svc".into(),
            at_ms: day * DAY,
            line: format!("{{\"n\":{seq}}}"),
        }],
        audit: vec![record(day * DAY, release)],
        answered_at_ms: day * DAY,
        release: Some(release.into()),
        ..Batch::default()
    }
}

fn held_release(id: &str) -> Held {
    Held {
        releases: BTreeSet::from([id.to_string()]),
        subjects: BTreeSet::from([id.to_string()]),
        ..Held::default()
    }
}

async fn expire(store: &dyn Store, class: DataClass, day: i64, held: &Held) -> Expired {
    store
        .expire(
            class,
            day * DAY,
            1000,
            held,
            &record(day * DAY, "retention"),
        )
        .await
        .unwrap()
}

async fn journal_seqs(store: &dyn Store) -> Vec<i64> {
    let entries = store.journal("svc", 0, 100).await.unwrap();
    entries.iter().map(|e| e.seq).collect()
}

/// Release r-1 (seqs 1–3, days 1–3) then r-2 (seqs 4–6, days 4–6), with
/// a snapshot covering seq 5.
async fn two_releases(store: &dyn Store) {
    let kinds = ["start", "events", "tick"];
    for seq in 1..=6 {
        let release = if seq <= 3 { "r-1" } else { "r-2" };
        let mut batch = input(seq, kinds[(seq as usize - 1) % 3], release, seq);
        if seq == 5 {
            batch.snapshots.push(Snapshot {
                service: "svc".into(),
                journal_seq: 5,
                body: b"snap".to_vec(),
            });
        }
        store.commit(&[batch]).await.unwrap();
    }
}

pub async fn raw_events_go_by_age_but_never_held_ones_starts_or_the_replayed_tail(
    store: &dyn Store,
) {
    two_releases(store).await;
    // Everything is older than day 10; r-1 is held.
    let held = held_release("r-1");
    assert_eq!(
        expire(store, DataClass::RawEvents, 10, &held).await,
        Expired {
            deleted: 1,
            held: 2
        }
    );
    // r-2's start (4) stays; 5 is covered by the snapshot and goes; 6 is
    // after the snapshot: a restart replays it.
    assert_eq!(journal_seqs(store).await, [1, 2, 3, 4, 6]);
    assert_eq!(store.pruned_through("svc").await.unwrap(), Some(5));
    // The hold lifted, r-1's entries but its start go.
    let none = Held::default();
    assert_eq!(
        expire(store, DataClass::RawEvents, 10, &none).await,
        Expired {
            deleted: 2,
            held: 0
        }
    );
    assert_eq!(journal_seqs(store).await, [1, 4, 6]);
    assert_eq!(store.pruned_through("svc").await.unwrap(), Some(5));
    // Nothing left to delete: no pass, no record.
    let before = store.audit(1, 1000).await.unwrap().len();
    assert_eq!(
        expire(store, DataClass::RawEvents, 10, &none).await,
        Expired::default()
    );
    assert_eq!(store.audit(1, 1000).await.unwrap().len(), before);
}

pub async fn decisions_and_evidence_go_by_age_unless_held(store: &dyn Store) {
    two_releases(store).await;
    // Only days 1–4 are older than day 5; r-2 is held.
    assert_eq!(
        expire(store, DataClass::Decisions, 5, &held_release("r-2")).await,
        Expired {
            deleted: 3,
            held: 1
        }
    );
    let left = store.decisions("svc", 0, 0, 100).await.unwrap();
    assert_eq!(left.iter().map(|d| d.seq).collect::<Vec<_>>(), [4, 5, 6]);

    for (day, address) in [(1, "b1"), (2, "b2"), (9, "b9")] {
        let batch = Batch {
            blobs: vec![(address.into(), vec![day as u8])],
            answered_at_ms: day * DAY,
            ..Batch::default()
        };
        store.commit(&[batch]).await.unwrap();
    }
    let held = Held {
        blobs: BTreeSet::from(["b2".to_string()]),
        ..Held::default()
    };
    assert_eq!(
        expire(store, DataClass::Evidence, 5, &held).await,
        Expired {
            deleted: 1,
            held: 1
        }
    );
    assert_eq!(store.blob("b1").await.unwrap(), None);
    assert_eq!(store.blob("b2").await.unwrap(), Some(vec![2]));
    assert_eq!(store.blob("b9").await.unwrap(), Some(vec![9]));
    let addresses = store.blob_addresses("", 10).await.unwrap();
    assert_eq!(addresses, ["b2", "b9"]);
}

/// A series point of `release` at day `day`.
fn point(release: &str, day: i64) -> SeriesPoint {
    SeriesPoint {
        release: release.into(),
        service: "svc".into(),
        at_ms: day * DAY,
        body: json!({ "day": day }),
    }
}

async fn point_days(store: &dyn Store, release: &str) -> Vec<i64> {
    let points = store.series(release, 0, 100).await.unwrap();
    points.iter().map(|p| p.at_ms / DAY).collect()
}

/// Series points go with the decisions class, by age, and a hold on
/// their release keeps them; a pass shares its limit between the two.
pub async fn series_points_go_with_decisions_unless_held(store: &dyn Store) {
    two_releases(store).await;
    let points = [
        ("r-1", 1),
        ("r-1", 2),
        ("r-1", 3),
        ("r-2", 4),
        ("r-2", 5),
        ("r-2", 6),
    ];
    let batch = Batch {
        series: points.iter().map(|(r, d)| point(r, *d)).collect(),
        ..Batch::default()
    };
    store.commit(&[batch]).await.unwrap();
    // Older than day 5: decisions 1–4 and points of days 1–4; r-2 is held.
    let held = held_release("r-2");
    assert_eq!(
        expire(store, DataClass::Decisions, 5, &held).await,
        Expired {
            deleted: 3 + 3,
            held: 1 + 1
        }
    );
    assert_eq!(point_days(store, "r-1").await, Vec::<i64>::new());
    assert_eq!(point_days(store, "r-2").await, [4, 5, 6]);
    let last = store.audit(1, 100).await.unwrap();
    let record: serde_json::Value = serde_json::from_str(&last.last().unwrap().line).unwrap();
    assert_eq!(record["detail"]["series_points"], 3);
    // Unheld, two rows a pass: decisions first (those of days 4 and 5
    // fill the first pass), then the points, oldest first.
    let none = Held::default();
    let mut passes = Vec::new();
    for _ in 0..3 {
        let pass = store
            .expire(DataClass::Decisions, 6 * DAY, 2, &none, &record_at(6))
            .await
            .unwrap();
        passes.push((pass.deleted, point_days(store, "r-2").await));
    }
    assert_eq!(passes, [(2, vec![4, 5, 6]), (2, vec![6]), (0, vec![6])]);
}

fn record_at(day: i64) -> PendingAudit {
    record(day * DAY, "retention")
}

/// The audit log loses a prefix, stops at a held subject, and what is
/// left verifies from its first record.
pub async fn the_audit_log_loses_its_oldest_records_and_still_verifies(store: &dyn Store) {
    two_releases(store).await;
    // Records 1–3 are r-1's (days 1–3), 4–6 r-2's; r-2 is held.
    let expired = expire(store, DataClass::Audit, 5, &held_release("r-2")).await;
    assert_eq!(
        expired,
        Expired {
            deleted: 3,
            held: 1
        }
    );
    let lines = store.audit(1, 100).await.unwrap();
    assert_eq!(lines.first().map(|l| l.seq), Some(4));
    let last: serde_json::Value = serde_json::from_str(&lines.last().unwrap().line).unwrap();
    assert_eq!(last["action"], "retention.expired");
    assert_eq!(last["detail"]["class"], "audit");
    assert_eq!(last["detail"]["through_seq"], 3);
    let text: String = lines.iter().map(|l| format!("{}\n", l.line)).collect();
    let verified = ripcord_core::audit::verify(&text).unwrap();
    assert_eq!((verified.pruned_through, verified.records), (3, 4));
}

/// A purge finds entries by text and rewrites them in place; a blob can be
/// replaced.
pub async fn a_purge_finds_entries_by_text_and_rewrites_them(store: &dyn Store) {
    two_releases(store).await;
    let needles = ["u-5".to_string(), "no%such_".to_string()];
    let found = store
        .events_containing(Some(&needles), 0, 10)
        .await
        .unwrap();
    assert_eq!(
        found
            .iter()
            .map(|e| (e.seq, e.release_id.as_deref()))
            .collect::<Vec<_>>(),
        [(5, Some("r-2"))]
    );
    // `%` and `_` in a needle are literal.
    let wild = ["u%".to_string(), "_-2".to_string()];
    assert_eq!(
        store.events_containing(Some(&wild), 0, 10).await.unwrap(),
        []
    );
    let all = store.events_containing(None, 0, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 5]);
    let batch = Batch {
        rewrites: vec![(5, String::new())],
        blobs: vec![("new".into(), vec![1])],
        forget_blobs: vec!["old".into()],
        ..Batch::default()
    };
    store
        .commit(&[Batch {
            blobs: vec![("old".into(), vec![0])],
            ..Batch::default()
        }])
        .await
        .unwrap();
    store.commit(&[batch]).await.unwrap();
    let entry = store.journal("svc", 5, 1).await.unwrap();
    assert_eq!((entry[0].seq, entry[0].body.as_str()), (5, ""));
    assert_eq!(store.blob("old").await.unwrap(), None);
    assert_eq!(store.blob("new").await.unwrap(), Some(vec![1]));
}

/// Each check on a fresh store from `open`.
pub async fn retention_conformance<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Box<dyn Store>>,
{
    raw_events_go_by_age_but_never_held_ones_starts_or_the_replayed_tail(&*open().await).await;
    decisions_and_evidence_go_by_age_unless_held(&*open().await).await;
    series_points_go_with_decisions_unless_held(&*open().await).await;
    the_audit_log_loses_its_oldest_records_and_still_verifies(&*open().await).await;
    a_purge_finds_entries_by_text_and_rewrites_them(&*open().await).await;
}

#[tokio::test]
async fn postgres_retention_conforms() {
    // Each check gets a database of its own, dropped at the end.
    let databases = std::sync::Mutex::new(Vec::new());
    retention_conformance(|| async {
        let db = TestDatabase::create().await;
        let store = ripcord_store::open(&db.url.parse().unwrap()).await.unwrap();
        databases.lock().unwrap().push(db);
        Box::new(store) as Box<dyn Store>
    })
    .await;
}

#[tokio::test]
async fn sqlite_retention_conforms() {
    retention_conformance(|| async {
        Box::new(SqlStore::in_memory().await.unwrap()) as Box<dyn Store>
    })
    .await;
}
