//! The narrow writes to a recording (see [`crate::catalog::StatusChange`]): each touches only its
//! columns, compare-and-set on the status where the change depends on it.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::convert::{opt_blob, opt_text, opt_ts, ts};
use crate::catalog::{CallDetailsUpdate, CatalogError, RecordingStatus, StatusChange};
use crate::domain::RecordingId;

/// Whether the recording exists: a write that changed nothing tells "not in that status" from
/// "absent" with it.
fn exists(c: &Connection, id: RecordingId) -> Result<(), CatalogError> {
    let found: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM recordings WHERE id = ?1)")?
        .query_row([id.to_string()], |r| r.get(0))?;
    if found {
        Ok(())
    } else {
        Err(CatalogError::not_found(format!("recording {id}")))
    }
}

fn changed_or_absent(c: &Connection, id: RecordingId, n: usize) -> Result<bool, CatalogError> {
    if n > 0 {
        return Ok(true);
    }
    exists(c, id)?;
    Ok(false)
}

pub(super) fn transition_recording(c: &Connection, s: &StatusChange) -> Result<bool, CatalogError> {
    let n = c
        .prepare_cached(
            "UPDATE recordings SET status = ?3, updated_at = ?4, \
             ended_at = coalesce(?5, ended_at), expires_at = coalesce(?6, expires_at), \
             restricted = (restricted OR ?7) WHERE id = ?1 AND status = ?2",
        )?
        .execute(params![
            s.id.to_string(),
            s.from.as_str(),
            s.to.as_str(),
            ts(&s.at),
            opt_ts(&s.ended_at),
            opt_ts(&s.expires_at),
            s.restrict,
        ])?;
    changed_or_absent(c, s.id, n)
}

pub(super) fn update_call_details(
    c: &Connection,
    u: &CallDetailsUpdate,
) -> Result<bool, CatalogError> {
    let n = c
        .prepare_cached(
            "UPDATE recordings SET line = ?3, queue = ?4, agent = ?5, caller_tag = ?6, \
             caller_sealed = ?7, policy = ?8, codec = ?9, sample_rate = ?10, channels = ?11, \
             started_at = ?12, updated_at = ?13 WHERE id = ?1 AND status = ?2",
        )?
        .execute(params![
            u.id.to_string(),
            u.expected.as_str(),
            opt_text(u.line.as_deref()),
            opt_text(u.queue.as_deref()),
            opt_text(u.agent.as_deref()),
            opt_blob(u.caller_tag.as_ref().map(|t| &t[..])),
            opt_blob(u.caller_sealed.as_deref()),
            u.policy,
            i64::from(u.codec.code()),
            i64::from(u.sample_rate),
            i64::from(u.channels),
            ts(&u.started_at),
            ts(&u.at),
        ])?;
    changed_or_absent(c, u.id, n)
}

pub(super) fn set_restricted(
    c: &Connection,
    id: RecordingId,
    restricted: bool,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    let n = c
        .prepare_cached(
            "UPDATE recordings SET restricted = ?2, updated_at = ?3 \
             WHERE id = ?1 AND restricted <> ?2",
        )?
        .execute(params![id.to_string(), restricted, ts(&at)])?;
    changed_or_absent(c, id, n)
}

pub(super) fn set_retention(
    c: &Connection,
    id: RecordingId,
    expected: RecordingStatus,
    policy: &str,
    expires_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    let n = c
        .prepare_cached(
            "UPDATE recordings SET policy = ?3, expires_at = ?4, updated_at = ?5 \
             WHERE id = ?1 AND status = ?2",
        )?
        .execute(params![
            id.to_string(),
            expected.as_str(),
            policy,
            opt_ts(&expires_at),
            ts(&at)
        ])?;
    changed_or_absent(c, id, n)
}
