//! Complaint holds and their links to recordings.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::convert::{
    collect, first, on_constraint, opt_hash32, opt_ts, parse_opt_ts, parse_ts, recording_exists, ts,
};
use crate::catalog::{CatalogError, HoldRow};
use crate::domain::RecordingId;

const HOLD_COLS: &str = "id, reference, reason, actor, created_at, caller_tag, covers_from, \
     covers_to, released_at, released_by, release_reason";

fn read_hold(r: &Row<'_>) -> Result<HoldRow, CatalogError> {
    let id: i64 = r.get(0)?;
    let what = |col: &'static str| move || format!("hold {id}: {col}");
    Ok(HoldRow {
        reference: r.get(1)?,
        reason: r.get(2)?,
        actor: r.get(3)?,
        created_at: parse_ts(&r.get::<_, String>(4)?, &what("created_at"))?,
        caller_tag: opt_hash32(r.get(5)?, &what("caller_tag"))?,
        from: parse_opt_ts(r.get(6)?, &what("covers_from"))?,
        to: parse_opt_ts(r.get(7)?, &what("covers_to"))?,
        released_at: parse_opt_ts(r.get(8)?, &what("released_at"))?,
        released_by: r.get(9)?,
        release_reason: r.get(10)?,
    })
}

/// The row id of the active hold `reference`: `NotFound` if it never existed, `Conflict` if it was
/// released.
fn active_hold_id(c: &Connection, reference: &str) -> Result<i64, CatalogError> {
    let active: Option<i64> = c
        .query_row(
            "SELECT id FROM holds WHERE reference = ?1 AND released_at IS NULL",
            [reference],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = active {
        return Ok(id);
    }
    let released: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM holds WHERE reference = ?1)",
        [reference],
        |r| r.get(0),
    )?;
    if released {
        Err(CatalogError::conflict(format!(
            "hold {reference} is released"
        )))
    } else {
        Err(CatalogError::not_found(format!("hold {reference}")))
    }
}

pub(super) fn insert_hold(c: &Connection, h: &HoldRow) -> Result<(), CatalogError> {
    c.prepare_cached(
        "INSERT INTO holds (reference, reason, actor, created_at, caller_tag, covers_from, \
         covers_to, released_at, released_by, release_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        h.reference,
        h.reason,
        h.actor,
        ts(&h.created_at),
        h.caller_tag,
        opt_ts(&h.from),
        opt_ts(&h.to),
        opt_ts(&h.released_at),
        h.released_by,
        h.release_reason
    ])
    .map_err(|e| on_constraint(e, "hold", &format!("an active hold {} exists", h.reference)))?;
    Ok(())
}

pub(super) fn hold(c: &Connection, reference: &str) -> Result<Option<HoldRow>, CatalogError> {
    first(
        c,
        &format!(
            "SELECT {HOLD_COLS} FROM holds WHERE reference = ?1 \
             ORDER BY released_at IS NULL DESC, id DESC LIMIT 1"
        ),
        [reference],
        read_hold,
    )
}

pub(super) fn link_hold(
    c: &mut Connection,
    reference: &str,
    recording: RecordingId,
) -> Result<(), CatalogError> {
    let tx = c.savepoint()?;
    let hold = active_hold_id(&tx, reference)?;
    let id = recording.to_string();
    if !recording_exists(&tx, &id)? {
        return Err(CatalogError::not_found(format!("recording {id}")));
    }
    tx.execute(
        "INSERT INTO hold_links (hold_id, recording_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![hold, id],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn release_hold(
    c: &mut Connection,
    reference: &str,
    at: DateTime<Utc>,
    actor: &str,
    reason: Option<&str>,
) -> Result<HoldRow, CatalogError> {
    let tx = c.savepoint()?;
    let hold = active_hold_id(&tx, reference)?;
    tx.execute(
        "UPDATE holds SET released_at = ?2, released_by = ?3, release_reason = ?4 WHERE id = ?1",
        params![hold, ts(&at), actor, reason],
    )?;
    let row = first(
        &tx,
        &format!("SELECT {HOLD_COLS} FROM holds WHERE id = ?1"),
        [hold],
        read_hold,
    )?
    .ok_or_else(|| CatalogError::not_found(format!("hold {reference}")))?;
    tx.commit()?;
    Ok(row)
}

pub(super) fn holds(c: &Connection, active_only: bool) -> Result<Vec<HoldRow>, CatalogError> {
    collect(
        c,
        &format!(
            "SELECT {HOLD_COLS} FROM holds WHERE NOT ?1 OR released_at IS NULL \
             ORDER BY created_at, id"
        ),
        [active_only],
        read_hold,
    )
}

pub(super) fn holds_for_recording(
    c: &Connection,
    recording: RecordingId,
) -> Result<Vec<HoldRow>, CatalogError> {
    let id = recording.to_string();
    if !recording_exists(c, &id)? {
        return Err(CatalogError::not_found(format!("recording {id}")));
    }
    // times are fixed-width text, so comparing them as text compares them as times
    collect(
        c,
        &format!(
            "SELECT {HOLD_COLS} FROM holds AS h, \
               (SELECT caller_tag AS rec_tag, started_at AS rec_start \
                FROM recordings WHERE id = ?1) AS rec \
             WHERE h.released_at IS NULL AND ( \
               EXISTS (SELECT 1 FROM hold_links AS l \
                       WHERE l.hold_id = h.id AND l.recording_id = ?1) \
               OR (h.caller_tag = rec.rec_tag \
                   AND (h.covers_from IS NULL OR h.covers_from <= rec.rec_start) \
                   AND (h.covers_to IS NULL OR rec.rec_start < h.covers_to))) \
             ORDER BY h.created_at, h.id"
        ),
        [id],
        read_hold,
    )
}
