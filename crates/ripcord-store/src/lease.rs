//! The leader lease (one row, `leader`, of the `leases` table) and the
//! fence every write transaction of a fenced store checks.
//!
//! The lease's epoch is a fencing token: it goes up by one each time the
//! lease changes hands. A leader fences its store to the epoch it won
//! ([`crate::Store::fence`]); from then on each write transaction, once it
//! holds the database's write lock, checks that the row still names that
//! holder and epoch, and rolls back otherwise. Taking the lease is itself a
//! transaction under that lock, so once a new leader has it, no write of
//! an older epoch can commit: the lock orders every write before or after
//! the take-over. An advisory lock alone would not do: a pooler or a
//! dropped connection loses it without telling its holder.
//!
//! The check is of holder and epoch, not of expiry: a lease that has
//! expired but that nobody has taken still lets its holder write, because
//! no other leader can have written in between (taking the lease moves
//! the epoch, under the same lock). Stopping before its lease ends, when
//! it can no longer renew, is the leader's job (its renewal timing); the
//! store's is that a deposed leader cannot write.
//!
//! Time is the database's clock ([`crate::db::now_ms`]), never the
//! caller's, so that no replica's skewed clock moves the lease.

use crate::db::{On, Tx, now_ms, q};
use crate::{Lease, Result, StoreError};

/// What a fenced store writes under: the holder and epoch it won.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(crate) holder: String,
    pub(crate) epoch: i64,
}

/// The row as stored: holder, epoch, expiry.
type Row = (String, i64, i64);

async fn row<'c>(on: impl Into<On<'c>>) -> Result<Option<Row>> {
    q("SELECT holder, epoch, expires_ms FROM leases WHERE name = 'leader'")
        .fetch_optional(on)
        .await
}

fn lease((holder, epoch, expires_ms): Row, now_ms: i64) -> Lease {
    Lease {
        holder,
        epoch,
        expires_ms,
        now_ms,
    }
}

/// Gives `holder` the lease until now + `ttl_ms` when nobody holds it, it
/// has expired or `holder` holds it; a new holder gets the next epoch, a
/// renewal keeps it. Returns the lease as it is after.
pub(crate) async fn acquire(tx: &mut Tx, holder: &str, ttl_ms: i64) -> Result<Lease> {
    let now = now_ms(&mut *tx).await?;
    q(
        "INSERT INTO leases (name, holder, epoch, expires_ms) VALUES ('leader', $1, 1, $2) \
       ON CONFLICT (name) DO UPDATE SET \
         epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch \
                 ELSE leases.epoch + 1 END, \
         holder = excluded.holder, expires_ms = excluded.expires_ms \
       WHERE leases.holder = excluded.holder OR leases.expires_ms <= $3",
    )
    .bind(holder)
    .bind(now.saturating_add(ttl_ms))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let stored = row(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the leader lease row vanished".into()))?;
    Ok(lease(stored, now))
}

/// The lease, if anyone ever took it.
pub(crate) async fn read(pool: &crate::db::Pool) -> Result<Option<Lease>> {
    let now = now_ms(pool).await?;
    Ok(row(pool).await?.map(|r| lease(r, now)))
}

/// Ends `holder`'s lease now, so that the next to ask takes it at once;
/// nothing when someone else holds it. The epoch stays: the next holder
/// gets the one after.
pub(crate) async fn release(tx: &mut Tx, holder: &str) -> Result<()> {
    let now = now_ms(&mut *tx).await?;
    q("UPDATE leases SET expires_ms = $2 \
       WHERE name = 'leader' AND holder = $1 AND expires_ms > $2")
    .bind(holder)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Fails with [`StoreError::Fenced`] unless the lease still names the
/// fence's holder and epoch. Run inside the write transaction, after it
/// took the write lock, so that no take-over can come between this check
/// and the commit.
pub(crate) async fn check(tx: &mut Tx, fence: &Fence) -> Result<()> {
    match row(&mut *tx).await? {
        Some((holder, epoch, _)) if holder == fence.holder && epoch == fence.epoch => Ok(()),
        stored => {
            let (held_by, epoch) = stored.map_or((None, 0), |(h, e, _)| (Some(h), e));
            Err(StoreError::Fenced {
                held_by,
                epoch,
                ours: fence.epoch,
            })
        }
    }
}
