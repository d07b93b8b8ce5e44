//! Signed checkpoints of the audit chain, append-only like the chain.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::convert::{execute, first, get, hash32, int, ts, uint};
use crate::audit::Checkpoint;
use crate::catalog::CatalogError;

const COLS: &str = "seq, hash, at, public_key, signature";

fn read(r: &Row) -> Result<Checkpoint, CatalogError> {
    let seq: i64 = get(r, 0)?;
    let what = move |col: &'static str| move || format!("audit checkpoint of {seq}: {col}");
    let signature: Vec<u8> = get(r, 4)?;
    Ok(Checkpoint {
        seq: uint(seq, &what("seq"))?,
        hash: hash32(get(r, 1)?, &what("hash"))?,
        at: get(r, 2)?,
        public_key: hash32(get(r, 3)?, &what("public_key"))?,
        signature: signature
            .try_into()
            .map_err(|_| CatalogError::corrupt(what("signature")()))?,
    })
}

pub(super) async fn store_checkpoint(c: &Object, cp: &Checkpoint) -> Result<(), CatalogError> {
    execute(
        c,
        &format!("INSERT INTO audit_checkpoints ({COLS}) VALUES ($1, $2, $3, $4, $5)"),
        &[
            &int(cp.seq, "checkpoint seq")?,
            &&cp.hash[..],
            &ts(&cp.at),
            &&cp.public_key[..],
            &&cp.signature[..],
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn latest_checkpoint(c: &Object) -> Result<Option<Checkpoint>, CatalogError> {
    first(
        c,
        &format!("SELECT {COLS} FROM audit_checkpoints ORDER BY seq DESC, id DESC LIMIT 1"),
        &[],
        read,
    )
    .await
}
