//! Keyring file, wrapping and rotation tests.

use super::*;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
        .single()
        .expect("valid")
}

fn file(active: &str, keys: &[(&str, &[u8])]) -> Vec<u8> {
    let keys: Vec<_> = keys
        .iter()
        .map(|(id, k)| {
            serde_json::json!({"id": id, "key": B64.encode(k), "created": "2026-11-22T10:00:00Z"})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"version": 1, "active": active, "keys": keys})).unwrap()
}

fn reason(r: Result<Keyring, VaultError>) -> String {
    match r {
        Err(VaultError::Keyring { reason }) => reason,
        other => panic!("expected a keyring error, got {other:?}"),
    }
}

#[test]
fn generate_serialize_parse_round_trip() {
    let mut ring = Keyring::generate(now());
    let first = ring.active().clone();
    assert!(first.as_str().starts_with("kek-20261122-"));
    let second = ring.rotate(now());
    assert_ne!(first, second);
    assert_eq!(ring.active(), second);
    let bytes = ring.to_bytes().unwrap();
    let back = Keyring::from_bytes(&bytes).unwrap();
    assert_eq!(back.active(), second);
    assert!(back.contains(&first) && back.contains(&second));
    assert_eq!(back.key_ids().len(), 2);
    // Same key material: a key wrapped by one unwraps with the other.
    let rid = RecordingId::new();
    let dk = DataKey::generate();
    let w = ring.wrap(&dk, rid, SegmentNo(1));
    assert_eq!(
        back.unwrap(&w, rid, SegmentNo(1)).unwrap().expose(),
        dk.expose()
    );
    let shown = format!("{ring:?}");
    assert!(shown.contains(second.as_str()));
    assert!(!shown.contains(&B64.encode(ring.kek(&second).expect("key").expose())));
}

#[test]
fn parse_errors_are_clear() {
    let k = [1u8; 32];
    assert!(Keyring::from_bytes(&file("a", &[("a", &k)])).is_ok());
    assert!(reason(Keyring::from_bytes(&file("b", &[("a", &k)]))).contains("active key b"));
    assert!(
        reason(Keyring::from_bytes(&file("a", &[("a", &k), ("a", &k)])))
            .contains("duplicate key id a")
    );
    assert!(
        reason(Keyring::from_bytes(&file("a", &[("a", &[1u8; 16])])))
            .contains("16 bytes, expected 32")
    );
    assert!(reason(Keyring::from_bytes(&file("a b", &[("a", &k)]))).contains("active key id"));
    assert!(reason(Keyring::from_bytes(b"{}")).contains("not a keyring file"));
    let v2 = br#"{"version":2,"active":"a","keys":[]}"#;
    assert!(reason(Keyring::from_bytes(v2)).contains("unsupported keyring version 2"));
    let not_b64 = br#"{"version":1,"active":"a","keys":[{"id":"a","key":"!!","created":"2026-11-22T10:00:00Z"}]}"#;
    assert!(reason(Keyring::from_bytes(not_b64)).contains("not base64"));
}

#[test]
fn wrapped_key_is_bound_to_recording_segment_and_key_id() {
    let ring = Keyring::generate(now());
    let rid = RecordingId::new();
    let dk = DataKey::generate();
    let w = ring.wrap(&dk, rid, SegmentNo(3));
    assert_eq!(w.bytes.len(), WRAPPED_LEN);
    assert_eq!(w.kek_id, ring.active());
    assert_eq!(
        ring.unwrap(&w, rid, SegmentNo(3)).unwrap().expose(),
        dk.expose()
    );
    assert!(matches!(
        ring.unwrap(&w, RecordingId::new(), SegmentNo(3)),
        Err(VaultError::Unwrap)
    ));
    assert!(matches!(
        ring.unwrap(&w, rid, SegmentNo(4)),
        Err(VaultError::Unwrap)
    ));
    let mut flipped = w.clone();
    flipped.bytes[20] ^= 1;
    assert!(matches!(
        ring.unwrap(&flipped, rid, SegmentNo(3)),
        Err(VaultError::Unwrap)
    ));
    let mut short = w.clone();
    short.bytes.pop();
    assert!(matches!(
        ring.unwrap(&short, rid, SegmentNo(3)),
        Err(VaultError::Unwrap)
    ));
}

#[test]
fn relabelled_or_unknown_key_ids_fail() {
    let mut ring = Keyring::generate(now());
    let rid = RecordingId::new();
    let w = ring.wrap(&DataKey::generate(), rid, SegmentNo(0));
    let other = ring.rotate(now());
    let relabelled = WrappedKey {
        kek_id: other,
        bytes: w.bytes.clone(),
    };
    assert!(matches!(
        ring.unwrap(&relabelled, rid, SegmentNo(0)),
        Err(VaultError::Unwrap)
    ));
    let missing: KeyId = "kek-19990101-0000".parse().unwrap();
    let unknown = WrappedKey {
        kek_id: missing.clone(),
        bytes: w.bytes,
    };
    match ring.unwrap(&unknown, rid, SegmentNo(0)) {
        Err(VaultError::UnknownKey(id)) => assert_eq!(id, missing),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    assert!(!ring.contains(&missing));
}

#[test]
fn rewrap_moves_to_the_active_key() {
    let mut ring = Keyring::generate(now());
    let rid = RecordingId::new();
    let dk = DataKey::generate();
    let old = ring.wrap(&dk, rid, SegmentNo(2));
    assert_eq!(ring.rewrap(&old, rid, SegmentNo(2)).unwrap(), old);
    let new_id = ring.rotate(now());
    let new = ring.rewrap(&old, rid, SegmentNo(2)).unwrap();
    assert_eq!(new.kek_id, new_id);
    assert_ne!(new.bytes, old.bytes);
    assert_eq!(
        ring.unwrap(&new, rid, SegmentNo(2)).unwrap().expose(),
        dk.expose()
    );
    assert!(matches!(
        ring.rewrap(&old, rid, SegmentNo(9)),
        Err(VaultError::Unwrap)
    ));
}

#[test]
fn write_file_is_private_and_replaces_atomically() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    fs::write(&path, b"old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let ring = Keyring::generate(now());
    ring.write_file(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let back = Keyring::from_bytes(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(back.active(), ring.active());
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}

/// A live keyring backed by `path`, as the daemon loads it.
fn live_from(path: &Path) -> Keyring {
    let text = format!("[keys]\nkeyring = {:?}\n", path.display().to_string());
    let config = crate::config::Config::from_toml(
        &text,
        Path::new("test.toml"),
        path.parent().unwrap(),
        None,
        &[],
    )
    .unwrap();
    Keyring::load(&config.keys.keyring).unwrap()
}

#[test]
fn a_data_key_under_an_unloaded_key_reads_the_file_again_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring");
    let mut on_disk = Keyring::generate(now());
    on_disk.write_file(&path).unwrap();
    let live = live_from(&path);
    let first = live.active();
    let (id, seg) = (RecordingId::new(), SegmentNo(0));
    let key = DataKey::generate();
    let under_first = live.wrap(&key, id, seg);

    // another node rotates the file and wraps under the new key
    let second = on_disk.rotate(now());
    on_disk.write_file(&path).unwrap();
    let under_second = on_disk.wrap(&key, id, seg);
    assert!(!live.contains(&second));
    let got = live
        .unwrap(&under_second, id, seg)
        .expect("read the file again");
    assert_eq!(got.expose(), key.expose());
    assert_eq!(live.active(), second, "the new active key is adopted");
    assert!(live.contains(&first), "nothing is dropped on this path");
    assert_eq!(
        live.unwrap(&under_first, id, seg).unwrap().expose(),
        key.expose()
    );

    // a key that is nowhere: refused, and the file is not read again within the interval
    let stranger = Keyring::generate(now()).wrap(&key, id, seg);
    assert!(matches!(
        live.unwrap(&stranger, id, seg),
        Err(VaultError::UnknownKey(_))
    ));
}

#[test]
fn replace_with_reports_what_changed_and_retire_refuses_the_active_key() {
    let mut ring = Keyring::generate(now());
    let first = ring.active();
    let second = ring.rotate(now());
    assert!(ring.retire(&second).is_err(), "the active key");
    ring.retire(&first).unwrap();
    assert!(ring.retire(&first).is_err(), "already gone");
    let live = Keyring::generate(now());
    let old = live.active();
    let r = live.replace_with(&ring);
    assert_eq!(r.previous_active, old);
    assert_eq!(r.active, second);
    assert_eq!(r.added, vec![second.clone()]);
    assert_eq!(r.removed, vec![old]);
}
