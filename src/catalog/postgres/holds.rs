//! Complaint holds and their links to recordings.
//!
//! Placing or linking a hold takes the holds lock ([`super::Locks::holds`]) that
//! [`begin_deletions`](super::retention::begin_deletions) takes too, so a deletion never starts on
//! a recording that a hold placed at the same moment covers: one of the two goes first, as in
//! SQLite, whose writers take turns.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;

use super::Locks;
use super::convert::{collect, execute, first, get, on_constraint, opt_hash32, opt_ts, scalar, ts};
use crate::catalog::{CatalogError, HoldRow};
use crate::domain::RecordingId;

const HOLD_COLS: &str = "id, reference, reason, actor, created_at, caller_tag, covers_from, \
     covers_to, released_at, released_by, release_reason";

/// [`HOLD_COLS`] of the table aliased `h`.
const H_HOLD_COLS: &str = "h.id, h.reference, h.reason, h.actor, h.created_at, h.caller_tag, \
     h.covers_from, h.covers_to, h.released_at, h.released_by, h.release_reason";

fn read_hold(r: &Row) -> Result<HoldRow, CatalogError> {
    let id: i64 = get(r, 0)?;
    Ok(HoldRow {
        reference: get(r, 1)?,
        reason: get(r, 2)?,
        actor: get(r, 3)?,
        created_at: get(r, 4)?,
        caller_tag: opt_hash32(get(r, 5)?, &|| format!("hold {id}: caller_tag"))?,
        from: get(r, 6)?,
        to: get(r, 7)?,
        released_at: get(r, 8)?,
        released_by: get(r, 9)?,
        release_reason: get(r, 10)?,
    })
}

/// The row id of the active hold `reference`: `NotFound` if it never existed, `Conflict` if it was
/// released.
async fn active_hold_id<C: GenericClient>(c: &C, reference: &str) -> Result<i64, CatalogError> {
    let active: Option<i64> = first(
        c,
        "SELECT id FROM holds WHERE reference = $1 AND released_at IS NULL",
        &[&reference],
        |r| get(r, 0),
    )
    .await?;
    if let Some(id) = active {
        return Ok(id);
    }
    let released: bool = scalar(
        c,
        "SELECT EXISTS (SELECT 1 FROM holds WHERE reference = $1)",
        &[&reference],
    )
    .await?;
    if released {
        Err(CatalogError::conflict(format!(
            "hold {reference} is released"
        )))
    } else {
        Err(CatalogError::not_found(format!("hold {reference}")))
    }
}

pub(super) async fn insert_hold(
    c: &mut Object,
    locks: Locks,
    h: &HoldRow,
) -> Result<(), CatalogError> {
    let tx = c.transaction().await?;
    locks.holds(&tx).await?;
    let tag = h.caller_tag.as_ref().map(|t| &t[..]);
    execute(
        &tx,
        "INSERT INTO holds (reference, reason, actor, created_at, caller_tag, covers_from, \
         covers_to, released_at, released_by, release_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &h.reference,
            &h.reason,
            &h.actor,
            &ts(&h.created_at),
            &tag,
            &opt_ts(&h.from),
            &opt_ts(&h.to),
            &opt_ts(&h.released_at),
            &h.released_by,
            &h.release_reason,
        ],
    )
    .await
    .map_err(|e| on_constraint(e, "hold", &format!("an active hold {} exists", h.reference)))?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn hold(c: &Object, reference: &str) -> Result<Option<HoldRow>, CatalogError> {
    first(
        c,
        &format!(
            "SELECT {HOLD_COLS} FROM holds WHERE reference = $1 \
             ORDER BY released_at IS NULL DESC, id DESC LIMIT 1"
        ),
        &[&reference],
        read_hold,
    )
    .await
}

pub(super) async fn link_hold(
    c: &mut Object,
    locks: Locks,
    reference: &str,
    recording: RecordingId,
) -> Result<(), CatalogError> {
    let tx = c.transaction().await?;
    locks.holds(&tx).await?;
    let hold = active_hold_id(&tx, reference).await?;
    let exists: bool = scalar(
        &tx,
        "SELECT EXISTS (SELECT 1 FROM recordings WHERE id = $1)",
        &[&recording.as_uuid()],
    )
    .await?;
    if !exists {
        return Err(CatalogError::not_found(format!("recording {recording}")));
    }
    execute(
        &tx,
        "INSERT INTO hold_links (hold_id, recording_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&hold, &recording.as_uuid()],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn release_hold(
    c: &Object,
    reference: &str,
    at: DateTime<Utc>,
    actor: &str,
    reason: Option<&str>,
) -> Result<HoldRow, CatalogError> {
    // one statement: of two releases racing, one updates the row and the other finds it released
    let released = first(
        c,
        &format!(
            "UPDATE holds SET released_at = $2, released_by = $3, release_reason = $4 \
             WHERE reference = $1 AND released_at IS NULL RETURNING {HOLD_COLS}"
        ),
        &[&reference, &ts(&at), &actor, &reason],
        read_hold,
    )
    .await?;
    match released {
        Some(row) => Ok(row),
        None => Err(active_hold_id(c, reference)
            .await
            .err()
            .unwrap_or_else(|| CatalogError::conflict(format!("hold {reference} is released")))),
    }
}

pub(super) async fn holds(c: &Object, active_only: bool) -> Result<Vec<HoldRow>, CatalogError> {
    collect(
        c,
        &format!(
            "SELECT {HOLD_COLS} FROM holds WHERE NOT $1 OR released_at IS NULL \
             ORDER BY created_at, id"
        ),
        &[&active_only],
        read_hold,
    )
    .await
}

pub(super) async fn holds_for_recording(
    c: &Object,
    recording: RecordingId,
) -> Result<Vec<HoldRow>, CatalogError> {
    let id = recording.as_uuid();
    let exists: bool = scalar(
        c,
        "SELECT EXISTS (SELECT 1 FROM recordings WHERE id = $1)",
        &[&id],
    )
    .await?;
    if !exists {
        return Err(CatalogError::not_found(format!("recording {recording}")));
    }
    collect(
        c,
        &format!(
            "SELECT {H_HOLD_COLS} FROM holds AS h, \
               (SELECT caller_tag AS rec_tag, started_at AS rec_start \
                FROM recordings WHERE id = $1) AS rec \
             WHERE h.released_at IS NULL AND ( \
               EXISTS (SELECT 1 FROM hold_links AS l \
                       WHERE l.hold_id = h.id AND l.recording_id = $1) \
               OR (h.caller_tag = rec.rec_tag \
                   AND (h.covers_from IS NULL OR h.covers_from <= rec.rec_start) \
                   AND (h.covers_to IS NULL OR rec.rec_start < h.covers_to))) \
             ORDER BY h.created_at, h.id"
        ),
        &[&id],
        read_hold,
    )
    .await
}
