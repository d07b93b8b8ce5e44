//! The narrow writes to a recording (see [`crate::catalog::StatusChange`]): each touches only its
//! columns, compare-and-set on the status where the change depends on it.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;

use super::convert::{execute, opt_ts, scalar, ts};
use crate::catalog::{CallDetailsUpdate, CatalogError, RecordingStatus, StatusChange};
use crate::domain::RecordingId;

/// True if `n` rows changed; false if none did and the recording exists; `NotFound` if it does not.
async fn changed_or_absent(c: &Object, id: RecordingId, n: u64) -> Result<bool, CatalogError> {
    if n > 0 {
        return Ok(true);
    }
    let found: bool = scalar(
        c,
        "SELECT EXISTS (SELECT 1 FROM recordings WHERE id = $1)",
        &[&id.as_uuid()],
    )
    .await?;
    if found {
        Ok(false)
    } else {
        Err(CatalogError::not_found(format!("recording {id}")))
    }
}

pub(super) async fn transition_recording(
    c: &Object,
    s: &StatusChange,
) -> Result<bool, CatalogError> {
    let n = execute(
        c,
        "UPDATE recordings SET status = $3, updated_at = $4, \
         ended_at = coalesce($5, ended_at), expires_at = coalesce($6, expires_at), \
         restricted = (restricted OR $7) WHERE id = $1 AND status = $2",
        &[
            &s.id.as_uuid(),
            &s.from.as_str(),
            &s.to.as_str(),
            &ts(&s.at),
            &opt_ts(&s.ended_at),
            &opt_ts(&s.expires_at),
            &s.restrict,
        ],
    )
    .await?;
    changed_or_absent(c, s.id, n).await
}

pub(super) async fn update_call_details(
    c: &Object,
    u: &CallDetailsUpdate,
) -> Result<bool, CatalogError> {
    let tag = u.caller_tag.as_ref().map(|t| &t[..]);
    let n = execute(
        c,
        "UPDATE recordings SET line = $3, queue = $4, agent = $5, caller_tag = $6, \
         caller_sealed = $7, policy = $8, codec = $9, sample_rate = $10, channels = $11, \
         started_at = $12, updated_at = $13 WHERE id = $1 AND status = $2",
        &[
            &u.id.as_uuid(),
            &u.expected.as_str(),
            &u.line,
            &u.queue,
            &u.agent,
            &tag,
            &u.caller_sealed,
            &u.policy,
            &i16::from(u.codec.code()),
            &i64::from(u.sample_rate),
            &i16::from(u.channels),
            &ts(&u.started_at),
            &ts(&u.at),
        ],
    )
    .await?;
    changed_or_absent(c, u.id, n).await
}

pub(super) async fn set_restricted(
    c: &Object,
    id: RecordingId,
    restricted: bool,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    let n = execute(
        c,
        "UPDATE recordings SET restricted = $2, updated_at = $3 \
         WHERE id = $1 AND restricted <> $2",
        &[&id.as_uuid(), &restricted, &ts(&at)],
    )
    .await?;
    changed_or_absent(c, id, n).await
}

pub(super) async fn set_retention(
    c: &Object,
    id: RecordingId,
    expected: RecordingStatus,
    policy: &str,
    expires_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    let n = execute(
        c,
        "UPDATE recordings SET policy = $3, expires_at = $4, updated_at = $5 \
         WHERE id = $1 AND status = $2",
        &[
            &id.as_uuid(),
            &expected.as_str(),
            &policy,
            &opt_ts(&expires_at),
            &ts(&at),
        ],
    )
    .await?;
    changed_or_absent(c, id, n).await
}
