//! Who may come in: bearer tokens, and the webhook replay guard.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, params};

use super::convert::{collect, first, hash32, on_constraint, opt_ts, parse_opt_ts, parse_ts, ts};
use crate::catalog::{CatalogError, TokenRow};

pub(super) fn mark_event_seen(
    c: &Connection,
    event_id: &str,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    // one statement, so two deliveries racing on the same id cannot both insert
    let inserted = c
        .prepare_cached(
            "INSERT INTO seen_events (event_id, seen_at) VALUES (?1, ?2) \
             ON CONFLICT (event_id) DO NOTHING",
        )?
        .execute(params![event_id, ts(&at)])?;
    Ok(inserted == 1)
}

pub(super) fn forget_event(c: &Connection, event_id: &str) -> Result<(), CatalogError> {
    c.prepare_cached("DELETE FROM seen_events WHERE event_id = ?1")?
        .execute([event_id])?;
    Ok(())
}

pub(super) fn prune_seen_events(
    c: &Connection,
    before: DateTime<Utc>,
) -> Result<u64, CatalogError> {
    let n = c
        .prepare_cached("DELETE FROM seen_events WHERE seen_at < ?1")?
        .execute([ts(&before)])?;
    Ok(n as u64)
}

const TOKEN_COLS: &str = "id, name, role, hash, created_at, revoked_at";

fn read_token(r: &Row<'_>) -> Result<TokenRow, CatalogError> {
    let id: String = r.get(0)?;
    let what = |col: &'static str| {
        let id = id.clone();
        move || format!("token {id}: {col}")
    };
    Ok(TokenRow {
        name: r.get(1)?,
        role: r.get(2)?,
        hash: hash32(r.get(3)?, &what("hash"))?,
        created_at: parse_ts(&r.get::<_, String>(4)?, &what("created_at"))?,
        revoked_at: parse_opt_ts(r.get(5)?, &what("revoked_at"))?,
        id,
    })
}

pub(super) fn insert_token(c: &Connection, t: &TokenRow) -> Result<(), CatalogError> {
    c.prepare_cached(&format!(
        "INSERT INTO tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?
    .execute(params![
        t.id,
        t.name,
        t.role,
        t.hash,
        ts(&t.created_at),
        opt_ts(&t.revoked_at)
    ])
    .map_err(|e| {
        on_constraint(
            e,
            "token",
            &format!("token {} or one with the same hash exists", t.id),
        )
    })?;
    Ok(())
}

pub(super) fn token_by_hash(
    c: &Connection,
    hash: &[u8; 32],
) -> Result<Option<TokenRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"),
        [hash],
        read_token,
    )
}

pub(super) fn revoke_token(
    c: &Connection,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    let changed = c
        .prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")?
        .execute(params![id, ts(&at)])?;
    Ok(changed == 1)
}

pub(super) fn tokens(c: &Connection) -> Result<Vec<TokenRow>, CatalogError> {
    collect(
        c,
        &format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at, id"),
        [],
        read_token,
    )
}
