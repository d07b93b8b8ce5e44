//! Throughput of sealing and opening `CVA1` containers (16 KiB chunks), to compare with raw
//! AES-256-GCM on the same machine (`openssl speed -evp aes-256-gcm`); see BENCHMARKS.md.

// criterion's group and main macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use callvault::domain::{Codec, RecordingId, SegmentNo};
use callvault::vault::{DataKey, Header, SegmentWriter, open};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SIZES: [(&str, usize); 2] = [("1MiB", 1 << 20), ("16MiB", 16 << 20)];

fn header() -> Header {
    Header::new(RecordingId::new(), SegmentNo(0), Codec::Pcmu, 2, 8000, 0)
        .expect("a valid stereo g.711 header")
}

fn seal(header: &Header, key: &DataKey, plain: &[u8]) -> Vec<u8> {
    let mut w = SegmentWriter::new(header.clone(), key);
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 1024 + 256);
    out.extend_from_slice(w.header_bytes());
    w.append_to(plain, &mut out)
        .expect("far below the chunk counter limit");
    out.extend(w.seal());
    out
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn bench_seal(c: &mut Criterion) {
    let key = DataKey::generate();
    let header = header();
    let mut group = c.benchmark_group("vault_seal");
    for (name, len) in SIZES {
        let plain = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &plain, |b, plain| {
            b.iter(|| seal(&header, &key, black_box(plain)))
        });
    }
    group.finish();
}

fn bench_open(c: &mut Criterion) {
    let key = DataKey::generate();
    let header = header();
    let mut group = c.benchmark_group("vault_open");
    for (name, len) in SIZES {
        let sealed = seal(&header, &key, &payload(len));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &sealed, |b, sealed| {
            b.iter(|| open(black_box(sealed), &key).expect("authentic container"))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_seal, bench_open
}
criterion_main!(benches);
