//! The two append-only trails: each recording's ledger, and the audit chain.

use chrono::SubsecRound;
use rusqlite::{Connection, Row, params};

use super::convert::{
    collect, first, hash32, int, parse, parse_ts, recording_exists, sql_limit, ts, uint,
};
use crate::audit::{AuditEntry, ChainHead, NewAuditEntry};
use crate::catalog::{CatalogError, LedgerEntry, NewLedgerEntry, NewSealedNote, SealedNote};
use crate::domain::RecordingId;

const LEDGER_COLS: &str = "recording_id, seq, at, kind, actor, reason, details";

fn read_ledger(r: &Row<'_>) -> Result<LedgerEntry, CatalogError> {
    let id: String = r.get(0)?;
    let seq: i64 = r.get(1)?;
    let what = |col: &'static str| {
        let id = id.clone();
        move || format!("ledger {id}/{seq}: {col}")
    };
    Ok(LedgerEntry {
        seq: uint(seq, &what("seq"))?,
        recording_id: parse(&id, &what("recording_id"))?,
        at: parse_ts(&r.get::<_, String>(2)?, &what("at"))?,
        kind: r.get(3)?,
        actor: r.get(4)?,
        reason: r.get(5)?,
        details: r.get(6)?,
    })
}

pub(super) fn append_ledger(
    c: &mut Connection,
    e: NewLedgerEntry,
) -> Result<LedgerEntry, CatalogError> {
    // IMMEDIATE: the write lock is taken before the next seq is read, so two writers (this process
    // and a CLI on the same file) cannot both read the same one
    let tx = c.savepoint()?;
    let id = e.recording_id.to_string();
    if !recording_exists(&tx, &id)? {
        return Err(CatalogError::not_found(format!("recording {id}")));
    }
    let stored = insert_ledger(&tx, e)?;
    tx.commit()?;
    Ok(stored)
}

pub(super) fn append_sealed_note(
    c: &mut Connection,
    note: NewSealedNote,
) -> Result<LedgerEntry, CatalogError> {
    let tx = c.savepoint()?;
    let id = note.entry.recording_id.to_string();
    if !recording_exists(&tx, &id)? {
        return Err(CatalogError::not_found(format!("recording {id}")));
    }
    let stored = insert_ledger(&tx, note.entry)?;
    tx.prepare_cached("INSERT INTO sealed_notes (recording_id, seq, sealed) VALUES (?1, ?2, ?3)")?
        .execute(params![id, stored.seq as i64, note.sealed])?;
    tx.commit()?;
    Ok(stored)
}

pub(super) fn sealed_notes(
    c: &Connection,
    recording: RecordingId,
) -> Result<Vec<SealedNote>, CatalogError> {
    collect(
        c,
        "SELECT seq, sealed FROM sealed_notes WHERE recording_id = ?1 ORDER BY seq",
        [recording.to_string()],
        |r| {
            let seq: i64 = r.get(0)?;
            Ok(SealedNote {
                seq: uint(seq, &|| format!("sealed note {recording}/{seq}: seq"))?,
                sealed: r.get(1)?,
            })
        },
    )
}

/// Appends a ledger entry inside the caller's write transaction (the recording must exist).
pub(super) fn insert_ledger(
    tx: &Connection,
    e: NewLedgerEntry,
) -> Result<LedgerEntry, CatalogError> {
    let id = e.recording_id.to_string();
    let seq: i64 = tx.query_row(
        "SELECT coalesce(max(seq), 0) + 1 FROM ledger WHERE recording_id = ?1",
        [&id],
        |r| r.get(0),
    )?;
    let at = e.at.trunc_subsecs(6);
    tx.prepare_cached(&format!(
        "INSERT INTO ledger ({LEDGER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        id,
        seq,
        ts(&at),
        e.kind,
        e.actor,
        e.reason,
        e.details
    ])?;
    Ok(LedgerEntry {
        seq: uint(seq, &|| format!("ledger {id}: seq"))?,
        recording_id: e.recording_id,
        at,
        kind: e.kind,
        actor: e.actor,
        reason: e.reason,
        details: e.details,
    })
}

pub(super) fn ledger(
    c: &Connection,
    recording: RecordingId,
) -> Result<Vec<LedgerEntry>, CatalogError> {
    collect(
        c,
        &format!("SELECT {LEDGER_COLS} FROM ledger WHERE recording_id = ?1 ORDER BY seq"),
        [recording.to_string()],
        read_ledger,
    )
}

pub(super) const AUDIT_COLS: &str =
    "seq, at, actor, action, subject, reason, details, prev_hash, hash";

pub(super) fn read_audit(r: &Row<'_>) -> Result<AuditEntry, CatalogError> {
    let seq: i64 = r.get(0)?;
    let what = |col: &'static str| move || format!("audit {seq}: {col}");
    Ok(AuditEntry {
        seq: uint(seq, &what("seq"))?,
        entry: NewAuditEntry {
            at: parse_ts(&r.get::<_, String>(1)?, &what("at"))?,
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            reason: r.get(5)?,
            details: r.get(6)?,
        },
        prev_hash: hash32(r.get(7)?, &what("prev_hash"))?,
        hash: hash32(r.get(8)?, &what("hash"))?,
    })
}

pub(super) fn audit_head(c: &Connection) -> Result<ChainHead, CatalogError> {
    let head = first(
        c,
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        [],
        |r| {
            let seq: i64 = r.get(0)?;
            let what = move || format!("audit {seq}: hash");
            Ok(ChainHead {
                seq: uint(seq, &what)?,
                hash: hash32(r.get(1)?, &what)?,
            })
        },
    )?;
    Ok(head.unwrap_or(ChainHead::EMPTY))
}

pub(super) fn append_audit(
    c: &mut Connection,
    mut entry: NewAuditEntry,
) -> Result<AuditEntry, CatalogError> {
    // stored to the microsecond, so hash what will be read back
    entry.at = entry.at.trunc_subsecs(6);
    // IMMEDIATE: the write lock is taken before the head is read, so no other writer can append
    // between the read and the insert and fork the chain
    let tx = c.savepoint()?;
    let e = insert_audit(&tx, entry)?;
    tx.commit()?;
    Ok(e)
}

/// Appends to the audit chain inside the caller's write transaction.
pub(super) fn insert_audit(
    tx: &Connection,
    mut entry: NewAuditEntry,
) -> Result<AuditEntry, CatalogError> {
    entry.at = entry.at.trunc_subsecs(6);
    let e = AuditEntry::chained(audit_head(tx)?, entry);
    tx.prepare_cached(&format!(
        "INSERT INTO audit ({AUDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        int(e.seq, "audit seq")?,
        ts(&e.entry.at),
        e.entry.actor,
        e.entry.action,
        e.entry.subject,
        e.entry.reason,
        e.entry.details,
        e.prev_hash,
        e.hash
    ])?;
    Ok(e)
}

pub(super) fn audit_after(
    c: &Connection,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, CatalogError> {
    let Ok(after) = i64::try_from(after_seq) else {
        return Ok(Vec::new());
    };
    collect(
        c,
        &format!("SELECT {AUDIT_COLS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
        [after, sql_limit(limit)],
        read_audit,
    )
}
