//! The two append-only trails: each recording's ledger, and the audit chain.
//!
//! Both are appended under a lock, so two writers (two tasks, or two nodes) never read the same
//! next position: a ledger append locks its recording's row, an audit append takes the chain's
//! transaction-scoped advisory lock ([`super::Locks::audit`]) before it reads the head. Under READ
//! COMMITTED each statement reads what was committed before it started, so the statement after the
//! lock sees the previous holder's entry.

use deadpool_postgres::{GenericClient, Object, Transaction};
use tokio_postgres::Row;

use super::Locks;
use super::convert::{
    collect, execute, first, get, hash32, int, recording_id, sql_limit, ts, uint,
};
use crate::audit::{AuditEntry, ChainHead, NewAuditEntry};
use crate::catalog::{CatalogError, LedgerEntry, NewLedgerEntry, NewSealedNote, SealedNote};
use crate::domain::RecordingId;

const LEDGER_COLS: &str = "recording_id, seq, at, kind, actor, reason, details";

fn read_ledger(r: &Row) -> Result<LedgerEntry, CatalogError> {
    let id = recording_id(r, 0)?;
    let seq: i64 = get(r, 1)?;
    Ok(LedgerEntry {
        seq: uint(seq, &|| format!("ledger {id}/{seq}: seq"))?,
        recording_id: id,
        at: get(r, 2)?,
        kind: get(r, 3)?,
        actor: get(r, 4)?,
        reason: get(r, 5)?,
        details: get(r, 6)?,
    })
}

pub(super) async fn append_ledger(
    c: &mut Object,
    e: NewLedgerEntry,
) -> Result<LedgerEntry, CatalogError> {
    let tx = c.transaction().await?;
    let stored = insert_ledger(&tx, e).await?;
    tx.commit().await?;
    Ok(stored)
}

pub(super) async fn append_sealed_note(
    c: &mut Object,
    note: NewSealedNote,
) -> Result<LedgerEntry, CatalogError> {
    let tx = c.transaction().await?;
    let stored = insert_ledger(&tx, note.entry).await?;
    execute(
        &tx,
        "INSERT INTO sealed_notes (recording_id, seq, sealed) VALUES ($1, $2, $3)",
        &[
            &stored.recording_id.as_uuid(),
            &(stored.seq as i64),
            &note.sealed,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(stored)
}

pub(super) async fn sealed_notes(
    c: &Object,
    recording: RecordingId,
) -> Result<Vec<SealedNote>, CatalogError> {
    collect(
        c,
        "SELECT seq, sealed FROM sealed_notes WHERE recording_id = $1 ORDER BY seq",
        &[&recording.as_uuid()],
        |r| {
            let seq: i64 = get(r, 0)?;
            Ok(SealedNote {
                seq: uint(seq, &|| format!("sealed note {recording}/{seq}: seq"))?,
                sealed: get(r, 1)?,
            })
        },
    )
    .await
}

/// Appends a ledger entry inside the caller's transaction: locks the recording's row first
/// (`NotFound` if there is none), so concurrent appends to one recording take turns.
pub(super) async fn insert_ledger(
    tx: &Transaction<'_>,
    e: NewLedgerEntry,
) -> Result<LedgerEntry, CatalogError> {
    let id = e.recording_id.as_uuid();
    // NO KEY UPDATE: conflicts with another appender's lock, not with the key-share locks that
    // inserting a segment (a foreign key to this row) takes
    let locked = first(
        tx,
        "SELECT 1 FROM recordings WHERE id = $1 FOR NO KEY UPDATE",
        &[&id],
        |_| Ok(()),
    )
    .await?;
    if locked.is_none() {
        return Err(CatalogError::not_found(format!(
            "recording {}",
            e.recording_id
        )));
    }
    let seq: i64 = super::convert::scalar(
        tx,
        "SELECT coalesce(max(seq), 0) + 1 FROM ledger WHERE recording_id = $1",
        &[&id],
    )
    .await?;
    let at = ts(&e.at);
    execute(
        tx,
        &format!("INSERT INTO ledger ({LEDGER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[&id, &seq, &at, &e.kind, &e.actor, &e.reason, &e.details],
    )
    .await?;
    Ok(LedgerEntry {
        seq: uint(seq, &|| format!("ledger {}: seq", e.recording_id))?,
        recording_id: e.recording_id,
        at,
        kind: e.kind,
        actor: e.actor,
        reason: e.reason,
        details: e.details,
    })
}

pub(super) async fn ledger(
    c: &Object,
    recording: RecordingId,
) -> Result<Vec<LedgerEntry>, CatalogError> {
    collect(
        c,
        &format!("SELECT {LEDGER_COLS} FROM ledger WHERE recording_id = $1 ORDER BY seq"),
        &[&recording.as_uuid()],
        read_ledger,
    )
    .await
}

pub(super) const AUDIT_COLS: &str =
    "seq, at, actor, action, subject, reason, details, prev_hash, hash";

pub(super) fn read_audit(r: &Row) -> Result<AuditEntry, CatalogError> {
    let seq: i64 = get(r, 0)?;
    let what = |col: &'static str| move || format!("audit {seq}: {col}");
    Ok(AuditEntry {
        seq: uint(seq, &what("seq"))?,
        entry: NewAuditEntry {
            at: get(r, 1)?,
            actor: get(r, 2)?,
            action: get(r, 3)?,
            subject: get(r, 4)?,
            reason: get(r, 5)?,
            details: get(r, 6)?,
        },
        prev_hash: hash32(get(r, 7)?, &what("prev_hash"))?,
        hash: hash32(get(r, 8)?, &what("hash"))?,
    })
}

pub(super) async fn audit_head<C: GenericClient>(c: &C) -> Result<ChainHead, CatalogError> {
    let head = first(
        c,
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
        |r| {
            let seq: i64 = get(r, 0)?;
            let what = move || format!("audit {seq}: hash");
            Ok(ChainHead {
                seq: uint(seq, &what)?,
                hash: hash32(get(r, 1)?, &what)?,
            })
        },
    )
    .await?;
    Ok(head.unwrap_or(ChainHead::EMPTY))
}

pub(super) async fn append_audit(
    c: &mut Object,
    locks: Locks,
    entry: NewAuditEntry,
) -> Result<AuditEntry, CatalogError> {
    let tx = c.transaction().await?;
    let e = insert_audit(&tx, locks, entry).await?;
    tx.commit().await?;
    Ok(e)
}

/// Appends to the audit chain inside the caller's transaction: takes the chain's lock (held to the
/// end of the transaction), reads the head, and stores the entry chained to it.
pub(super) async fn insert_audit(
    tx: &Transaction<'_>,
    locks: Locks,
    mut entry: NewAuditEntry,
) -> Result<AuditEntry, CatalogError> {
    locks.audit(tx).await?;
    // stored to the microsecond, so hash what will be read back
    entry.at = ts(&entry.at);
    let e = AuditEntry::chained(audit_head(tx).await?, entry);
    execute(
        tx,
        &format!("INSERT INTO audit ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
        &[
            &int(e.seq, "audit seq")?,
            &e.entry.at,
            &e.entry.actor,
            &e.entry.action,
            &e.entry.subject,
            &e.entry.reason,
            &e.entry.details,
            &&e.prev_hash[..],
            &&e.hash[..],
        ],
    )
    .await?;
    Ok(e)
}

pub(super) async fn audit_after(
    c: &Object,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, CatalogError> {
    let Ok(after) = i64::try_from(after_seq) else {
        return Ok(Vec::new());
    };
    collect(
        c,
        &format!("SELECT {AUDIT_COLS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
        &[&after, &sql_limit(limit)],
        read_audit,
    )
    .await
}
