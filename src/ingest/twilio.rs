//! Twilio: `X-Twilio-Signature` on webhooks and on the media socket upgrade, call status callbacks
//! as [`CallEvent`]s, and Media Streams ([`stream`]), whose two µ-law tracks become one stereo stream.
//!
//! Signatures follow twilio-python's `RequestValidator` (`shared/protocols/twilio.md` section 2): the
//! full URL, then each form parameter sorted by name as `name + value` (repeated names: each distinct
//! value, sorted), HMAC-SHA1 keyed with the Auth Token, base64; HMAC-SHA256 when
//! `X-Twilio-Webhooks-Signature-Settings` says `algorithm=HMAC_SHA256`. JSON bodies are signed over
//! the URL alone, which carries `bodySHA256=<hex sha256 of the body>`. The URL is tried with and
//! without its default port, as Twilio is inconsistent about it.

pub mod stream;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::IngestError;
use crate::domain::{CallEvent, CallId, EventKind};

/// The header of the signature.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// The header naming the SharedKey algorithm.
pub const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

/// Which HMAC signs a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// The default: HMAC-SHA1 keyed with the Auth Token.
    Sha1,
    /// The SharedKey variant: HMAC-SHA256.
    Sha256,
}

impl Algorithm {
    /// The algorithm named by `X-Twilio-Webhooks-Signature-Settings` (absent: SHA1).
    pub fn from_settings(header: Option<&str>) -> Result<Self, IngestError> {
        for part in header.unwrap_or_default().split(',') {
            if let Some((name, value)) = part.split_once('=')
                && name.trim() == "algorithm"
                && !value.trim().is_empty()
            {
                return match value.trim().to_ascii_uppercase().as_str() {
                    "HMAC_SHA1" => Ok(Self::Sha1),
                    "HMAC_SHA256" => Ok(Self::Sha256),
                    _ => Err(IngestError::bad(
                        "x-twilio-webhooks-signature-settings",
                        "unsupported algorithm",
                    )),
                };
            }
        }
        Ok(Self::Sha1)
    }
}

/// The keys that sign Twilio requests. `Debug` prints nothing of them.
pub struct TwilioAuth {
    token: Zeroizing<Vec<u8>>,
    shared_key: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for TwilioAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TwilioAuth([redacted])")
    }
}

impl TwilioAuth {
    /// Keys from the Auth Token and, optionally, the SharedKey secret (which keys HMAC-SHA256).
    pub fn new(token: &[u8], shared_key: Option<&[u8]>) -> Self {
        Self {
            token: Zeroizing::new(token.to_vec()),
            shared_key: shared_key.map(|k| Zeroizing::new(k.to_vec())),
        }
    }

    fn key(&self, alg: Algorithm) -> &[u8] {
        match (alg, &self.shared_key) {
            (Algorithm::Sha256, Some(k)) => k,
            _ => &self.token,
        }
    }

    /// The signature of a request to `url` with form `params`, as Twilio computes it.
    pub fn sign(&self, url: &str, params: &[(String, String)], alg: Algorithm) -> String {
        let mut names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut s = url.as_bytes().to_vec();
        for name in names {
            let mut values: Vec<&str> = params
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            values.sort_unstable();
            values.dedup();
            for v in values {
                s.extend_from_slice(name.as_bytes());
                s.extend_from_slice(v.as_bytes());
            }
        }
        let key = self.key(alg);
        let tag = match alg {
            Algorithm::Sha1 => {
                let mut m = Hmac::<sha1::Sha1>::new_from_slice(key)
                    .expect("hmac accepts a key of any length");
                m.update(&s);
                m.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha256 => {
                let mut m =
                    Hmac::<Sha256>::new_from_slice(key).expect("hmac accepts a key of any length");
                m.update(&s);
                m.finalize().into_bytes().to_vec()
            }
        };
        STANDARD.encode(tag)
    }

    /// Checks `signature` over `url` and form `params`, trying the URL with and without its default
    /// port. Comparison is in constant time.
    pub fn verify(
        &self,
        url: &str,
        params: &[(String, String)],
        signature: Option<&str>,
        alg: Algorithm,
    ) -> Result<(), IngestError> {
        let signature = signature.ok_or(IngestError::MissingSignature {
            header: SIGNATURE_HEADER,
        })?;
        let mut ok = false;
        for candidate in url_variants(url) {
            ok |= constant_eq(
                self.sign(&candidate, params, alg).as_bytes(),
                signature.as_bytes(),
            );
        }
        if ok {
            Ok(())
        } else {
            Err(IngestError::BadSignature)
        }
    }

    /// Checks a JSON body: the URL's `bodySHA256` must be the body's hash and the signature covers
    /// the URL with no parameters.
    pub fn verify_json(
        &self,
        url: &str,
        body: &[u8],
        signature: Option<&str>,
        alg: Algorithm,
    ) -> Result<(), IngestError> {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let claimed = parse_form(query)?
            .into_iter()
            .find(|(n, _)| n == "bodySHA256")
            .map(|(_, v)| v)
            .ok_or(IngestError::MissingField {
                field: "bodySHA256",
            })?;
        let sig = self.verify(url, &[], signature, alg);
        let hash_ok = constant_eq(body_hash(body).as_bytes(), claimed.as_bytes());
        sig?;
        if hash_ok {
            Ok(())
        } else {
            Err(IngestError::BadSignature)
        }
    }
}

/// The hex SHA-256 of a JSON body, for `bodySHA256`.
pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `url` as given, with its default port added, and with its port removed (deduplicated).
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    // a port is what follows the last ':' outside an IPv6 literal
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (hostport, None),
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => "443",
        _ => "80",
    };
    let without = format!("{scheme}://{userinfo}{host}{tail}");
    let with = match port {
        Some(p) => format!("{scheme}://{userinfo}{host}:{p}{tail}"),
        None => format!("{scheme}://{userinfo}{host}:{default}{tail}"),
    };
    for v in [without, with] {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Decodes an `application/x-www-form-urlencoded` body or query string.
pub fn parse_form(s: &str) -> Result<Vec<(String, String)>, IngestError> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(n)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, IngestError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| IngestError::bad("body", "bad percent-encoding"))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| IngestError::bad("body", "not utf-8"))
}

/// The event id of a Twilio call's `call.started` or `call.ended`: one per call, so whichever of
/// the status callback and the media stream's `start` comes first is applied and the other is a
/// duplicate.
pub fn event_id(call: &CallId, kind: &EventKind) -> String {
    format!("twilio:{call}:{}", kind.name())
}

/// Reads a call status callback: `in-progress` is `call.started` (line and caller from `To` and
/// `From`, swapped for outbound calls), a final status is `call.ended`, anything else (`queued`,
/// `initiated`, `ringing`) is `None`. `arrival` stands in for a missing or unreadable `Timestamp`.
pub fn status_event(
    params: &[(String, String)],
    arrival: DateTime<Utc>,
) -> Result<Option<CallEvent>, IngestError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let sid = get("CallSid").ok_or(IngestError::MissingField { field: "CallSid" })?;
    let call_id: CallId = sid
        .parse()
        .map_err(|e| IngestError::bad("CallSid", format!("{e}")))?;
    let status = get("CallStatus").ok_or(IngestError::MissingField {
        field: "CallStatus",
    })?;
    let at = get("Timestamp")
        .and_then(|t| DateTime::parse_from_rfc2822(t).ok())
        .map_or(arrival, |t| t.with_timezone(&Utc));
    let kind = match status {
        "in-progress" => {
            let outbound = get("Direction").is_some_and(|d| d.starts_with("outbound"));
            let (line, caller) = if outbound {
                (get("From"), get("To"))
            } else {
                (get("To"), get("From"))
            };
            EventKind::CallStarted {
                line: line.map(str::to_owned),
                caller: caller.map(str::to_owned),
                agent: None,
                queue: None,
            }
        }
        "completed" | "busy" | "failed" | "no-answer" | "canceled" => EventKind::CallEnded,
        "queued" | "initiated" | "ringing" => return Ok(None),
        other => {
            return Err(IngestError::bad(
                "CallStatus",
                format!(
                    "unknown status {:?}",
                    other
                        .chars()
                        .take(IngestError::MAX_ECHO)
                        .collect::<String>()
                ),
            ));
        }
    };
    Ok(Some(CallEvent {
        id: event_id(&call_id, &kind),
        call_id,
        at,
        kind,
    }))
}

/// Reads a JSON status callback body: an object of the same fields as the form.
pub fn json_params(body: &[u8]) -> Result<Vec<(String, String)>, IngestError> {
    let m = super::native::object(body)?;
    Ok(m.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Number(n) => Some((k, n.to_string())),
            serde_json::Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests;
