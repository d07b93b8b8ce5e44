//! SIPREC (RFC 7866, metadata RFC 7865): the wire side of the recording server.
//!
//! The SRC (an SBC or PBX) sends each recorded call as a SIP session: an INVITE whose
//! `multipart/mixed` body holds an SDP offer with one `m=audio` line per call leg and the
//! recording metadata. This module reads and writes those messages and packets and decides what
//! they mean, with no I/O: SIP messages ([`sip`]), the body's parts ([`body`]), SDP offer and answer
//! ([`sdp`]), metadata ([`metadata`]), RTP and telephone-event packets ([`rtp`]), the two streams
//! placed by their timestamps and interleaved ([`mixer`]), and which call id a session records
//! under ([`correlate`]). The listeners, ports and sessions are in `server::siprec`.

pub mod body;
pub mod metadata;
pub mod mixer;
pub mod rtp;
pub mod sdp;
pub mod sip;

use crate::domain::CallId;

/// Why a SIP request is refused; [`SipError::status`] is the response's status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// The message does not parse.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A required header is missing.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// Not SIP/2.0.
    #[error("sip version not supported")]
    Version,
    /// Over [`sip::MAX_MESSAGE`] bytes or [`sip::MAX_HEADERS`] headers.
    #[error("message too large")]
    TooLarge,
    /// A body type this server does not read.
    #[error("unsupported body type {0}")]
    UnsupportedMedia(String),
    /// The SDP does not parse.
    #[error("bad sdp: {0}")]
    BadSdp(&'static str),
    /// No stream of the offer can be recorded.
    #[error("no acceptable stream: {0}")]
    NotAcceptable(&'static str),
    /// The metadata does not parse (the session is still recorded; the reason is ledgered).
    #[error("bad metadata: {0}")]
    BadMetadata(String),
    /// `Require` names extensions this server lacks.
    #[error("unsupported extensions: {}", .0.join(", "))]
    Unsupported(Vec<String>),
}

impl SipError {
    /// The SIP status code and reason phrase that answer this error.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            SipError::Malformed(_)
            | SipError::Missing(_)
            | SipError::BadSdp(_)
            | SipError::BadMetadata(_) => (400, "Bad Request"),
            SipError::Version => (505, "Version Not Supported"),
            SipError::TooLarge => (513, "Message Too Large"),
            SipError::UnsupportedMedia(_) => (415, "Unsupported Media Type"),
            SipError::NotAcceptable(_) => (488, "Not Acceptable Here"),
            SipError::Unsupported(_) => (420, "Bad Extension"),
        }
    }
}

/// Extensions this server supports in `Require`.
pub const SUPPORTED: &[&str] = &["siprec"];

/// The `Require` tags of `msg` this server does not support (RFC 3261 section 8.2.2.3).
pub fn unsupported(msg: &sip::Message) -> Vec<String> {
    msg.tokens("require")
        .into_iter()
        .filter(|t| !SUPPORTED.contains(&t.as_str()))
        .collect()
}

/// Where a session's call id comes from, tried in order (config `siprec.call_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    /// The first metadata element with this local name (any namespace), e.g. `ucid`.
    Element(String),
    /// A SIP header of the INVITE, e.g. `X-UCID`.
    Header(String),
    /// The metadata's first `<session session_id>`.
    Session,
    /// The INVITE's `Call-ID`.
    CallId,
}

impl std::str::FromStr for IdSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("element", n)) if !n.is_empty() => Ok(IdSource::Element(n.to_owned())),
            Some(("header", n)) if !n.is_empty() => Ok(IdSource::Header(n.to_owned())),
            None if s == "session" => Ok(IdSource::Session),
            None if s == "call-id" => Ok(IdSource::CallId),
            _ => Err(format!(
                "{s:?}: expected \"element:NAME\", \"header:NAME\", \"session\" or \"call-id\""
            )),
        }
    }
}

/// The call id a session records under: the first source in `order` that has a value, made a
/// valid [`CallId`] by [`call_id_of`]; the `Call-ID` when none has.
pub fn correlate(
    order: &[IdSource],
    invite: &sip::Message,
    md: Option<&metadata::Metadata>,
) -> (CallId, &'static str) {
    for source in order {
        let (value, name) = match source {
            IdSource::Element(n) => (md.and_then(|m| m.element(n)), "metadata element"),
            IdSource::Header(h) => (invite.header(h), "sip header"),
            IdSource::Session => (
                md.and_then(|m| m.sessions.first().map(String::as_str)),
                "metadata session",
            ),
            IdSource::CallId => (invite.call_id().ok(), "call-id"),
        };
        if let Some(id) = value.and_then(call_id_of) {
            return (id, name);
        }
    }
    let fallback = invite.call_id().ok().and_then(call_id_of);
    (
        fallback.unwrap_or_else(|| "siprec-unnamed".parse().expect("a valid literal")),
        "call-id",
    )
}

/// A platform's id as a [`CallId`]: kept as it is when valid; otherwise base64's `+` `/` become
/// `-` `_`, `=` padding is dropped, `@` becomes `:`, other characters `-`, and it is cut to
/// [`CallId::MAX_LEN`]. `None` when nothing is left.
pub fn call_id_of(raw: &str) -> Option<CallId> {
    let raw = raw.trim();
    if let Ok(id) = raw.parse() {
        return Some(id);
    }
    let mapped: String = raw
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            '@' => ':',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') => c,
            _ => '-',
        })
        .take(CallId::MAX_LEN)
        .collect();
    mapped.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_made_valid() {
        assert_eq!(call_id_of("abc-1").expect("id").as_str(), "abc-1");
        assert_eq!(
            call_id_of("hVpd7YQgRW2n+D22/7q60JQ==")
                .expect("id")
                .as_str(),
            "hVpd7YQgRW2n-D22_7q60JQ"
        );
        assert_eq!(
            call_id_of("f81d4fae@10.0.0.2").expect("id").as_str(),
            "f81d4fae:10.0.0.2"
        );
        assert!(call_id_of("==").is_none());
        assert_eq!(
            call_id_of(&"x".repeat(300)).expect("id").as_str().len(),
            128
        );
    }

    #[test]
    fn correlation_follows_the_configured_order() {
        let invite = sip::parse_datagram(
            b"INVITE sip:srs@h SIP/2.0\r\nCall-ID: c1@h\r\nX-UCID: 0000123\r\n\r\n",
        )
        .expect("parses");
        let md = metadata::parse(
            "<recording><session session_id=\"s+1=\"/><x><ucid>777</ucid></x></recording>",
        )
        .expect("parses");
        let order: Vec<IdSource> = ["element:ucid", "header:x-ucid", "session", "call-id"]
            .iter()
            .map(|s| s.parse().expect("source"))
            .collect();
        assert_eq!(correlate(&order, &invite, Some(&md)).0.as_str(), "777");
        assert_eq!(correlate(&order, &invite, None).0.as_str(), "0000123");
        assert_eq!(correlate(&order[2..], &invite, Some(&md)).0.as_str(), "s-1");
        assert_eq!(correlate(&[], &invite, Some(&md)).0.as_str(), "c1:h");
        assert!("bogus".parse::<IdSource>().is_err());
        assert!("element:".parse::<IdSource>().is_err());
    }

    proptest::proptest! {
        /// What the fuzz target `siprec_messages` runs, on every `cargo test`: bytes (a valid
        /// INVITE with some bytes overwritten, or anything) never panic the parsers, and a
        /// response to whatever parses as a request parses back with its Call-ID.
        #[test]
        fn no_input_panics(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            at in 0usize..2000,
            raw in proptest::bool::ANY,
        ) {
            let mut data = INVITE.as_bytes().to_vec();
            if raw {
                data = junk.clone();
            } else {
                let at = at.min(data.len());
                let end = (at + junk.len()).min(data.len());
                data.splice(at..end, junk.iter().copied());
            }
            let _ = sip::parse_stream(&data);
            let _ = rtp::parse(&data);
            if let Ok(msg) = sip::parse_datagram(&data) {
                if let Ok(parts) = body::split(msg.header("content-type"), &msg.body) {
                    if let Some(text) = &parts.sdp && let Ok(offer) = sdp::parse(text) {
                        let c = sdp::choose(&offer);
                        let _ = sdp::answer(&offer, &c, &[20000, 20002], "127.0.0.1".parse().expect("ip"), 1, 1);
                    }
                    if let Some(xml) = &parts.metadata {
                        let _ = metadata::parse(xml);
                    }
                }
                if msg.check_request().is_ok() {
                    let r = sip::Response::to(&msg, 400, "Bad Request", Some("t")).encode();
                    let back = sip::parse_datagram(&r).expect("our response parses");
                    proptest::prop_assert_eq!(back.call_id().ok(), msg.call_id().ok());
                }
            }
        }
    }

    const INVITE: &str = "INVITE sip:srs@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n\
        From: <sip:src@h>;tag=1\r\nTo: <sip:srs@h>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
        Content-Type: multipart/mixed;boundary=b\r\nContent-Length: 214\r\n\r\n\
        --b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 7000 RTP/AVP 0 101\r\na=label:1\r\n\
        --b\r\nContent-Type: application/rs-metadata\r\n\r\n<recording><stream id=\"s\"><label>1</label></stream></recording>\r\n--b--\r\n";

    #[test]
    fn the_property_test_starts_from_a_whole_invite() {
        let msg = sip::parse_datagram(INVITE.as_bytes()).expect("parses");
        msg.check_request().expect("complete");
        let parts = body::split(msg.header("content-type"), &msg.body).expect("splits");
        let offer = sdp::parse(parts.sdp.as_deref().expect("sdp")).expect("sdp parses");
        assert!(sdp::choose(&offer)[0].is_ok());
        let md = metadata::parse(parts.metadata.as_deref().expect("metadata")).expect("xml");
        assert_eq!(md.streams.len(), 1);
    }

    #[test]
    fn require_tags_we_lack_are_listed() {
        let m = sip::parse_datagram(
            b"INVITE sip:a@b SIP/2.0\r\nRequire: siprec, 100rel\r\nRequire: Foo\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(unsupported(&m), ["100rel", "foo"]);
    }
}
