//! Recordings, their segments, and the segments' wrapped data keys.

use std::collections::BTreeSet;

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use super::convert::{
    collect, first, int, on_constraint, opt_blob, opt_hash32, opt_text, opt_ts, parse,
    parse_opt_ts, parse_ts, sql_limit, ts, uint,
};
use crate::catalog::{CatalogError, RecordingRow, RecordingStatus, SegmentRow, WrappedKeyRow};
use crate::domain::{CallId, Codec, KeyId, RecordingId, SegmentNo};

pub(super) const RECORDING_COLS: &str = "id, call_id, status, line, queue, agent, caller_tag, caller_sealed, \
     policy, codec, sample_rate, channels, started_at, ended_at, expires_at, restricted, updated_at";

/// `row`'s values in [`RECORDING_COLS`] order.
fn recording_values(r: &RecordingRow) -> Vec<Value> {
    vec![
        Value::Text(r.id.to_string()),
        Value::Text(r.call_id.as_str().to_owned()),
        Value::Text(r.status.as_str().to_owned()),
        opt_text(r.line.as_deref()),
        opt_text(r.queue.as_deref()),
        opt_text(r.agent.as_deref()),
        opt_blob(r.caller_tag.as_ref().map(|t| &t[..])),
        opt_blob(r.caller_sealed.as_deref()),
        Value::Text(r.policy.clone()),
        Value::Integer(r.codec.code().into()),
        Value::Integer(r.sample_rate.into()),
        Value::Integer(r.channels.into()),
        Value::Text(ts(&r.started_at)),
        opt_ts(&r.ended_at),
        opt_ts(&r.expires_at),
        Value::Integer(r.restricted.into()),
        Value::Text(ts(&r.updated_at)),
    ]
}

pub(super) fn read_recording(r: &Row<'_>) -> Result<RecordingRow, CatalogError> {
    let id: String = r.get(0)?;
    let what = |col: &'static str| {
        let id = id.clone();
        move || format!("recording {id}: {col}")
    };
    let codec: i64 = r.get(9)?;
    Ok(RecordingRow {
        id: parse(&id, &what("id"))?,
        call_id: parse::<CallId>(&r.get::<_, String>(1)?, &what("call_id"))?,
        status: parse(&r.get::<_, String>(2)?, &what("status"))?,
        line: r.get(3)?,
        queue: r.get(4)?,
        agent: r.get(5)?,
        caller_tag: opt_hash32(r.get(6)?, &what("caller_tag"))?,
        caller_sealed: r.get(7)?,
        policy: r.get(8)?,
        codec: uint::<u8>(codec, &what("codec"))
            .ok()
            .and_then(Codec::from_code)
            .ok_or_else(|| CatalogError::corrupt(what("codec")()))?,
        sample_rate: uint(r.get(10)?, &what("sample_rate"))?,
        channels: uint(r.get(11)?, &what("channels"))?,
        started_at: parse_ts(&r.get::<_, String>(12)?, &what("started_at"))?,
        ended_at: parse_opt_ts(r.get(13)?, &what("ended_at"))?,
        expires_at: parse_opt_ts(r.get(14)?, &what("expires_at"))?,
        restricted: r.get(15)?,
        updated_at: parse_ts(&r.get::<_, String>(16)?, &what("updated_at"))?,
    })
}

pub(super) fn insert_recording(c: &Connection, row: &RecordingRow) -> Result<(), CatalogError> {
    let duplicate = format!(
        "recording {} or a recording of call {} exists",
        row.id, row.call_id
    );
    c.prepare_cached(&format!(
        "INSERT INTO recordings ({RECORDING_COLS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?
    .execute(params_from_iter(recording_values(row)))
    .map_err(|e| on_constraint(e, "recording", &duplicate))?;
    Ok(())
}

pub(super) fn recording(
    c: &Connection,
    id: RecordingId,
) -> Result<Option<RecordingRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {RECORDING_COLS} FROM recordings WHERE id = ?1"),
        [id.to_string()],
        read_recording,
    )
}

pub(super) fn recording_by_call(
    c: &Connection,
    call_id: &CallId,
) -> Result<Option<RecordingRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {RECORDING_COLS} FROM recordings WHERE call_id = ?1"),
        [call_id.as_str()],
        read_recording,
    )
}

pub(super) fn recordings_by_status(
    c: &Connection,
    status: RecordingStatus,
    limit: usize,
) -> Result<Vec<RecordingRow>, CatalogError> {
    collect(
        c,
        &format!("SELECT {RECORDING_COLS} FROM recordings WHERE status = ?1 ORDER BY id LIMIT ?2"),
        params![status.as_str(), sql_limit(limit)],
        read_recording,
    )
}

pub(super) fn update_recording(c: &Connection, row: &RecordingRow) -> Result<(), CatalogError> {
    let duplicate = format!("call {} has another recording", row.call_id);
    let changed = c
        .prepare_cached(
            "UPDATE recordings SET call_id = ?2, status = ?3, line = ?4, queue = ?5, \
             agent = ?6, caller_tag = ?7, caller_sealed = ?8, policy = ?9, codec = ?10, \
             sample_rate = ?11, channels = ?12, started_at = ?13, ended_at = ?14, \
             expires_at = ?15, updated_at = ?17 WHERE id = ?1",
        )?
        .execute(params_from_iter(recording_values(row)))
        .map_err(|e| on_constraint(e, "recording", &duplicate))?;
    if changed == 0 {
        return Err(CatalogError::not_found(format!("recording {}", row.id)));
    }
    Ok(())
}

const SEGMENT_COLS: &str = "recording_id, segment, object_key, kek_id, wrapped_key, \
     media_start_ms, media_end_ms, size, sha256, status";

fn read_segment(r: &Row<'_>) -> Result<SegmentRow, CatalogError> {
    let id: String = r.get(0)?;
    let segment: i64 = r.get(1)?;
    let what = |col: &'static str| {
        let id = id.clone();
        move || format!("segment {id}/{segment}: {col}")
    };
    let kek_id: Option<String> = r.get(3)?;
    Ok(SegmentRow {
        recording_id: parse(&id, &what("recording_id"))?,
        segment: SegmentNo(uint(segment, &what("segment"))?),
        object_key: r.get(2)?,
        kek_id: kek_id.map(|k| parse(&k, &what("kek_id"))).transpose()?,
        wrapped_key: r.get(4)?,
        media_start_ms: uint(r.get(5)?, &what("media_start_ms"))?,
        media_end_ms: uint(r.get(6)?, &what("media_end_ms"))?,
        size: uint(r.get(7)?, &what("size"))?,
        sha256: opt_hash32(r.get(8)?, &what("sha256"))?,
        status: parse(&r.get::<_, String>(9)?, &what("status"))?,
    })
}

pub(super) fn insert_segment(c: &Connection, row: &SegmentRow) -> Result<(), CatalogError> {
    if row.kek_id.is_some() != row.wrapped_key.is_some() {
        return Err(CatalogError::invalid(
            "segment: kek_id and wrapped_key must be both set or both absent",
        ));
    }
    let values = vec![
        Value::Text(row.recording_id.to_string()),
        Value::Integer(row.segment.0.into()),
        Value::Text(row.object_key.clone()),
        opt_text(row.kek_id.as_ref().map(KeyId::as_str)),
        opt_blob(row.wrapped_key.as_deref()),
        Value::Integer(int(row.media_start_ms, "media_start_ms")?),
        Value::Integer(int(row.media_end_ms, "media_end_ms")?),
        Value::Integer(int(row.size, "size")?),
        opt_blob(row.sha256.as_ref().map(|h| &h[..])),
        Value::Text(row.status.as_str().to_owned()),
    ];
    let missing = format!("recording {}", row.recording_id);
    let duplicate = format!("segment {}/{} exists", row.recording_id, row.segment);
    c.prepare_cached(&format!(
        "INSERT INTO segments ({SEGMENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params_from_iter(values))
    .map_err(|e| on_constraint(e, &missing, &duplicate))?;
    Ok(())
}

pub(super) fn segments(
    c: &Connection,
    recording: RecordingId,
) -> Result<Vec<SegmentRow>, CatalogError> {
    collect(
        c,
        &format!("SELECT {SEGMENT_COLS} FROM segments WHERE recording_id = ?1 ORDER BY segment"),
        [recording.to_string()],
        read_segment,
    )
}

pub(super) fn update_segment(c: &Connection, row: &SegmentRow) -> Result<(), CatalogError> {
    // the key columns are deliberately not written: see `Catalog::update_segment`
    let values = vec![
        Value::Text(row.recording_id.to_string()),
        Value::Integer(row.segment.0.into()),
        Value::Text(row.object_key.clone()),
        Value::Integer(int(row.media_start_ms, "media_start_ms")?),
        Value::Integer(int(row.media_end_ms, "media_end_ms")?),
        Value::Integer(int(row.size, "size")?),
        opt_blob(row.sha256.as_ref().map(|h| &h[..])),
        Value::Text(row.status.as_str().to_owned()),
    ];
    let changed = c
        .prepare_cached(
            "UPDATE segments SET object_key = ?3, media_start_ms = ?4, media_end_ms = ?5, \
             size = ?6, sha256 = ?7, status = ?8 WHERE recording_id = ?1 AND segment = ?2",
        )?
        .execute(params_from_iter(values))?;
    if changed == 0 {
        return Err(CatalogError::not_found(format!(
            "segment {}/{}",
            row.recording_id, row.segment
        )));
    }
    Ok(())
}

pub(super) fn shred_segment_key(
    c: &Connection,
    recording: RecordingId,
    segment: SegmentNo,
) -> Result<(), CatalogError> {
    let changed = c
        .prepare_cached(
            "UPDATE segments SET kek_id = NULL, wrapped_key = NULL \
             WHERE recording_id = ?1 AND segment = ?2",
        )?
        .execute(params![recording.to_string(), segment.0])?;
    if changed == 0 {
        return Err(CatalogError::not_found(format!(
            "segment {recording}/{segment}"
        )));
    }
    Ok(())
}

pub(super) fn key_ids_in_use(c: &Connection) -> Result<BTreeSet<KeyId>, CatalogError> {
    let ids = collect(
        c,
        "SELECT DISTINCT kek_id FROM segments WHERE kek_id IS NOT NULL",
        [],
        |r| parse::<KeyId>(&r.get::<_, String>(0)?, &|| "segment kek_id".to_owned()),
    )?;
    Ok(ids.into_iter().collect())
}

fn read_wrapped_key(r: &Row<'_>) -> Result<WrappedKeyRow, CatalogError> {
    let id: String = r.get(0)?;
    let segment: i64 = r.get(1)?;
    let what = |col: &'static str| {
        let id = id.clone();
        move || format!("segment {id}/{segment}: {col}")
    };
    Ok(WrappedKeyRow {
        recording_id: parse(&id, &what("recording_id"))?,
        segment: SegmentNo(uint(segment, &what("segment"))?),
        kek_id: parse(&r.get::<_, String>(2)?, &what("kek_id"))?,
        wrapped_key: r.get(3)?,
    })
}

pub(super) fn wrapped_keys_after(
    c: &Connection,
    after: Option<(RecordingId, SegmentNo)>,
    limit: usize,
) -> Result<Vec<WrappedKeyRow>, CatalogError> {
    // keyset paging on the primary key: each page is one index range scan, however deep
    match after {
        None => collect(
            c,
            "SELECT recording_id, segment, kek_id, wrapped_key FROM segments \
             WHERE wrapped_key IS NOT NULL ORDER BY recording_id, segment LIMIT ?1",
            [sql_limit(limit)],
            read_wrapped_key,
        ),
        Some((recording, segment)) => collect(
            c,
            "SELECT recording_id, segment, kek_id, wrapped_key FROM segments \
             WHERE wrapped_key IS NOT NULL AND (recording_id, segment) > (?1, ?2) \
             ORDER BY recording_id, segment LIMIT ?3",
            params![recording.to_string(), segment.0, sql_limit(limit)],
            read_wrapped_key,
        ),
    }
}

pub(super) fn count_wrapped_keys(c: &Connection) -> Result<u64, CatalogError> {
    let n: i64 = c.query_row(
        "SELECT count(*) FROM segments WHERE wrapped_key IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    uint(n, &|| "count of wrapped keys".to_owned())
}

pub(super) fn replace_wrapped_key(
    c: &Connection,
    new: &WrappedKeyRow,
    expected_kek: &KeyId,
) -> Result<bool, CatalogError> {
    let changed = c
        .prepare_cached(
            "UPDATE segments SET kek_id = ?3, wrapped_key = ?4 \
             WHERE recording_id = ?1 AND segment = ?2 AND kek_id = ?5",
        )?
        .execute(params![
            new.recording_id.to_string(),
            new.segment.0,
            new.kek_id.as_str(),
            new.wrapped_key,
            expected_kek.as_str()
        ])?;
    Ok(changed == 1)
}

/// Stores an imported recording whole: row, segments, ledger and audit entry in one savepoint.
pub(super) fn insert_import(
    c: &mut Connection,
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
    let tx = c.savepoint()?;
    insert_recording(&tx, &import.row)?;
    for s in &import.segments {
        insert_segment(&tx, s)?;
    }
    for e in import.ledger {
        super::trails::insert_ledger(&tx, e)?;
    }
    super::trails::insert_audit(&tx, import.audit)?;
    tx.commit()?;
    Ok(())
}
