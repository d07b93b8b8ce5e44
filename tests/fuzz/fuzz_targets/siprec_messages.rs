//! SIPREC: any datagram or stream bytes through the SIP parser, and whatever parses through the
//! body splitter, SDP offer/answer, metadata parser, RTP parser and mixer, never panic; every
//! response built for a parsed request parses back as a response with the same Call-ID.
#![no_main]

use callvault::domain::Codec;
use callvault::ingest::siprec::mixer::{Mixer, StreamFormat};
use callvault::ingest::siprec::sip::{self, Response, StartLine};
use callvault::ingest::siprec::{body, metadata, rtp, sdp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sip::parse_stream(data);
    if let Ok(p) = rtp::parse(data) {
        let mut m = Mixer::new(Codec::Pcmu, 2);
        let f = StreamFormat { codec: Codec::Pcmu, payload_type: 0, events: Some(101) };
        let _ = m.push(usize::from(data[0] & 1), f, &p, u64::from(data[1]) * 160);
        let _ = m.drain(true);
    }
    let Ok(msg) = sip::parse_datagram(data) else { return };
    if let Ok(parts) = body::split(msg.header("content-type"), &msg.body) {
        if let Some(text) = &parts.sdp
            && let Ok(offer) = sdp::parse(text)
        {
            let choices = sdp::choose(&offer);
            let _ = sdp::answer(&offer, &choices, &[20000, 20002], "127.0.0.1".parse().expect("ip"), 1, 1);
        }
        if let Some(xml) = &parts.metadata {
            let _ = metadata::parse(xml);
        }
    }
    if msg.check_request().is_ok() {
        let r = Response::to(&msg, 400, "Bad Request", Some("t1")).encode();
        let back = sip::parse_datagram(&r).expect("our response parses");
        assert!(matches!(back.start, StartLine::Response { code: 400 }));
        assert_eq!(back.call_id().ok(), msg.call_id().ok());
    }
});
