//! `ripcord evidence export` against a real store: the archive holds the
//! bundle and its parts with a manifest of their hashes, the same bundle
//! gives the same archive, and evidence that does not verify exits 1.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use ripcord_core::Time;
use ripcord_core::evidence::{FreezeInput, Provenance, Redaction, Reservoir, address, freeze};
use ripcord_store::{PendingAudit, SqlStore, Store};
use serde_json::{Value, json};

const POLICY: &str = "service: support-bot\nscenario: conversational-agent\n";

fn ripcord(args: &[&str]) -> (i32, String) {
    ripcord_in(Path::new("."), args)
}

fn ripcord_in(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn audit() -> PendingAudit {
    PendingAudit {
        at_ms: 1,
        principal: "engine".into(),
        action: "evidence.frozen".into(),
        subject: "support-bot-1".into(),
        detail: json!({}),
    }
}

/// A frozen bundle whose policy YAML is `yaml`; returns its address.
async fn put_bundle(store: &dyn Store, yaml: &str) -> (String, Vec<u8>) {
    let mut sample = Reservoir::new(3, 7);
    for i in 0..10 {
        sample.offer(&format!(
            r#"{{"ts":"2026-11-20T10:00:0{i}Z","prompt":"secret {i}","unit":"u{i}","values":{{"outputs":1}}}}"#
        ));
    }
    let redaction = Redaction {
        drop: vec!["prompt".into()],
        hash: vec!["unit".into()],
    };
    let frozen = freeze(FreezeInput {
        service: "support-bot",
        policy_version: 1,
        policy_yaml: yaml,
        release: json!({"id": "support-bot-1", "baseline": "v12", "candidate": "v13"}),
        provenance: vec![
            Provenance {
                version: "v12".into(),
                document: json!({"model": "m-12"}),
            },
            Provenance {
                version: "team/v13".into(),
                document: json!({"model": "m-13"}),
            },
        ],
        decisions: vec![r#"{"at":"2026-11-20T10:16:18.000Z","kind":"trigger_fired"}"#.into()],
        sample: &sample,
        redaction: &redaction,
        frozen_at: Time(1_795_169_778_000),
    });
    store
        .put_blob(&frozen.address, &frozen.bytes, &audit())
        .await
        .unwrap();
    (frozen.address, frozen.bytes)
}

/// A data dir (in a temp dir) whose store has the policy.
async fn data_dir() -> (tempfile::TempDir, std::path::PathBuf, SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let store = SqlStore::open(&data.join("ripcord.db")).await.unwrap();
    store
        .put_policy("support-bot", POLICY, "t", &audit())
        .await
        .unwrap();
    (dir, data, store)
}

fn entries(archive: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = BTreeMap::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        assert_eq!(entry.header().mode().unwrap(), 0o644);
        assert_eq!(entry.header().mtime().unwrap(), 1_795_169_778);
        let path = entry.path().unwrap().to_string_lossy().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(path, bytes);
    }
    out
}

#[tokio::test]
async fn an_export_holds_the_bundle_its_parts_and_their_hashes() {
    let (dir, data, store) = data_dir().await;
    let (hash, bytes) = put_bundle(&store, POLICY).await;
    drop(store);

    let out = dir.path().join("e.tar.gz");
    let (code, text) = ripcord(&[
        "evidence",
        "export",
        &hash,
        "--data-dir",
        data.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("(bundle {hash})")), "{text}");
    let files = entries(&out);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "MANIFEST.json",
            "bundle.json",
            "decisions.ndjson",
            "events.ndjson",
            "policy.yaml",
            "provenance/team_v13.json",
            "provenance/v12.json",
        ]
    );
    assert_eq!(files["bundle.json"], bytes);
    assert_eq!(files["policy.yaml"], POLICY.as_bytes());
    let events = String::from_utf8(files["events.ndjson"].clone()).unwrap();
    assert_eq!(events.lines().count(), 3);
    assert!(
        !events.contains("secret") && events.contains(r#""unit":"sha256:"#),
        "{events}"
    );
    let manifest: Value = serde_json::from_slice(&files["MANIFEST.json"]).unwrap();
    assert_eq!(manifest["bundle"], hash.as_str());
    let listed = manifest["files"].as_array().unwrap();
    assert_eq!(listed.len(), files.len() - 1);
    for f in listed {
        let content = &files[f["path"].as_str().unwrap()];
        assert_eq!(f["sha256"], address(content).as_str());
        assert_eq!(f["bytes"], content.len());
    }

    // The default name, and the same bytes for the same bundle.
    let (code, text) = ripcord_in(
        dir.path(),
        &[
            "evidence",
            "export",
            &hash,
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{text}");
    let default = dir.path().join(format!("evidence-{}.tar.gz", &hash[..12]));
    assert_eq!(
        std::fs::read(&default).unwrap(),
        std::fs::read(&out).unwrap()
    );
}

#[tokio::test]
async fn evidence_that_does_not_verify_exits_1() {
    let (dir, data, store) = data_dir().await;
    // Bytes stored under an address they do not hash to (a changed bundle).
    let (_, bytes) = put_bundle(&store, POLICY).await;
    let mut changed = bytes.clone();
    changed[10] ^= 1;
    let forged = "f".repeat(64);
    store.put_blob(&forged, &changed, &audit()).await.unwrap();
    // A bundle naming a policy text the store does not have at that version.
    let (other, _) = put_bundle(&store, "service: support-bot\n").await;
    drop(store);
    let data = data.to_str().unwrap();
    let out = dir.path().join("x.tar.gz");
    let out = out.to_str().unwrap();

    let (code, text) = ripcord(&["evidence", "export", &forged, "--data-dir", data, "-o", out]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not to its address"), "{text}");
    let (code, text) = ripcord(&["evidence", "export", &other, "--data-dir", data, "-o", out]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("policy support-bot version 1 hashes to"),
        "{text}"
    );
    let (code, text) = ripcord(&[
        "evidence",
        "export",
        &"0".repeat(64),
        "--data-dir",
        data,
        "-o",
        out,
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no evidence bundle"), "{text}");
    let (code, text) = ripcord(&["evidence", "export", "inc-1", "--data-dir", data, "-o", out]);
    assert_eq!(code, 2, "{text}");
    assert!(!Path::new(out).exists());
}

/// `ripcord purge` on the store: the unit's journal lines and its sampled
/// lines (hashed by the policy's redaction) go; the bundle is replaced by
/// a purged copy; the answer counts both.
#[tokio::test]
async fn purge_erases_a_unit_from_the_journal_and_the_bundles_on_the_store() {
    let (_dir, data, store) = data_dir().await;
    let (hash, bytes) = put_bundle(&store, POLICY).await;
    let bundle = ripcord_core::evidence::open(&hash, &bytes).unwrap();
    // A unit the bundle sampled (its lines carry the unit hashed).
    let id = (0..10)
        .map(|i| format!("u{i}"))
        .find(|u| {
            let unit = ripcord_core::purge::Unit::new(u);
            bundle.events.iter().any(|l| unit.named_by(l))
        })
        .unwrap();
    let unit = ripcord_core::purge::Unit::new(&id);
    let sampled = bundle.events.iter().filter(|l| unit.named_by(l)).count();
    let lines = format!(
        "{{\"unit\":\"{id}\",\"version\":\"v1\"}}\n{{\"unit\":\"u30\",\"version\":\"v1\"}}\n"
    );
    let batch = ripcord_store::Batch {
        journal: vec![ripcord_store::JournalEntry {
            seq: 1,
            service: "support-bot".into(),
            kind: "events".into(),
            body: lines,
        }],
        ..Default::default()
    };
    store.commit(&[batch]).await.unwrap();
    drop(store);

    let data_dir = data.to_str().unwrap();
    let args = [
        "purge",
        "--unit",
        &id,
        "--reason",
        "DSR-9",
        "--data-dir",
        data_dir,
    ];
    let (code, text) = ripcord(&args);
    assert_eq!(code, 0, "{text}");
    let purged: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(purged["journal_lines"], json!(1));
    assert_eq!(purged["bundle_lines"], json!(sampled));
    assert_eq!(purged["bundles"], json!(1));
    assert_eq!(purged["unit_key"], json!(unit.key()));

    let store = SqlStore::open(&data.join("ripcord.db")).await.unwrap();
    let journal = store.journal("support-bot", 0, 10).await.unwrap();
    assert_eq!(journal[0].body, "{\"unit\":\"u30\",\"version\":\"v1\"}\n");
    assert_eq!(store.blob(&hash).await.unwrap(), None);
    let (from, to) = (&purged["replaced"][0][0], &purged["replaced"][0][1]);
    assert_eq!(from, &json!(hash));
    let copy = store.blob(to.as_str().unwrap()).await.unwrap().unwrap();
    let copy = ripcord_core::evidence::open(to.as_str().unwrap(), &copy).unwrap();
    assert_eq!(copy.events.len() + sampled, bundle.events.len());
    let (code, text) = ripcord(&[
        "purge",
        "--unit",
        " ",
        "--reason",
        "x",
        "--data-dir",
        data_dir,
    ]);
    assert_eq!(
        (code, text.trim()),
        (2, "error: --unit and --reason must not be empty")
    );
}
