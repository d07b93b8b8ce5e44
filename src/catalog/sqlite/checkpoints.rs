//! Signed checkpoints of the audit chain, append-only like the chain.

use rusqlite::{Connection, Row, params};

use super::convert::{first, hash32, int, parse_ts, ts, uint};
use crate::audit::Checkpoint;
use crate::catalog::CatalogError;

const COLS: &str = "seq, hash, at, public_key, signature";

fn read(r: &Row<'_>) -> Result<Checkpoint, CatalogError> {
    let seq: i64 = r.get(0)?;
    let what = move |col: &'static str| move || format!("audit checkpoint of {seq}: {col}");
    let signature: Vec<u8> = r.get(4)?;
    Ok(Checkpoint {
        seq: uint(seq, &what("seq"))?,
        hash: hash32(r.get(1)?, &what("hash"))?,
        at: parse_ts(&r.get::<_, String>(2)?, &what("at"))?,
        public_key: hash32(r.get(3)?, &what("public_key"))?,
        signature: signature
            .try_into()
            .map_err(|_| CatalogError::corrupt(what("signature")()))?,
    })
}

pub(super) fn store_checkpoint(c: &Connection, cp: &Checkpoint) -> Result<(), CatalogError> {
    c.prepare_cached(&format!(
        "INSERT INTO audit_checkpoints ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"
    ))?
    .execute(params![
        int(cp.seq, "checkpoint seq")?,
        &cp.hash[..],
        ts(&cp.at),
        &cp.public_key[..],
        &cp.signature[..],
    ])?;
    Ok(())
}

pub(super) fn latest_checkpoint(c: &Connection) -> Result<Option<Checkpoint>, CatalogError> {
    first(
        c,
        &format!("SELECT {COLS} FROM audit_checkpoints ORDER BY seq DESC, id DESC LIMIT 1"),
        [],
        read,
    )
}
