//! `keys rewrap` and `keys retire` against a running daemon: neither acts while the daemon on this
//! host (found through its admin listener) still holds an older keyring; each first asks it to
//! reload (`POST /keyring/reload`), and refuses if it will not. `keys retire KEK` then removes a key
//! only once nothing stored is sealed under it, with an audit entry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::audit::NewAuditEntry;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::domain::{Clock, KeyId};
use crate::vault::Keyring;

/// How long the CLI waits for the admin listener.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the daemon on this host holds, from `GET /keyring`.
#[derive(Debug, serde::Deserialize)]
struct DaemonKeyring {
    active: String,
    keys: Vec<String>,
}

/// One HTTP/1.1 request to the admin listener; `None` when nothing listens there (no daemon).
async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> anyhow::Result<Option<(u16, String)>> {
    let io = async {
        let mut s = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
            Err(e) => return Err(e),
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok(Some(raw))
    };
    let raw = tokio::time::timeout(ADMIN_TIMEOUT, io)
        .await
        .with_context(|| format!("the admin listener {addr} did not answer"))?
        .with_context(|| format!("the admin listener {addr}"))?;
    let Some(raw) = raw else { return Ok(None) };
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("the admin listener {addr} gave no http status"))?;
    Ok(Some((status, body.to_owned())))
}

/// Makes sure a daemon running on this host holds `keyring`'s active key and every key it holds,
/// asking it to reload first; returns whether a daemon answered.
pub async fn ensure_daemon_current(config: &Config, keyring: &Keyring) -> anyhow::Result<bool> {
    let addr = config.admin.listen;
    let current = |d: &DaemonKeyring| {
        d.active == keyring.active().as_str()
            && keyring
                .key_ids()
                .iter()
                .all(|(id, _)| d.keys.iter().any(|k| k == id.as_str()))
    };
    let Some((status, body)) = admin(addr, "GET", "/keyring").await? else {
        return Ok(false);
    };
    if status == 200 && current(&serde_json::from_str(&body).context("GET /keyring")?) {
        return Ok(true);
    }
    eprintln!("the daemon at {addr} holds an older keyring: asking it to reload");
    let (status, body) = admin(addr, "POST", "/keyring/reload")
        .await?
        .context("the daemon stopped while asked to reload")?;
    if status != 200 {
        bail!(
            "the daemon at {addr} refused to reload its keyring ({status}: {}); fix that, then \
             `systemctl reload callvault`, before rewrapping or retiring keys",
            body.trim()
        );
    }
    let after: DaemonKeyring = serde_json::from_str(&body).context("POST /keyring/reload")?;
    if !current(&after) {
        bail!(
            "the daemon at {addr} reads a different keyring (active {}) from this one (active {}): \
             run this command with the daemon's own config and keyring",
            after.active,
            keyring.active()
        );
    }
    Ok(true)
}

/// `keys retire KEK`: removes a key from the keyring once no data key is wrapped under it and no
/// caller number is sealed under it; audited.
pub async fn retire(
    config: &Config,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
    id: &KeyId,
    actor: String,
) -> anyhow::Result<()> {
    let file = &config.keys.keyring;
    let mut keyring = Keyring::load(file)?;
    if !keyring.contains(id) {
        bail!("no key {id} in {}", file.path().display());
    }
    if &keyring.active() == id {
        bail!("{id} is the active key: `keys rotate`, then `keys rewrap`, then retire it");
    }
    let daemon = ensure_daemon_current(config, &keyring).await?;
    if catalog.key_ids_in_use().await?.contains(id) {
        bail!("data keys are still wrapped under {id}: run `callvault keys rewrap` first");
    }
    let sealed = callers_sealed_under(catalog.as_ref(), id).await?;
    if sealed > 0 {
        bail!(
            "{sealed} recordings have the caller's number sealed under {id}; it cannot be retired \
             while they are kept"
        );
    }
    keyring.retire(id)?;
    keyring.write_file(file.path())?;
    catalog
        .append_audit(
            NewAuditEntry::new(clock.now(), actor, "key.retire", id.as_str())
                .details(&serde_json::json!({ "active": keyring.active().as_str() })),
        )
        .await?;
    if daemon {
        // the daemon drops the retired key now rather than at its next reload
        match admin(config.admin.listen, "POST", "/keyring/reload").await? {
            Some((200, _)) | None => {}
            Some((status, body)) => eprintln!(
                "the daemon did not reload after the retirement ({status}: {}); `systemctl reload callvault`",
                body.trim()
            ),
        }
    }
    println!(
        "retired {id}; the keyring holds {} keys",
        keyring.key_ids().len()
    );
    Ok(())
}

/// Recordings whose sealed caller number names `id`.
async fn callers_sealed_under(catalog: &dyn Catalog, id: &KeyId) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut after = None;
    loop {
        let page = catalog.recordings_after(after, super::PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        count += page
            .iter()
            .filter_map(|r| r.caller_sealed.as_deref())
            .filter(|s| crate::vault::sealed_field_key_id(s).as_ref() == Some(id))
            .count() as u64;
    }
    Ok(count)
}
