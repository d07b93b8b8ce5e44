//! The retention worker's queries: what is due, the pending-deletion journal, finishing deletions
//! in one transaction, and the worker's counters.

use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::convert::{collect, int, opt_ts, parse, parse_opt_ts, parse_ts, sql_limit, ts, uint};
use super::recordings::{RECORDING_COLS, read_recording};
use super::trails::{insert_audit, insert_ledger};
use crate::catalog::{
    CatalogError, FinishedDeletion, PendingDeletion, RecordingRow, RetentionProgress,
};
use crate::domain::{RecordingId, SegmentNo};

/// True for the recording `r` when an active hold covers it: linked to it, or on its caller with a
/// range that holds its start (the rule of `holds_for_recording`). Times are fixed-width text.
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
pub(super) fn status_list(statuses: &[crate::catalog::RecordingStatus]) -> String {
    if statuses.is_empty() {
        return "('')".to_owned();
    }
    let texts: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", texts.join(", "))
}

pub(super) fn expired_recordings(
    c: &Connection,
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
        "r.expires_at IS NOT NULL AND r.expires_at <= ?1 \
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
             WHERE r.status = 'refusal_held' AND {rest}) \
             ORDER BY expires_at, id LIMIT ?2"
        ),
        params![ts(&now), sql_limit(limit)],
        read_recording,
    )
}

pub(super) fn begin_deletions(
    c: &mut Connection,
    pending: &[PendingDeletion],
) -> Result<Vec<RecordingId>, CatalogError> {
    let tx = c.savepoint()?;
    let mut begun = Vec::with_capacity(pending.len());
    for p in pending {
        let id = p.recording_id.to_string();
        let segment = p.segment.map(|s| i64::from(s.0));
        let already: Option<(String, Option<i64>)> = tx
            .prepare_cached("SELECT cause, segment FROM retention_pending WHERE recording_id = ?1")?
            .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
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
        let eligible: bool = tx
            .prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM recordings AS r \
                 WHERE r.id = ?1 AND r.status IN {} {held})",
                status_list(&p.cause.acts_on())
            ))?
            .query_row([&id], |r| r.get(0))?;
        if !eligible {
            continue;
        }
        tx.prepare_cached(
            "INSERT INTO retention_pending (recording_id, cause, actor, reason, requested_at, \
             segment) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            id,
            p.cause.as_str(),
            p.actor,
            p.reason,
            ts(&p.requested_at),
            segment
        ])?;
        begun.push(p.recording_id);
    }
    tx.commit()?;
    Ok(begun)
}

fn read_pending(r: &Row<'_>) -> Result<PendingDeletion, CatalogError> {
    let id: String = r.get(0)?;
    let what = |col: &'static str| {
        let id = id.clone();
        move || format!("retention_pending {id}: {col}")
    };
    Ok(PendingDeletion {
        recording_id: parse(&id, &what("recording_id"))?,
        cause: parse(&r.get::<_, String>(1)?, &what("cause"))?,
        actor: r.get(2)?,
        reason: r.get(3)?,
        requested_at: parse_ts(&r.get::<_, String>(4)?, &what("requested_at"))?,
        segment: r
            .get::<_, Option<i64>>(5)?
            .map(|s| uint(s, &what("segment")).map(SegmentNo))
            .transpose()?,
    })
}

pub(super) fn pending_deletions(
    c: &Connection,
    limit: usize,
) -> Result<Vec<PendingDeletion>, CatalogError> {
    collect(
        c,
        "SELECT recording_id, cause, actor, reason, requested_at, segment FROM retention_pending \
         ORDER BY requested_at, recording_id LIMIT ?1",
        [sql_limit(limit)],
        read_pending,
    )
}

pub(super) fn finish_deletions(
    c: &mut Connection,
    done: Vec<FinishedDeletion>,
) -> Result<usize, CatalogError> {
    let tx = c.savepoint()?;
    let mut finished = 0;
    for d in done {
        let id = d.recording_id.to_string();
        let removed = tx
            .prepare_cached("DELETE FROM retention_pending WHERE recording_id = ?1")?
            .execute([&id])?;
        if removed == 0 {
            continue;
        }
        // the keys go, and with them every way to read the audio, also in object-store backups
        match d.segment {
            None => tx
                .prepare_cached(
                    "UPDATE segments SET kek_id = NULL, wrapped_key = NULL, \
                     status = CASE WHEN status = 'excised' THEN status ELSE 'deleted' END \
                     WHERE recording_id = ?1",
                )?
                .execute([&id])?,
            Some(n) => tx
                .prepare_cached(
                    "UPDATE segments SET kek_id = NULL, wrapped_key = NULL, status = 'excised' \
                     WHERE recording_id = ?1 AND segment = ?2",
                )?
                .execute(params![id, i64::from(n.0)])?,
        };
        // then the caller's number and tag, and the sealed notes, when the audio is gone: the
        // tombstone keeps no personal data
        if d.forget_caller {
            tx.prepare_cached("DELETE FROM sealed_notes WHERE recording_id = ?1")?
                .execute([&id])?;
        }
        tx.prepare_cached(
            "UPDATE recordings SET status = ?2, updated_at = ?3, \
             caller_tag = CASE WHEN ?4 THEN NULL ELSE caller_tag END, \
             caller_sealed = CASE WHEN ?4 THEN NULL ELSE caller_sealed END WHERE id = ?1",
        )?
        .execute(params![
            id,
            d.status.as_str(),
            ts(&d.at.trunc_subsecs(6)),
            d.forget_caller
        ])?;
        insert_ledger(&tx, d.ledger)?;
        insert_audit(&tx, d.audit)?;
        finished += 1;
    }
    tx.commit()?;
    Ok(finished)
}

pub(super) fn retention_progress(c: &Connection) -> Result<RetentionProgress, CatalogError> {
    let what = |col: &'static str| move || format!("retention_progress: {col}");
    let row = c
        .query_row(
            "SELECT sweeps, expired, erased, last_started_at, last_finished_at, last_deleted, \
             last_error FROM retention_progress WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((sweeps, expired, erased, started, finished, last, error)) = row else {
        return Ok(RetentionProgress::default());
    };
    Ok(RetentionProgress {
        sweeps: uint(sweeps, &what("sweeps"))?,
        expired: uint(expired, &what("expired"))?,
        erased: uint(erased, &what("erased"))?,
        last_started_at: parse_opt_ts(started, &what("last_started_at"))?,
        last_finished_at: parse_opt_ts(finished, &what("last_finished_at"))?,
        last_deleted: uint(last, &what("last_deleted"))?,
        last_error: error,
    })
}

pub(super) fn save_retention_progress(
    c: &Connection,
    p: &RetentionProgress,
) -> Result<(), CatalogError> {
    c.prepare_cached(
        "INSERT INTO retention_progress (id, sweeps, expired, erased, last_started_at, \
         last_finished_at, last_deleted, last_error) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (id) DO UPDATE SET sweeps = ?1, expired = ?2, erased = ?3, \
         last_started_at = ?4, last_finished_at = ?5, last_deleted = ?6, last_error = ?7",
    )?
    .execute(params![
        int(p.sweeps, "sweeps")?,
        int(p.expired, "expired")?,
        int(p.erased, "erased")?,
        opt_ts(&p.last_started_at),
        opt_ts(&p.last_finished_at),
        int(p.last_deleted, "last_deleted")?,
        p.last_error
    ])?;
    Ok(())
}

pub(super) fn recordings_after(
    c: &Connection,
    after: Option<RecordingId>,
    limit: usize,
) -> Result<Vec<RecordingRow>, CatalogError> {
    let after = after.map(|id| id.to_string()).unwrap_or_default();
    collect(
        c,
        &format!("SELECT {RECORDING_COLS} FROM recordings WHERE id > ?1 ORDER BY id LIMIT ?2"),
        params![after, sql_limit(limit)],
        read_recording,
    )
}
