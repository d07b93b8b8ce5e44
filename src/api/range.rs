//! HTTP byte ranges (RFC 9110 section 14) for resources whose length is known before the body is
//! sent, such as a rendered recording.
//!
//! This module owns parsing a `Range` header value and writing `Content-Range`. It must not decide
//! status codes beyond what [`ByteRange`] tells the handler: [`ByteRange::Full`] is 200,
//! [`ByteRange::Partial`] 206 with [`content_range`], [`ByteRange::Unsatisfiable`] 416 with
//! [`unsatisfiable_content_range`].
//!
//! A header that does not parse is ignored, as RFC 9110 allows; so is a request for several ranges
//! (a server may serve the whole body instead of `multipart/byteranges`).

use std::ops::Range;

/// What to send for a request's `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole body (no header, a malformed one, another unit, or several ranges).
    Full,
    /// These bytes of the body (non-empty, within it).
    Partial(Range<u64>),
    /// No byte of the range is in the body: answer 416.
    Unsatisfiable,
}

/// The range a `Range` header value asks of a body of `len` bytes.
pub fn parse_range(value: Option<&str>, len: u64) -> ByteRange {
    let Some(value) = value else {
        return ByteRange::Full;
    };
    let Some((unit, set)) = value.trim().split_once('=') else {
        return ByteRange::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return ByteRange::Full;
    }
    // 1#range-spec: empty list elements are allowed and ignored, at least one is required
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs[..] else {
        return ByteRange::Full;
    };
    match parse_spec(spec) {
        None => ByteRange::Full,
        Some(Spec::From { first, last }) => {
            if first >= len {
                ByteRange::Unsatisfiable
            } else {
                let end = last.map_or(len, |l| l.saturating_add(1).min(len));
                ByteRange::Partial(first..end)
            }
        }
        Some(Spec::Suffix(n)) => {
            if n == 0 || len == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Partial(len - n.min(len)..len)
            }
        }
    }
}

enum Spec {
    /// `first-last` or `first-`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return digits(last).map(Spec::Suffix);
    }
    let first = digits(first)?;
    if last.is_empty() {
        return Some(Spec::From { first, last: None });
    }
    let last = digits(last)?;
    if last < first {
        return None;
    }
    Some(Spec::From {
        first,
        last: Some(last),
    })
}

/// `1*DIGIT` as a number; too many digits for a u64 read as `u64::MAX` (past any body's end).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// The `Content-Range` value of a 206 response with the bytes `range` of a body of `len` bytes.
/// `range` must be non-empty.
pub fn content_range(range: &Range<u64>, len: u64) -> String {
    format!(
        "bytes {}-{}/{len}",
        range.start,
        range.end.saturating_sub(1)
    )
}

/// The `Content-Range` value of a 416 response for a body of `len` bytes.
pub fn unsatisfiable_content_range(len: u64) -> String {
    format!("bytes */{len}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        let cases: &[(&str, ByteRange)] = &[
            ("bytes=0-499", ByteRange::Partial(0..500)),
            ("bytes=500-999", ByteRange::Partial(500..1000)),
            ("bytes=500-", ByteRange::Partial(500..1000)),
            ("bytes=0-0", ByteRange::Partial(0..1)),
            ("bytes=999-999", ByteRange::Partial(999..1000)),
            ("bytes=-500", ByteRange::Partial(500..1000)),
            ("bytes=-1", ByteRange::Partial(999..1000)),
            ("bytes=-5000", ByteRange::Partial(0..1000)),
            ("bytes=900-5000", ByteRange::Partial(900..1000)),
            (
                "bytes=0-99999999999999999999999",
                ByteRange::Partial(0..1000),
            ),
            ("Bytes = 10-19 ", ByteRange::Partial(10..20)),
            ("bytes=, 10-19,", ByteRange::Partial(10..20)),
            ("bytes=0-", ByteRange::Partial(0..1000)),
        ];
        for (value, want) in cases {
            assert_eq!(parse_range(Some(value), 1000), *want, "{value}");
        }
    }

    #[test]
    fn unsatisfiable() {
        for value in [
            "bytes=1000-",
            "bytes=1000-2000",
            "bytes=-0",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(
                parse_range(Some(value), 1000),
                ByteRange::Unsatisfiable,
                "{value}"
            );
        }
        assert_eq!(parse_range(Some("bytes=0-"), 0), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-5"), 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn malformed_or_multiple_serve_the_full_body() {
        assert_eq!(parse_range(None, 1000), ByteRange::Full);
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-4",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=0x10-",
            "bytes=1-2-3",
            "bytes= 1 - 2",
            "items=0-10",
            "0-10",
            "bytes=0-1,5-6",
            "bytes=0-1,2000-3000",
            "bytes=-1,-2",
        ] {
            assert_eq!(parse_range(Some(value), 1000), ByteRange::Full, "{value:?}");
        }
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(&(0..500), 1000), "bytes 0-499/1000");
        assert_eq!(content_range(&(999..1000), 1000), "bytes 999-999/1000");
        assert_eq!(unsatisfiable_content_range(1000), "bytes */1000");
    }
}
