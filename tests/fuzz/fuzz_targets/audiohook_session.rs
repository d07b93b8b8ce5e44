//! AudioHook: text messages (split on NUL) and binary frames (after a 0x01 byte) through one
//! session never panic; every server message it builds is JSON.
#![no_main]

use callvault::ingest::audiohook::{HookOutput, HookSession, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = HookSession::new();
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
    for msg in data.split(|b| *b == 0) {
        if let Some(audio) = msg.strip_prefix(&[1]) {
            let _ = s.on_binary(audio);
            continue;
        }
        let Ok(text) = std::str::from_utf8(msg) else { continue };
        let _ = parse_duration(text);
        match s.on_text(text, now) {
            Ok(outs) => {
                for o in outs {
                    if let HookOutput::Send(m) = o {
                        assert!(serde_json::from_str::<serde_json::Value>(&m).is_ok());
                    }
                }
            }
            Err(_) => break,
        }
    }
    assert!(serde_json::from_str::<serde_json::Value>(&s.pause()).is_ok());
});
