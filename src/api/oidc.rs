//! OIDC JWTs: checked against the keys of a JWKS file (RS256, ES256 or EdDSA), the configured issuer
//! and audience, and expiry and not-before with the configured leeway against the daemon's clock;
//! the roles come from one claim through the configured mapping.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::OidcConfig;
use crate::domain::Role;

/// A token's claims, by name.
pub type Claims = serde_json::Map<String, Value>;

/// Which role wins when a user's claim values map to several.
const PRECEDENCE: [Role; 4] = [
    Role::Compliance,
    Role::Supervisor,
    Role::Ops,
    Role::Telephony,
];

/// Why the JWKS file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The file cannot be read.
    #[error("cannot read the jwks file: {0}")]
    Read(#[from] std::io::Error),
    /// The file is not a JWKS.
    #[error("not a jwks: {0}")]
    Parse(#[from] serde_json::Error),
    /// The JWKS holds no key of a supported kind (RSA, EC P-256, Ed25519).
    #[error("the jwks holds no rsa, p-256 or ed25519 key")]
    NoKeys,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Checks OIDC JWTs. Built once at start-up from `[auth.oidc]`.
pub struct OidcVerifier {
    keys: Vec<Key>,
    issuer: String,
    audience: String,
    leeway: i64,
    roles_claim: String,
    actor_claim: String,
    roles: BTreeMap<String, Role>,
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// Reads the JWKS file that `config` names.
    pub fn load(config: &OidcConfig) -> Result<Self, OidcError> {
        let bytes = std::fs::read(&config.jwks)?;
        Self::from_jwks(&bytes, config)
    }

    /// A verifier over the keys of a JWKS document.
    pub fn from_jwks(jwks: &[u8], config: &OidcConfig) -> Result<Self, OidcError> {
        let set: JwkSet = serde_json::from_slice(jwks)?;
        let keys: Vec<Key> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                        Algorithm::ES256
                    }
                    AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                        Algorithm::EdDSA
                    }
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(Key {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err(OidcError::NoKeys);
        }
        Ok(Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
            roles_claim: config.roles_claim.clone(),
            actor_claim: config.actor_claim.clone(),
            roles: config
                .roles
                .iter()
                .filter_map(|(k, v)| v.parse().ok().map(|r| (k.clone(), r)))
                .collect(),
        })
    }

    /// The actor (`oidc:` and the actor claim) and role of a valid token at `now`; `None` for a
    /// token that is malformed, signed by no key of the set, from another issuer, for another
    /// audience, expired or not yet valid, or whose claims map to no role.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<(String, Role)> {
        self.verify_until(token, now)
            .map(|(actor, role, _)| (actor, role))
    }

    /// As [`verify`](Self::verify), with the last instant the token is accepted (its expiry plus
    /// the leeway): a socket opened with it is closed after that ([`super::auth::Sessions`]).
    pub fn verify_until(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Option<(String, Role, DateTime<Utc>)> {
        self.verify_claims(token, now)
            .map(|(actor, role, until, _)| (actor, role, until))
    }

    /// As [`verify_until`](Self::verify_until), with the token's claims, for a caller that checks
    /// more of them (the console's sign-in checks the `nonce` it sent).
    pub fn verify_claims(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Option<(String, Role, DateTime<Utc>, Claims)> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let claims = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .find_map(|k| {
                let mut v = Validation::new(k.alg);
                v.set_issuer(&[&self.issuer]);
                v.set_audience(&[&self.audience]);
                // time is checked below against the daemon's clock, not the system's
                v.validate_exp = false;
                v.validate_nbf = false;
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &k.key, &v)
                    .ok()
                    .map(|d| d.claims)
            })?;
        let now = now.timestamp();
        let exp = claims.get("exp").and_then(Value::as_i64)?;
        if now > exp.saturating_add(self.leeway) {
            return None;
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && now < nbf.saturating_sub(self.leeway)
        {
            return None;
        }
        let values: Vec<&str> = match claims.get(&self.roles_claim)? {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return None,
        };
        let mapped: Vec<Role> = values
            .iter()
            .filter_map(|v| self.roles.get(*v).copied())
            .collect();
        let role = PRECEDENCE.into_iter().find(|r| mapped.contains(r))?;
        let actor = claims.get(&self.actor_claim).and_then(Value::as_str)?;
        let until = DateTime::from_timestamp(exp.saturating_add(self.leeway), 0)?;
        Some((format!("oidc:{actor}"), role, until, claims.clone()))
    }
}
