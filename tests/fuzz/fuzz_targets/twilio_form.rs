//! Twilio status callbacks: form decoding, signature checking and event building never panic.
#![no_main]

use callvault::ingest::twilio::{Algorithm, TwilioAuth, parse_form, status_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (url, body) = text.split_once('\n').unwrap_or(("https://rec.example.com/v1/twilio/events", text));
    let auth = TwilioAuth::new(b"12345", None);
    if let Ok(params) = parse_form(body) {
        let sig = auth.sign(url, &params, Algorithm::Sha1);
        assert!(auth.verify(url, &params, Some(&sig), Algorithm::Sha1).is_ok());
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
        let _ = status_event(&params, now);
    }
    let _ = auth.verify_json(url, body.as_bytes(), Some("x"), Algorithm::Sha256);
    let _ = Algorithm::from_settings(Some(body));
});
