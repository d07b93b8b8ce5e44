//! Browser sessions: an opaque id in an HttpOnly, Secure, SameSite=Strict `__Host-` cookie, mapped
//! in memory to who signed in, with what credential, until when, and the session's CSRF token.
//!
//! Sessions live in this process only: a restart (or another node behind a load balancer without
//! sticky sessions) signs people out, which is safe. A session re-checks its credential on every
//! request through the API's own rule ([`auth::token_caller`]): a revoked token, or an OIDC login
//! whose ID token expired, ends it at its next request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Console, ConsoleError};
use crate::api::auth::{self, Caller, Credential};

/// The session cookie. `__Host-`: Secure, Path=/, no Domain, so no other host or path can set it.
pub(super) const SESSION_COOKIE: &str = "__Host-callvault";
/// The short-lived cookie that binds a sign-in form or an OIDC redirect to this browser.
pub(super) const SIGNIN_COOKIE: &str = "__Host-callvault-signin";

/// A fresh random value: 256 bits, base64url.
pub(super) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Whether `given` equals `expected`, in constant time.
pub(super) fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// One signed-in browser.
#[derive(Debug, Clone)]
struct SessionData {
    caller: Caller,
    /// The SHA-256 of the token signed in with (a token session); the token itself is not kept.
    token_hash: Option<[u8; 32]>,
    csrf: String,
    created: DateTime<Utc>,
    expires: DateTime<Utc>,
}

/// The sessions of this node. A cheap `Clone`; the std mutex is held only to read or change the
/// map, never across an `.await`.
#[derive(Clone)]
pub(super) struct SessionStore {
    inner: Arc<Mutex<HashMap<[u8; 32], SessionData>>>,
    max: usize,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("open", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// Sessions are found by the hash of their id, so the map holds nothing a cookie could be made from.
fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl SessionStore {
    pub(super) fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
            max: max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], SessionData>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for `caller` until `expires`; returns its id (the cookie's value).
    pub(super) fn create(
        &self,
        caller: Caller,
        token_hash: Option<[u8; 32]>,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> String {
        let id = random_token();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        while map.len() >= self.max {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            key(&id),
            SessionData {
                caller,
                token_hash,
                csrf: random_token(),
                created: now,
                expires,
            },
        );
        id
    }

    /// Ends a session.
    pub(super) fn remove(&self, id: &str) {
        self.lock().remove(&key(id));
    }

    fn get(&self, id: &str) -> Option<SessionData> {
        self.lock().get(&key(id)).cloned()
    }

    /// How many sessions are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for a secure, host-only, HttpOnly, SameSite=Strict cookie.
pub(super) fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> String {
    cookie_with(name, value, max_age_secs, "Strict")
}

/// As [`set_cookie`] with SameSite=Lax: the sign-in binding, which must come back on the
/// identity provider's redirect (a top-level navigation from another site).
pub(super) fn set_lax_cookie(name: &str, value: &str, max_age_secs: i64) -> String {
    cookie_with(name, value, max_age_secs, "Lax")
}

fn cookie_with(name: &str, value: &str, max_age_secs: i64, same_site: &str) -> String {
    format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={}",
        max_age_secs.max(0)
    )
}

/// The signed-in person of a console request: the API's [`Caller`], checked afresh.
#[derive(Debug, Clone)]
pub(super) struct Signed {
    /// Who, with which role, as every API handler takes it.
    pub caller: Caller,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    id: String,
}

impl Signed {
    /// The session's id, to end it.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Refuses a state change whose CSRF token is not this session's, or that another site's page
    /// sent (`Sec-Fetch-Site`, when the browser says).
    pub(super) fn check_csrf(
        &self,
        headers: &HeaderMap,
        given: Option<&str>,
    ) -> Result<(), ConsoleError> {
        check_same_origin(headers)?;
        let given = given
            .or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        if same_secret(given, &self.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }
}

/// Refuses a request another site's page made, when the browser says so.
pub(super) fn check_same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin" | "none") => Ok(()),
        Some(_) => Err(ConsoleError::Csrf),
    }
}

impl FromRequestParts<Console> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, st: &Console) -> Result<Self, ConsoleError> {
        let wants_page = parts.method == Method::GET;
        let signin = || ConsoleError::SignIn {
            next: wants_page.then(|| {
                parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/console/".to_owned(), |p| p.as_str().to_owned())
            }),
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(signin());
        };
        let Some(session) = st.sessions.get(id) else {
            return Err(signin());
        };
        let now = st.api.clock.now();
        if now >= session.expires {
            st.sessions.remove(id);
            return Err(signin());
        }
        // the credential, checked again as the API checks it on every request
        let caller = match (&session.caller.credential, &session.token_hash) {
            (Credential::Token { .. }, Some(hash)) => {
                match auth::token_caller(&st.api, hash).await {
                    Ok(c) => c,
                    Err(crate::api::ApiError::InvalidToken) => {
                        st.sessions.remove(id);
                        return Err(signin());
                    }
                    Err(e) => return Err(ConsoleError::Api(e)),
                }
            }
            (Credential::Jwt { until }, _) if now <= *until => session.caller.clone(),
            _ => {
                st.sessions.remove(id);
                return Err(signin());
            }
        };
        Ok(Signed {
            caller,
            csrf: session.csrf,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn caller() -> Caller {
        Caller {
            actor: "token:jo".into(),
            role: Role::Supervisor,
            credential: Credential::Token { id: "t1".into() },
        }
    }

    #[test]
    fn sessions_are_found_by_their_id_only_and_the_oldest_goes_first_when_full() {
        let t = DateTime::from_timestamp(1_790_000_000, 0).expect("time");
        let later = t + chrono::Duration::hours(1);
        let store = SessionStore::new(2);
        let a = store.create(caller(), None, t, later);
        let b = store.create(caller(), None, t + chrono::Duration::seconds(1), later);
        assert!(store.get(&a).is_some() && store.get(&b).is_some());
        assert!(store.get("not-a-session").is_none());
        let c = store.create(caller(), None, t + chrono::Duration::seconds(2), later);
        assert!(store.get(&a).is_none(), "the oldest made room");
        assert_eq!(store.len(), 2);
        store.remove(&b);
        assert!(store.get(&b).is_none() && store.get(&c).is_some());
        assert_ne!(store.get(&c).map(|s| s.csrf), Some(c.clone()));
    }

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; __Host-callvault=xyz".parse().expect("header"),
        );
        h.append(header::COOKIE, "b=2".parse().expect("header"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(
            same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("ab", "abc")
        );
    }
}
