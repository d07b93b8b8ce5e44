//! Audio hot paths of playback: G.711 decoding and WAV rendering of a recording's timeline (a
//! segment, a rendered pause, a segment), from in-memory segments so only the rendering is timed.

// criterion's group and main macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::hint::black_box;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use callvault::audio::g711::ULAW_TO_LINEAR;
use callvault::audio::render::{OutputFormat, Piece, RenderError, SegmentSource, Timeline};
use callvault::domain::{Codec, MediaFormat, PauseRender};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

const FORMAT: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    sample_rate: 8000,
    channels: 2,
};

struct Memory(Bytes);

#[async_trait]
impl SegmentSource for Memory {
    fn plaintext_len(&self) -> u64 {
        self.0.len() as u64
    }
    async fn read(&self, range: Range<u64>) -> Result<Bytes, RenderError> {
        Ok(self.0.slice(range.start as usize..range.end as usize))
    }
}

fn audio(secs: usize) -> Bytes {
    Bytes::from(
        (0..secs * 16_000)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn bench_g711(c: &mut Criterion) {
    let ulaw = audio(60);
    let mut group = c.benchmark_group("g711");
    group.throughput(Throughput::Bytes(ulaw.len() as u64));
    group.bench_function("ulaw_to_pcm16_60s_stereo", |b| {
        let mut out = Vec::with_capacity(ulaw.len() * 2);
        b.iter(|| {
            out.clear();
            out.extend(
                ulaw.iter()
                    .flat_map(|&u| ULAW_TO_LINEAR[usize::from(u)].to_le_bytes()),
            );
            black_box(out.len())
        })
    });
    group.finish();
}

fn bench_render(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (a, b) = (audio(120), audio(120));
    let mut group = c.benchmark_group("wav_render");
    for (name, output) in [
        ("stored", OutputFormat::Stored),
        ("pcm16", OutputFormat::Pcm16),
    ] {
        let pieces = vec![
            Piece::Audio(Arc::new(Memory(a.clone()))),
            Piece::gap_ms(&FORMAT, 10_000, PauseRender::Tone),
            Piece::Audio(Arc::new(Memory(b.clone()))),
        ];
        let timeline = Timeline::new(FORMAT, output, pieces).expect("timeline");
        let len = timeline.file_len();
        group.throughput(Throughput::Bytes(len));
        group.bench_function(format!("{name}_250s_stereo"), |bench| {
            bench.iter(|| {
                rt.block_on(async {
                    let mut stream = std::pin::pin!(timeline.stream(0..len));
                    let mut n = 0;
                    while let Some(chunk) = stream.next().await {
                        n += chunk.expect("renders").len();
                    }
                    black_box(n)
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4));
    targets = bench_g711, bench_render
}
criterion_main!(benches);
