//! The HTTP message signature of an AudioHook upgrade (RFC 9421 as `shared/protocols/audiohook.md`
//! describes it): HMAC-SHA256, keyed with the base64-decoded client secret, over one line per covered
//! component and a final `"@signature-params"` line.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::super::IngestError;

/// Components a signature must cover.
pub const REQUIRED: [&str; 6] = [
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
];
/// Shortest accepted nonce.
pub const MIN_NONCE: usize = 22;
/// Oldest accepted signature, in seconds after `created`.
pub const MAX_AGE_SECS: i64 = 10;
/// Clock skew tolerated, in seconds.
pub const SKEW_SECS: i64 = 3;

/// The request as the signature sees it: lowercase header names.
pub trait SignedRequest {
    /// Path and query.
    fn target(&self) -> &str;
    /// The `Host` header.
    fn authority(&self) -> &str;
    /// A header's value.
    fn header(&self, name: &str) -> Option<&str>;
}

/// The API key and client secret of an AudioHook integration. `Debug` prints nothing of them.
pub struct HookAuth {
    api_key: Zeroizing<String>,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for HookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookAuth([redacted])")
    }
}

struct Params<'a> {
    components: Vec<String>,
    keyid: Option<&'a str>,
    nonce: Option<&'a str>,
    alg: Option<&'a str>,
    created: Option<i64>,
    expires: Option<i64>,
}

impl HookAuth {
    /// From the API key and the client secret (base64, as Genesys shows it).
    pub fn new(api_key: &str, client_secret_b64: &str) -> Result<Self, IngestError> {
        let secret =
            STANDARD
                .decode(client_secret_b64.trim())
                .map_err(|_| IngestError::BadSecret {
                    reason: "the audiohook client secret is not base64",
                })?;
        if secret.is_empty() || api_key.trim().is_empty() {
            return Err(IngestError::BadSecret {
                reason: "the audiohook api key and client secret must not be empty",
            });
        }
        Ok(Self {
            api_key: Zeroizing::new(api_key.trim().to_owned()),
            secret: Zeroizing::new(secret),
        })
    }

    /// The signature (base64) of `req` with the `Signature-Input` inner list `params` (the text after
    /// `sig1=`), with no policy checks.
    pub fn sign(&self, req: &dyn SignedRequest, params: &str) -> Result<String, IngestError> {
        let parsed = parse_params(params)?;
        let base = signature_base(req, &parsed.components, params)?;
        let mut m =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("hmac accepts a key of any length");
        m.update(base.as_bytes());
        Ok(STANDARD.encode(m.finalize().into_bytes()))
    }

    /// Checks the request's `X-API-KEY`, `Signature-Input` and `Signature` at `now`, with the
    /// reference server's policy: all six components, `keyid` equal to the API key, a nonce of at
    /// least 22 characters, `created` at most 10 s old and not in the future (3 s skew), `expires`
    /// not past.
    pub fn verify(&self, req: &dyn SignedRequest, now: DateTime<Utc>) -> Result<(), IngestError> {
        let key = req
            .header("x-api-key")
            .ok_or(IngestError::MissingSignature {
                header: "x-api-key",
            })?;
        let input = req
            .header("signature-input")
            .ok_or(IngestError::MissingSignature {
                header: "signature-input",
            })?;
        let sig = req
            .header("signature")
            .ok_or(IngestError::MissingSignature {
                header: "signature",
            })?;
        let (label, params) = input
            .split_once('=')
            .ok_or_else(|| IngestError::bad("signature-input", "expected label=(...)"))?;
        let label = label.trim();
        let claimed = sig
            .split(',')
            .filter_map(|s| s.trim().split_once('='))
            .find(|(l, _)| l.trim() == label)
            .map(|(_, v)| v.trim())
            .and_then(|v| v.strip_prefix(':')?.strip_suffix(':'))
            .ok_or_else(|| IngestError::bad("signature", "no :base64: value for the label"))?;
        let p = parse_params(params)?;
        if !constant_eq(key.as_bytes(), self.api_key.as_bytes())
            || !p
                .keyid
                .is_some_and(|k| constant_eq(k.as_bytes(), self.api_key.as_bytes()))
        {
            return Err(IngestError::BadSignature);
        }
        if p.alg.is_some_and(|a| a != "hmac-sha256") {
            return Err(IngestError::bad(
                "signature-input",
                "alg must be hmac-sha256",
            ));
        }
        if let Some(missing) = REQUIRED
            .iter()
            .find(|c| !p.components.iter().any(|x| x == *c))
        {
            return Err(IngestError::bad(
                "signature-input",
                format!("must cover {missing}"),
            ));
        }
        if p.nonce.is_none_or(|n| n.len() < MIN_NONCE) {
            return Err(IngestError::bad(
                "signature-input",
                format!("nonce must be at least {MIN_NONCE} characters"),
            ));
        }
        let now_s = now.timestamp();
        let created = p
            .created
            .ok_or(IngestError::MissingField { field: "created" })?;
        if created > now_s + SKEW_SECS || now_s - created > MAX_AGE_SECS + SKEW_SECS {
            return Err(IngestError::StaleTimestamp {
                skew_secs: now_s - created,
            });
        }
        if p.expires.is_some_and(|e| e + SKEW_SECS < now_s) {
            return Err(IngestError::StaleTimestamp {
                skew_secs: now_s - created,
            });
        }
        let expected = self.sign(req, params)?;
        if constant_eq(expected.as_bytes(), claimed.as_bytes()) {
            Ok(())
        } else {
            Err(IngestError::BadSignature)
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_params(s: &str) -> Result<Params<'_>, IngestError> {
    let bad = |r: &str| IngestError::bad("signature-input", r.to_owned());
    let s = s.trim();
    let rest = s
        .strip_prefix('(')
        .ok_or_else(|| bad("expected an inner list"))?;
    let (list, rest) = rest
        .split_once(')')
        .ok_or_else(|| bad("unterminated inner list"))?;
    let components = list
        .split_ascii_whitespace()
        .map(|c| {
            c.strip_prefix('"')
                .and_then(|c| c.strip_suffix('"'))
                .map(str::to_owned)
                .ok_or_else(|| bad("components must be quoted"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut p = Params {
        components,
        keyid: None,
        nonce: None,
        alg: None,
        created: None,
        expires: None,
    };
    for kv in rest.split(';').filter(|x| !x.trim().is_empty()) {
        let (k, v) = kv
            .trim()
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        let text = || v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
        let num = || v.parse::<i64>().ok();
        match k {
            "keyid" => p.keyid = text(),
            "nonce" => p.nonce = text(),
            "alg" => p.alg = text(),
            "created" => p.created = Some(num().ok_or_else(|| bad("created is not a number"))?),
            "expires" => p.expires = Some(num().ok_or_else(|| bad("expires is not a number"))?),
            _ => {}
        }
    }
    Ok(p)
}

fn signature_base(
    req: &dyn SignedRequest,
    components: &[String],
    params: &str,
) -> Result<String, IngestError> {
    let mut base = String::new();
    for c in components {
        let value = match c.as_str() {
            "@request-target" => req.target(),
            "@authority" => req.authority(),
            name if name.starts_with('@') => {
                return Err(IngestError::bad(
                    "signature-input",
                    "unsupported derived component",
                ));
            }
            name => req.header(name).ok_or_else(|| {
                IngestError::bad("signature-input", "covers a header the request lacks")
            })?,
        };
        base.push_str(&format!("\"{c}\": {}\n", value.trim()));
    }
    base.push_str(&format!("\"@signature-params\": {}", params.trim()));
    Ok(base)
}
