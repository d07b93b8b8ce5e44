//! The body of a SIPREC INVITE: `multipart/mixed` (boundary quoted or not, CRLF or LF) holding the
//! SDP offer (`application/sdp`) and the recording metadata (`application/rs-metadata+xml`, or
//! AudioCodes' `application/rs-metadata`); or a bare SDP body from an SRC that sends no metadata.

use super::SipError;

/// The parts of a body this server reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// The SDP, if any.
    pub sdp: Option<String>,
    /// The rs-metadata XML, if any.
    pub metadata: Option<String>,
    /// An `application/rs-metadata-request` part was present (the SRC asks for nothing from us;
    /// noted only).
    pub other: Vec<String>,
}

/// The media type of a `Content-Type` value, lower case, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_metadata(media: &str) -> bool {
    matches!(
        media,
        "application/rs-metadata+xml" | "application/rs-metadata"
    )
}

/// Splits a body of `content_type` into its SDP and metadata.
pub fn split(content_type: Option<&str>, body: &[u8]) -> Result<Parts, SipError> {
    let mut parts = Parts::default();
    if body.is_empty() {
        return Ok(parts);
    }
    let ct = content_type.ok_or(SipError::Missing("content-type"))?;
    let media = media_type(ct);
    let text = || {
        std::str::from_utf8(body)
            .map(str::to_owned)
            .map_err(|_| SipError::Malformed("body is not utf-8"))
    };
    match media.as_str() {
        "application/sdp" => parts.sdp = Some(text()?),
        m if is_metadata(m) => parts.metadata = Some(text()?),
        "multipart/mixed" | "multipart/related" | "multipart/alternative" => {
            let boundary =
                boundary(ct).ok_or(SipError::Malformed("multipart without a boundary"))?;
            for (headers, content) in multipart(body, &boundary)? {
                let pct = headers
                    .iter()
                    .find(|(n, _)| n == "content-type")
                    .map_or("text/plain", |(_, v)| v.as_str());
                let pmedia = media_type(pct);
                let content = std::str::from_utf8(content)
                    .map_err(|_| SipError::Malformed("body part is not utf-8"))?
                    .to_owned();
                match pmedia.as_str() {
                    "application/sdp" if parts.sdp.is_none() => parts.sdp = Some(content),
                    m if is_metadata(m) && parts.metadata.is_none() => {
                        parts.metadata = Some(content)
                    }
                    other => parts.other.push(other.chars().take(64).collect()),
                }
            }
        }
        _ => return Err(SipError::UnsupportedMedia(media.chars().take(64).collect())),
    }
    Ok(parts)
}

/// The `boundary` parameter of a multipart content type (quoted or not).
fn boundary(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

type Part<'a> = (Vec<(String, String)>, &'a [u8]);

/// The parts between `--boundary` delimiters, each with its headers (lower-case names) and
/// content (the line break before the next delimiter belongs to the delimiter).
fn multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, SipError> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    // delimiter positions: at the start of the body or after a line break
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d && (i == 0 || body[i - 1] == b'\n') {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return Err(SipError::Malformed("multipart body without its boundary"));
    }
    let mut out = Vec::new();
    for w in starts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let mut part = &body[a + d.len()..b];
        if part.starts_with(b"--") {
            break;
        }
        // the rest of the delimiter line (transport padding), then the part
        let nl = part
            .iter()
            .position(|c| *c == b'\n')
            .ok_or(SipError::Malformed("bad multipart delimiter line"))?;
        part = &part[nl + 1..];
        // the line break before the next delimiter belongs to it
        part = part.strip_suffix(b"\n").unwrap_or(part);
        part = part.strip_suffix(b"\r").unwrap_or(part);
        let (head, content) = match find_blank(part) {
            Some((h, c)) => (&part[..h], &part[c..]),
            // no headers at all: the whole part is content (text/plain by default)
            None if part.starts_with(b"\r\n") => (&part[..0], &part[2..]),
            None if part.starts_with(b"\n") => (&part[..0], &part[1..]),
            None => return Err(SipError::Malformed("body part without a blank line")),
        };
        let head = std::str::from_utf8(head)
            .map_err(|_| SipError::Malformed("body part headers are not utf-8"))?;
        let mut headers = Vec::new();
        for line in head.lines() {
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        out.push((headers, content));
    }
    Ok(out)
}

fn find_blank(p: &[u8]) -> Option<(usize, usize)> {
    (0..p.len()).find_map(|i| {
        if p[i..].starts_with(b"\r\n\r\n") {
            Some((i, i + 4))
        } else if p[i..].starts_with(b"\n\n") {
            Some((i, i + 2))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sdp_and_metadata() {
        let body = "--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n\r\n\
                    --b1\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n<recording/>\r\n--b1--\r\n";
        let p = split(Some("multipart/mixed;boundary=b1"), body.as_bytes()).expect("splits");
        assert_eq!(p.sdp.as_deref(), Some("v=0\r\nm=audio 1 RTP/AVP 0\r\n"));
        assert_eq!(p.metadata.as_deref(), Some("<recording/>"));
        // quoted boundary, LF only, AudioCodes' media type, preamble
        let lf = "preamble\n--\"x y\"\nContent-Type: application/sdp\n\nv=0\n\n--\"x y\"\ncontent-type: application/rs-metadata\n\n<r/>\n--\"x y\"--\n"
            .replace("\"x y\"", "xy");
        let p = split(Some("Multipart/Mixed; boundary=\"xy\""), lf.as_bytes()).expect("splits");
        assert_eq!(p.sdp.as_deref(), Some("v=0\n"));
        assert_eq!(p.metadata.as_deref(), Some("<r/>"));
    }

    #[test]
    fn bare_sdp_and_bad_bodies() {
        let p = split(Some("application/sdp"), b"v=0\r\n").expect("bare sdp");
        assert!(p.sdp.is_some() && p.metadata.is_none());
        assert!(matches!(
            split(Some("text/html"), b"x"),
            Err(SipError::UnsupportedMedia(_))
        ));
        assert!(split(None, b"x").is_err());
        assert!(split(Some("multipart/mixed"), b"x").is_err());
        assert!(split(Some("multipart/mixed;boundary=q"), b"no delimiter").is_err());
        assert_eq!(split(None, b"").expect("empty"), Parts::default());
    }
}
