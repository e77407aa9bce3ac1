//! The audit log's hash chain, and its offline verification.
//!
//! Each record is linked to the one before it:
//! `h_n = SHA-256(h_{n-1} ‖ canonical bytes of record n)`, with `h_0` all
//! zeros. The canonical bytes are the record as compact JSON with its keys
//! sorted (`action, at, detail, principal, seq, subject`, and likewise
//! inside `detail`). An export is one line per record — the canonical
//! record with `prev` and `hash` in lowercase hex — and verification
//! insists on exactly that form, so every changed, deleted, inserted or
//! reordered byte is found, not only the ones that change a value.
//!
//! The chain alone cannot stop someone who rewrites the whole log and
//! recomputes every hash. Checkpoints can: a `checkpoint` record carries an
//! ed25519 signature, by a key kept outside the server's data dir, over the
//! chain's head at that point. Verifying with the public key pinned
//! (`ripcord audit verify --public-key`) shows the log up to the last
//! checkpoint is the one the server wrote; [`verify_signed`] also holds it
//! to the checkpoints published outside the database (which find a log cut
//! short or rewritten even by someone holding the key) and to the
//! checkpoint period (no long unsigned spans).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash before the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// One audit record: who did what to what, when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// 1 for the first record, +1 each.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// Who: a token's name, or `engine` for the engine's own decisions.
    pub principal: String,
    /// What, e.g. `decision.action`, `policy.put`, `command.rollback`.
    pub action: String,
    /// What it concerns: a release, a service, a version.
    pub subject: String,
    pub detail: Value,
}

/// One exported line: the record and its links.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: i64,
    at: i64,
    principal: String,
    action: String,
    subject: String,
    detail: Value,
    prev: String,
    hash: String,
}

impl Line {
    /// The record, and the hex of the hash before it and of its own.
    fn into_parts(self) -> (Record, String, String) {
        let record = Record {
            seq: self.seq,
            at: self.at,
            principal: self.principal,
            action: self.action,
            subject: self.subject,
            detail: self.detail,
        };
        (record, self.prev, self.hash)
    }
}

/// Where a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// 1-based line of the export.
    pub line: usize,
    /// The first sequence number that cannot be trusted.
    pub seq: i64,
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: record {}: {}", self.line, self.seq, self.why)
    }
}

/// What a verified chain holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records in the export.
    pub records: i64,
    /// The last record retention deleted before the export's first (0:
    /// the export starts at record 1).
    pub pruned_through: i64,
    pub last_hash: [u8; 32],
    /// Signed checkpoints found (all valid).
    pub checkpoints: i64,
    /// The last record a checkpoint vouches for (0 if none).
    pub signed_upto: i64,
    /// The key of the last checkpoint.
    pub public_key: Option<[u8; 32]>,
}

/// The action of checkpoint records.
pub const CHECKPOINT: &str = "checkpoint";

/// The action of the record retention writes when it deletes records of
/// a class; for the audit class its detail names the last deleted record
/// (`through_seq`) and its hash (`through_hash`), which is what lets a log
/// whose oldest records were deleted still verify from its first kept one.
pub const EXPIRED: &str = "retention.expired";

/// Whether `r` is a retention record vouching for the deletion of every
/// record up to `through` (seq and hash hex).
fn vouches_for(r: &Record, through: &(i64, String)) -> bool {
    r.action == EXPIRED
        && r.detail["class"] == "audit"
        && r.detail["through_seq"] == through.0
        && r.detail["through_hash"] == through.1.as_str()
}

/// What a checkpoint signs: the head of the chain after record `upto`.
pub fn checkpoint_message(upto: i64, head: &[u8; 32]) -> String {
    format!("ripcord audit checkpoint {upto} {}", hex(head))
}

/// The `detail` of a checkpoint record after record `upto`.
pub fn checkpoint_detail(key: &ed25519_dalek::SigningKey, upto: i64, head: &[u8; 32]) -> Value {
    use ed25519_dalek::Signer;
    let signature = key.sign(checkpoint_message(upto, head).as_bytes());
    serde_json::json!({
        "upto": upto,
        "hash": hex(head),
        "public_key": hex(key.verifying_key().as_bytes()),
        "signature": signature.to_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>(),
    })
}

/// Bytes from lowercase or uppercase hex of exactly `2N` digits.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Checks a checkpoint record against the chain head before it.
fn check_checkpoint(
    r: &Record,
    head: &[u8; 32],
    pinned: Option<&[u8; 32]>,
) -> Result<[u8; 32], String> {
    let d = &r.detail;
    if d["upto"].as_i64() != Some(r.seq - 1) || d["hash"].as_str() != Some(hex(head).as_str()) {
        return Err("checkpoint does not name the chain head before it".into());
    }
    let key: [u8; 32] = d["public_key"]
        .as_str()
        .and_then(unhex)
        .ok_or("checkpoint public_key is not 32 bytes of hex")?;
    if pinned.is_some_and(|p| *p != key) {
        return Err(format!(
            "checkpoint signed by key {}, not the pinned key",
            hex(&key)
        ));
    }
    let signature: [u8; 64] = d["signature"]
        .as_str()
        .and_then(unhex)
        .ok_or("checkpoint signature is not 64 bytes of hex")?;
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|e| format!("checkpoint public_key: {e}"))?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    verifying
        .verify_strict(checkpoint_message(r.seq - 1, head).as_bytes(), &signature)
        .map_err(|_| "checkpoint signature does not verify".to_string())?;
    Ok(key)
}

/// A JSON value as canonical text: object keys sorted, no whitespace.
/// The audit chain hashes records in this form; evidence bundles are
/// content-addressed by it.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Writes a JSON value with object keys sorted, without whitespace.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        // Scalars have one rendering in serde_json.
        other => out.push_str(&other.to_string()),
    }
}

fn record_fields(r: &Record) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("action".into(), Value::from(r.action.clone()));
    map.insert("at".into(), Value::from(r.at));
    map.insert("detail".into(), r.detail.clone());
    map.insert("principal".into(), Value::from(r.principal.clone()));
    map.insert("seq".into(), Value::from(r.seq));
    map.insert("subject".into(), Value::from(r.subject.clone()));
    map
}

/// The record's canonical bytes (what is hashed).
pub fn canonical(r: &Record) -> String {
    let mut out = String::new();
    write_canonical(&Value::Object(record_fields(r)), &mut out);
    out
}

/// `SHA-256(prev ‖ canonical(record))`.
pub fn link(prev: &[u8; 32], r: &Record) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical(r).as_bytes());
    h.finalize().into()
}

pub fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The export line of a record with its links.
pub fn to_line(r: &Record, prev: &[u8; 32], hash: &[u8; 32]) -> String {
    let mut map = record_fields(r);
    map.insert("prev".into(), Value::from(hex(prev)));
    map.insert("hash".into(), Value::from(hex(hash)));
    let mut out = String::new();
    write_canonical(&Value::Object(map), &mut out);
    out
}

/// Verifies an export from its first record (seq 1) to its last.
pub fn verify(text: &str) -> Result<Verified, Broken> {
    verify_with(text, None)
}

/// Verifies an export; with `pinned`, every checkpoint must be signed by
/// that key.
pub fn verify_with(text: &str, pinned: Option<&[u8; 32]>) -> Result<Verified, Broken> {
    walk(text, pinned, &mut |_, _| Ok(()))
}

/// What [`walk`] calls with each linked record and its hash; an error
/// refuses the record.
type EachRecord<'a> = dyn FnMut(&Record, &[u8; 32]) -> Result<(), String> + 'a;

/// Checks the chain line by line; `each` sees every linked record and its
/// hash and may refuse it (the line's error says why).
fn walk(
    text: &str,
    pinned: Option<&[u8; 32]>,
    each: &mut EachRecord<'_>,
) -> Result<Verified, Broken> {
    let mut prev = GENESIS;
    let mut expected = 1i64;
    let mut checkpoints = 0;
    let mut signed_upto = 0;
    let mut public_key = None;
    // Records retention deleted before the first line, until a retention
    // record vouches for them: (last deleted seq, its hash).
    let mut pruned: Option<(i64, String)> = None;
    let mut vouched = false;
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Ok(Verified {
            records: 0,
            pruned_through: 0,
            last_hash: GENESIS,
            checkpoints,
            signed_upto,
            public_key,
        });
    }
    // An export that starts after record 1 links from its first line's
    // `prev` (a bad one fails that line's check below).
    if let Some(first) = body
        .split('\n')
        .next()
        .and_then(|l| serde_json::from_str::<Line>(l).ok())
        .filter(|l| l.seq > 1)
    {
        prev = unhex(&first.prev).unwrap_or(GENESIS);
        expected = first.seq;
        pruned = Some((first.seq - 1, first.prev));
    }
    for (i, raw) in body.split('\n').enumerate() {
        let broken = |why: String| Broken {
            line: i + 1,
            seq: expected,
            why,
        };
        let line: Line =
            serde_json::from_str(raw).map_err(|e| broken(format!("not an audit record: {e}")))?;
        let (record, prev_hex, hash_hex) = line.into_parts();
        if record.seq != expected {
            return Err(broken(format!(
                "sequence {} where {expected} belongs: a record was deleted, inserted or moved",
                record.seq
            )));
        }
        if prev_hex != hex(&prev) {
            return Err(broken(
                "prev does not match the hash of the record before".into(),
            ));
        }
        let hash = link(&prev, &record);
        if hash_hex != hex(&hash) {
            return Err(broken(
                "hash does not match the record: it was changed".into(),
            ));
        }
        if to_line(&record, &prev, &hash) != raw {
            return Err(broken(
                "not in canonical form: the line was edited without changing its values".into(),
            ));
        }
        if record.action == CHECKPOINT {
            public_key = Some(check_checkpoint(&record, &prev, pinned).map_err(broken)?);
            checkpoints += 1;
            signed_upto = record.seq - 1;
        }
        each(&record, &hash).map_err(broken)?;
        vouched = vouched || pruned.as_ref().is_some_and(|p| vouches_for(&record, p));
        prev = hash;
        expected += 1;
    }
    let pruned_through = pruned.as_ref().map_or(0, |p| p.0);
    if pruned.is_some() && !vouched {
        return Err(Broken {
            line: 1,
            seq: 1,
            why: format!(
                "records 1–{pruned_through} are missing and no retention record accounts \
                 for them: they were deleted"
            ),
        });
    }
    Ok(Verified {
        records: expected - 1 - pruned_through,
        pruned_through,
        last_hash: prev,
        checkpoints,
        signed_upto,
        public_key,
    })
}

/// A checkpoint published outside the store (`--audit-checkpoints`): the
/// checkpoint record's export line, by which the log can be held to what
/// the server signed even when its database was rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// 1-based line of the checkpoints file.
    pub line: usize,
    /// The checkpoint record's sequence number.
    pub seq: i64,
    /// The record's chain hash: it covers the record and every one before.
    pub hash: [u8; 32],
}

/// Reads a checkpoints file: one checkpoint export line per line, each
/// signed by `key`. Errors name the line.
pub fn parse_published(text: &str, key: &[u8; 32]) -> Result<Vec<Published>, String> {
    let mut out: Vec<Published> = Vec::new();
    for (i, raw) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = |why: String| format!("line {}: {why}", i + 1);
        let line: Line =
            serde_json::from_str(raw).map_err(|e| at(format!("not an audit checkpoint: {e}")))?;
        let prev: [u8; 32] =
            unhex(&line.prev).ok_or_else(|| at("prev: not 32 bytes of hex".into()))?;
        let (record, _, hash_hex) = line.into_parts();
        if record.action != CHECKPOINT {
            return Err(at(format!(
                "action: \"{}\" is not a checkpoint",
                record.action
            )));
        }
        let hash = link(&prev, &record);
        if hash_hex != hex(&hash) {
            return Err(at("hash does not match the record".into()));
        }
        check_checkpoint(&record, &prev, Some(key)).map_err(at)?;
        if out.last().is_some_and(|p| p.seq >= record.seq) {
            return Err(at(format!(
                "seq: {} does not follow the line before",
                record.seq
            )));
        }
        out.push(Published {
            line: i + 1,
            seq: record.seq,
            hash,
        });
    }
    Ok(out)
}

/// What a verification with the server's key holds the log to, beyond an
/// unbroken chain.
#[derive(Clone, Debug)]
pub struct Expect<'a> {
    /// The checkpoint key: every checkpoint must be signed by it.
    pub key: [u8; 32],
    /// Checkpoints published outside the store, in order.
    pub published: &'a [Published],
    /// The server's checkpoint period (ms): no record may wait longer than
    /// this (plus `grace_ms`) for a checkpoint.
    pub period_ms: i64,
    /// Slack for a checkpoint that came late (a busy store, a record
    /// stamped just before the tick but committed after it).
    pub grace_ms: i64,
    /// Now, in ms since the epoch: the unsigned tail may be at most a
    /// period old.
    pub now_ms: i64,
}

/// Verifies an export against the server's key and what it published: the
/// log must not be empty, must hold every published checkpoint exactly, and
/// no record may have gone unsigned for longer than a period.
pub fn verify_signed(text: &str, expect: &Expect) -> Result<Verified, Broken> {
    if text.trim().is_empty() {
        return Err(Broken {
            line: 0,
            seq: 1,
            why: "the log is empty, but a key was given: a server that signs has records \
                  (were they deleted, or is --data-dir wrong?)"
                .into(),
        });
    }
    let limit = expect.period_ms.saturating_add(expect.grace_ms);
    let mut next = expect.published.iter().peekable();
    // The first record not yet covered by a checkpoint: (seq, at).
    let mut unsigned: Option<(i64, i64)> = None;
    let mut each = |r: &Record, hash: &[u8; 32]| -> Result<(), String> {
        // Checkpoints of records retention deleted: only possible before
        // the first record, since no record in between can be missing.
        while next.next_if(|p| p.seq < r.seq).is_some() {}
        if let Some(p) = next.next_if(|p| p.seq == r.seq)
            && p.hash != *hash
        {
            return Err(format!(
                "not the checkpoint published on line {} of the checkpoints file: \
                 the log was rewritten",
                p.line
            ));
        }
        if r.action == CHECKPOINT {
            unsigned = None;
            return Ok(());
        }
        let (first, since) = *unsigned.get_or_insert((r.seq, r.at));
        let span = r.at.saturating_sub(since);
        if span > limit {
            return Err(format!(
                "records {first}–{} span {} with no checkpoint, more than the period ({}) \
                 allows: checkpoints were dropped",
                r.seq,
                ms(span),
                ms(expect.period_ms)
            ));
        }
        Ok(())
    };
    let verified = walk(text, Some(&expect.key), &mut each)?;
    let last = verified.pruned_through + verified.records;
    let end = Broken {
        line: verified.records as usize + 1,
        seq: last + 1,
        why: String::new(),
    };
    if let Some(p) = expect.published.iter().rev().find(|p| p.seq > last) {
        return Err(Broken {
            why: format!(
                "the log ends at record {}, but checkpoint record {} was published \
                 (line {} of the checkpoints file): records were cut off",
                last, p.seq, p.line
            ),
            ..end
        });
    }
    if let Some((first, since)) = unsigned {
        let age = expect.now_ms.saturating_sub(since);
        if age > limit {
            return Err(Broken {
                why: format!(
                    "records {first}–{} are unsigned and the oldest is {} old, more than the \
                     period ({}) allows: the server stopped without signing them, or the \
                     checkpoints after them were cut off",
                    last,
                    ms(age),
                    ms(expect.period_ms)
                ),
                ..end
            });
        }
    }
    Ok(verified)
}

/// A span in ms as people read it: `90s`, `1500ms`.
fn ms(span: i64) -> String {
    if span % 1000 == 0 {
        format!("{}s", span / 1000)
    } else {
        format!("{span}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: i64) -> String {
        chain_v(n, 0)
    }

    /// A chain whose record 2 says `v` (a rewritten history for v ≠ 0).
    fn chain_v(n: i64, v: i64) -> String {
        let mut prev = GENESIS;
        let mut text = String::new();
        for seq in 1..=n {
            let r = Record {
                seq,
                at: 1_795_168_800_000 + seq * 1000,
                principal: if seq % 3 == 0 { "alice" } else { "engine" }.into(),
                action: "decision.action".into(),
                subject: "support-bot-1".into(),
                detail: json!({"share": 0.25, "reason": "moderation ×4", "n": seq, "tiny": 1e-7,
                    "v": if seq == 2 { v } else { 0 }}),
            };
            let hash = link(&prev, &r);
            text.push_str(&to_line(&r, &prev, &hash));
            text.push('\n');
            prev = hash;
        }
        text
    }

    /// `base` with a checkpoint appended.
    fn signed(base: String, key: &ed25519_dalek::SigningKey) -> String {
        let text = base;
        let n = verify(&text).unwrap().records + 1;
        let head = verify(&text).unwrap().last_hash;
        let r = Record {
            seq: n,
            at: 1,
            principal: "ripcord".into(),
            action: CHECKPOINT.into(),
            subject: "audit".into(),
            detail: checkpoint_detail(key, n - 1, &head),
        };
        let hash = link(&head, &r);
        text + &to_line(&r, &head, &hash) + "\n"
    }

    /// `chain(n)` with a retention record appended that names record
    /// `through` (and its hash) as the last one deleted, and the lines up
    /// to `through` cut off.
    fn pruned(n: i64, through: i64, vouch_hash: Option<&str>) -> String {
        let full = chain(n);
        let lines: Vec<&str> = full.lines().collect();
        let cut_hash = serde_json::from_str::<Value>(lines[through as usize - 1]).unwrap()["hash"]
            .as_str()
            .unwrap()
            .to_string();
        let last: Value = serde_json::from_str(lines[n as usize - 1]).unwrap();
        let prev = unhex::<32>(last["hash"].as_str().unwrap()).unwrap();
        let r = Record {
            seq: n + 1,
            at: 1_795_168_900_000,
            principal: "ripcord".into(),
            action: EXPIRED.into(),
            subject: "audit".into(),
            detail: json!({"class": "audit", "deleted": through, "through_seq": through,
                "through_hash": vouch_hash.unwrap_or(&cut_hash)}),
        };
        let hash = link(&prev, &r);
        let mut text: String = lines[through as usize..]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&to_line(&r, &prev, &hash));
        text.push('\n');
        text
    }

    /// A record of a real log (record 16 of the dashboard test's): its
    /// floats' shortest decimal forms parse back to the same doubles only
    /// with serde_json's exact float parser (`float_roundtrip`, now on for
    /// the workspace). Without it the server and `ripcord audit verify`
    /// recomputed the hash from a neighbouring double and read a genuine
    /// log as changed. Test builds always had the exact parser (the
    /// dev-dependency jsonschema turns it on), which is how the bug hid:
    /// this test pins the behaviour, and the dashboard's browser test,
    /// which verifies a real server's log, is the one that caught it.
    #[test]
    fn a_record_with_long_decimals_links_to_its_own_hash() {
        let raw = r#"{"action":"decision.criterion_breached","at":1796655955636,"detail":{"at":"2026-12-07T15:05:55.629Z","explanation":{"criterion":"moderation_rel","evidence":[{"bound":"candidate ≤ 1.2 × baseline","breached_for":"1.001s","confidence":0.95,"criterion":"moderation_rel","estimate":3.8868745467730235,"interval":[1.6101822610827379,null],"samples":{"baseline":{"flagged_or_sum":14.0,"n":670.0},"candidate":{"flagged_or_sum":48.0,"n":591.0}},"signal":"moderation_fail","statistic":3347.8126070922267,"test":"flags split per stratum of realised counts, noncentral hypergeometric mixture likelihood ratio (anytime-valid)","threshold":40.0,"window":"20s","window_estimate":3.8868745467730235,"window_samples":{"baseline":{"flagged_or_sum":14.0,"n":670.0},"candidate":{"flagged_or_sum":48.0,"n":591.0}}}],"release":"chat:v1->v2#1","summary":"moderation_rel breached: candidate ≤ 1.2 × baseline — estimate 3.887 (last 20s: 3.887); statistic 3347.8 vs 40 at 95% confidence; candidate 48/591, baseline 14/670"},"kind":"criterion_breached","service":"chat"},"hash":"b95e3862bfa511ea9fb6c4bb31a814f456f1f23f6f4db510c1f4ec0db8bc3e69","prev":"d0058c6422177e783070791e2d4cfdc3ddb81fe043ab0a4bfeb33521e798fab0","principal":"engine","seq":16,"subject":"chat-1"}"#;
        let line: Line = serde_json::from_str(raw).unwrap();
        let (record, prev, hash) = line.into_parts();
        let prev = unhex::<32>(&prev).unwrap();
        assert_eq!(hex(&link(&prev, &record)), hash);
        assert_eq!(to_line(&record, &prev, &link(&prev, &record)), raw);
    }

    #[test]
    fn a_log_whose_oldest_records_retention_deleted_verifies_from_its_first_kept_record() {
        let verified = verify(&pruned(10, 4, None)).unwrap();
        assert_eq!((verified.pruned_through, verified.records), (4, 7));
    }

    #[test]
    fn a_deleted_prefix_no_retention_record_accounts_for_is_found() {
        let text: String = chain(10)
            .lines()
            .skip(4)
            .map(|l| format!("{l}\n"))
            .collect();
        let broken = verify(&text).unwrap_err();
        assert_eq!((broken.line, broken.seq), (1, 1));
        assert!(
            broken.why.contains("records 1–4 are missing"),
            "{}",
            broken.why
        );
        // A retention record naming another hash does not vouch either.
        let forged = pruned(10, 4, Some(&"ab".repeat(32)));
        assert!(
            verify(&forged)
                .unwrap_err()
                .why
                .contains("records 1–4 are missing")
        );
    }

    #[test]
    fn a_signed_checkpoint_vouches_for_the_chain_and_a_rewrite_needs_the_key() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let text = signed(chain(5), &key);
        let pinned = *key.verifying_key().as_bytes();
        let v = verify_with(&text, Some(&pinned)).unwrap();
        assert_eq!((v.records, v.checkpoints, v.signed_upto), (6, 1, 5));
        // Someone rewrites record 2 and recomputes every hash and the
        // checkpoint with a key of their own: the pinned key exposes it.
        let forger = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let forged = signed(chain_v(5, 1), &forger);
        assert!(verify(&forged).is_ok());
        let err = verify_with(&forged, Some(&pinned)).unwrap_err();
        assert_eq!(err.seq, 6);
        assert!(err.why.contains("not the pinned key"), "{}", err.why);
        // Reusing the real signature over a different head fails.
        let real: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let mut stolen: Value = serde_json::from_str(forged.lines().last().unwrap()).unwrap();
        stolen["detail"]["public_key"] = real["detail"]["public_key"].clone();
        stolen["detail"]["signature"] = real["detail"]["signature"].clone();
        let r: Record = serde_json::from_value(json!({
            "seq": 6, "at": 1, "principal": "ripcord", "action": CHECKPOINT,
            "subject": "audit", "detail": stolen["detail"],
        }))
        .unwrap();
        let head = verify(&chain_v(5, 1)).unwrap().last_hash;
        let line = to_line(&r, &head, &link(&head, &r));
        let spliced = chain_v(5, 1) + &line + "\n";
        let err = verify(&spliced).unwrap_err();
        assert_eq!(err.why, "checkpoint signature does not verify");
    }

    fn expect(
        key: &ed25519_dalek::SigningKey,
        published: &[Published],
        period_s: i64,
    ) -> Expect<'static> {
        Expect {
            key: *key.verifying_key().as_bytes(),
            published: Vec::leak(published.to_vec()),
            period_ms: period_s * 1000,
            grace_ms: 0,
            // A second after chain()'s fifth record.
            now_ms: 1_795_168_806_000,
        }
    }

    #[test]
    fn with_a_key_an_empty_log_or_a_long_unsigned_span_is_refused() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let err = verify_signed("", &expect(&key, &[], 60)).unwrap_err();
        assert_eq!((err.line, err.seq), (0, 1));
        assert!(
            err.why.starts_with("the log is empty, but a key was given"),
            "{}",
            err.why
        );
        // Records a second apart, signed at the end: fine for a 60 s period.
        let text = signed(chain(5), &key);
        assert_eq!(
            verify_signed(&text, &expect(&key, &[], 60))
                .unwrap()
                .records,
            6
        );
        // A 2 s period: records 1–4 already span 3 s without a checkpoint.
        let err = verify_signed(&text, &expect(&key, &[], 2)).unwrap_err();
        assert_eq!(err.seq, 4);
        assert_eq!(
            err.why,
            "records 1–4 span 3s with no checkpoint, more than the period (2s) allows: \
             checkpoints were dropped"
        );
        // The same records unsigned, checked an hour later.
        let mut late = expect(&key, &[], 60);
        late.now_ms += 3_600_000;
        let err = verify_signed(&chain(5), &late).unwrap_err();
        assert_eq!((err.line, err.seq), (6, 6));
        assert!(
            err.why
                .starts_with("records 1–5 are unsigned and the oldest is 3605s old"),
            "{}",
            err.why
        );
        // Unsigned but younger than a period: the server signs them soon.
        assert!(verify_signed(&chain(5), &expect(&key, &[], 60)).is_ok());
    }

    #[test]
    fn published_checkpoints_find_a_cut_or_a_re_signed_log() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let text = signed(chain(5), &key);
        let file = text.lines().last().unwrap().to_string() + "\n";
        let published = parse_published(&file, key.verifying_key().as_bytes()).unwrap();
        assert_eq!(published[0].seq, 6);
        assert!(verify_signed(&text, &expect(&key, &published, 60)).is_ok());
        let err = verify_signed(&chain(4), &expect(&key, &published, 60)).unwrap_err();
        assert_eq!(
            err.why,
            "the log ends at record 4, but checkpoint record 6 was published \
             (line 1 of the checkpoints file): records were cut off"
        );
        // Whoever holds the key rewrites record 2 and signs again: the
        // published checkpoint still tells.
        let resigned = signed(chain_v(5, 1), &key);
        let err = verify_signed(&resigned, &expect(&key, &published, 60)).unwrap_err();
        assert_eq!(err.seq, 6);
        assert!(err.why.contains("published on line 1"), "{}", err.why);
        // A published line signed by another key is refused, naming its line.
        let other = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]);
        let err = parse_published(&file, other.verifying_key().as_bytes()).unwrap_err();
        assert!(err.starts_with("line 1: checkpoint signed by key"), "{err}");
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let v = verify(&chain(12)).unwrap();
        assert_eq!(v.records, 12);
        assert_eq!(verify("").unwrap().records, 0);
    }

    #[test]
    fn the_first_link_is_sha256_of_zeros_and_the_canonical_record() {
        let r = Record {
            seq: 1,
            at: 5,
            principal: "p".into(),
            action: "a".into(),
            subject: "s".into(),
            detail: json!({"b": 1, "a": [true, null]}),
        };
        assert_eq!(
            canonical(&r),
            r#"{"action":"a","at":5,"detail":{"a":[true,null],"b":1},"principal":"p","seq":1,"subject":"s"}"#
        );
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(canonical(&r).as_bytes());
        let expected: [u8; 32] = h.finalize().into();
        assert_eq!(link(&GENESIS, &r), expected);
    }

    #[test]
    fn deleting_inserting_or_moving_a_record_is_found_at_its_place() {
        let text = chain(6);
        let lines: Vec<&str> = text.lines().collect();
        let join = |ls: Vec<&str>| ls.join("\n") + "\n";
        let deleted = join([&lines[..2], &lines[3..]].concat());
        assert_eq!(verify(&deleted).unwrap_err().seq, 3);
        let moved = join(vec![
            lines[0], lines[2], lines[1], lines[3], lines[4], lines[5],
        ]);
        assert_eq!(verify(&moved).unwrap_err().seq, 2);
        let inserted = join(vec![lines[0], lines[1], lines[1], lines[2]]);
        let err = verify(&inserted).unwrap_err();
        assert_eq!((err.line, err.seq), (3, 3));
        let truncated_front = join(lines[1..].to_vec());
        assert_eq!(verify(&truncated_front).unwrap_err().seq, 1);
    }

    #[test]
    fn every_single_byte_change_is_found() {
        let text = chain(5);
        let bytes = text.as_bytes();
        // Every position, three replacement bytes each (a neighbour, a
        // digit, a space), plus every hex digit flipped to upper case.
        for i in 0..bytes.len() {
            for replacement in [bytes[i] ^ 1, b'7', b' ', bytes[i].to_ascii_uppercase()] {
                if replacement == bytes[i] {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[i] = replacement;
                let Ok(changed) = String::from_utf8(changed) else {
                    continue; // not text: an export cannot hold it
                };
                assert!(
                    verify(&changed).is_err(),
                    "byte {i} ({:?} → {:?}) went unnoticed",
                    bytes[i] as char,
                    replacement as char
                );
            }
        }
    }
}
