//! RTP (RFC 3550) and telephone-event (RFC 4733) packets: the header read, the payload found past
//! CSRCs, a header extension and padding. RTCP that shares the port (`a=rtcp-mux`, RFC 5761) is
//! told apart by its packet type and skipped by the caller.

/// Why a datagram is not an RTP packet this server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the header it declares.
    #[error("shorter than its header")]
    Short,
    /// Version is not 2.
    #[error("rtp version is not 2")]
    Version,
    /// Padding longer than the payload.
    #[error("bad padding")]
    Padding,
}

/// One RTP packet's header and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp (8,000 per second for G.711 and telephone-event).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

/// Whether a datagram on an RTP port is RTCP (packet types 200 to 204 where RTP's marker and
/// payload type would be; RFC 5761 section 4).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && buf[0] >> 6 == 2 && (200..=204).contains(&buf[1])
}

/// Reads an RTP packet.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, RtpError> {
    if buf.len() < 12 {
        return Err(RtpError::Short);
    }
    if buf[0] >> 6 != 2 {
        return Err(RtpError::Version);
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let csrc = usize::from(buf[0] & 0x0f);
    let mut start = 12 + 4 * csrc;
    if extension {
        let ext = buf.get(start..start + 4).ok_or(RtpError::Short)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if start > buf.len() {
        return Err(RtpError::Short);
    }
    let mut end = buf.len();
    if padding {
        let pad = usize::from(buf[buf.len() - 1]);
        if pad == 0 || start + pad > end {
            return Err(RtpError::Padding);
        }
        end -= pad;
    }
    Ok(Packet {
        marker: buf[1] & 0x80 != 0,
        payload_type: buf[1] & 0x7f,
        sequence: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: &buf[start..end],
    })
}

/// Builds an RTP packet (for tests, fixtures and the load generator).
pub fn build(
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    out.push(0x80);
    out.push(payload_type & 0x7f | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An RFC 4733 telephone-event payload. Its `event` is a keypad digit for 0 to 15: a card
/// number's digit, so its `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event code (0–9, `*` 10, `#` 11, A–D 12–15, others above).
    pub event: u8,
    /// The end bit.
    pub end: bool,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl std::fmt::Debug for TelephoneEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelephoneEvent")
            .field("event", &"[redacted]")
            .field("end", &self.end)
            .field("duration", &self.duration)
            .finish()
    }
}

impl TelephoneEvent {
    /// Whether the event is a keypad key (0–9, `*`, `#`, A–D), which the DTMF rule counts.
    pub const fn is_key(&self) -> bool {
        self.event <= 15
    }
}

/// Reads a telephone-event payload (4 bytes; RFC 4733 section 2.3).
pub fn telephone_event(payload: &[u8]) -> Option<TelephoneEvent> {
    let p: &[u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(TelephoneEvent {
        event: p[0],
        end: p[1] & 0x80 != 0,
        duration: u16::from_be_bytes([p[2], p[3]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_build_writes() {
        let b = build(0, true, 65535, 4_294_967_000, 0xdead_beef, &[1, 2, 3]);
        let p = parse(&b).expect("parses");
        assert_eq!(
            p,
            Packet {
                marker: true,
                payload_type: 0,
                sequence: 65535,
                timestamp: 4_294_967_000,
                ssrc: 0xdead_beef,
                payload: &[1, 2, 3]
            }
        );
        assert!(!is_rtcp(&b));
    }

    #[test]
    fn csrc_extension_and_padding() {
        let mut b = build(8, false, 1, 160, 7, &[]);
        b[0] = 0x80 | 0x20 | 0x10 | 1; // padding, extension, one csrc
        b.extend_from_slice(&[0, 0, 0, 9]); // csrc
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one-word extension
        b.extend_from_slice(&[0xd5, 0xd5, 0, 0, 3]); // payload and 3 bytes of padding
        let p = parse(&b).expect("parses");
        assert_eq!(p.payload, &[0xd5, 0xd5]);
        assert_eq!(p.payload_type, 8);
    }

    #[test]
    fn bad_packets() {
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::Short));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::Version));
        let mut b = build(0, false, 1, 1, 1, &[9]);
        b[0] |= 0x20;
        *b.last_mut().expect("byte") = 5;
        assert_eq!(parse(&b), Err(RtpError::Padding));
        let mut b = build(0, false, 1, 1, 1, &[]);
        b[0] |= 0x0f;
        assert_eq!(parse(&b), Err(RtpError::Short));
        assert!(is_rtcp(&[0x81, 200, 0, 6]));
    }

    #[test]
    fn telephone_events_hide_the_digit() {
        let e = telephone_event(&[5, 0x8a, 0x03, 0x20]).expect("event");
        assert!(e.end && e.is_key());
        assert_eq!(e.duration, 800);
        assert!(!format!("{e:?}").contains('5'));
        assert!(telephone_event(&[1, 2]).is_none());
    }
}
