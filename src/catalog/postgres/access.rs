//! Who may come in: bearer tokens, and the webhook replay guard.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::convert::{collect, execute, first, get, hash32, on_constraint, opt_ts, ts};
use crate::catalog::{CatalogError, TokenRow};

pub(super) async fn mark_event_seen(
    c: &Object,
    event_id: &str,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    // one statement, so two deliveries racing on the same id (on any nodes) cannot both insert
    let inserted = execute(
        c,
        "INSERT INTO seen_events (event_id, seen_at) VALUES ($1, $2) \
         ON CONFLICT (event_id) DO NOTHING",
        &[&event_id, &ts(&at)],
    )
    .await?;
    Ok(inserted == 1)
}

pub(super) async fn forget_event(c: &Object, event_id: &str) -> Result<(), CatalogError> {
    execute(
        c,
        "DELETE FROM seen_events WHERE event_id = $1",
        &[&event_id],
    )
    .await?;
    Ok(())
}

pub(super) async fn prune_seen_events(
    c: &Object,
    before: DateTime<Utc>,
) -> Result<u64, CatalogError> {
    Ok(execute(
        c,
        "DELETE FROM seen_events WHERE seen_at < $1",
        &[&ts(&before)],
    )
    .await?)
}

const TOKEN_COLS: &str = "id, name, role, hash, created_at, revoked_at";

fn read_token(r: &Row) -> Result<TokenRow, CatalogError> {
    let id: String = get(r, 0)?;
    let hash = hash32(get(r, 3)?, &|| format!("token {id}: hash"))?;
    Ok(TokenRow {
        name: get(r, 1)?,
        role: get(r, 2)?,
        hash,
        created_at: get(r, 4)?,
        revoked_at: get(r, 5)?,
        id,
    })
}

pub(super) async fn insert_token(c: &Object, t: &TokenRow) -> Result<(), CatalogError> {
    execute(
        c,
        &format!("INSERT INTO tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"),
        &[
            &t.id,
            &t.name,
            &t.role,
            &&t.hash[..],
            &ts(&t.created_at),
            &opt_ts(&t.revoked_at),
        ],
    )
    .await
    .map_err(|e| {
        on_constraint(
            e,
            "token",
            &format!("token {} or one with the same hash exists", t.id),
        )
    })?;
    Ok(())
}

pub(super) async fn token_by_hash(
    c: &Object,
    hash: &[u8; 32],
) -> Result<Option<TokenRow>, CatalogError> {
    first(
        c,
        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1"),
        &[&&hash[..]],
        read_token,
    )
    .await
}

pub(super) async fn revoke_token(
    c: &Object,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, CatalogError> {
    let changed = execute(
        c,
        "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[&id, &ts(&at)],
    )
    .await?;
    Ok(changed == 1)
}

pub(super) async fn tokens(c: &Object) -> Result<Vec<TokenRow>, CatalogError> {
    collect(
        c,
        &format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at, id"),
        &[],
        read_token,
    )
    .await
}
