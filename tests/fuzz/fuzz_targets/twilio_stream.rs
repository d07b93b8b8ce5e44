//! Twilio Media Streams messages: any sequence of text messages (split on NUL) must be refused or
//! understood, never panic, and emitted audio must be whole stereo frames.
#![no_main]

use callvault::ingest::twilio::stream::{StreamOutput, StreamSession};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = StreamSession::new();
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
    let mut stereo = false;
    for msg in data.split(|b| *b == 0) {
        let Ok(text) = std::str::from_utf8(msg) else { continue };
        match s.on_text(text, now) {
            Ok(outs) => {
                for o in outs {
                    match o {
                        StreamOutput::Started { format, .. } => stereo = format.channels == 2,
                        StreamOutput::Audio(a) => assert!(!stereo || a.len() % 2 == 0),
                        StreamOutput::Stopped => {}
                    }
                }
            }
            Err(_) => break,
        }
    }
    let _ = s.finish();
});
