//! Format, round-trip, tamper and recovery tests of the `CVA1` container.

use std::collections::HashSet;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use proptest::prelude::*;

use super::*;
use crate::vault::keys::DataKey;
use crate::vault::{ObjectReader, recover_partial};

fn header(chunk: u32) -> Header {
    Header::new(
        RecordingId::new(),
        SegmentNo(2),
        Codec::Pcmu,
        2,
        8000,
        61_000,
    )
    .unwrap()
    .with_chunk_size(chunk)
    .unwrap()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Seals `plain`, appending in pieces cut at `cuts` (offsets, any order, any value).
fn seal_in_pieces(h: &Header, key: &DataKey, plain: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut w = SegmentWriter::new(h.clone(), key);
    let mut out = w.header_bytes().to_vec();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (plain.len() + 1)).collect();
    points.push(plain.len());
    points.sort_unstable();
    let mut at = 0;
    for p in points {
        out.extend(w.append(&plain[at..p]).unwrap());
        at = p;
    }
    assert_eq!(w.plaintext_len(), plain.len() as u64);
    out.extend(w.seal());
    out
}

fn seal(h: &Header, key: &DataKey, plain: &[u8]) -> Vec<u8> {
    seal_in_pieces(h, key, plain, &[])
}

/// The sealed chunks of a container, split at their computed offsets.
fn chunks(bytes: &[u8], chunk: u32) -> Vec<Vec<u8>> {
    bytes[HEADER_LEN..]
        .chunks(chunk as usize + TAG_LEN)
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn header_round_trips_and_is_53_bytes() {
    let h = header(4096);
    let b = h.encode();
    assert_eq!(b.len(), 53);
    assert_eq!(&b[..4], b"CVA1");
    assert_eq!(&b[4..8], &[0, 1, 0, 53]);
    assert_eq!(&b[8..24], h.recording_id().as_bytes());
    assert_eq!(&b[24..28], &[0, 0, 0, 2]);
    assert_eq!(b[28], Codec::Pcmu.code());
    assert_eq!(b[29], 2);
    assert_eq!(&b[30..34], &8000u32.to_be_bytes());
    assert_eq!(&b[34..38], &4096u32.to_be_bytes());
    assert_eq!(&b[38..46], &61_000u64.to_be_bytes());
    assert_eq!(Header::decode(&b).unwrap(), h);
    assert_ne!(
        header(4096).nonce_prefix,
        h.nonce_prefix,
        "prefix is random"
    );
}

#[test]
fn header_errors_are_specific() {
    let good = header(4096).encode();
    let reason = |bytes: &[u8]| match Header::decode(bytes) {
        Err(VaultError::BadHeader { reason }) => reason,
        other => panic!("expected BadHeader, got {other:?}"),
    };
    assert!(reason(&good[..5]).contains("shorter"));
    assert!(reason(&good[..52]).contains("cut short"));
    let mut b = good;
    b[0] = b'X';
    assert!(reason(&b).contains("magic"));
    let mut b = good;
    b[5] = 2;
    assert!(matches!(
        Header::decode(&b),
        Err(VaultError::UnsupportedVersion(2))
    ));
    let mut b = good;
    b[7] = 54;
    assert!(reason(&b).contains("header length"));
    let mut b = good;
    b[28] = 99;
    assert!(reason(&b).contains("codec"));
    let mut b = good;
    b[29] = 3;
    assert!(reason(&b).contains("channels"));
    let mut b = good;
    b[30..34].copy_from_slice(&0u32.to_be_bytes());
    assert!(reason(&b).contains("sample rate"));
    let mut b = good;
    b[34..38].copy_from_slice(&0u32.to_be_bytes());
    assert!(reason(&b).contains("chunk size"));
    let mut b = good;
    b[34..38].copy_from_slice(&(MAX_CHUNK_SIZE + 1).to_be_bytes());
    assert!(reason(&b).contains("chunk size"));
    assert!(header(16).with_chunk_size(0).is_err());
    assert!(header(16).with_chunk_size(MAX_CHUNK_SIZE + 1).is_err());
    assert!(header(16).with_chunk_size(MAX_CHUNK_SIZE).is_ok());
    assert!(Header::new(RecordingId::new(), SegmentNo(0), Codec::L16, 0, 8000, 0).is_err());
}

#[test]
fn rates_and_range_mapping() {
    let h = header(1000); // PCMU stereo 8 kHz: 16000 bytes/s, 2-byte frames, starts at 61 s
    assert_eq!(h.bytes_per_second(), 16_000);
    let l16 = Header::new(RecordingId::new(), SegmentNo(0), Codec::L16, 1, 16_000, 0).unwrap();
    assert_eq!(l16.bytes_per_second(), 32_000);
    assert_eq!(h.chunks_for_bytes(0..1), 0..1);
    assert_eq!(h.chunks_for_bytes(999..1001), 0..2);
    assert_eq!(h.chunks_for_bytes(1000..2000), 1..2);
    assert_eq!(h.chunks_for_bytes(5..5), 0..0);
    assert_eq!(h.object_range(1..3), 53 + 1016..53 + 3 * 1016);
    assert_eq!(h.time_to_bytes(61_000..62_000), 0..16_000);
    assert_eq!(h.time_to_bytes(0..61_500), 0..8_000);
    // 1 ms of 8 kHz stereo is 8 frames of 2 bytes; ranges align outward to frames.
    assert_eq!(h.time_to_bytes(61_001..61_002), 16..32);
    let key = DataKey::generate();
    let layout = Layout::new(h.clone(), seal(&h, &key, &data(2500)).len() as u64).unwrap();
    assert_eq!(layout.chunk_count(), 3);
    assert_eq!(layout.plaintext_len(), 2500);
    assert_eq!(layout.duration_ms(), 156);
    assert_eq!(layout.time_range(61_100..70_000), 1600..2500);
    assert_eq!(
        layout.object_range(2..3),
        53 + 2 * 1016..53 + 2 * 1016 + 500 + 16
    );
    assert!(matches!(
        layout.chunks_for(10..2501),
        Err(VaultError::Range { len: 2500, .. })
    ));
}

#[test]
fn empty_segment_is_header_and_one_empty_final_chunk() {
    let h = header(64);
    let key = DataKey::generate();
    let bytes = seal(&h, &key, &[]);
    assert_eq!(bytes.len(), HEADER_LEN + TAG_LEN);
    let (back, plain) = open(&bytes, &key).unwrap();
    assert_eq!(back, h);
    assert!(plain.is_empty());
    assert!(open(&bytes[..HEADER_LEN], &key).is_err());
}

#[test]
fn full_final_chunk_is_followed_by_an_empty_one() {
    // The writer seals a chunk as soon as it is full, so 2 × chunk gives 2 full chunks + empty final.
    let h = header(32);
    let key = DataKey::generate();
    let bytes = seal(&h, &key, &data(64));
    assert_eq!(bytes.len(), HEADER_LEN + 2 * 48 + 16);
    assert_eq!(&open(&bytes, &key).unwrap().1[..], &data(64)[..]);
    // Dropping the empty final chunk leaves a chunk sealed as non-final at the end.
    assert!(matches!(
        open(&bytes[..HEADER_LEN + 96], &key),
        Err(VaultError::Truncated)
    ));
}

#[test]
fn wrong_key_fails_and_plaintext_is_redacted() {
    let h = header(64);
    let bytes = seal(&h, &DataKey::generate(), b"secret audio");
    assert!(matches!(
        open(&bytes, &DataKey::generate()),
        Err(VaultError::Authentication { chunk: 0 })
    ));
    let key = DataKey::generate();
    let plain = open(&seal(&h, &key, b"secret audio"), &key).unwrap().1;
    let shown = format!("{plain:?}");
    assert_eq!(shown, "Plaintext([redacted], 12 bytes)");
}

#[test]
fn default_chunk_size_round_trips_around_boundaries() {
    let key = DataKey::generate();
    let h = header(DEFAULT_CHUNK_SIZE);
    for len in [0, 1, 16_383, 16_384, 16_385, 32_768, 50_000] {
        let plain = data(len);
        let bytes = seal_in_pieces(&h, &key, &plain, &[100, 16_384, 20_000]);
        assert_eq!(&open(&bytes, &key).unwrap().1[..], &plain[..], "len {len}");
        let r = len as u64 / 3..len as u64 * 2 / 3;
        let got = open_range(&bytes, &key, r.clone()).unwrap();
        assert_eq!(&got[..], &plain[r.start as usize..r.end as usize]);
    }
}

#[test]
fn sealed_container_holds_no_16_byte_window_of_its_plaintext() {
    let key = DataKey::generate();
    let h = header(DEFAULT_CHUNK_SIZE);
    let pattern: Vec<u8> = (0u8..16).map(|b| b.wrapping_mul(17) ^ 0x5a).collect();
    let repeating: Vec<u8> = pattern.iter().copied().cycle().take(1 << 20).collect();
    for plain in [repeating, vec![0u8; 1 << 20]] {
        let windows: HashSet<&[u8]> = plain.windows(16).take(32).collect();
        let bytes = seal(&h, &key, &plain);
        let leaked = bytes.windows(16).filter(|w| windows.contains(w)).count();
        assert_eq!(leaked, 0);
        assert_eq!(&open(&bytes, &key).unwrap().1[..], &plain[..]);
    }
}

#[test]
fn ranged_read_decrypts_only_the_chunks_it_needs() {
    let key = DataKey::generate();
    let h = header(64);
    let plain = data(630); // 9 full chunks and a final one of 54 bytes
    let mut bytes = seal(&h, &key, &plain);
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // damage the final chunk only
    assert_eq!(
        &open_range(&bytes, &key, 10..576).unwrap()[..],
        &plain[10..576]
    );
    assert!(matches!(
        open_range(&bytes, &key, 600..630),
        Err(VaultError::Authentication { chunk: 9 })
    ));
    assert!(open(&bytes, &key).is_err());
}

#[test]
fn recover_partial_edge_cases() {
    let key = DataKey::generate();
    let h = header(32);
    let sealed = seal(&h, &key, &data(100));
    // A sealed container is returned as is.
    let r = recover_partial(&sealed, &key).unwrap();
    assert!(r.already_sealed);
    assert_eq!(r.bytes, sealed);
    assert_eq!(r.plaintext_len, 100);
    // Header and a torn first chunk: header plus an empty final chunk.
    let r = recover_partial(&sealed[..HEADER_LEN + 20], &key).unwrap();
    assert_eq!(r.plaintext_len, 0);
    assert_eq!(r.lost_bytes, 20);
    assert!(open(&r.bytes, &key).unwrap().1.is_empty());
    // A damaged second chunk: keep the first, lose the rest.
    let mut damaged = sealed[..HEADER_LEN + 3 * 48].to_vec();
    damaged[HEADER_LEN + 48 + 5] ^= 0x80;
    let r = recover_partial(&damaged, &key).unwrap();
    assert_eq!(r.plaintext_len, 32);
    assert_eq!(r.lost_bytes, 64);
    assert_eq!(&open(&r.bytes, &key).unwrap().1[..], &data(100)[..32]);
    // The wrong key, or a torn header, is an error, not an empty recording.
    assert!(matches!(
        recover_partial(&sealed[..HEADER_LEN + 48], &DataKey::generate()),
        Err(VaultError::Authentication { chunk: 0 })
    ));
    assert!(recover_partial(&sealed[..40], &key).is_err());
}

/// Builds a container in the given store and returns it as a reader.
async fn stored(store: Arc<dyn ObjectStore>, plain: &[u8], key: &DataKey) -> ObjectReader {
    let path = Path::from("v1/2026/01/02/rec/0000.cva");
    let bytes = seal(&header(1000), key, plain);
    store.put(&path, bytes.into()).await.unwrap();
    ObjectReader::open(store, path).await.unwrap()
}

async fn check_reader(store: Arc<dyn ObjectStore>) {
    let key = DataKey::generate();
    let plain = data(200_000); // 200 chunks: more than one fetch batch
    let reader = stored(store.clone(), &plain, &key).await;
    assert_eq!(reader.layout().plaintext_len(), 200_000);
    for r in [
        0..0,
        0..1,
        999..1001,
        5_000..150_000,
        199_000..200_000,
        0..200_000,
    ] {
        let got = reader.read_range(&key, r.clone()).await.unwrap();
        assert_eq!(&got[..], &plain[r.start as usize..r.end as usize]);
    }
    assert_eq!(&reader.read_all(&key).await.unwrap()[..], &plain[..]);
    assert!(matches!(
        reader.read_range(&key, 0..200_001).await,
        Err(VaultError::Range { .. })
    ));
    assert!(
        reader
            .read_range(&DataKey::generate(), 0..10)
            .await
            .is_err()
    );
    // Cut the object short at a chunk boundary: the end no longer authenticates.
    let path = reader.path().clone();
    let whole = store.get(&path).await.unwrap().bytes().await.unwrap();
    let cut = whole.slice(..HEADER_LEN + 100 * 1016);
    store.put(&path, cut.into()).await.unwrap();
    let reader = ObjectReader::open(store.clone(), path.clone())
        .await
        .unwrap();
    assert!(matches!(
        reader.read_range(&key, 99_000..100_000).await,
        Err(VaultError::Truncated)
    ));
    // Empty segment: read_all still authenticates its final chunk.
    let empty = stored(store.clone(), &[], &key).await;
    assert!(empty.read_all(&key).await.unwrap().is_empty());
    assert!(empty.read_all(&DataKey::generate()).await.is_err());
}

#[tokio::test]
async fn object_reader_in_memory() {
    check_reader(Arc::new(InMemory::new())).await;
}

#[tokio::test]
async fn object_reader_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    check_reader(Arc::new(
        LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
    ))
    .await;
}

fn chunk_and_len() -> impl Strategy<Value = (u32, usize)> {
    (16u32..64).prop_flat_map(|c| (Just(c), 0..(c as usize * 5 + 2)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_then_open_returns_the_input(
        (chunk, len) in chunk_and_len(),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let key = DataKey::generate();
        let h = header(chunk);
        let plain = data(len);
        let bytes = seal_in_pieces(&h, &key, &plain, &cuts);
        let n = len / chunk as usize + 1;
        prop_assert_eq!(bytes.len(), HEADER_LEN + len + n * TAG_LEN);
        let (back, got) = open(&bytes, &key).unwrap();
        prop_assert_eq!(back, h);
        prop_assert_eq!(&got[..], &plain[..]);
    }

    #[test]
    fn flipping_any_byte_fails(
        (chunk, len) in chunk_and_len(),
        at in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let key = DataKey::generate();
        let mut bytes = seal(&header(chunk), &key, &data(len));
        let at = at % bytes.len();
        bytes[at] ^= mask;
        prop_assert!(open(&bytes, &key).is_err());
    }

    #[test]
    fn truncating_fails((chunk, len) in chunk_and_len(), cut in any::<usize>()) {
        let key = DataKey::generate();
        let bytes = seal(&header(chunk), &key, &data(len));
        let cut = cut % bytes.len();
        prop_assert!(open(&bytes[..cut], &key).is_err());
    }

    #[test]
    fn dropping_or_reordering_chunks_fails(
        (chunk, len) in (16u32..64).prop_flat_map(|c| (Just(c), (c as usize)..(c as usize * 6))),
        i in any::<usize>(),
        j in any::<usize>(),
    ) {
        let key = DataKey::generate();
        let h = header(chunk);
        let bytes = seal(&h, &key, &data(len));
        let parts = chunks(&bytes, chunk);
        prop_assert!(parts.len() >= 2);
        let (i, j) = (i % parts.len(), j % parts.len());
        let mut dropped = parts.clone();
        dropped.remove(i);
        let rebuilt = [bytes[..HEADER_LEN].to_vec(), dropped.concat()].concat();
        prop_assert!(open(&rebuilt, &key).is_err());
        if parts[i] != parts[j] {
            let mut swapped = parts.clone();
            swapped.swap(i, j);
            let rebuilt = [bytes[..HEADER_LEN].to_vec(), swapped.concat()].concat();
            prop_assert!(open(&rebuilt, &key).is_err());
        }
    }

    #[test]
    fn swapping_headers_or_chunks_between_containers_fails(
        (chunk, len) in (16u32..64).prop_flat_map(|c| (Just(c), 0..(c as usize * 4))),
        i in any::<usize>(),
    ) {
        // Same key and same plaintext on purpose: only the headers differ.
        let key = DataKey::generate();
        let plain = data(len);
        let a = seal(&header(chunk), &key, &plain);
        let b = seal(&header(chunk), &key, &plain);
        let swapped = [&b[..HEADER_LEN], &a[HEADER_LEN..]].concat();
        prop_assert!(open(&swapped, &key).is_err());
        let (pa, pb) = (chunks(&a, chunk), chunks(&b, chunk));
        let i = i % pa.len();
        let mut mixed = pa.clone();
        mixed[i] = pb[i].clone();
        let rebuilt = [a[..HEADER_LEN].to_vec(), mixed.concat()].concat();
        prop_assert!(open(&rebuilt, &key).is_err());
    }

    #[test]
    fn ranged_read_returns_exactly_the_bytes_asked_for(
        (chunk, len) in chunk_and_len(),
        x in any::<usize>(),
        y in any::<usize>(),
    ) {
        let key = DataKey::generate();
        let plain = data(len);
        let bytes = seal(&header(chunk), &key, &plain);
        let (x, y) = (x % (len + 1), y % (len + 1));
        let (s, e) = (x.min(y), x.max(y));
        let got = open_range(&bytes, &key, s as u64..e as u64).unwrap();
        prop_assert_eq!(&got[..], &plain[s..e]);
        prop_assert!(open_range(&bytes, &key, 0..len as u64 + 1).is_err());
    }

    #[test]
    fn recover_partial_keeps_the_whole_chunk_prefix(
        (chunk, len) in chunk_and_len(),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
        keep in any::<usize>(),
    ) {
        let key = DataKey::generate();
        let h = header(chunk);
        let plain = data(len);
        // The spool as the recorder writes it: header and non-final chunks, never the final one.
        let spool = {
            let full = seal_in_pieces(&h, &key, &plain, &cuts);
            let whole = len / chunk as usize;
            full[..HEADER_LEN + whole * (chunk as usize + TAG_LEN)].to_vec()
        };
        let cut = HEADER_LEN + keep % (spool.len() - HEADER_LEN + 1);
        let stride = chunk as usize + TAG_LEN;
        let whole = (cut - HEADER_LEN) / stride;
        let torn = (cut - HEADER_LEN) % stride;
        let r = recover_partial(&spool[..cut], &key).unwrap();
        prop_assert!(!r.already_sealed);
        prop_assert_eq!(r.plaintext_len, (whole * chunk as usize) as u64);
        prop_assert_eq!(r.lost_bytes, torn.min(chunk as usize) as u64);
        let (_, got) = open(&r.bytes, &key).unwrap();
        prop_assert_eq!(&got[..], &plain[..whole * chunk as usize]);
        // Every kept chunk but the last is byte-for-byte the spool's.
        let same = HEADER_LEN + whole.saturating_sub(1) * stride;
        prop_assert_eq!(&r.bytes[..same], &spool[..same]);
    }
}
