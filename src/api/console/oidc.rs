//! OIDC sign-in for the console: the authorization code flow with PKCE (S256), a `state` bound to
//! the browser by a short-lived cookie, and a `nonce` checked in the ID token. The ID token is
//! checked by the API's own [`OidcVerifier`] (issuer, signature, expiry, role claim and mapping of
//! `[auth.oidc]`), with the client id as its audience, against the provider's current JWKS.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::warn;

use super::session::{random_token, same_secret};
use crate::api::auth::{Caller, Credential};
use crate::api::oidc::OidcVerifier;
use crate::config::{ConsoleOidcConfig, OidcConfig};

/// How long a sign-in may take at the provider.
const PENDING_FOR: Duration = Duration::from_secs(600);
/// Most sign-ins under way at once.
const MAX_PENDING: usize = 1000;
/// How long the discovery document is trusted before it is read again.
const DISCOVERY_FOR: Duration = Duration::from_secs(3600);
/// Timeout of each request to the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sign-in through the provider failed; the page says which, the log says more.
#[derive(Debug, thiserror::Error)]
pub(super) enum OidcSignInError {
    /// The provider could not be reached or answered something unusable.
    #[error("the identity provider could not be reached: {0}")]
    Provider(String),
    /// The callback's state is unknown, expired, used, or from another browser.
    #[error("the sign-in was not started here or took too long")]
    State,
    /// The provider said no (the person cancelled, or is not allowed).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token is not valid, its nonce is wrong, or its claims map to no role.
    #[error("the identity provider's answer could not be accepted")]
    Token,
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

struct Pending {
    verifier: String,
    nonce: String,
    browser: String,
    next: String,
    started: Instant,
}

/// The console's OIDC client. Sign-ins under way are held in memory (a restart cancels them).
pub(super) struct OidcClient {
    config: ConsoleOidcConfig,
    auth: OidcConfig,
    http: reqwest::Client,
    // std mutexes: held to read or change the maps only, never across an `.await`
    pending: Mutex<HashMap<String, Pending>>,
    discovery: Mutex<Option<(Discovery, Instant)>>,
}

/// Where to send the browser, and the `state` the callback must bring back.
pub(super) struct Start {
    pub url: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl OidcClient {
    pub(super) fn new(config: ConsoleOidcConfig, auth: OidcConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| {
                warn!(error = %e, "cannot build the oidc http client with its settings; using defaults");
                reqwest::Client::new()
            });
        Self {
            config,
            auth,
            http,
            pending: Mutex::new(HashMap::new()),
            discovery: Mutex::new(None),
        }
    }

    /// The sign-in button's text.
    pub(super) fn label(&self) -> &str {
        &self.config.label
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcSignInError> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcSignInError::Provider(format!("{url}: {e}")))?;
        if !r.status().is_success() {
            return Err(OidcSignInError::Provider(format!("{url}: {}", r.status())));
        }
        let bytes = r
            .bytes()
            .await
            .map_err(|e| OidcSignInError::Provider(format!("{url}: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| OidcSignInError::Provider(format!("{url}: {e}")))
    }

    async fn discovery(&self) -> Result<Discovery, OidcSignInError> {
        if let Some((d, at)) = lock(&self.discovery).as_ref()
            && at.elapsed() < DISCOVERY_FOR
        {
            return Ok(d.clone());
        }
        let url = self.config.discovery.clone().unwrap_or_else(|| {
            format!(
                "{}/.well-known/openid-configuration",
                self.auth.issuer.trim_end_matches('/')
            )
        });
        let d: Discovery = serde_json::from_value(self.get_json(&url).await?)
            .map_err(|e| OidcSignInError::Provider(format!("{url}: {e}")))?;
        *lock(&self.discovery) = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    /// Begins a sign-in for the browser whose sign-in cookie is `browser`, returning to `next`.
    pub(super) async fn start(
        &self,
        browser: &str,
        next: String,
    ) -> Result<Start, OidcSignInError> {
        let d = self.discovery().await?;
        let state = random_token();
        let nonce = random_token();
        let verifier = random_token();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        {
            let mut pending = lock(&self.pending);
            pending.retain(|_, p| p.started.elapsed() < PENDING_FOR);
            if pending.len() >= MAX_PENDING {
                return Err(OidcSignInError::Provider(
                    "too many sign-ins under way".into(),
                ));
            }
            pending.insert(
                state.clone(),
                Pending {
                    verifier,
                    nonce: nonce.clone(),
                    browser: browser.to_owned(),
                    next,
                    started: Instant::now(),
                },
            );
        }
        let mut url = reqwest::Url::parse(&d.authorization_endpoint)
            .map_err(|e| OidcSignInError::Provider(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("scope", &self.config.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(Start {
            url: url.to_string(),
        })
    }

    /// Finishes a sign-in: checks `state` against the browser, trades `code` for tokens, and
    /// checks the ID token. Returns the caller, when the session must end, and where to go.
    pub(super) async fn finish(
        &self,
        browser: Option<&str>,
        state: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<(Caller, DateTime<Utc>, String), OidcSignInError> {
        let pending = lock(&self.pending)
            .remove(state)
            .ok_or(OidcSignInError::State)?;
        if pending.started.elapsed() >= PENDING_FOR
            || !browser.is_some_and(|b| same_secret(b, &pending.browser))
        {
            return Err(OidcSignInError::State);
        }
        let d = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let mut request = self.http.post(&d.token_endpoint);
        let secret = match &self.config.client_secret {
            Some(file) => Some(
                file.read()
                    .map_err(|e| OidcSignInError::Provider(e.to_string()))?,
            ),
            None => None,
        };
        match &secret {
            Some(s) => {
                let s = String::from_utf8_lossy(s.expose_trimmed()).into_owned();
                request = request.basic_auth(
                    form_component(&self.config.client_id),
                    Some(form_component(&s)),
                );
            }
            None => form.push(("client_id", self.config.client_id.as_str())),
        }
        let r = request
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcSignInError::Provider(format!("token endpoint: {e}")))?;
        let status = r.status();
        let body = r
            .bytes()
            .await
            .map_err(|e| OidcSignInError::Provider(format!("token endpoint: {e}")))?;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let error = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error code");
            return Err(OidcSignInError::Refused(format!(
                "token endpoint {status}: {error}"
            )));
        }
        let id_token = answer
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or(OidcSignInError::Token)?;
        let jwks = self.get_json(&d.jwks_uri).await?;
        let verifier = OidcVerifier::from_jwks(
            jwks.to_string().as_bytes(),
            &OidcConfig {
                audience: self.config.client_id.clone(),
                ..self.auth.clone()
            },
        )
        .map_err(|e| OidcSignInError::Provider(format!("jwks: {e}")))?;
        let (actor, role, until, claims) = verifier
            .verify_claims(id_token, now)
            .ok_or(OidcSignInError::Token)?;
        let nonce_ok = claims
            .get("nonce")
            .and_then(Value::as_str)
            .is_some_and(|n| same_secret(n, &pending.nonce));
        if !nonce_ok {
            return Err(OidcSignInError::Token);
        }
        Ok((
            Caller {
                actor,
                role,
                credential: Credential::Jwt { until },
            },
            until,
            pending.next,
        ))
    }
}

/// RFC 6749 section 2.3.1: the client id and secret are form-encoded before Basic authentication.
fn form_component(s: &str) -> String {
    super::form_urlencoded_value(s)
}
