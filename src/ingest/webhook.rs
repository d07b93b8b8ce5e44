//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), as native events carry them, so
//! that any platform's ordinary webhook library can sign them.
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`; the signature is its
//! HMAC-SHA256 under the secret, in base64, sent as `webhook-signature: v1,<base64>`. The header may
//! hold several space-separated signatures (during a secret rotation); any `v1` match passes, and
//! other versions are ignored. A timestamp more than [`TOLERANCE_SECS`] from now either way is
//! refused, which bounds replay; the event id bounds it further downstream.

use std::fmt;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::IngestError;
use crate::config::Secret;

/// How far `webhook-timestamp` may be from now, either way, in seconds.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Header names, as the Standard Webhooks specification spells them.
pub const ID_HEADER: &str = "webhook-id";
/// The header holding the unix time of the message, in seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header holding the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Base64 that accepts input with or without padding, since secrets are copied around by hand.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// The shared secret of Standard Webhooks signatures. `Debug` prints `[redacted]`; the key is
/// zeroized when dropped.
#[derive(Clone)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

/// The three Standard Webhooks headers of one request, as the caller found them (`None` when absent).
///
/// A header whose value is not visible ASCII should be passed as `Some("")`, so that it is refused
/// as malformed rather than as missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookHeaders<'a> {
    /// `webhook-id`: the message's unique id.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`: unix seconds when it was sent.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`: space-separated `v1,<base64>` signatures.
    pub signature: Option<&'a str>,
}

impl WebhookSecret {
    /// Reads a secret in the form `whsec_<base64>`, or plain base64 without the prefix. Surrounding
    /// whitespace (a file's final newline) is ignored.
    pub fn from_secret(secret: &Secret) -> Result<Self, IngestError> {
        let text = secret.expose_trimmed();
        let b64 = text.strip_prefix(b"whsec_").unwrap_or(text);
        let key = LENIENT.decode(b64).map_err(|_| IngestError::BadSecret {
            reason: "expected whsec_ followed by base64",
        })?;
        if key.is_empty() {
            return Err(IngestError::BadSecret {
                reason: "the key is empty",
            });
        }
        Ok(Self(Zeroizing::new(key)))
    }

    /// The `webhook-signature` value (`v1,<base64>`) for a message, as a sender computes it.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.mac(id, &timestamp.to_string(), body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Checks a request's signature and timestamp against this secret. Comparison is in constant
    /// time.
    pub fn verify(
        &self,
        headers: WebhookHeaders<'_>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), IngestError> {
        let missing = |header| IngestError::MissingSignature { header };
        let id = headers.id.ok_or(missing(ID_HEADER))?;
        let timestamp = headers.timestamp.ok_or(missing(TIMESTAMP_HEADER))?;
        let signature = headers.signature.ok_or(missing(SIGNATURE_HEADER))?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IngestError::bad(ID_HEADER, "expected visible ascii"));
        }
        let sent: i64 = timestamp
            .parse()
            .map_err(|_| IngestError::bad(TIMESTAMP_HEADER, "expected unix seconds"))?;

        let mac = self.mac(id, timestamp, body);
        let mut well_formed = false;
        let mut matched = false;
        for entry in signature.split_ascii_whitespace() {
            let Some((version, value)) = entry.split_once(',') else {
                continue;
            };
            well_formed = true;
            if version != "v1" {
                continue;
            }
            let Ok(candidate) = LENIENT.decode(value) else {
                continue;
            };
            // check every entry, so the time taken does not say which one matched
            matched |= mac.clone().verify_slice(&candidate).is_ok();
        }
        if !well_formed {
            return Err(IngestError::bad(
                SIGNATURE_HEADER,
                "expected space-separated v1,<base64> entries",
            ));
        }
        if !matched {
            return Err(IngestError::BadSignature);
        }
        let skew_secs = now.timestamp().saturating_sub(sent);
        if skew_secs.abs() > TOLERANCE_SECS {
            return Err(IngestError::StaleTimestamp { skew_secs });
        }
        Ok(())
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.0).expect("hmac accepts a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::from_secret(&Secret::new(s.as_bytes().to_vec())).expect("valid secret")
    }

    fn at(ts: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(ts, 0).single().expect("valid time")
    }

    fn headers<'a>(ts: &'a str, sig: &'a str) -> WebhookHeaders<'a> {
        WebhookHeaders {
            id: Some(ID),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn official_test_vector() {
        let s = secret(SECRET);
        assert_eq!(s.sign(ID, TS, BODY), SIG);
        let ts = TS.to_string();
        assert_eq!(s.verify(headers(&ts, SIG), BODY, at(TS)), Ok(()));
        // with a trailing newline, as read from a file, and without the prefix
        assert_eq!(secret(&format!("{SECRET}\n")).sign(ID, TS, BODY), SIG);
        assert_eq!(secret(&SECRET["whsec_".len()..]).sign(ID, TS, BODY), SIG);
    }

    #[test]
    fn wrong_secret_or_changed_body_fails() {
        let ts = TS.to_string();
        let other = secret("whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA==");
        assert_eq!(
            other.verify(headers(&ts, SIG), BODY, at(TS)),
            Err(IngestError::BadSignature)
        );
        let s = secret(SECRET);
        assert_eq!(
            s.verify(headers(&ts, SIG), br#"{"test": 2432232315}"#, at(TS)),
            Err(IngestError::BadSignature)
        );
        // the id and timestamp are signed too
        let mut h = headers(&ts, SIG);
        h.id = Some("msg_other");
        assert_eq!(s.verify(h, BODY, at(TS)), Err(IngestError::BadSignature));
        let later = (TS + 1).to_string();
        assert_eq!(
            s.verify(headers(&later, SIG), BODY, at(TS)),
            Err(IngestError::BadSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail() {
        let s = secret(SECRET);
        let ts = TS.to_string();
        let edge = TOLERANCE_SECS;
        assert_eq!(s.verify(headers(&ts, SIG), BODY, at(TS + edge)), Ok(()));
        assert_eq!(s.verify(headers(&ts, SIG), BODY, at(TS - edge)), Ok(()));
        assert_eq!(
            s.verify(headers(&ts, SIG), BODY, at(TS + edge + 1)),
            Err(IngestError::StaleTimestamp {
                skew_secs: edge + 1
            })
        );
        let e = s
            .verify(headers(&ts, SIG), BODY, at(TS - 3600))
            .expect_err("an hour in the future");
        assert_eq!(e, IngestError::StaleTimestamp { skew_secs: -3600 });
        assert_eq!(e.code(), "stale_timestamp");
    }

    #[test]
    fn any_of_several_signatures_passes() {
        let s = secret(SECRET);
        let ts = TS.to_string();
        let wrong = "v1,Ceqn4PMWRsSoPvH5Iqp2k2fhtCgkbsCDXGqhITy6nPo=";
        for header in [
            format!("{wrong} {SIG}"),
            format!("{SIG} {wrong}"),
            format!("v2,abc {SIG}"),
            format!("  v1,!!notbase64!! {SIG}  "),
        ] {
            assert_eq!(
                s.verify(headers(&ts, &header), BODY, at(TS)),
                Ok(()),
                "{header}"
            );
        }
        // a v2 entry with the right bytes is not a v1 signature
        let v2 = SIG.replacen("v1,", "v2,", 1);
        assert_eq!(
            s.verify(headers(&ts, &v2), BODY, at(TS)),
            Err(IngestError::BadSignature)
        );
        assert_eq!(
            s.verify(headers(&ts, wrong), BODY, at(TS)),
            Err(IngestError::BadSignature)
        );
    }

    #[test]
    fn malformed_or_missing_headers_fail() {
        let s = secret(SECRET);
        let ts = TS.to_string();
        let bad_field = |r: Result<(), IngestError>| match r {
            Err(IngestError::BadField { field, .. }) => field,
            other => panic!("expected a bad field, got {other:?}"),
        };
        let sig_only = SIG.trim_start_matches("v1,");
        assert_eq!(
            bad_field(s.verify(headers(&ts, sig_only), BODY, at(TS))),
            SIGNATURE_HEADER
        );
        assert_eq!(
            bad_field(s.verify(headers(&ts, ""), BODY, at(TS))),
            SIGNATURE_HEADER
        );
        assert_eq!(
            bad_field(s.verify(headers("2021-02-26", SIG), BODY, at(TS))),
            TIMESTAMP_HEADER
        );
        let mut h = headers(&ts, SIG);
        h.id = Some("");
        assert_eq!(bad_field(s.verify(h, BODY, at(TS))), ID_HEADER);

        let full = headers(&ts, SIG);
        for (h, name) in [
            (WebhookHeaders { id: None, ..full }, ID_HEADER),
            (
                WebhookHeaders {
                    timestamp: None,
                    ..full
                },
                TIMESTAMP_HEADER,
            ),
            (
                WebhookHeaders {
                    signature: None,
                    ..full
                },
                SIGNATURE_HEADER,
            ),
        ] {
            let e = s.verify(h, BODY, at(TS)).expect_err("missing header");
            assert_eq!(e, IngestError::MissingSignature { header: name });
            assert_eq!(e.code(), "missing_signature");
        }
    }

    #[test]
    fn bad_secrets_are_refused_and_never_printed() {
        for bad in ["whsec_", "whsec_not base64!", "", "   \n"] {
            let r = WebhookSecret::from_secret(&Secret::new(bad.as_bytes().to_vec()));
            assert!(matches!(r, Err(IngestError::BadSecret { .. })), "{bad:?}");
        }
        let s = secret(SECRET);
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
