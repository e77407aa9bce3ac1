//! The audit log as an auditor uses it: export it from a real store and
//! verify it offline; tampering is found at its first bad record.

use std::process::Command;

use serde_json::{Value, json};

fn ripcord(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_and_tampering_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ripcord_server::start(ripcord_server::Config::new(
        data.clone(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await
    .unwrap();
    let token = std::fs::read_to_string(&server.token_path).unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |req: reqwest::RequestBuilder| {
        let token = token.trim().to_string();
        async move {
            let r = req.bearer_auth(token).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    let policy = include_str!("../../../examples/conversational-agent/policy.yaml");
    send(
        http.put(format!("{base}/v1/policies/support-bot"))
            .body(policy),
    )
    .await;
    for v in ["v1", "v2"] {
        send(
            http.post(format!("{base}/v1/services/support-bot/versions"))
                .json(&json!({"version": v, "model_id": "m"})),
        )
        .await;
    }
    send(
        http.post(format!("{base}/v1/releases"))
            .json(&json!({"service": "support-bot", "baseline": "v1", "candidate": "v2"})),
    )
    .await;
    send(
        http.post(format!("{base}/v1/releases/support-bot-1/actions"))
            .json(
                &json!({"action": "rollback", "reason": "bad refunds", "idempotency_key": "inc-1"}),
            ),
    )
    .await;
    let server_key = server.audit_public_key.clone();
    server.shutdown().await.unwrap();

    let key = server_key.clone();
    let data_dir = data.to_str().unwrap();
    let (code, text) = ripcord(&[
        "audit",
        "verify",
        "--data-dir",
        data_dir,
        "--public-key",
        &key,
    ]);
    assert_eq!(code, 0, "{text}");
    // Shutting down signed the log up to its last record.
    let lines: Vec<&str> = text.lines().collect();
    let total: i64 = lines[0].split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(
        lines[1],
        format!(
            "1 signed checkpoints; records 1–{} signed by {key} (the pinned key)",
            total - 1
        )
    );
    let other = "ab".repeat(32);
    let (code, text) = ripcord(&[
        "audit",
        "verify",
        "--data-dir",
        data_dir,
        "--public-key",
        &other,
    ]);
    assert_eq!(code, 1);
    assert!(text.contains("not the pinned key"), "{text}");
    let export = dir.path().join("audit.ndjson");
    let (code, _) = ripcord(&[
        "audit",
        "export",
        "--data-dir",
        data_dir,
        "--output",
        export.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let log = std::fs::read_to_string(&export).unwrap();
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len() as i64, total);
    assert_eq!(records.last().unwrap()["action"], "checkpoint");
    let who_what: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["principal"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        &who_what[..6],
        [
            ("admin", "policy.put"),
            ("admin", "version.register"),
            ("admin", "version.register"),
            ("admin", "release.start"),
            ("engine", "decision.action.ramp"),
            ("admin", "command.rollback"),
        ]
    );
    assert_eq!(who_what[6], ("engine", "decision.action.rollback_stage"));
    assert_eq!(records[5]["detail"]["reason"], "bad refunds");

    // One changed byte (the rollback's reason), then a deleted record.
    let tampered = log.replacen("bad refunds", "bad refundz", 1);
    std::fs::write(&export, &tampered).unwrap();
    let (code, text) = ripcord(&["audit", "verify", "--file", export.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        text.trim(),
        "broken: line 6: record 6: hash does not match the record: it was changed"
    );
    let mut lines: Vec<&str> = log.lines().collect();
    lines.remove(3);
    std::fs::write(&export, lines.join("\n") + "\n").unwrap();
    let (code, text) = ripcord(&["audit", "verify", "--file", export.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        text.starts_with("broken: line 4: record 4: sequence 5 where 4 belongs"),
        "{text}"
    );
}

/// The log as an attacker with the database (and perhaps the key) leaves
/// it: emptied, cut short, or rewritten and re-hashed without its
/// checkpoints. With the key and the published checkpoints, `verify` finds
/// each; the key itself lives outside the data dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_and_published_checkpoints_hold_the_log_to_what_was_signed() {
    use ripcord_core::audit::{GENESIS, Record, link, to_line};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = dir.path().join("keys/audit.key");
    let published = dir.path().join("published/checkpoints.jsonl");
    let config = |key: &std::path::Path| {
        let mut c = ripcord_server::Config::new(data.clone(), "127.0.0.1:0".parse().unwrap());
        c.audit_key = Some(key.to_path_buf());
        c.audit_checkpoints = Some(published.clone());
        c
    };
    // A key inside the data dir is refused.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(published.parent().unwrap()).unwrap();
    let inside = data.join("audit.key");
    let err = match ripcord_server::start(config(&inside)).await {
        Ok(_) => panic!("a key inside the data dir was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("the signing key must live outside the data dir"),
        "{err}"
    );
    let server = ripcord_server::start(config(&key_file)).await.unwrap();
    let token = std::fs::read_to_string(&server.token_path).unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(format!("http://{}/v1/tokens", server.addr))
        .bearer_auth(token.trim())
        .json(&json!({"name": "viewer-1", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key = server.audit_public_key.clone();
    server.shutdown().await.unwrap();
    assert!(key_file.exists() && !data.join("audit.key").exists());

    let export = dir.path().join("audit.ndjson");
    let (code, _) = ripcord(&[
        "audit",
        "export",
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        export.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let log = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // The shutdown's checkpoint is the log's last record, and it was
    // published byte for byte.
    let published_text = std::fs::read_to_string(&published).unwrap();
    assert_eq!(published_text, format!("{}\n", lines[lines.len() - 1]));
    let verify = |file: &std::path::Path| {
        ripcord(&[
            "audit",
            "verify",
            "--file",
            file.to_str().unwrap(),
            "--public-key",
            &key,
            "--checkpoints",
            published.to_str().unwrap(),
        ])
    };
    let (code, text) = verify(&export);
    assert_eq!(code, 0, "{text}");

    // Emptied.
    let empty = dir.path().join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let (code, text) = verify(&empty);
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        text.trim(),
        "broken: line 0: record 1: the log is empty, but a key was given: a server that signs \
         has records (were they deleted, or is --data-dir wrong?)"
    );

    // Cut short: the last record (the published checkpoint) removed.
    let n = lines.len();
    let cut = dir.path().join("cut.ndjson");
    std::fs::write(&cut, lines[..n - 1].join("\n") + "\n").unwrap();
    let (code, text) = verify(&cut);
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        text.trim(),
        format!(
            "broken: line {n}: record {n}: the log ends at record {}, but checkpoint record {n} \
             was published (line 1 of the checkpoints file): records were cut off",
            n - 1
        )
    );

    // Rewritten: the checkpoint dropped, a record changed, every hash
    // recomputed, and a record added so that the length matches.
    let mut records: Vec<Record> = lines
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("prev");
            o.remove("hash");
            serde_json::from_value(v).unwrap()
        })
        .filter(|r: &Record| r.action != "checkpoint")
        .collect();
    records[0].principal = "nobody".into();
    let mut padding = records[records.len() - 1].clone();
    padding.action = "token.revoke".into();
    records.push(padding);
    let mut prev = GENESIS;
    let mut rewritten = String::new();
    for (i, r) in records.iter_mut().enumerate() {
        r.seq = i as i64 + 1;
        let hash = link(&prev, r);
        rewritten.push_str(&to_line(r, &prev, &hash));
        rewritten.push('\n');
        prev = hash;
    }
    assert_eq!(records.len(), n);
    let forged = dir.path().join("forged.ndjson");
    std::fs::write(&forged, &rewritten).unwrap();
    let (code, text) = ripcord(&["audit", "verify", "--file", forged.to_str().unwrap()]);
    assert_eq!(code, 0, "the chain alone cannot tell: {text}");
    let (code, text) = verify(&forged);
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        text.trim(),
        format!(
            "broken: line {n}: record {n}: not the checkpoint published on line 1 of the \
             checkpoints file: the log was rewritten"
        )
    );
}
