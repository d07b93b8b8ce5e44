//! Authentication: bearer tokens, minted by `callvault tokens create`, stored only as a SHA-256 hash
//! and shown once; the [`Caller`] extractor that every route takes; role checks; and the
//! [`Sessions`] that close a long-lived socket when the credential that opened it ends.

mod sessions;

pub use sessions::{
    CHECK_INTERVAL, CLOSE_CREDENTIAL_ENDED, Credential, EndCause, Session, Sessions,
};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{ApiError, ApiState};
use crate::domain::Role;

/// The prefix of every callvault token, so secret scanners and people can recognise one.
pub const TOKEN_PREFIX: &str = "cvt_";

/// A fresh token: its id (public, for revocation), its secret (shown once), and the hash to store.
pub fn mint_token() -> (String, Zeroizing<String>, [u8; 32]) {
    let mut id = [0u8; 6];
    let mut secret = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut *secret);
    let token = Zeroizing::new(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(*secret)));
    let hash = token_hash(&token);
    (hex::encode(id), token, hash)
}

/// The stored form of a token: SHA-256 of the whole token text. Tokens carry 256 random bits, so a
/// fast hash is enough; the lookup by hash needs no constant-time comparison.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_to_what_is_stored() {
        let (id1, t1, h1) = mint_token();
        let (id2, t2, h2) = mint_token();
        assert_ne!(id1, id2);
        assert_ne!(*t1, *t2);
        assert!(t1.starts_with(TOKEN_PREFIX) && t1.len() > 40);
        assert_eq!(token_hash(&t1), h1);
        assert_ne!(h1, h2);
    }
}

/// Who is calling, as their bearer token or OIDC JWT says.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name (the actor recorded in the audit chain), prefixed `token:`.
    pub actor: String,
    /// The token's role.
    pub role: Role,
    /// What authenticated it, so a socket it opens ends when that does.
    pub credential: Credential,
}

impl Caller {
    /// Allows the call if the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// Roles that may find and play recordings.
pub const READERS: &[Role] = &[Role::Supervisor, Role::Compliance];
/// Roles that stream media and post events.
pub const TELEPHONY: &[Role] = &[Role::Telephony];

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?
            .to_str()
            .map_err(|_| ApiError::InvalidToken)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthenticated)?
            .trim();
        authenticate(state, token).await
    }
}

/// The caller a bearer token (a callvault token or an OIDC JWT) authenticates, as every route's
/// extractor decides it; the console signs in with the same rule.
pub async fn authenticate(state: &ApiState, token: &str) -> Result<Caller, ApiError> {
    if !token.starts_with(TOKEN_PREFIX) {
        // not a callvault token: an OIDC JWT, when configured (issue 5)
        let oidc = state.oidc.as_ref().ok_or(ApiError::InvalidToken)?;
        let (actor, role, until) = oidc
            .verify_until(token, state.clock.now())
            .ok_or(ApiError::InvalidToken)?;
        return Ok(Caller {
            actor,
            role,
            credential: Credential::Jwt { until },
        });
    }
    token_caller(state, &token_hash(token)).await
}

/// The caller of the active token whose hash is `hash`: a console session keeps the hash, not the
/// token, and asks again on every request, so a revoked token ends the session at once.
pub async fn token_caller(state: &ApiState, hash: &[u8; 32]) -> Result<Caller, ApiError> {
    let row = state
        .catalog
        .token_by_hash(hash)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .filter(|t| t.is_active())
        .ok_or(ApiError::InvalidToken)?;
    let role = row
        .role
        .parse::<Role>()
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Caller {
        actor: format!("token:{}", row.name),
        role,
        credential: Credential::Token { id: row.id },
    })
}
