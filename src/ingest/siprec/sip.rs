//! The SIP messages of the recording server's UAS subset (RFC 3261): a request or response line,
//! headers (compact forms, folded lines, any case) and a body cut by `Content-Length`.
//!
//! [`parse_datagram`] reads one UDP datagram; [`parse_stream`] cuts one message off the front of a
//! TCP or TLS byte stream (`Ok(None)` until it is whole). [`Response`] builds the answers, copying
//! the headers RFC 3261 section 8.2.6 says a response copies. Nothing here does I/O.

use std::fmt::Write as _;

use super::SipError;

/// Largest message accepted, headers and body (a SIPREC INVITE with metadata is 1.5 to 4 KB).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most header lines accepted in one message.
pub const MAX_HEADERS: usize = 128;

/// A SIP method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// INVITE (a new session, or a re-INVITE within one).
    Invite,
    /// ACK of a final answer to an INVITE.
    Ack,
    /// BYE: the session ends.
    Bye,
    /// CANCEL of a pending INVITE.
    Cancel,
    /// OPTIONS: a keep-alive ping (SBCs send them constantly).
    Options,
    /// UPDATE: new SDP or metadata within a session.
    Update,
    /// Any other method, as sent (cut to 32 characters).
    Other(String),
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "UPDATE" => Method::Update,
            other => Method::Other(other.chars().take(32).collect()),
        }
    }

    /// The method as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Update => "UPDATE",
            Method::Other(s) => s,
        }
    }
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// A request: its method and Request-URI.
    Request {
        /// The method.
        method: Method,
        /// The Request-URI, as sent.
        uri: String,
    },
    /// A response: its status code.
    Response {
        /// The status code.
        code: u16,
    },
}

/// One parsed message: the start line, the headers in order (names in their full form, as
/// lower case), and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The request or status line.
    pub start: StartLine,
    headers: Vec<(String, String)>,
    /// The body (exactly `Content-Length` bytes).
    pub body: Vec<u8>,
}

/// The full lower-case name of a header given in its compact form (RFC 3261 section 7.3.3, RFC 3515,
/// RFC 3903, RFC 4028).
fn full_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let full = match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "s" => "subject",
        "e" => "content-encoding",
        "o" => "event",
        "x" => "session-expires",
        _ => return lower,
    };
    full.to_owned()
}

/// Reads one UDP datagram as a whole message. Without `Content-Length` the body is the rest of the
/// datagram; with it, the body must be at least that long (extra bytes are ignored).
pub fn parse_datagram(buf: &[u8]) -> Result<Message, SipError> {
    let (head, rest) = split_head(buf)?.ok_or(SipError::Malformed("no end of headers"))?;
    let mut msg = parse_head(head)?;
    msg.body = match msg.content_length()? {
        Some(n) if n <= rest.len() => rest[..n].to_vec(),
        Some(_) => return Err(SipError::Malformed("body shorter than content-length")),
        None => rest.to_vec(),
    };
    Ok(msg)
}

/// Cuts one message off the front of a stream buffer: the message and the bytes it took, or
/// `Ok(None)` when more bytes are needed. Leading blank lines (keep-alives, RFC 5626) are skipped.
/// A stream message must carry `Content-Length`.
pub fn parse_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, SipError> {
    let skip = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let data = &buf[skip..];
    let Some((head, rest)) = split_head(data)? else {
        return Ok(None);
    };
    let mut msg = parse_head(head)?;
    let n = msg.content_length()?.ok_or(SipError::Malformed(
        "content-length is required on a stream",
    ))?;
    if head.len() + n > MAX_MESSAGE {
        return Err(SipError::TooLarge);
    }
    if rest.len() < n {
        return Ok(None);
    }
    msg.body = rest[..n].to_vec();
    let used = skip + (data.len() - rest.len()) + n;
    Ok(Some((msg, used)))
}

/// Splits at the blank line that ends the headers (CRLF CRLF, or LF LF from a lax peer).
/// The headers and what follows them.
type Split<'a> = (&'a [u8], &'a [u8]);

fn split_head(buf: &[u8]) -> Result<Option<Split<'_>>, SipError> {
    let end = (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some((i, i + 4))
        } else if buf[i..].starts_with(b"\n\n") {
            Some((i, i + 2))
        } else {
            None
        }
    });
    match end {
        Some((h, b)) => Ok(Some((&buf[..h], &buf[b..]))),
        None if buf.len() > MAX_MESSAGE => Err(SipError::TooLarge),
        None => Ok(None),
    }
}

fn parse_head(head: &[u8]) -> Result<Message, SipError> {
    if head.len() > MAX_MESSAGE {
        return Err(SipError::TooLarge);
    }
    let text =
        std::str::from_utf8(head).map_err(|_| SipError::Malformed("headers are not utf-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or(SipError::Malformed("empty message"))?;
    let start = parse_start(first)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // a folded line continues the previous header's value
            let (_, value) = headers
                .last_mut()
                .ok_or(SipError::Malformed("continuation before any header"))?;
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(SipError::Malformed("header line without a colon"))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SipError::Malformed("bad header name"));
        }
        if headers.len() >= MAX_HEADERS {
            return Err(SipError::TooLarge);
        }
        headers.push((full_name(name), value.trim().to_owned()));
    }
    Ok(Message {
        start,
        headers,
        body: Vec::new(),
    })
}

fn parse_start(line: &str) -> Result<StartLine, SipError> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let code = rest
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..700).contains(c))
            .ok_or(SipError::Malformed("bad status code"))?;
        return Ok(StartLine::Response { code });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SipError::Malformed("bad request line"));
    };
    if version != "SIP/2.0" {
        return Err(SipError::Version);
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(SipError::Malformed("bad method"));
    }
    if uri.is_empty() || !uri.contains(':') {
        return Err(SipError::Malformed("bad request-uri"));
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        uri: uri.to_owned(),
    })
}

impl Message {
    /// The request's method, if it is a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The first value of header `name` (full name, any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).next()
    }

    /// Every value of header `name`, in order (a header repeated on several lines, or not split on
    /// commas: [`Message::tokens`] does that for token lists).
    pub fn headers<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The comma-separated tokens of every `name` header (`Require`, `Supported`), lower case.
    pub fn tokens(&self, name: &str) -> Vec<String> {
        self.headers(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// `Content-Length`, if present.
    pub fn content_length(&self) -> Result<Option<usize>, SipError> {
        match self.header("content-length") {
            None => Ok(None),
            Some(v) => v
                .parse::<usize>()
                .map(Some)
                .map_err(|_| SipError::Malformed("bad content-length")),
        }
    }

    /// `Call-ID`, required on every request.
    pub fn call_id(&self) -> Result<&str, SipError> {
        self.header("call-id")
            .filter(|v| !v.is_empty())
            .ok_or(SipError::Missing("call-id"))
    }

    /// `CSeq`: its number and method.
    pub fn cseq(&self) -> Result<(u32, Method), SipError> {
        let v = self.header("cseq").ok_or(SipError::Missing("cseq"))?;
        let mut it = v.split_whitespace();
        let n = it
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or(SipError::Malformed("bad cseq"))?;
        let m = it.next().ok_or(SipError::Malformed("bad cseq"))?;
        Ok((n, Method::parse(m)))
    }

    /// The `tag` parameter of the `To` header, if any (none on a new INVITE).
    pub fn to_tag(&self) -> Option<&str> {
        self.header("to").and_then(|v| param(v, "tag"))
    }

    /// The `branch` of the top `Via`.
    pub fn branch(&self) -> Option<&str> {
        self.header("via")
            .and_then(|v| param(first_via(v), "branch"))
    }

    /// Checks the headers every request needs (RFC 3261 section 8.1.1).
    pub fn check_request(&self) -> Result<(), SipError> {
        self.call_id()?;
        let (_, method) = self.cseq()?;
        if Some(&method) != self.method() && self.method() != Some(&Method::Ack) {
            return Err(SipError::Malformed("cseq method differs from the request"));
        }
        for h in ["via", "from", "to"] {
            if self.header(h).is_none_or(str::is_empty) {
                return Err(SipError::Missing(match h {
                    "via" => "via",
                    "from" => "from",
                    _ => "to",
                }));
            }
        }
        Ok(())
    }

    /// The URI inside `Contact` (between `<` and `>`, or the bare value).
    pub fn contact_uri(&self) -> Option<&str> {
        self.header("contact").map(uri_of)
    }
}

/// The top entry of a (possibly comma-joined) `Via` value.
fn first_via(v: &str) -> &str {
    v.split(',').next().unwrap_or(v)
}

/// The URI of a name-addr or addr-spec header value.
pub fn uri_of(v: &str) -> &str {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or(v).trim(),
    }
}

/// The value of parameter `name` in a header value's `;name=value` list (outside `<...>`).
pub fn param<'a>(v: &'a str, name: &str) -> Option<&'a str> {
    let after = v.rfind('>').map_or(v, |i| &v[i + 1..]);
    after.split(';').skip(1).find_map(|p| {
        let (k, val) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"'))
    })
}

/// A response to a request, built header by header.
#[derive(Debug, Clone)]
pub struct Response {
    code: u16,
    reason: &'static str,
    headers: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl Response {
    /// A response with `code` to `req`: its `Via`s, `From`, `To` (with `to_tag` added when the
    /// request's `To` has none), `Call-ID` and `CSeq` copied.
    pub fn to(req: &Message, code: u16, reason: &'static str, to_tag: Option<&str>) -> Self {
        let mut headers = Vec::new();
        for v in req.headers("via") {
            headers.push(("Via".to_owned(), v.to_owned()));
        }
        for (name, wire) in [
            ("from", "From"),
            ("to", "To"),
            ("call-id", "Call-ID"),
            ("cseq", "CSeq"),
        ] {
            if let Some(v) = req.header(name) {
                let mut v = v.to_owned();
                if name == "to" && req.to_tag().is_none() && code > 100 {
                    if let Some(tag) = to_tag {
                        let _ = write!(v, ";tag={tag}");
                    }
                }
                headers.push((wire.to_owned(), v));
            }
        }
        Self {
            code,
            reason,
            headers,
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body and its content type.
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.body = Some((content_type.to_owned(), body));
        self
    }

    /// The status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut head = format!("SIP/2.0 {} {}\r\n", self.code, self.reason);
        for (n, v) in &self.headers {
            let _ = write!(head, "{n}: {v}\r\n");
        }
        let body = match &self.body {
            Some((ct, b)) => {
                let _ = write!(head, "Content-Type: {ct}\r\n");
                b.as_slice()
            }
            None => &[],
        };
        let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// A request this server sends (the BYE that ends a session on RTP inactivity), as bytes.
#[allow(clippy::too_many_arguments)]
pub fn request(
    method: &str,
    uri: &str,
    via: &str,
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    contact: &str,
) -> Vec<u8> {
    format!(
        "{method} {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:srs@10.0.0.1 SIP/2.0\r\n\
        v: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1\r\n\
        Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bK0\r\n\
        From: <sip:src@10.0.0.2>;tag=a1\r\n\
        To: <sip:srs@10.0.0.1>\r\n\
        i: abc@10.0.0.2\r\n\
        CSeq: 1 INVITE\r\n\
        Require: siprec\r\n\
        Supported: timer,\r\n 100rel\r\n\
        Contact: <sip:src@10.0.0.2:5060;transport=tcp>;+sip.src\r\n\
        l: 4\r\n\r\nbody";

    #[test]
    fn parses_a_request_with_compact_and_folded_headers() {
        let m = parse_datagram(INVITE.as_bytes()).expect("parses");
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.call_id().expect("call-id"), "abc@10.0.0.2");
        assert_eq!(m.cseq().expect("cseq"), (1, Method::Invite));
        assert_eq!(m.tokens("supported"), vec!["timer", "100rel"]);
        assert_eq!(m.tokens("require"), vec!["siprec"]);
        assert_eq!(m.branch(), Some("z9hG4bK1"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.contact_uri(), Some("sip:src@10.0.0.2:5060;transport=tcp"));
        assert_eq!(m.body, b"body");
        m.check_request().expect("complete");
    }

    #[test]
    fn a_stream_waits_for_the_whole_body() {
        let bytes = format!("\r\n\r\n{INVITE}OPTIONS");
        for cut in 0..bytes.len() - "OPTIONS".len() {
            assert_eq!(
                parse_stream(&bytes.as_bytes()[..cut]).expect("ok"),
                None,
                "{cut}"
            );
        }
        let (m, used) = parse_stream(bytes.as_bytes()).expect("ok").expect("whole");
        assert_eq!(&bytes[used..], "OPTIONS");
        assert_eq!(m.body, b"body");
    }

    #[test]
    fn lf_only_messages_parse() {
        let lf = INVITE.replace("\r\n", "\n");
        let m = parse_datagram(lf.as_bytes()).expect("parses");
        assert_eq!(m.body, b"body");
    }

    #[test]
    fn bad_messages_are_errors() {
        for bad in [
            "",
            "INVITE sip:a SIP/2.0\r\nVia x\r\n\r\n",
            "INVITE sip:a SIP/3.0\r\n\r\n",
            "INVITE\r\n\r\n",
            "invite sip:a SIP/2.0\r\n\r\n",
            "INVITE sip:a SIP/2.0\r\n foo\r\n\r\n",
            "INVITE sip:a SIP/2.0\r\nContent-Length: 99\r\n\r\nshort",
            "INVITE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            "SIP/2.0 99 x\r\n\r\n",
        ] {
            assert!(parse_datagram(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let m = parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n").expect("parses");
        assert!(matches!(m.check_request(), Err(SipError::Missing(_))));
        assert!(matches!(
            parse_stream(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n"),
            Err(SipError::Malformed(_))
        ));
    }

    #[test]
    fn responses_copy_the_transaction_headers() {
        let m = parse_datagram(INVITE.as_bytes()).expect("parses");
        let r = Response::to(&m, 200, "OK", Some("srs1"))
            .header("Contact", "<sip:srs@10.0.0.1>")
            .body("application/sdp", b"v=0\r\n".to_vec())
            .encode();
        let text = String::from_utf8(r).expect("utf-8");
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bK0\r\n"));
        assert!(text.contains("To: <sip:srs@10.0.0.1>;tag=srs1\r\n"));
        assert!(text.contains("Call-ID: abc@10.0.0.2\r\nCSeq: 1 INVITE\r\n"));
        assert!(text.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
        let back = parse_datagram(text.as_bytes()).expect("our response parses");
        assert_eq!(back.start, StartLine::Response { code: 200 });
        assert_eq!(back.to_tag(), Some("srs1"));
    }

    #[test]
    fn params_and_uris() {
        assert_eq!(param("<sip:a;x=1>;tag=9;lr", "tag"), Some("9"));
        assert_eq!(param("<sip:a;tag=1>", "tag"), None);
        assert_eq!(uri_of("\"A\" <sip:a@b>;tag=1"), "sip:a@b");
        assert_eq!(uri_of("sip:a@b;tag=1"), "sip:a@b");
    }
}
