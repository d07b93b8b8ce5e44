//! The retention worker's queries: what is due, the pending-deletion journal, finishing deletions
//! in one transaction, the worker's counters, and the sweep lock that lets one node sweep at a time.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};
use tokio_postgres::Row;

use super::Locks;
use super::convert::{
    collect, execute, first, get, int, parse, recording_id, scalar, sql_limit, ts, uint,
};
use super::recordings::{RECORDING_COLS, read_recording};
use super::trails::{insert_audit, insert_ledger};
use crate::catalog::{
    CatalogError, FinishedDeletion, PendingDeletion, RecordingRow, RetentionProgress, SweepLock,
};
use crate::domain::{RecordingId, SegmentNo};

/// True for the recording `r` when an active hold covers it: linked to it, or on its caller with a
/// range that holds its start (the rule of `holds_for_recording`).
const HELD: &str = "(EXISTS (SELECT 1 FROM hold_links AS l JOIN holds AS h ON h.id = l.hold_id \
       WHERE l.recording_id = r.id AND h.released_at IS NULL) \
     OR EXISTS (SELECT 1 FROM holds AS h WHERE h.released_at IS NULL \
       AND h.caller_tag IS NOT NULL AND h.caller_tag = r.caller_tag \
       AND (h.covers_from IS NULL OR h.covers_from <= r.started_at) \
       AND (h.covers_to IS NULL OR r.started_at < h.covers_to)))";

/// The statuses whose recordings still have audio that retention may delete at expiry (the
/// partial index `recordings_due` has the same list).
const WITH_AUDIO: &str = "('sealed', 'pci_review', 'quarantined')";

/// `statuses` as an SQL list of their frozen texts (never empty: a status no row has stands in).
fn status_list(statuses: &[crate::catalog::RecordingStatus]) -> String {
    if statuses.is_empty() {
        return "('')".to_owned();
    }
    let texts: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", texts.join(", "))
}

pub(super) async fn expired_recordings(
    c: &Object,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<RecordingRow>, CatalogError> {
    let cols = RECORDING_COLS
        .split(", ")
        .map(|col| format!("r.{col}"))
        .collect::<Vec<_>>()
        .join(", ");
    // two selects, each on its partial index: what expired, and refusals kept under a hold (their
    // expiry is the refusal) whose last hold is released
    let rest = format!(
        "r.expires_at IS NOT NULL AND r.expires_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM segments AS s \
                         WHERE s.recording_id = r.id AND s.status = 'spooled') \
         AND NOT EXISTS (SELECT 1 FROM retention_pending AS p WHERE p.recording_id = r.id) \
         AND NOT {HELD}"
    );
    collect(
        c,
        &format!(
            "SELECT * FROM (SELECT {cols} FROM recordings AS r \
             WHERE r.status IN {WITH_AUDIO} AND {rest} \
             UNION ALL SELECT {cols} FROM recordings AS r \
             WHERE r.status = 'refusal_held' AND {rest}) AS due \
             ORDER BY expires_at, id LIMIT $2"
        ),
        &[&ts(&now), &sql_limit(limit)],
        read_recording,
    )
    .await
}

pub(super) async fn begin_deletions(
    c: &mut Object,
    locks: Locks,
    pending: &[PendingDeletion],
) -> Result<Vec<RecordingId>, CatalogError> {
    let tx = c.transaction().await?;
    // no hold can be placed or linked between the check that a recording is not held and the
    // commit of its pending row (see `holds`)
    locks.holds(&tx).await?;
    let mut begun = Vec::with_capacity(pending.len());
    for p in pending {
        let id = p.recording_id.as_uuid();
        let segment = p.segment.map(|s| i64::from(s.0));
        let already = first(
            &tx,
            "SELECT cause, segment FROM retention_pending WHERE recording_id = $1",
            &[&id],
            |r| Ok((get::<String>(r, 0)?, get::<Option<i64>>(r, 1)?)),
        )
        .await?;
        if let Some((cause, pending_segment)) = already {
            // the same deletion is begun already; another one waits until it is finished
            if cause == p.cause.as_str() && pending_segment == segment {
                begun.push(p.recording_id);
            }
            continue;
        }
        let held = if p.cause.stopped_by_holds() {
            format!("AND NOT {HELD}")
        } else {
            String::new()
        };
        let eligible: bool = scalar(
            &tx,
            &format!(
                "SELECT EXISTS (SELECT 1 FROM recordings AS r \
                 WHERE r.id = $1 AND r.status IN {} {held})",
                status_list(&p.cause.acts_on())
            ),
            &[&id],
        )
        .await?;
        if !eligible {
            continue;
        }
        execute(
            &tx,
            "INSERT INTO retention_pending (recording_id, cause, actor, reason, requested_at, \
             segment) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &id,
                &p.cause.as_str(),
                &p.actor,
                &p.reason,
                &ts(&p.requested_at),
                &segment,
            ],
        )
        .await?;
        begun.push(p.recording_id);
    }
    tx.commit().await?;
    Ok(begun)
}

fn read_pending(r: &Row) -> Result<PendingDeletion, CatalogError> {
    let id = recording_id(r, 0)?;
    Ok(PendingDeletion {
        recording_id: id,
        cause: parse(get(r, 1)?, &|| format!("retention_pending {id}: cause"))?,
        actor: get(r, 2)?,
        reason: get(r, 3)?,
        requested_at: get(r, 4)?,
        segment: get::<Option<i64>>(r, 5)?
            .map(|s| uint(s, &|| format!("retention_pending {id}: segment")).map(SegmentNo))
            .transpose()?,
    })
}

pub(super) async fn pending_deletions(
    c: &Object,
    limit: usize,
) -> Result<Vec<PendingDeletion>, CatalogError> {
    collect(
        c,
        "SELECT recording_id, cause, actor, reason, requested_at, segment FROM retention_pending \
         ORDER BY requested_at, recording_id LIMIT $1",
        &[&sql_limit(limit)],
        read_pending,
    )
    .await
}

pub(super) async fn finish_deletions(
    c: &mut Object,
    locks: Locks,
    done: Vec<FinishedDeletion>,
) -> Result<usize, CatalogError> {
    let tx = c.transaction().await?;
    // the chain's lock first, before any recording's row lock: every transaction that takes both
    // takes them in this order, so two of them cannot deadlock
    locks.audit(&tx).await?;
    let mut finished = 0;
    for d in done {
        let id = d.recording_id.as_uuid();
        let removed = execute(
            &tx,
            "DELETE FROM retention_pending WHERE recording_id = $1",
            &[&id],
        )
        .await?;
        if removed == 0 {
            continue;
        }
        // the keys go, and with them every way to read the audio, also in object-store backups
        match d.segment {
            None => {
                execute(
                    &tx,
                    "UPDATE segments SET kek_id = NULL, wrapped_key = NULL, \
                     status = CASE WHEN status = 'excised' THEN status ELSE 'deleted' END \
                     WHERE recording_id = $1",
                    &[&id],
                )
                .await?
            }
            Some(n) => {
                execute(
                    &tx,
                    "UPDATE segments SET kek_id = NULL, wrapped_key = NULL, status = 'excised' \
                     WHERE recording_id = $1 AND segment = $2",
                    &[&id, &i64::from(n.0)],
                )
                .await?
            }
        };
        // then the caller's number and tag, and the sealed notes, when the audio is gone: the
        // tombstone keeps no personal data
        if d.forget_caller {
            execute(
                &tx,
                "DELETE FROM sealed_notes WHERE recording_id = $1",
                &[&id],
            )
            .await?;
        }
        execute(
            &tx,
            "UPDATE recordings SET status = $2, updated_at = $3, \
             caller_tag = CASE WHEN $4 THEN NULL ELSE caller_tag END, \
             caller_sealed = CASE WHEN $4 THEN NULL ELSE caller_sealed END WHERE id = $1",
            &[&id, &d.status.as_str(), &ts(&d.at), &d.forget_caller],
        )
        .await?;
        insert_ledger(&tx, d.ledger).await?;
        insert_audit(&tx, locks, d.audit).await?;
        finished += 1;
    }
    tx.commit().await?;
    Ok(finished)
}

pub(super) async fn retention_progress(c: &Object) -> Result<RetentionProgress, CatalogError> {
    let what = |col: &'static str| move || format!("retention_progress: {col}");
    let row = first(
        c,
        "SELECT sweeps, expired, erased, last_started_at, last_finished_at, last_deleted, \
         last_error FROM retention_progress WHERE id = 1",
        &[],
        |r| {
            Ok(RetentionProgress {
                sweeps: uint(get(r, 0)?, &what("sweeps"))?,
                expired: uint(get(r, 1)?, &what("expired"))?,
                erased: uint(get(r, 2)?, &what("erased"))?,
                last_started_at: get(r, 3)?,
                last_finished_at: get(r, 4)?,
                last_deleted: uint(get(r, 5)?, &what("last_deleted"))?,
                last_error: get(r, 6)?,
            })
        },
    )
    .await?;
    Ok(row.unwrap_or_default())
}

pub(super) async fn save_retention_progress(
    c: &Object,
    p: &RetentionProgress,
) -> Result<(), CatalogError> {
    execute(
        c,
        "INSERT INTO retention_progress (id, sweeps, expired, erased, last_started_at, \
         last_finished_at, last_deleted, last_error) VALUES (1, $1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET sweeps = $1, expired = $2, erased = $3, \
         last_started_at = $4, last_finished_at = $5, last_deleted = $6, last_error = $7",
        &[
            &int(p.sweeps, "sweeps")?,
            &int(p.expired, "expired")?,
            &int(p.erased, "erased")?,
            &p.last_started_at.as_ref().map(ts),
            &p.last_finished_at.as_ref().map(ts),
            &int(p.last_deleted, "last_deleted")?,
            &p.last_error,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn recordings_after(
    c: &Object,
    after: Option<RecordingId>,
    limit: usize,
) -> Result<Vec<RecordingRow>, CatalogError> {
    let after = after.map(|id| id.as_uuid());
    collect(
        c,
        &format!(
            "SELECT {RECORDING_COLS} FROM recordings WHERE $1::uuid IS NULL OR id > $1 \
             ORDER BY id LIMIT $2"
        ),
        &[&after, &sql_limit(limit)],
        read_recording,
    )
    .await
}

/// Takes the session-scoped sweep lock on a connection of its own, taken out of the pool: the lock
/// lives as long as that session. Dropping the [`SweepLock`] closes the session, and the server
/// frees the lock (as it does when a node dies mid-sweep, so a lock is never left behind).
pub(super) async fn try_lock_sweep(
    pool: &Pool,
    locks: Locks,
) -> Result<Option<SweepLock>, CatalogError> {
    let c = pool.get().await?;
    let taken = locks.try_sweep(&c).await?;
    if !taken {
        // the connection holds nothing: back to the pool
        return Ok(None);
    }
    Ok(Some(SweepLock::new(Object::take(c))))
}
