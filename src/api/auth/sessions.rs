//! Sessions end with their credentials: a long-lived socket (live listen, native media) is
//! registered with the credential that opened it, and closed within [`CHECK_INTERVAL`] (plus one
//! catalog read) once that credential is revoked or expires.
//!
//! A revocation is a catalog write, often by another process (`callvault tokens revoke`) or
//! another node, so the daemon cannot be told; it looks instead. [`Sessions::watch`] reads the
//! token table once per interval (only while a token-opened session is open; one query however
//! many sockets share a token) and compares each open session's token with it; a JWT's session
//! ends when its expiry (plus the configured leeway) passes on the daemon's clock. Each closed
//! session is an audit entry (`session.close`, actor `system`), written before the next check, or
//! retried at the next one if the catalog refused it.
//!
//! A socket loop holds a [`Session`] and adds one arm to its `select!` ([`Session::ended`]), or
//! checks [`Session::cause`] between frames; dropping the `Session` unregisters it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Caller;
use crate::audit::NewAuditEntry;
use crate::catalog::{Catalog, CatalogError};
use crate::domain::Clock;

/// How often open sessions' credentials are checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The WebSocket close code of a session whose credential ended (RFC 6455: policy violation).
pub const CLOSE_CREDENTIAL_ENDED: u16 = 1008;

/// What a socket was opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A callvault bearer token, by its public id.
    Token {
        /// The token's id (as `callvault tokens list` shows it).
        id: String,
    },
    /// An OIDC JWT, accepted until this instant (its expiry plus the leeway).
    Jwt {
        /// The last instant it is accepted.
        until: DateTime<Utc>,
    },
}

/// Why a session was ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// Its token was revoked (or removed).
    Revoked,
    /// Its JWT expired.
    Expired,
}

impl EndCause {
    /// The close frame's reason, and the audit entry's.
    pub fn reason(self) -> &'static str {
        match self {
            EndCause::Revoked => "credential revoked",
            EndCause::Expired => "credential expired",
        }
    }
}

/// One open socket, as the watcher sees it.
struct Open {
    credential: Credential,
    holder: String,
    socket: &'static str,
    subject: String,
    ended: CancellationToken,
    cause: Arc<OnceLock<EndCause>>,
}

struct Inner {
    // a std mutex: held only to add, remove or snapshot entries, never across an `.await`
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
    /// Closings not yet in the audit chain (the catalog refused them); retried at the next check.
    unaudited: Mutex<Vec<NewAuditEntry>>,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
}

impl Inner {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unaudited(&self) -> MutexGuard<'_, Vec<NewAuditEntry>> {
        self.unaudited
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The open sessions of this node. A cheap `Clone`.
#[derive(Clone)]
pub struct Sessions(Arc<Inner>);

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.0.open().len())
            .finish_non_exhaustive()
    }
}

/// A registered socket: ends when its credential does; unregisters on drop.
#[derive(Debug)]
pub struct Session {
    id: u64,
    ended: CancellationToken,
    cause: Arc<OnceLock<EndCause>>,
    sessions: Sessions,
}

impl Session {
    /// Resolves once the credential has ended (never, while it stays valid): one `select!` arm.
    pub async fn ended(&self) -> EndCause {
        self.ended.cancelled().await;
        self.cause.get().copied().unwrap_or(EndCause::Revoked)
    }

    /// Why the session ended, if it has: a check between frames.
    pub fn cause(&self) -> Option<EndCause> {
        self.cause.get().copied()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.sessions.0.open().remove(&self.id);
    }
}

impl Sessions {
    /// No sessions yet; credentials are checked against `catalog` on `clock`.
    pub fn new(catalog: Arc<dyn Catalog>, clock: Arc<dyn Clock>) -> Self {
        Self(Arc::new(Inner {
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            unaudited: Mutex::new(Vec::new()),
            catalog,
            clock,
        }))
    }

    /// Registers a socket opened by `caller`: `socket` names its kind (`listen`, `media`) and
    /// `subject` what it is about (the call id), for the audit entry when it is closed.
    pub fn open(
        &self,
        caller: &Caller,
        socket: &'static str,
        subject: impl Into<String>,
    ) -> Session {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        let ended = CancellationToken::new();
        let cause = Arc::new(OnceLock::new());
        self.0.open().insert(
            id,
            Open {
                credential: caller.credential.clone(),
                holder: caller.actor.clone(),
                socket,
                subject: subject.into(),
                ended: ended.clone(),
                cause: Arc::clone(&cause),
            },
        );
        Session {
            id,
            ended,
            cause,
            sessions: self.clone(),
        }
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.0.open().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One check: ends every session whose credential was revoked or expired, and writes an audit
    /// entry for each (and for any an earlier check could not write). Returns how many it ended.
    /// When the token table cannot be read, nothing is ended this time (the next check tries
    /// again: a catalog outage does not cut live calls); when an audit entry cannot be written,
    /// the session is closed all the same and its entry stays queued for the next check.
    pub async fn check(&self) -> Result<usize, CatalogError> {
        let any_token =
            self.0.open().values().any(|o| {
                o.cause.get().is_none() && matches!(o.credential, Credential::Token { .. })
            });
        let active: Option<BTreeSet<String>> = if any_token {
            let tokens = self.0.catalog.tokens().await?;
            Some(
                tokens
                    .into_iter()
                    .filter(|t| t.is_active())
                    .map(|t| t.id)
                    .collect(),
            )
        } else {
            None
        };
        let now = self.0.clock.now();
        let mut closed = Vec::new();
        for o in self.0.open().values() {
            if o.cause.get().is_some() {
                continue;
            }
            let cause = match &o.credential {
                Credential::Token { id } if active.as_ref().is_some_and(|a| !a.contains(id)) => {
                    EndCause::Revoked
                }
                Credential::Jwt { until } if now > *until => EndCause::Expired,
                _ => continue,
            };
            if o.cause.set(cause).is_ok() {
                o.ended.cancel();
                let credential = match &o.credential {
                    Credential::Token { id } => format!("token {id}"),
                    Credential::Jwt { .. } => "jwt".to_owned(),
                };
                info!(socket = o.socket, subject = %o.subject, holder = %o.holder, reason = cause.reason(), "session closed");
                closed.push(
                    NewAuditEntry::new(now, "system", "session.close", o.subject.clone())
                        .reason(cause.reason())
                        .details(&json!({
                            "socket": o.socket, "holder": o.holder, "credential": credential,
                        })),
                );
            }
        }
        let ended = closed.len();
        let mut pending = std::mem::take(&mut *self.0.unaudited());
        pending.extend(closed);
        let mut left = pending.into_iter();
        while let Some(entry) = left.next() {
            if let Err(e) = self.0.catalog.append_audit(entry.clone()).await {
                let mut unaudited = self.0.unaudited();
                unaudited.push(entry);
                unaudited.extend(left);
                return Err(e);
            }
        }
        Ok(ended)
    }

    /// Checks every [`CHECK_INTERVAL`] until `shutdown`.
    pub async fn watch(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if self.is_empty() && self.0.unaudited().is_empty() {
                continue;
            }
            match self.check().await {
                Ok(_) => failing = false,
                Err(e) => {
                    // once per episode, not once a second
                    if !failing {
                        warn!(error = %e, "cannot check open sessions' credentials; retrying");
                    }
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{SqliteCatalog, TokenRow};
    use crate::domain::{ManualClock, Role};

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).expect("valid time")
    }

    async fn setup() -> (Sessions, Arc<dyn Catalog>, ManualClock) {
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open_in_memory().expect("catalog"));
        let clock = ManualClock::new(t0());
        for id in ["tok-a", "tok-b"] {
            catalog
                .insert_token(&TokenRow {
                    id: id.into(),
                    name: format!("name-{id}"),
                    role: "supervisor".into(),
                    hash: [id.len() as u8 + id.as_bytes()[4]; 32],
                    created_at: t0(),
                    revoked_at: None,
                })
                .await
                .expect("token");
        }
        let sessions = Sessions::new(Arc::clone(&catalog), Arc::new(clock.clone()));
        (sessions, catalog, clock)
    }

    fn caller(actor: &str, credential: Credential) -> Caller {
        Caller {
            actor: actor.into(),
            role: Role::Supervisor,
            credential,
        }
    }

    #[tokio::test]
    async fn a_revoked_token_ends_its_sessions_only_and_each_is_audited() {
        let (sessions, catalog, clock) = setup().await;
        let a = caller("token:a", Credential::Token { id: "tok-a".into() });
        let b = caller("token:b", Credential::Token { id: "tok-b".into() });
        let (a1, a2, b1) = (
            sessions.open(&a, "listen", "call-1"),
            sessions.open(&a, "media", "call-2"),
            sessions.open(&b, "listen", "call-1"),
        );
        assert_eq!(sessions.check().await.expect("check"), 0);
        assert!(
            catalog
                .revoke_token("tok-a", clock.now())
                .await
                .expect("revoke")
        );
        assert_eq!(sessions.check().await.expect("check"), 2);
        assert_eq!(a1.cause(), Some(EndCause::Revoked));
        assert_eq!(a2.ended().await, EndCause::Revoked);
        assert_eq!(b1.cause(), None);
        // ended once, audited once
        assert_eq!(sessions.check().await.expect("check"), 0);
        let audit = catalog.audit_after(0, 10).await.expect("audit");
        assert_eq!(audit.len(), 2);
        assert!(audit.iter().all(|e| e.entry.action == "session.close"
            && e.entry.actor == "system"
            && e.entry.reason.as_deref() == Some("credential revoked")
            && e.entry.details.contains("token tok-a")));
        drop((a1, a2));
        assert_eq!(sessions.len(), 1, "dropped sessions unregister");
    }

    #[tokio::test]
    async fn an_expired_jwt_ends_its_session_on_the_daemons_clock() {
        let (sessions, catalog, clock) = setup().await;
        let until = t0() + chrono::Duration::seconds(30);
        let s = sessions.open(
            &caller("oidc:jo", Credential::Jwt { until }),
            "listen",
            "call-9",
        );
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(
            sessions.check().await.expect("check"),
            0,
            "valid up to its last second"
        );
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(sessions.check().await.expect("check"), 1);
        assert_eq!(s.cause(), Some(EndCause::Expired));
        let audit = catalog.audit_after(0, 10).await.expect("audit");
        assert_eq!(audit[0].entry.reason.as_deref(), Some("credential expired"));
        assert_eq!(audit[0].entry.subject, "call-9");
    }
}
