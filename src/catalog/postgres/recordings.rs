//! Recordings, their segments, and the segments' wrapped data keys.

use std::collections::BTreeSet;

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;

use super::convert::{
    collect, execute, first, get, int, on_constraint, opt_hash32, opt_ts, parse, recording_id,
    scalar, sql_limit, ts, uint,
};
use crate::catalog::{CatalogError, RecordingRow, RecordingStatus, SegmentRow, WrappedKeyRow};
use crate::domain::{CallId, Codec, KeyId, RecordingId, SegmentNo};

pub(super) const RECORDING_COLS: &str = "id, call_id, status, line, queue, agent, caller_tag, caller_sealed, \
     policy, codec, sample_rate, channels, started_at, ended_at, expires_at, restricted, updated_at";

pub(super) fn read_recording(r: &Row) -> Result<RecordingRow, CatalogError> {
    let id = recording_id(r, 0)?;
    let what = |col: &'static str| move || format!("recording {id}: {col}");
    let codec: i16 = get(r, 9)?;
    Ok(RecordingRow {
        id,
        call_id: parse::<CallId>(get(r, 1)?, &what("call_id"))?,
        status: parse(get(r, 2)?, &what("status"))?,
        line: get(r, 3)?,
        queue: get(r, 4)?,
        agent: get(r, 5)?,
        caller_tag: opt_hash32(get(r, 6)?, &what("caller_tag"))?,
        caller_sealed: get(r, 7)?,
        policy: get(r, 8)?,
        codec: u8::try_from(codec)
            .ok()
            .and_then(Codec::from_code)
            .ok_or_else(|| CatalogError::corrupt(what("codec")()))?,
        sample_rate: uint(get(r, 10)?, &what("sample_rate"))?,
        channels: uint(i64::from(get::<i16>(r, 11)?), &what("channels"))?,
        started_at: get(r, 12)?,
        ended_at: get(r, 13)?,
        expires_at: get(r, 14)?,
        restricted: get(r, 15)?,
        updated_at: get(r, 16)?,
    })
}

/// Writes `row` with `sql`, whose parameters are [`RECORDING_COLS`] in order.
async fn write_recording<C: GenericClient>(
    c: &C,
    sql: &str,
    row: &RecordingRow,
    duplicate: &str,
) -> Result<u64, CatalogError> {
    let id = row.id.as_uuid();
    let codec = i16::from(row.codec.code());
    let sample_rate = i64::from(row.sample_rate);
    let channels = i16::from(row.channels);
    let tag = row.caller_tag.as_ref().map(|t| &t[..]);
    let (started, ended, expires) = (
        ts(&row.started_at),
        opt_ts(&row.ended_at),
        opt_ts(&row.expires_at),
    );
    let updated = ts(&row.updated_at);
    execute(
        c,
        sql,
        &[
            &id,
            &row.call_id.as_str(),
            &row.status.as_str(),
            &row.line,
            &row.queue,
            &row.agent,
            &tag,
            &row.caller_sealed,
            &row.policy,
            &codec,
            &sample_rate,
            &channels,
            &started,
            &ended,
            &expires,
            &row.restricted,
            &updated,
        ],
    )
    .await
    .map_err(|e| on_constraint(e, "recording", duplicate))
}

pub(super) async fn insert_recording<C: GenericClient>(
    c: &C,
    row: &RecordingRow,
) -> Result<(), CatalogError> {
    let duplicate = format!(
        "recording {} or a recording of call {} exists",
        row.id, row.call_id
    );
    let sql = format!(
        "INSERT INTO recordings ({RECORDING_COLS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    write_recording(c, &sql, row, &duplicate).await?;
    Ok(())
}

pub(super) async fn recording(
    c: &Object,
    id: RecordingId,
) -> Result<Option<RecordingRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {RECORDING_COLS} FROM recordings WHERE id = $1"),
        &[&id.as_uuid()],
        read_recording,
    )
    .await
}

pub(super) async fn recording_by_call(
    c: &Object,
    call_id: &CallId,
) -> Result<Option<RecordingRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {RECORDING_COLS} FROM recordings WHERE call_id = $1"),
        &[&call_id.as_str()],
        read_recording,
    )
    .await
}

pub(super) async fn recordings_by_status(
    c: &Object,
    status: RecordingStatus,
    limit: usize,
) -> Result<Vec<RecordingRow>, CatalogError> {
    collect(
        c,
        &format!("SELECT {RECORDING_COLS} FROM recordings WHERE status = $1 ORDER BY id LIMIT $2"),
        &[&status.as_str(), &sql_limit(limit)],
        read_recording,
    )
    .await
}

/// Every column but `restricted` (`$16` is only named so that the parameters stay
/// [`RECORDING_COLS`]): only `set_restricted` and a status change write the flag.
pub(super) async fn update_recording(c: &Object, row: &RecordingRow) -> Result<(), CatalogError> {
    let duplicate = format!("call {} has another recording", row.call_id);
    let changed = write_recording(
        c,
        "UPDATE recordings SET call_id = $2, status = $3, line = $4, queue = $5, \
         agent = $6, caller_tag = $7, caller_sealed = $8, policy = $9, codec = $10, \
         sample_rate = $11, channels = $12, started_at = $13, ended_at = $14, \
         expires_at = $15, updated_at = $17 WHERE id = $1 AND $16::boolean IS NOT NULL",
        row,
        &duplicate,
    )
    .await?;
    if changed == 0 {
        return Err(CatalogError::not_found(format!("recording {}", row.id)));
    }
    Ok(())
}

const SEGMENT_COLS: &str = "recording_id, segment, object_key, kek_id, wrapped_key, \
     media_start_ms, media_end_ms, size, sha256, status";

fn read_segment(r: &Row) -> Result<SegmentRow, CatalogError> {
    let id = recording_id(r, 0)?;
    let segment: i64 = get(r, 1)?;
    let what = |col: &'static str| move || format!("segment {id}/{segment}: {col}");
    let kek_id: Option<&str> = get(r, 3)?;
    Ok(SegmentRow {
        recording_id: id,
        segment: SegmentNo(uint(segment, &what("segment"))?),
        object_key: get(r, 2)?,
        kek_id: kek_id.map(|k| parse(k, &what("kek_id"))).transpose()?,
        wrapped_key: get(r, 4)?,
        media_start_ms: uint(get(r, 5)?, &what("media_start_ms"))?,
        media_end_ms: uint(get(r, 6)?, &what("media_end_ms"))?,
        size: uint(get(r, 7)?, &what("size"))?,
        sha256: opt_hash32(get(r, 8)?, &what("sha256"))?,
        status: parse(get(r, 9)?, &what("status"))?,
    })
}

pub(super) async fn insert_segment<C: GenericClient>(
    c: &C,
    row: &SegmentRow,
) -> Result<(), CatalogError> {
    if row.kek_id.is_some() != row.wrapped_key.is_some() {
        return Err(CatalogError::invalid(
            "segment: kek_id and wrapped_key must be both set or both absent",
        ));
    }
    let id = row.recording_id.as_uuid();
    let segment = i64::from(row.segment.0);
    let kek_id = row.kek_id.as_ref().map(KeyId::as_str);
    let start = int(row.media_start_ms, "media_start_ms")?;
    let end = int(row.media_end_ms, "media_end_ms")?;
    let size = int(row.size, "size")?;
    let sha = row.sha256.as_ref().map(|h| &h[..]);
    let missing = format!("recording {}", row.recording_id);
    let duplicate = format!("segment {}/{} exists", row.recording_id, row.segment);
    execute(
        c,
        &format!(
            "INSERT INTO segments ({SEGMENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &id,
            &segment,
            &row.object_key,
            &kek_id,
            &row.wrapped_key,
            &start,
            &end,
            &size,
            &sha,
            &row.status.as_str(),
        ],
    )
    .await
    .map_err(|e| on_constraint(e, &missing, &duplicate))?;
    Ok(())
}

pub(super) async fn segments(
    c: &Object,
    recording: RecordingId,
) -> Result<Vec<SegmentRow>, CatalogError> {
    collect(
        c,
        &format!("SELECT {SEGMENT_COLS} FROM segments WHERE recording_id = $1 ORDER BY segment"),
        &[&recording.as_uuid()],
        read_segment,
    )
    .await
}

pub(super) async fn update_segment(c: &Object, row: &SegmentRow) -> Result<(), CatalogError> {
    // the key columns are deliberately not written: see `Catalog::update_segment`
    let start = int(row.media_start_ms, "media_start_ms")?;
    let end = int(row.media_end_ms, "media_end_ms")?;
    let size = int(row.size, "size")?;
    let sha = row.sha256.as_ref().map(|h| &h[..]);
    let changed = execute(
        c,
        "UPDATE segments SET object_key = $3, media_start_ms = $4, media_end_ms = $5, \
         size = $6, sha256 = $7, status = $8 WHERE recording_id = $1 AND segment = $2",
        &[
            &row.recording_id.as_uuid(),
            &i64::from(row.segment.0),
            &row.object_key,
            &start,
            &end,
            &size,
            &sha,
            &row.status.as_str(),
        ],
    )
    .await?;
    if changed == 0 {
        return Err(CatalogError::not_found(format!(
            "segment {}/{}",
            row.recording_id, row.segment
        )));
    }
    Ok(())
}

pub(super) async fn shred_segment_key(
    c: &Object,
    recording: RecordingId,
    segment: SegmentNo,
) -> Result<(), CatalogError> {
    let changed = execute(
        c,
        "UPDATE segments SET kek_id = NULL, wrapped_key = NULL \
         WHERE recording_id = $1 AND segment = $2",
        &[&recording.as_uuid(), &i64::from(segment.0)],
    )
    .await?;
    if changed == 0 {
        return Err(CatalogError::not_found(format!(
            "segment {recording}/{segment}"
        )));
    }
    Ok(())
}

pub(super) async fn key_ids_in_use(c: &Object) -> Result<BTreeSet<KeyId>, CatalogError> {
    let ids = collect(
        c,
        "SELECT DISTINCT kek_id FROM segments WHERE kek_id IS NOT NULL",
        &[],
        |r| parse::<KeyId>(get(r, 0)?, &|| "segment kek_id".to_owned()),
    )
    .await?;
    Ok(ids.into_iter().collect())
}

fn read_wrapped_key(r: &Row) -> Result<WrappedKeyRow, CatalogError> {
    let id = recording_id(r, 0)?;
    let segment: i64 = get(r, 1)?;
    let what = |col: &'static str| move || format!("segment {id}/{segment}: {col}");
    Ok(WrappedKeyRow {
        recording_id: id,
        segment: SegmentNo(uint(segment, &what("segment"))?),
        kek_id: parse(get(r, 2)?, &what("kek_id"))?,
        wrapped_key: get(r, 3)?,
    })
}

pub(super) async fn wrapped_keys_after(
    c: &Object,
    after: Option<(RecordingId, SegmentNo)>,
    limit: usize,
) -> Result<Vec<WrappedKeyRow>, CatalogError> {
    // keyset paging on the primary key: each page is one index range scan, however deep
    match after {
        None => {
            collect(
                c,
                "SELECT recording_id, segment, kek_id, wrapped_key FROM segments \
                 WHERE wrapped_key IS NOT NULL ORDER BY recording_id, segment LIMIT $1",
                &[&sql_limit(limit)],
                read_wrapped_key,
            )
            .await
        }
        Some((recording, segment)) => {
            collect(
                c,
                "SELECT recording_id, segment, kek_id, wrapped_key FROM segments \
                 WHERE wrapped_key IS NOT NULL AND (recording_id, segment) > ($1, $2) \
                 ORDER BY recording_id, segment LIMIT $3",
                &[
                    &recording.as_uuid(),
                    &i64::from(segment.0),
                    &sql_limit(limit),
                ],
                read_wrapped_key,
            )
            .await
        }
    }
}

pub(super) async fn count_wrapped_keys(c: &Object) -> Result<u64, CatalogError> {
    let n: i64 = scalar(
        c,
        "SELECT count(*) FROM segments WHERE wrapped_key IS NOT NULL",
        &[],
    )
    .await?;
    uint(n, &|| "count of wrapped keys".to_owned())
}

pub(super) async fn replace_wrapped_key(
    c: &Object,
    new: &WrappedKeyRow,
    expected_kek: &KeyId,
) -> Result<bool, CatalogError> {
    // one statement: the row lock of the UPDATE makes the compare and the swap atomic
    let changed = execute(
        c,
        "UPDATE segments SET kek_id = $3, wrapped_key = $4 \
         WHERE recording_id = $1 AND segment = $2 AND kek_id = $5",
        &[
            &new.recording_id.as_uuid(),
            &i64::from(new.segment.0),
            &new.kek_id.as_str(),
            &new.wrapped_key,
            &expected_kek.as_str(),
        ],
    )
    .await?;
    Ok(changed == 1)
}

/// Stores an imported recording whole: row, segments, ledger and audit entry in one transaction.
pub(super) async fn insert_import(
    c: &mut Object,
    locks: super::connect::Locks,
    import: crate::catalog::ImportedRecording,
) -> Result<(), CatalogError> {
    let id = import.row.id;
    if import.segments.iter().any(|s| s.recording_id != id)
        || import.ledger.iter().any(|e| e.recording_id != id)
    {
        return Err(CatalogError::invalid(
            "import: a segment or ledger entry names another recording",
        ));
    }
    let tx = c.transaction().await?;
    // the chain's lock first, as every transaction that takes it and a recording's row lock does
    locks.audit(&tx).await?;
    insert_recording(&tx, &import.row).await?;
    for s in &import.segments {
        insert_segment(&tx, s).await?;
    }
    for e in import.ledger {
        super::trails::insert_ledger(&tx, e).await?;
    }
    super::trails::insert_audit(&tx, locks, import.audit).await?;
    tx.commit().await?;
    Ok(())
}
