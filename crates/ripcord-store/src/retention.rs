//! Deleting by age (retention) without touching what legal holds keep.
//!
//! Each pass deletes at most `limit` rows of one class in one transaction
//! (small batches: the writer waits for none of them long), oldest first.
//! Raw events also keep what a restart still replays: a journal entry goes
//! only once the service's snapshot covers it or a later release started.

use serde_json::{Value, json};

// SQL built here (`q_built`) is made of constants and numbered
// placeholders only; every value is bound.
use crate::db::{Arg, Rows, Tx, q, q_built};
use crate::{DataClass, Expired, Held, Result};

/// `$from, $from+1, …` for `n` bound values.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` AND (column IS NULL OR column NOT IN (…))`, or nothing when `held`
/// is empty; its values are bound from `$from` on.
fn not_held(column: &str, held: usize, from: usize) -> String {
    if held == 0 {
        return String::new();
    }
    format!(
        " AND ({column} IS NULL OR {column} NOT IN ({}))",
        placeholders(from, held)
    )
}

/// Runs `SELECT COUNT(*) … WHERE <filter> AND column IN held` with
/// `before_ms` as `$1`: how many old-enough rows a hold keeps.
async fn count_held(
    tx: &mut Tx,
    table_and_filter: &str,
    column: &str,
    before_ms: i64,
    held: &std::collections::BTreeSet<String>,
) -> Result<u64> {
    if held.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "SELECT COUNT(*) FROM {table_and_filter} AND {column} IN ({})",
        placeholders(2, held.len())
    );
    let mut query = q_built(sql).bind(before_ms);
    for h in held {
        query = query.bind(h);
    }
    let count: i64 = query.scalar(&mut *tx).await?;
    Ok(count.max(0) as u64)
}

/// The rows one pass deletes, found by a SELECT of their keys with
/// `before_ms` as `$1`, `limit` as `$2` and the held values after.
async fn keys<T>(
    tx: &mut Tx,
    sql: String,
    (before_ms, limit): (i64, i64),
    held: &std::collections::BTreeSet<String>,
) -> Result<Vec<T>>
where
    (T,): Rows,
{
    let mut query = q_built(sql).bind(before_ms).bind(limit);
    for h in held {
        query = query.bind(h);
    }
    let rows: Vec<(T,)> = query.fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(|(k,)| k).collect())
}

/// Deletes rows of `table` whose `column` is one of `values`.
async fn delete_in<'a, T>(tx: &mut Tx, table: &str, column: &str, values: &'a [T]) -> Result<()>
where
    &'a T: Into<Arg<'a>>,
{
    for chunk in values.chunks(500) {
        let sql = format!(
            "DELETE FROM {table} WHERE {column} IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = q_built(sql);
        for v in chunk {
            query = query.bind(v);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// One pass over a class: what it deleted, and the detail its retention
/// record adds.
pub(crate) async fn expire(
    tx: &mut Tx,
    class: DataClass,
    (before_ms, limit): (i64, i64),
    held: &Held,
) -> Result<(Expired, Value)> {
    match class {
        DataClass::RawEvents => journal(tx, (before_ms, limit), held).await,
        DataClass::Decisions => decisions(tx, (before_ms, limit), held).await,
        DataClass::Evidence => blobs(tx, (before_ms, limit), held).await,
        DataClass::Audit => audit(tx, (before_ms, limit), held).await,
    }
}

/// Journal entries other than release starts, old enough, no longer
/// replayed by a restart, and of no held release.
const OLD_JOURNAL: &str = "journal j WHERE j.at_ms < $1 AND j.kind <> 'start' \
     AND (j.seq <= COALESCE((SELECT s.journal_seq FROM snapshots s WHERE s.service = j.service), 0) \
       OR j.seq < COALESCE((SELECT MAX(k.seq) FROM journal k \
                            WHERE k.service = j.service AND k.kind = 'start'), 0))";

async fn journal(
    tx: &mut Tx,
    (before_ms, limit): (i64, i64),
    held: &Held,
) -> Result<(Expired, Value)> {
    let sql = format!(
        "SELECT j.seq FROM {OLD_JOURNAL}{} ORDER BY j.seq LIMIT $2",
        not_held("j.release_id", held.releases.len(), 3)
    );
    let seqs: Vec<i64> = keys(tx, sql, (before_ms, limit), &held.releases).await?;
    let kept = count_held(tx, OLD_JOURNAL, "j.release_id", before_ms, &held.releases).await?;
    // Each service's last deleted entry, before the rows go.
    let mut through: Vec<(String, i64)> = Vec::new();
    for chunk in seqs.chunks(500) {
        let sql = format!(
            "SELECT service, MAX(seq) AS last FROM journal WHERE seq IN ({}) GROUP BY service",
            placeholders(1, chunk.len())
        );
        let mut query = q_built(sql);
        for s in chunk {
            query = query.bind(*s);
        }
        let rows: Vec<(String, i64)> = query.fetch_all(&mut *tx).await?;
        through.extend(rows);
    }
    delete_in(tx, "journal", "seq", &seqs).await?;
    for (service, last) in &through {
        mark_pruned(tx, service, *last).await?;
    }
    let services: serde_json::Map<String, Value> = through
        .into_iter()
        .map(|(s, last)| (s, Value::from(last)))
        .collect();
    let expired = Expired {
        deleted: seqs.len() as u64,
        held: kept,
    };
    Ok((expired, json!({ "through_seq": services })))
}

const OLD_DECISIONS: &str = "decisions WHERE at_ms < $1";
const OLD_SERIES: &str = "series WHERE at_ms < $1";

/// Decisions, then the series points drawn from the same figures: a
/// chart of a release should not outlive the decisions it explains, nor
/// go before them. The pass shares `limit` between them (decisions
/// first), so it still deletes at most `limit` rows and the caller's
/// "a full pass means more to do" holds for both.
async fn decisions(
    tx: &mut Tx,
    (before_ms, limit): (i64, i64),
    held: &Held,
) -> Result<(Expired, Value)> {
    let sql = format!(
        "SELECT seq FROM {OLD_DECISIONS}{} ORDER BY seq LIMIT $2",
        not_held("release_id", held.releases.len(), 3)
    );
    let seqs: Vec<i64> = keys(tx, sql, (before_ms, limit), &held.releases).await?;
    let kept = count_held(tx, OLD_DECISIONS, "release_id", before_ms, &held.releases).await?;
    delete_in(tx, "decisions", "seq", &seqs).await?;
    let room = limit - seqs.len() as i64;
    let (points, points_kept) = series(tx, (before_ms, room), held).await?;
    let expired = Expired {
        deleted: seqs.len() as u64 + points,
        held: kept + points_kept,
    };
    Ok((expired, json!({ "series_points": points })))
}

/// Up to `limit` old series points of no held release: how many went,
/// and how many old ones a hold kept.
async fn series(tx: &mut Tx, (before_ms, limit): (i64, i64), held: &Held) -> Result<(u64, u64)> {
    let kept = count_held(tx, OLD_SERIES, "release", before_ms, &held.releases).await?;
    if limit <= 0 {
        return Ok((0, kept));
    }
    // Held values from `$3`, as `keys` binds them.
    let filter = format!(
        "{OLD_SERIES}{}",
        not_held("release", held.releases.len(), 3)
    );
    let mut query = q_built(format!(
        "DELETE FROM series WHERE (release, at_ms) IN \
         (SELECT release, at_ms FROM {filter} ORDER BY at_ms LIMIT $2)"
    ))
    .bind(before_ms)
    .bind(limit);
    for h in &held.releases {
        query = query.bind(h);
    }
    let deleted = query.execute(&mut *tx).await?;
    Ok((deleted, kept))
}

const OLD_BLOBS: &str = "blobs WHERE at_ms < $1";

async fn blobs(
    tx: &mut Tx,
    (before_ms, limit): (i64, i64),
    held: &Held,
) -> Result<(Expired, Value)> {
    let sql = format!(
        "SELECT hash FROM {OLD_BLOBS}{} ORDER BY at_ms, hash LIMIT $2",
        not_held("hash", held.blobs.len(), 3)
    );
    let hashes: Vec<String> = keys(tx, sql, (before_ms, limit), &held.blobs).await?;
    let kept = count_held(tx, OLD_BLOBS, "hash", before_ms, &held.blobs).await?;
    delete_in(tx, "blobs", "hash", &hashes).await?;
    let expired = Expired {
        deleted: hashes.len() as u64,
        held: kept,
    };
    Ok((expired, json!({ "addresses": hashes })))
}

/// The oldest audit records, as a prefix (never the newest record, which
/// the next one links to): up to the first that is too young or about a
/// held subject.
async fn audit(
    tx: &mut Tx,
    (before_ms, limit): (i64, i64),
    held: &Held,
) -> Result<(Expired, Value)> {
    let rows: Vec<(i64, i64, String, String)> = q("SELECT seq, at_ms, subject, hash FROM audit \
         WHERE seq < (SELECT MAX(seq) FROM audit) ORDER BY seq LIMIT $1")
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut last: Option<(i64, String)> = None;
    let mut deleted = 0u64;
    for (seq, at_ms, subject, hash) in rows {
        if at_ms >= before_ms || held.subjects.contains(&subject) {
            break;
        }
        last = Some((seq, hash));
        deleted += 1;
    }
    let kept = count_held(
        tx,
        "audit WHERE at_ms < $1",
        "subject",
        before_ms,
        &held.subjects,
    )
    .await?;
    let Some((through_seq, through_hash)) = last else {
        return Ok((
            Expired {
                deleted: 0,
                held: kept,
            },
            json!({}),
        ));
    };
    q("DELETE FROM audit WHERE seq <= $1")
        .bind(through_seq)
        .execute(&mut *tx)
        .await?;
    let expired = Expired {
        deleted,
        held: kept,
    };
    Ok((
        expired,
        json!({ "through_seq": through_seq, "through_hash": through_hash }),
    ))
}

/// Records that `service`'s journal up to `seq` can no longer be replayed
/// as it was written (the mark only moves forward).
pub(crate) async fn mark_pruned(tx: &mut Tx, service: &str, seq: i64) -> Result<()> {
    q(
        "INSERT INTO pruned (service, through_seq) VALUES ($1, $2) ON CONFLICT (service) \
       DO UPDATE SET through_seq = CASE WHEN excluded.through_seq > pruned.through_seq \
       THEN excluded.through_seq ELSE pruned.through_seq END",
    )
    .bind(service)
    .bind(seq)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
