//! What every store must do, written against the trait so that each backend
//! (SQLite, in memory and in a file, and PostgreSQL) runs the same checks.
//! The PostgreSQL tests use a fresh database on the server
//! `RIPCORD_TEST_PG` names (`ripcord_store::testing`), and fail when it
//! cannot be reached.

use ripcord_store::{
    Batch, DecisionEntry, Doc, JournalEntry, OutboxCounts, OutboxEntry, PendingAudit,
    ReleaseRecord, SeriesPoint, Sink, Snapshot, SqlStore, Store, StoreSpec, Timer, TimerChange,
    TokenRecord, VersionRecord,
};

fn audit(action: &str) -> PendingAudit {
    PendingAudit {
        at_ms: 1_000,
        principal: "tester".into(),
        action: action.into(),
        subject: "svc".into(),
        detail: json!({"n": 1}),
    }
}
use ripcord_store::testing::TestDatabase;
use serde_json::json;

fn journal(seq: i64, service: &str, kind: &str, body: &str) -> JournalEntry {
    JournalEntry {
        seq,
        service: service.into(),
        kind: kind.into(),
        body: body.into(),
    }
}

fn outbox(id: &str, next_at_ms: i64) -> OutboxEntry {
    OutboxEntry {
        id: id.into(),
        service: "svc".into(),
        kind: "webhook".into(),
        url: "http://127.0.0.1:9/hook".into(),
        secret: "whsec_AAAA".into(),
        payload: format!("{{\"id\":\"{id}\"}}"),
        idempotency_key: Some(format!("svc:v1->v2#1/{id}/1")),
        attempts: 0,
        next_at_ms,
    }
}

async fn policies_are_versioned(store: &dyn Store) {
    assert_eq!(store.policy("svc").await.unwrap(), None);
    assert_eq!(
        store
            .put_policy("svc", "a: 1", "t1", &audit("policy.put"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .put_policy("svc", "a: 2", "t2", &audit("policy.put"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .put_policy("other", "b", "t3", &audit("policy.put"))
            .await
            .unwrap(),
        1
    );
    let newest = store.policy("svc").await.unwrap().unwrap();
    assert_eq!((newest.version, newest.yaml.as_str()), (2, "a: 2"));
    let first = store.policy_version("svc", 1).await.unwrap().unwrap();
    assert_eq!(first.yaml, "a: 1");
    let history: Vec<i64> = store
        .policy_history("svc")
        .await
        .unwrap()
        .iter()
        .map(|p| p.version)
        .collect();
    assert_eq!(history, vec![1, 2]);
    assert_eq!(store.services().await.unwrap(), vec!["other", "svc"]);
}

async fn versions_are_immutable(store: &dyn Store) {
    let v = VersionRecord {
        service: "svc".into(),
        version: "v1".into(),
        provenance: json!({"model_id": "m", "weights_digest": "sha256:aa"}),
        registered_at: "t".into(),
    };
    assert!(
        store
            .register_version(&v, &audit("version.register"))
            .await
            .unwrap()
    );
    let changed = VersionRecord {
        provenance: json!({"model_id": "other"}),
        ..v.clone()
    };
    assert!(
        !store
            .register_version(&changed, &audit("version.register"))
            .await
            .unwrap()
    );
    assert_eq!(store.version("svc", "v1").await.unwrap(), Some(v.clone()));
    assert_eq!(store.versions("svc").await.unwrap(), vec![v]);
    assert_eq!(store.version("svc", "v9").await.unwrap(), None);
}

async fn a_commit_writes_everything_or_nothing(store: &dyn Store) {
    let release = ReleaseRecord {
        id: "svc-1".into(),
        service: "svc".into(),
        body: json!({"state": "ramping"}),
    };
    let batch = Batch {
        journal: vec![
            journal(1, "svc", "start", "{}"),
            journal(2, "svc", "events", "e1\ne2"),
        ],
        decisions: vec![DecisionEntry {
            seq: 1,
            service: "svc".into(),
            at_ms: 1_000,
            line: "{\"kind\":\"action\"}".into(),
        }],
        outbox: vec![outbox("msg_1_0", 1_000)],
        releases: vec![release.clone()],
        answers: vec![("action:svc-1:k".into(), "{\"changed\":true}".into())],
        audit: vec![audit("release.start"), audit("decision.action.ramp")],
        ..Batch::default()
    };
    store.commit(&[batch]).await.unwrap();
    assert_eq!(store.last_seqs().await.unwrap(), (2, 1));
    assert_eq!(store.last_start("svc").await.unwrap(), Some(1));
    assert_eq!(store.journal("svc", 2, 10).await.unwrap()[0].body, "e1\ne2");
    assert_eq!(store.journal_count("svc", "events").await.unwrap(), 1);
    assert_eq!(store.release("svc-1").await.unwrap(), Some(release));
    assert_eq!(
        store.answer("action:svc-1:k").await.unwrap().as_deref(),
        Some("{\"changed\":true}")
    );

    // A batch that breaks a constraint (a journal seq used twice) leaves
    // no trace of the rest of the transaction.
    let update = ReleaseRecord {
        id: "svc-1".into(),
        service: "svc".into(),
        body: json!({"state": "paused"}),
    };
    let good = Batch {
        journal: vec![journal(3, "svc", "command", "{}")],
        releases: vec![update.clone()],
        ..Batch::default()
    };
    let bad = Batch {
        journal: vec![journal(2, "svc", "tick", "5")],
        audit: vec![audit("lost")],
        docs: vec![doc("incident", "lost", "svc", 1, "open")],
        timers: vec![timer("lost", 1)],
        ..Batch::default()
    };
    assert!(store.commit(&[good.clone(), bad]).await.is_err());
    assert_eq!(store.last_seqs().await.unwrap(), (2, 1));
    assert_eq!(store.doc("incident", "lost").await.unwrap(), None);
    assert!(store.timers().await.unwrap().is_empty());
    assert_eq!(
        store.release("svc-1").await.unwrap().unwrap().body["state"],
        "ramping"
    );
    // Upserts replace the release body; answers keep the first one.
    let mut again = good;
    again.answers = vec![("action:svc-1:k".into(), "{\"changed\":false}".into())];
    store.commit(&[again]).await.unwrap();
    assert_eq!(store.release("svc-1").await.unwrap(), Some(update.clone()));
    assert_eq!(
        store.answer("action:svc-1:k").await.unwrap().as_deref(),
        Some("{\"changed\":true}")
    );
    assert_eq!(store.current_releases().await.unwrap(), vec![update]);

    // A newer release, and another service's: each service's newest.
    let next = ReleaseRecord {
        id: "svc-2".into(),
        service: "svc".into(),
        body: json!({"state": "ramping"}),
    };
    let other = ReleaseRecord {
        id: "web-1".into(),
        service: "web".into(),
        body: json!({"state": "ramping"}),
    };
    let later = Batch {
        journal: vec![journal(4, "svc", "start", "{}")],
        releases: vec![next.clone(), other.clone()],
        ..Batch::default()
    };
    store.commit(&[later]).await.unwrap();
    assert_eq!(store.current_releases().await.unwrap(), vec![next, other]);
}

async fn the_journal_and_decisions_page_in_order(store: &dyn Store) {
    let entries: Vec<JournalEntry> = (10..30)
        .map(|seq| {
            let service = if seq % 2 == 0 { "a" } else { "b" };
            journal(seq, service, "tick", &seq.to_string())
        })
        .collect();
    let decisions: Vec<DecisionEntry> = (10..20)
        .map(|seq| DecisionEntry {
            seq,
            service: "a".into(),
            at_ms: seq * 100,
            line: seq.to_string(),
        })
        .collect();
    store
        .commit(&[Batch {
            journal: entries,
            decisions,
            ..Batch::default()
        }])
        .await
        .unwrap();
    let page: Vec<i64> = store
        .journal("a", 14, 3)
        .await
        .unwrap()
        .iter()
        .map(|j| j.seq)
        .collect();
    assert_eq!(page, vec![14, 16, 18]);
    let since: Vec<i64> = store
        .decisions("a", 1_500, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect();
    assert_eq!(since, vec![15, 16, 17, 18, 19]);
    let after: Vec<i64> = store
        .decisions("a", 0, 17, 2)
        .await
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect();
    assert_eq!(after, vec![18, 19]);
    assert!(store.decisions("b", 0, 0, 10).await.unwrap().is_empty());
}

async fn the_outbox_delivers_due_entries_and_backs_off(store: &dyn Store) {
    store
        .commit(&[Batch {
            outbox: vec![outbox("m1", 100), outbox("m2", 200), outbox("m3", 5_000)],
            ..Batch::default()
        }])
        .await
        .unwrap();
    let due: Vec<String> = store
        .due(1_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    // Oldest due first; `msg_1_0` is the earlier test's delivery.
    assert_eq!(due, vec!["m1", "m2", "msg_1_0"]);
    store.delivered("m1", 1_001).await.unwrap();
    store.delivered("msg_1_0", 1_001).await.unwrap();
    store
        .retry_later("m2", 3_000, "answered 500")
        .await
        .unwrap();
    assert!(store.due(2_000, 10).await.unwrap().is_empty());
    let retry = store.due(3_000, 10).await.unwrap();
    assert_eq!((retry[0].id.as_str(), retry[0].attempts), ("m2", 1));
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        OutboxCounts {
            pending: 2,
            delivered: 2
        }
    );
}

async fn outbox_entries_keep_their_channel_kind(store: &dyn Store) {
    let mut email = outbox("n1", 10);
    email.kind = "email".into();
    email.url = "smtp://127.0.0.1:25".into();
    let mut page = outbox("n2", 20);
    page.kind = "pagerduty".into();
    store
        .commit(&[Batch {
            outbox: vec![email.clone(), page.clone()],
            ..Batch::default()
        }])
        .await
        .unwrap();
    // The same id again is the same delivery: the first one stays.
    let mut again = email.clone();
    again.kind = "slack".into();
    store
        .commit(&[Batch {
            outbox: vec![again],
            ..Batch::default()
        }])
        .await
        .unwrap();
    let due = store.due(20, 10).await.unwrap();
    assert_eq!(due, vec![email, page]);
}

/// A sink with a backlog gives one entry, its oldest due, so that it
/// cannot hide the other sinks' entries from the delivery worker.
async fn each_sink_gives_its_oldest_due_entry(store: &dyn Store) {
    let at = |id: &str, url: &str, next_at_ms| OutboxEntry {
        url: url.into(),
        ..outbox(id, next_at_ms)
    };
    let slow = "http://slow.test/hook";
    let fast = "http://fast.test/hook";
    store
        .commit(&[Batch {
            outbox: vec![
                at("p1", slow, 30),
                at("p2", slow, 31),
                at("p3", slow, 32),
                at("q1", fast, 33),
            ],
            ..Batch::default()
        }])
        .await
        .unwrap();
    let ids = |due: Vec<OutboxEntry>| -> Vec<String> {
        due.into_iter()
            .filter(|e| e.url.ends_with(".test/hook"))
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(
        ids(store.due_per_sink(100, 1_000).await.unwrap()),
        ["p1", "q1"]
    );
    store.delivered("p1", 101).await.unwrap();
    assert_eq!(
        ids(store.due_per_sink(102, 1_000).await.unwrap()),
        ["p2", "q1"]
    );
}

async fn sinks_are_replaced_as_a_set(store: &dyn Store) {
    let a = Sink {
        url: "http://127.0.0.1:1/a".into(),
        secret: "whsec_a".into(),
    };
    let b = Sink {
        url: "http://127.0.0.1:1/b".into(),
        secret: "whsec_b".into(),
    };
    store
        .set_sinks("svc", &[a.clone(), b.clone()], &audit("webhooks.set"))
        .await
        .unwrap();
    store
        .set_sinks("svc", std::slice::from_ref(&b), &audit("webhooks.set"))
        .await
        .unwrap();
    assert_eq!(store.sinks("svc").await.unwrap(), vec![b]);
    assert!(store.sinks("other").await.unwrap().is_empty());
}

/// Every change so far left its record, chained, and the chain verifies;
/// the failed commit's record is not there.
async fn the_audit_log_is_a_verifiable_chain_of_every_change(store: &dyn Store) {
    let lines = store.audit(1, 1_000).await.unwrap();
    let text: String = lines.iter().map(|l| format!("{}\n", l.line)).collect();
    let verified = ripcord_core::audit::verify(&text).unwrap();
    assert_eq!(verified.records, lines.len() as i64);
    let actions: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "policy.put",
            "policy.put",
            "policy.put",
            "version.register",
            "release.start",
            "decision.action.ramp",
            "webhooks.set",
            "webhooks.set",
        ]
    );
    // Concurrent writers cannot fork the chain.
    let put = |i: i32| async move {
        let yaml = format!("n: {i}");
        store
            .put_policy("race", &yaml, "t", &audit("policy.put"))
            .await
            .unwrap();
    };
    let commit = async {
        let batch = Batch {
            audit: vec![audit("decision.x"), audit("decision.y")],
            ..Batch::default()
        };
        store.commit(&[batch]).await.unwrap();
    };
    tokio::join!(put(1), put(2), commit, put(3));
    let text: String = store
        .audit(1, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|l| format!("{}\n", l.line))
        .collect();
    assert_eq!(ripcord_core::audit::verify(&text).unwrap().records, 13);
}

fn doc(kind: &str, id: &str, service: &str, created_ms: i64, state: &str) -> Doc {
    Doc {
        kind: kind.into(),
        id: id.into(),
        service: service.into(),
        created_ms,
        body: json!({"state": state}),
    }
}

fn timer(id: &str, due_ms: i64) -> TimerChange {
    TimerChange::Set(Timer {
        id: id.into(),
        service: "svc".into(),
        due_ms,
        body: json!({"what": id}),
    })
}

async fn documents_upsert_and_timers_come_due(store: &dyn Store) {
    let first = Batch {
        docs: vec![
            doc("incident", "inc-2", "svc", 20, "open"),
            doc("incident", "inc-1", "other", 10, "open"),
            doc("request", "req-1", "svc", 5, "pending"),
        ],
        timers: vec![timer("ack", 100), timer("escalate", 50), timer("gone", 10)],
        ..Batch::default()
    };
    store.commit(&[first]).await.unwrap();
    // An update keeps the creation time; a cancel removes the timer; a
    // re-set moves it.
    let second = Batch {
        docs: vec![doc("incident", "inc-2", "svc", 999, "mitigated")],
        timers: vec![TimerChange::Cancel("gone".into()), timer("escalate", 150)],
        ..Batch::default()
    };
    store.commit(&[second]).await.unwrap();
    let all = store.docs("incident", None).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["inc-1", "inc-2"]);
    let inc2 = store.doc("incident", "inc-2").await.unwrap().unwrap();
    assert_eq!(
        (inc2.created_ms, &inc2.body),
        (20, &json!({"state": "mitigated"}))
    );
    assert_eq!(
        store.docs("incident", Some("other")).await.unwrap().len(),
        1
    );
    assert_eq!(store.doc("incident", "req-1").await.unwrap(), None);
    let due: Vec<String> = store
        .due_timers(120, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(due, ["ack"]);
    let all: Vec<(String, i64)> = store
        .timers()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.due_ms))
        .collect();
    assert_eq!(
        all,
        [("ack".to_string(), 100), ("escalate".to_string(), 150)]
    );
    assert_eq!(store.integrity().await.unwrap(), Vec::<String>::new());
}

fn token(name: &str, hash: &str) -> TokenRecord {
    TokenRecord {
        name: name.into(),
        role: "operator".into(),
        hash: hash.into(),
        created_at_ms: 5_000,
        expires_at_ms: Some(9_000),
        revoked_at_ms: None,
        created_by: "admin".into(),
        person: format!("{name}-person"),
        services: vec!["svc-a".into()],
    }
}

/// Tokens: names are unique, lookup is by hash, revocation happens once and
/// each change is audited (a refused one is not).
async fn tokens_are_unique_found_by_hash_and_revoked_once(store: &dyn Store) {
    let before = store.audit(1, 1_000).await.unwrap().len();
    let ana = token("ana", &"a".repeat(64));
    assert!(store.put_token(&ana, &audit("token.create")).await.unwrap());
    let mut other = token("ana", &"b".repeat(64));
    other.role = "admin".into();
    assert!(
        !store
            .put_token(&other, &audit("token.create"))
            .await
            .unwrap()
    );
    let mut bo = token("bo", &"c".repeat(64));
    bo.expires_at_ms = None;
    assert!(store.put_token(&bo, &audit("token.create")).await.unwrap());
    assert_eq!(
        store.token_by_hash(&"a".repeat(64)).await.unwrap(),
        Some(ana.clone())
    );
    assert_eq!(store.token_by_hash(&"b".repeat(64)).await.unwrap(), None);
    assert_eq!(store.tokens().await.unwrap(), vec![ana.clone(), bo.clone()]);
    assert!(
        store
            .revoke_token("ana", 7_000, &audit("token.revoke"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_token("ana", 8_000, &audit("token.revoke"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_token("nobody", 8_000, &audit("token.revoke"))
            .await
            .unwrap()
    );
    let revoked = store.token_by_hash(&"a".repeat(64)).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(7_000));
    let after = store.audit(1, 1_000).await.unwrap().len();
    assert_eq!(after - before, 3, "two creations and one revocation");
}

async fn audit_count(store: &dyn Store) -> usize {
    store.audit(1, 1_000_000).await.unwrap().len()
}

async fn blobs_are_stored_once_by_address(store: &dyn Store) {
    let before = audit_count(store).await;
    assert_eq!(store.blob("aa").await.unwrap(), None);
    assert!(
        store
            .put_blob("aa", b"first\x00bytes", &audit("evidence.frozen"))
            .await
            .unwrap()
    );
    // The same address again changes nothing, not even the audit log.
    assert!(
        !store
            .put_blob("aa", b"other", &audit("evidence.frozen"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.blob("aa").await.unwrap().as_deref(),
        Some(&b"first\x00bytes"[..])
    );
    assert_eq!(audit_count(store).await, before + 1);

    // In a batch: written with everything else, or not at all.
    let batch = Batch {
        blobs: vec![("bb".into(), vec![0, 255, 7]), ("aa".into(), b"x".to_vec())],
        audit: vec![audit("evidence.frozen")],
        ..Batch::default()
    };
    assert!(!batch.is_empty());
    store.commit(&[batch]).await.unwrap();
    assert_eq!(store.blob("bb").await.unwrap(), Some(vec![0, 255, 7]));
    assert_eq!(
        store.blob("aa").await.unwrap().as_deref(),
        Some(&b"first\x00bytes"[..])
    );
    let failing = Batch {
        journal: vec![journal(1, "svc", "tick", "5")],
        blobs: vec![("cc".into(), vec![1])],
        ..Batch::default()
    };
    assert!(store.commit(&[failing]).await.is_err());
    assert_eq!(store.blob("cc").await.unwrap(), None);
    assert_eq!(audit_count(store).await, before + 2);
}

async fn expired_answers_are_forgotten_by_prefix(store: &dyn Store) {
    let answered = |key: &str, at_ms: i64| Batch {
        answers: vec![(key.into(), format!("{{\"at\":{at_ms}}}"))],
        answered_at_ms: at_ms,
        ..Batch::default()
    };
    for batch in [
        answered("ingest:a:old:svc", 1_000),
        answered("ingest:a:new:svc", 9_000),
        answered("action:svc-9:old", 1_000),
    ] {
        store.commit(&[batch]).await.unwrap();
    }
    assert_eq!(store.forget_answers("ingest:", 5_000).await.unwrap(), 1);
    assert_eq!(store.answer("ingest:a:old:svc").await.unwrap(), None);
    assert!(store.answer("ingest:a:new:svc").await.unwrap().is_some());
    // Another prefix is kept, however old.
    assert!(store.answer("action:svc-9:old").await.unwrap().is_some());
    // `%` in a prefix is literal, not a wildcard.
    assert_eq!(store.forget_answers("%", i64::MAX).await.unwrap(), 0);
}

/// A checkpoint's deliveries are queued in its own transaction, made from
/// the record as stored; with nothing new to sign, nothing is published.
async fn a_checkpoint_is_queued_for_publishing_with_its_record(store: &dyn Store) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let sign = |upto, head: [u8; 32]| ripcord_core::audit::checkpoint_detail(&key, upto, &head);
    let publish = |line: &ripcord_store::AuditLine| {
        let mut entry = outbox(&format!("ckp-{}", line.seq), 0);
        entry.payload = line.line.clone();
        vec![entry]
    };
    let head = store.audit(1, 100_000).await.unwrap().len() as i64;
    let signed = store.checkpoint(3_000, 0, &sign, &publish).await.unwrap();
    let signed = signed.expect("the head is not signed yet");
    assert_eq!(signed.seq, head + 1);
    assert_eq!(
        store.audit(signed.seq, 1).await.unwrap(),
        std::slice::from_ref(&signed)
    );
    let id = format!("ckp-{}", signed.seq);
    let queued: Vec<OutboxEntry> = store.due(i64::MAX, 1_000).await.unwrap();
    let queued: Vec<&OutboxEntry> = queued.iter().filter(|e| e.id == id).collect();
    assert_eq!(queued.len(), 1, "one delivery per checkpoint");
    assert_eq!(queued[0].payload, signed.line);
    assert_eq!(queued[0].secret, "whsec_AAAA", "unsealed as read");
    let again = store.checkpoint(4_000, signed.seq, &sign, &publish).await;
    assert_eq!(
        again.unwrap(),
        None,
        "nothing new: no checkpoint, no delivery"
    );
}

/// A service keeps its latest snapshot only, written with the journal
/// entry it covers; a failed commit writes neither.
async fn the_latest_snapshot_is_kept_with_its_journal_position(store: &dyn Store) {
    let snap = |seq: i64, body: &[u8]| Snapshot {
        service: "snap-svc".into(),
        journal_seq: seq,
        body: body.to_vec(),
    };
    assert_eq!(store.snapshot("snap-svc").await.unwrap(), None);
    let (first, _) = store.last_seqs().await.unwrap();
    for (seq, body) in [(first + 1, &b"one"[..]), (first + 2, &b"two\0"[..])] {
        let batch = Batch {
            journal: vec![journal(seq, "snap-svc", "tick", "{}")],
            snapshots: vec![snap(seq, body)],
            ..Batch::default()
        };
        store.commit(&[batch]).await.unwrap();
    }
    assert_eq!(
        store.snapshot("snap-svc").await.unwrap(),
        Some(snap(first + 2, b"two\0"))
    );
    // The journal entry clashes with a stored one: nothing is written.
    let clash = Batch {
        journal: vec![journal(first + 2, "snap-svc", "tick", "{}")],
        snapshots: vec![snap(first + 3, b"three")],
        ..Batch::default()
    };
    assert!(store.commit(&[clash]).await.is_err());
    assert_eq!(
        store.snapshot("snap-svc").await.unwrap(),
        Some(snap(first + 2, b"two\0"))
    );
}

fn point(release: &str, at_ms: i64, figure: i64) -> SeriesPoint {
    SeriesPoint {
        release: release.into(),
        service: "series-svc".into(),
        at_ms,
        body: json!({ "figure": figure }),
    }
}

async fn series_points_upsert_by_instant_and_page_in_order(store: &dyn Store) {
    assert_eq!(store.series("r-1", 0, 10).await.unwrap(), []);
    // Written out of order, and with another release's point between.
    let batch = Batch {
        series: vec![
            point("r-1", 3_000, 3),
            point("r-2", 2_000, 20),
            point("r-1", 1_000, 1),
        ],
        ..Batch::default()
    };
    assert!(!batch.is_empty());
    store.commit(&[batch]).await.unwrap();
    // The same instant again replaces its point.
    let again = Batch {
        series: vec![point("r-1", 2_000, 2), point("r-1", 3_000, 33)],
        ..Batch::default()
    };
    store.commit(&[again]).await.unwrap();
    let all = store.series("r-1", 0, 10).await.unwrap();
    assert_eq!(
        all,
        [
            point("r-1", 1_000, 1),
            point("r-1", 2_000, 2),
            point("r-1", 3_000, 33)
        ]
    );
    assert_eq!(
        store.series("r-1", 2_000, 1).await.unwrap(),
        [point("r-1", 2_000, 2)]
    );
    assert_eq!(
        store.series("r-2", 0, 10).await.unwrap(),
        [point("r-2", 2_000, 20)]
    );
    // A batch that fails writes none of its points.
    let clash = Batch {
        journal: vec![journal(1, "svc", "tick", "{}")],
        series: vec![point("r-1", 4_000, 4)],
        ..Batch::default()
    };
    assert!(store.commit(&[clash]).await.is_err());
    assert_eq!(store.series("r-1", 4_000, 10).await.unwrap(), []);
}

/// A release over its bound keeps every other point, its first and its
/// newest: the whole release at half the resolution.
async fn a_release_over_its_bound_loses_every_other_point(store: &dyn Store) {
    let batch = Batch {
        series: (1..=6).map(|i| point("thin", i * 1_000, i)).collect(),
        series_max: 6,
        ..Batch::default()
    };
    store.commit(&[batch]).await.unwrap();
    let at = |points: Vec<SeriesPoint>| points.iter().map(|p| p.at_ms / 1_000).collect::<Vec<_>>();
    assert_eq!(
        at(store.series("thin", 0, 100).await.unwrap()),
        [1, 2, 3, 4, 5, 6]
    );
    let over = Batch {
        series: vec![point("thin", 7_000, 7), point("other", 7_000, 7)],
        series_max: 6,
        ..Batch::default()
    };
    store.commit(&[over]).await.unwrap();
    assert_eq!(
        at(store.series("thin", 0, 100).await.unwrap()),
        [1, 3, 5, 7]
    );
    // Another release's points are not counted against it.
    assert_eq!(at(store.series("other", 0, 100).await.unwrap()), [7]);
    // An even count keeps its newest point too.
    let more = Batch {
        series: (8..=10).map(|i| point("thin", i * 1_000, i)).collect(),
        series_max: 6,
        ..Batch::default()
    };
    store.commit(&[more]).await.unwrap();
    assert_eq!(
        at(store.series("thin", 0, 100).await.unwrap()),
        [1, 5, 8, 10]
    );
    // A bound of one still keeps the newest of two.
    let tiny = Batch {
        series: vec![point("tiny", 1_000, 1), point("tiny", 2_000, 2)],
        series_max: 1,
        ..Batch::default()
    };
    store.commit(&[tiny]).await.unwrap();
    assert_eq!(at(store.series("tiny", 0, 100).await.unwrap()), [1, 2]);
}

async fn conformance(store: &dyn Store) {
    policies_are_versioned(store).await;
    versions_are_immutable(store).await;
    a_commit_writes_everything_or_nothing(store).await;
    the_journal_and_decisions_page_in_order(store).await;
    the_outbox_delivers_due_entries_and_backs_off(store).await;
    outbox_entries_keep_their_channel_kind(store).await;
    each_sink_gives_its_oldest_due_entry(store).await;
    sinks_are_replaced_as_a_set(store).await;
    the_audit_log_is_a_verifiable_chain_of_every_change(store).await;
    documents_upsert_and_timers_come_due(store).await;
    // After the audit check, which counts the records before it.
    tokens_are_unique_found_by_hash_and_revoked_once(store).await;
    blobs_are_stored_once_by_address(store).await;
    expired_answers_are_forgotten_by_prefix(store).await;
    the_latest_snapshot_is_kept_with_its_journal_position(store).await;
    series_points_upsert_by_instant_and_page_in_order(store).await;
    a_release_over_its_bound_loses_every_other_point(store).await;
    // Last: it adds an audit record and an undelivered outbox entry.
    a_checkpoint_is_queued_for_publishing_with_its_record(store).await;
}

/// Where a test's stores live: each `open` is another store (another
/// process, say) on the same database.
pub(crate) struct Place {
    spec: StoreSpec,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

impl Place {
    pub(crate) fn sqlite() -> Place {
        let dir = tempfile::tempdir().unwrap();
        Place {
            spec: StoreSpec::in_data_dir(dir.path()),
            _dir: Some(dir),
            _db: None,
        }
    }

    pub(crate) async fn postgres() -> Place {
        let db = TestDatabase::create().await;
        Place {
            spec: db.url.parse().unwrap(),
            _dir: None,
            _db: Some(db),
        }
    }

    pub(crate) async fn open(&self) -> SqlStore {
        ripcord_store::open(&self.spec).await.unwrap()
    }

    /// The PostgreSQL database's URL (for a connection of a test's own).
    pub(crate) fn url(&self) -> &str {
        self._db.as_ref().map_or("", |db| db.url.as_str())
    }
}

/// Runs a test written against a [`Place`] once per backend, as
/// `<test>::sqlite` (a file) and `<test>::postgres`.
macro_rules! on_each_backend {
    ($test:ident $(, $runtime:tt)?) => {
        mod $test {
            #[tokio::test $($runtime)?]
            async fn sqlite() {
                super::$test(super::Place::sqlite()).await;
            }

            #[tokio::test $($runtime)?]
            async fn postgres() {
                super::$test(super::Place::postgres().await).await;
            }
        }
    };
}

#[tokio::test]
async fn sqlite_in_memory_conforms() {
    conformance(&SqlStore::in_memory().await.unwrap()).await;
}

/// The suite, then a second store on the same database finds everything
/// and does not migrate the schema again.
async fn conforms_and_keeps_everything_across_reopening(place: Place) {
    conformance(&place.open().await).await;
    let reopened = place.open().await;
    assert_eq!(reopened.last_seqs().await.unwrap(), (31, 19));
    assert_eq!(reopened.policy("svc").await.unwrap().unwrap().version, 2);
    assert_eq!(reopened.outbox_counts().await.unwrap().delivered, 3);
    assert_eq!(reopened.blob("bb").await.unwrap(), Some(vec![0, 255, 7]));
    assert_eq!(
        reopened
            .put_policy("svc", "a: 3", "t", &audit("policy.put"))
            .await
            .unwrap(),
        3
    );
}

on_each_backend!(conforms_and_keeps_everything_across_reopening);

/// `ripcord token` opens the store while the server has it open: the
/// audit chain must continue from what is stored, not from either
/// process's memory.
async fn two_stores_append_to_one_chain(place: Place) {
    let server = place.open().await;
    let cli = place.open().await;
    server
        .put_policy("svc", "a: 1", "t", &audit("policy.put"))
        .await
        .unwrap();
    assert!(
        cli.put_token(&token("ana", &"a".repeat(64)), &audit("token.create"))
            .await
            .unwrap()
    );
    let batch = Batch {
        audit: vec![audit("decision.x")],
        ..Batch::default()
    };
    server.commit(&[batch]).await.unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let sign = |upto, head: [u8; 32]| ripcord_core::audit::checkpoint_detail(&key, upto, &head);
    let signed = server.checkpoint(2_000, 0, &sign, &|_| Vec::new()).await;
    assert_eq!(
        signed.unwrap().map(|l| l.seq),
        Some(4),
        "the checkpoint (record 4) covers the CLI's record 3"
    );
    let text: String = cli
        .audit(1, 100)
        .await
        .unwrap()
        .iter()
        .map(|l| format!("{}\n", l.line))
        .collect();
    assert_eq!(ripcord_core::audit::verify(&text).unwrap().records, 4);
}

on_each_backend!(two_stores_append_to_one_chain);

/// Writes from several connections at once, through two stores on one
/// database (the server's and a CLI's, or two servers'): the writer's
/// commits, policy puts and blobs beside each other all succeed, and the
/// audit chain does not fork. Each write transaction takes the write lock
/// when it begins (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory
/// lock), so none fails with "database is locked" after reading a
/// snapshot another connection has since written past, and none links a
/// record to a tail another has since extended.
async fn concurrent_writes_from_two_stores_all_succeed(place: Place) {
    let stores = [
        std::sync::Arc::new(place.open().await),
        std::sync::Arc::new(place.open().await),
    ];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = stores[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..25 {
                let result = match t % 3 {
                    0 => store
                        .put_policy(
                            &format!("svc-{t}"),
                            &format!("a: {i}"),
                            "t",
                            &audit("policy.put"),
                        )
                        .await
                        .map(|_| ()),
                    1 => {
                        let batch = Batch {
                            audit: vec![audit("decision.x")],
                            ..Batch::default()
                        };
                        store.commit(&[batch]).await
                    }
                    _ => store
                        .put_blob(&format!("{t}-{i}"), b"bytes", &audit("evidence.freeze"))
                        .await
                        .map(|_| ()),
                };
                if let Err(e) = result {
                    failures.push(e.to_string());
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        failures.extend(task.await.unwrap());
    }
    assert_eq!(failures, Vec::<String>::new());
    let text: String = stores[0]
        .audit(1, 1000)
        .await
        .unwrap()
        .iter()
        .map(|l| format!("{}\n", l.line))
        .collect();
    assert_eq!(ripcord_core::audit::verify(&text).unwrap().records, 200);
}

on_each_backend!(
    concurrent_writes_from_two_stores_all_succeed,
    (flavor = "multi_thread", worker_threads = 4)
);

/// Two servers starting at once on a new database: the schema is made
/// once (the migrations run under the write lock), and both open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_opening_a_new_postgres_database_at_once_both_open() {
    let place = Place::postgres().await;
    let (a, b) = tokio::join!(
        ripcord_store::open(&place.spec),
        ripcord_store::open(&place.spec)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    a.put_policy("svc", "a: 1", "t", &audit("policy.put"))
        .await
        .unwrap();
    assert_eq!(b.policy("svc").await.unwrap().unwrap().version, 1);
    assert_eq!(a.integrity().await.unwrap(), Vec::<String>::new());
}

/// Webhook secrets are sealed at rest: a store with the key reads them
/// back, one without it (reading the database directly) sees no secret.
async fn secrets_are_sealed_at_rest(place: Place) {
    let sealed = place.open().await.sealing_secrets(&[9; 32]).unwrap();
    let sink = Sink {
        url: "https://hooks.example/a".into(),
        secret: "whsec_c2VjcmV0".into(),
    };
    sealed
        .set_sinks("svc", std::slice::from_ref(&sink), &audit("sinks.set"))
        .await
        .unwrap();
    assert_eq!(sealed.sinks("svc").await.unwrap(), vec![sink.clone()]);
    let raw = place.open().await.sinks("svc").await.unwrap();
    assert_eq!(raw.len(), 1);
    assert!(!raw[0].secret.contains("c2VjcmV0"), "{:?}", raw[0].secret);
}

on_each_backend!(secrets_are_sealed_at_rest);

/// An unreachable PostgreSQL server is an error that names the store
/// (without its password), not a hang or a panic.
#[tokio::test]
async fn an_unreachable_postgres_server_is_named_in_the_error() {
    let spec: StoreSpec = "postgres://ana:s3cret@127.0.0.1:1/nowhere".parse().unwrap();
    let err = match ripcord_store::open(&spec).await {
        Ok(_) => panic!("opened a store on port 1"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("cannot open the store postgres://ana:***@127.0.0.1:1/nowhere: "),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}
