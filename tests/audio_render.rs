//! Playback rendering end to end: timelines of in-memory and sealed vault segments rendered to WAV,
//! decoded with symphonia as a player would, and checked by ear (Goertzel).

// expected tone spans are lists of ranges, often of one
#![allow(clippy::single_range_in_vec_init)]

mod common;

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use callvault::audio::{
    OutputFormat, Piece, RenderError, SegmentSource, Timeline, VaultSegmentSource,
};
use callvault::domain::{Codec, MediaFormat, PauseRender, RecordingId, SegmentNo};
use callvault::vault::{DataKey, Header, ObjectReader, SegmentWriter};
use common::audio::{assert_spans, decode_wav, peak, tone, tone_spans, tones};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use proptest::prelude::*;

/// Plaintext audio held in memory.
struct MemSource(Vec<u8>);

#[async_trait]
impl SegmentSource for MemSource {
    fn plaintext_len(&self) -> u64 {
        self.0.len() as u64
    }
    async fn read(&self, range: Range<u64>) -> Result<Bytes, RenderError> {
        Ok(Bytes::copy_from_slice(
            &self.0[range.start as usize..range.end as usize],
        ))
    }
}

fn mem(bytes: Vec<u8>) -> Piece {
    Piece::Audio(Arc::new(MemSource(bytes)))
}

/// Seals `plaintext` into an in-memory object store, `chunk_size` bytes a chunk, and opens it.
async fn vault_source(
    format: MediaFormat,
    plaintext: &[u8],
    chunk_size: u32,
) -> Arc<VaultSegmentSource> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let id = RecordingId::new();
    let header = Header::new(
        id,
        SegmentNo(0),
        format.codec,
        format.channels,
        format.sample_rate,
        0,
    )
    .expect("header")
    .with_chunk_size(chunk_size)
    .expect("chunk size");
    let key = DataKey::generate();
    let mut w = SegmentWriter::new(header, &key);
    let mut sealed = w.header_bytes().to_vec();
    sealed.extend(w.append(plaintext).expect("append"));
    sealed.extend(w.seal());
    let path = Path::from(format!("v1/test/{id}/0000.cva"));
    store.put(&path, sealed.into()).await.expect("put");
    let reader = ObjectReader::open(store, path).await.expect("open");
    let source = VaultSegmentSource::new(reader, key);
    assert_eq!(source.media_format(), format);
    Arc::new(source)
}

async fn render(t: &Timeline, range: Range<u64>) -> Result<Vec<u8>, RenderError> {
    t.stream(range)
        .try_fold(Vec::new(), |mut all, b| async move {
            all.extend_from_slice(&b);
            Ok(all)
        })
        .await
}

const WINDOW_MS: u64 = 20;
const PRESENT: f32 = 0.001;

fn formats() -> [MediaFormat; 4] {
    let f = |codec, sample_rate, channels| MediaFormat {
        codec,
        sample_rate,
        channels,
    };
    [
        f(Codec::Pcmu, 8000, 2),
        f(Codec::Pcma, 8000, 2),
        f(Codec::L16, 16_000, 2),
        f(Codec::Pcmu, 8000, 1),
    ]
}

#[tokio::test]
async fn every_pause_render_in_every_format_sounds_right() {
    for format in formats() {
        for output in [OutputFormat::Stored, OutputFormat::Pcm16] {
            for render_as in [PauseRender::Skip, PauseRender::Silence, PauseRender::Tone] {
                let what = format!("{format:?} {output:?} {render_as}");
                let t = Timeline::new(
                    format,
                    output,
                    vec![
                        mem(tone(format, 1000.0, 1000)),
                        Piece::gap_ms(&format, 500, render_as),
                        mem(tone(format, 2000.0, 1000)),
                    ],
                )
                .expect("timeline");
                let wav = render(&t, 0..t.file_len()).await.expect("render");
                assert_eq!(wav.len() as u64, t.file_len(), "{what}");
                let d = decode_wav(&wav);
                assert_eq!(d.rate, format.sample_rate, "{what}");
                assert_eq!(d.channels, usize::from(format.channels), "{what}");
                let gap_ms = if render_as == PauseRender::Skip {
                    0
                } else {
                    500
                };
                let rate = u64::from(format.sample_rate);
                assert_eq!(
                    d.frames() as u64,
                    rate * (2000 + gap_ms) / 1000,
                    "{what}: exact duration"
                );
                let second = 1000 + gap_ms;
                for ch in 0..d.channels {
                    let s = &d.samples[ch];
                    let r = d.rate;
                    let spans = |hz| tone_spans(s, r, hz, WINDOW_MS, PRESENT);
                    assert_spans(&spans(1000.0), &[0..1000], WINDOW_MS, &what);
                    assert_spans(&spans(2000.0), &[second..second + 1000], WINDOW_MS, &what);
                    let want_tone: &[Range<u64>] = match render_as {
                        PauseRender::Tone => &[1000..1500],
                        _ => &[],
                    };
                    assert_spans(&spans(425.0), want_tone, WINDOW_MS, &what);
                    if render_as == PauseRender::Silence {
                        let quiet = peak(d.window(ch, 1000 + WINDOW_MS..1500 - WINDOW_MS));
                        assert!(quiet < 0.001, "{what}: silence peaks at {quiet}");
                    }
                    if render_as == PauseRender::Tone {
                        let loud = peak(d.window(ch, 1000 + WINDOW_MS..1500 - WINDOW_MS));
                        assert!((0.09..0.11).contains(&loud), "{what}: tone peaks at {loud}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn caller_and_agent_stay_on_their_channels() {
    let format = formats()[0];
    for output in [OutputFormat::Stored, OutputFormat::Pcm16] {
        let t = Timeline::new(
            format,
            output,
            vec![
                mem(tones(format, 1000.0, 2000.0, 700)),
                Piece::gap_ms(&format, 300, PauseRender::Tone),
                mem(tones(format, 1000.0, 2000.0, 700)),
            ],
        )
        .expect("timeline");
        let d = decode_wav(&render(&t, 0..t.file_len()).await.expect("render"));
        let (caller, agent) = (&d.samples[0], &d.samples[1]);
        let spans = |s: &[f32], hz| tone_spans(s, d.rate, hz, WINDOW_MS, PRESENT);
        let both = [0..700, 1000..1700];
        assert_spans(&spans(caller, 1000.0), &both, WINDOW_MS, "caller 1 khz");
        assert_spans(
            &spans(caller, 2000.0),
            &[],
            WINDOW_MS,
            "no 2 khz from the caller",
        );
        assert_spans(&spans(agent, 2000.0), &both, WINDOW_MS, "agent 2 khz");
        assert_spans(
            &spans(agent, 1000.0),
            &[],
            WINDOW_MS,
            "no 1 khz from the agent",
        );
        assert_spans(
            &spans(caller, 425.0),
            &[700..1000],
            WINDOW_MS,
            "tone, caller",
        );
        assert_spans(&spans(agent, 425.0), &[700..1000], WINDOW_MS, "tone, agent");
    }
}

#[tokio::test]
async fn sealed_vault_segments_render_like_plaintext() {
    let format = formats()[1];
    let first = tone(format, 1000.0, 1000);
    let second = tone(format, 2000.0, 600);
    let sealed = vault_source(format, &first, 1000).await;
    let pieces = |a: Piece| {
        vec![
            a,
            Piece::gap_ms(&format, 250, PauseRender::Tone),
            mem(second.clone()),
        ]
    };
    for output in [OutputFormat::Stored, OutputFormat::Pcm16] {
        let from_vault = Timeline::new(format, output, pieces(Piece::Audio(sealed.clone())))
            .expect("timeline")
            .with_read_step(777);
        let from_memory =
            Timeline::new(format, output, pieces(mem(first.clone()))).expect("timeline");
        let wav = render(&from_vault, 0..from_vault.file_len())
            .await
            .expect("render");
        assert_eq!(
            wav,
            render(&from_memory, 0..from_memory.file_len())
                .await
                .expect("render")
        );
        let d = decode_wav(&wav);
        assert_eq!(d.duration_ms(), 1850);
        let spans = tone_spans(&d.samples[1], d.rate, 1000.0, WINDOW_MS, PRESENT);
        assert_spans(&spans, &[0..1000], WINDOW_MS, "vault segment");
    }
}

#[tokio::test]
async fn a_tampered_vault_segment_fails_the_stream() {
    let format = formats()[0];
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let header = Header::new(RecordingId::new(), SegmentNo(0), Codec::Pcmu, 2, 8000, 0)
        .expect("header")
        .with_chunk_size(512)
        .expect("chunk size");
    let key = DataKey::generate();
    let mut w = SegmentWriter::new(header, &key);
    let mut sealed = w.header_bytes().to_vec();
    sealed.extend(w.append(&tone(format, 1000.0, 500)).expect("append"));
    sealed.extend(w.seal());
    let at = sealed.len() - 100;
    sealed[at] ^= 1;
    let path = Path::from("v1/test/tampered.cva");
    store.put(&path, sealed.into()).await.expect("put");
    let reader = ObjectReader::open(store, path).await.expect("open");
    let t = Timeline::new(
        format,
        OutputFormat::Pcm16,
        vec![Piece::Audio(Arc::new(VaultSegmentSource::new(reader, key)))],
    )
    .expect("timeline");
    // the start is intact, the end is not
    assert!(render(&t, 0..1000).await.is_ok());
    let e = render(&t, 0..t.file_len()).await.expect_err("tampered");
    assert!(matches!(e, RenderError::Source { .. }), "{e}");
}

#[tokio::test]
async fn header_only_and_past_the_end() {
    let format = formats()[0];
    let t = Timeline::new(
        format,
        OutputFormat::Stored,
        vec![mem(tone(format, 1000.0, 100))],
    )
    .expect("timeline");
    let header = render(&t, 0..t.header_len()).await.expect("header");
    assert_eq!(header, t.wav_spec().header(t.data_len()).expect("header"));
    assert_eq!(&header[..4], b"RIFF");
    assert_eq!(&header[header.len() - 8..header.len() - 4], b"data");
    let len = t.file_len();
    let e = render(&t, len - 1..len + 1)
        .await
        .expect_err("past the end");
    assert!(matches!(e, RenderError::Range { .. }), "{e}");
    assert!(render(&t, len..len).await.expect("empty").is_empty());
}

#[tokio::test]
async fn odd_lengths_are_padded_and_still_play() {
    // mono mu-law with an odd number of frames needs a pad byte after the data chunk
    let format = formats()[3];
    let mut audio = tone(format, 1000.0, 100);
    audio.push(0xFF);
    let t = Timeline::new(
        format,
        OutputFormat::Stored,
        vec![
            mem(audio),
            Piece::Gap {
                frames: 2,
                render: PauseRender::Silence,
            },
        ],
    )
    .expect("timeline");
    assert_eq!(t.data_len() % 2, 1);
    let wav = render(&t, 0..t.file_len()).await.expect("render");
    assert_eq!(wav.len() as u64, t.header_len() + t.data_len() + 1);
    assert_eq!(decode_wav(&wav).frames(), 803);
}

/// A small timeline of every kind of piece, sealed segments cut into small chunks, its full render,
/// and the runtime to render ranges of it in.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    timelines: Vec<(Timeline, Vec<u8>)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let timelines = runtime.block_on(async {
            let mut out = Vec::new();
            for format in [formats()[3], formats()[1], formats()[2]] {
                let a = vault_source(format, &tone(format, 1000.0, 60), 100).await;
                let b = vault_source(format, &tone(format, 2000.0, 35), 64).await;
                for output in [OutputFormat::Stored, OutputFormat::Pcm16] {
                    let pieces = vec![
                        Piece::Audio(a.clone()),
                        Piece::Gap {
                            frames: 37,
                            render: PauseRender::Tone,
                        },
                        mem(tone(format, 500.0, 13)),
                        Piece::Gap {
                            frames: 11,
                            render: PauseRender::Silence,
                        },
                        Piece::Gap {
                            frames: 1000,
                            render: PauseRender::Skip,
                        },
                        Piece::Audio(b.clone()),
                    ];
                    let t = Timeline::new(format, output, pieces)
                        .expect("timeline")
                        .with_read_step(77);
                    let full = render(&t, 0..t.file_len()).await.expect("render");
                    assert_eq!(full.len() as u64, t.file_len());
                    out.push((t, full));
                }
            }
            out
        });
        Fixture { runtime, timelines }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_range_is_the_same_slice_of_the_full_render(
        which in 0usize..6,
        a in 0.0f64..=1.0,
        b in 0.0f64..=1.0,
    ) {
        let f = fixture();
        let (t, full) = &f.timelines[which];
        let len = t.file_len();
        let (a, b) = ((a * len as f64) as u64, (b * len as f64) as u64);
        let range = a.min(b)..a.max(b);
        let part = f.runtime.block_on(render(t, range.clone())).expect("render");
        prop_assert_eq!(&part[..], &full[range.start as usize..range.end as usize]);
    }
}
