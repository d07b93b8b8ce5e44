use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use futures::executor::block_on;

use super::*;

/// Plaintext held in memory; remembers the largest read.
struct Mem {
    bytes: Vec<u8>,
    largest: AtomicU64,
    format: Option<MediaFormat>,
}

impl Mem {
    fn new(bytes: Vec<u8>) -> Arc<Self> {
        Arc::new(Self {
            bytes,
            largest: AtomicU64::new(0),
            format: None,
        })
    }
}

#[async_trait]
impl SegmentSource for Mem {
    fn plaintext_len(&self) -> u64 {
        self.bytes.len() as u64
    }
    async fn read(&self, range: Range<u64>) -> Result<Bytes, RenderError> {
        self.largest
            .fetch_max(range.end - range.start, Ordering::Relaxed);
        Ok(Bytes::copy_from_slice(
            &self.bytes[range.start as usize..range.end as usize],
        ))
    }
    fn format(&self) -> Option<MediaFormat> {
        self.format
    }
}

/// A segment of `len` bytes that are never stored: byte `i` is `i % 251`.
struct Endless(u64);

#[async_trait]
impl SegmentSource for Endless {
    fn plaintext_len(&self) -> u64 {
        self.0
    }
    async fn read(&self, range: Range<u64>) -> Result<Bytes, RenderError> {
        Ok(range.map(|i| (i % 251) as u8).collect())
    }
}

/// Always fails, as a segment whose object was altered would.
struct Broken;

#[async_trait]
impl SegmentSource for Broken {
    fn plaintext_len(&self) -> u64 {
        100
    }
    async fn read(&self, _: Range<u64>) -> Result<Bytes, RenderError> {
        Err(VaultError::Authentication { chunk: 0 }.into())
    }
}

/// Returns one byte too few.
struct Short;

#[async_trait]
impl SegmentSource for Short {
    fn plaintext_len(&self) -> u64 {
        100
    }
    async fn read(&self, range: Range<u64>) -> Result<Bytes, RenderError> {
        Ok(vec![0xFF; (range.end - range.start - 1) as usize].into())
    }
}

fn fmt(codec: Codec, channels: u8) -> MediaFormat {
    MediaFormat {
        codec,
        sample_rate: 8000,
        channels,
    }
}

fn gap(frames: u64, render: PauseRender) -> Piece {
    Piece::Gap { frames, render }
}

fn collect(t: &Timeline, range: Range<u64>) -> Result<Vec<u8>, RenderError> {
    block_on(
        t.stream(range)
            .try_fold(Vec::new(), |mut all, b| async move {
                all.extend_from_slice(&b);
                Ok(all)
            }),
    )
}

fn small(output: OutputFormat, render: PauseRender) -> Timeline {
    // mono mu-law: odd lengths, so the pad byte and mid-sample ranges are exercised
    let a = Mem::new((0..11u8).map(|i| i.wrapping_mul(37)).collect());
    let b = Mem::new((0..6u8).map(|i| 0x80 | i).collect());
    Timeline::new(
        fmt(Codec::Pcmu, 1),
        output,
        vec![Piece::Audio(a), gap(5, render), Piece::Audio(b)],
    )
    .unwrap()
    .with_read_step(4)
}

#[test]
fn lengths_are_known_in_advance() {
    let seg = || Piece::Audio(Mem::new(vec![0xFF; 1000]));
    for (render, extra) in [
        (PauseRender::Skip, 0),
        (PauseRender::Silence, 200),
        (PauseRender::Tone, 200),
    ] {
        let pieces = vec![seg(), gap(100, render), seg()];
        let t = Timeline::new(fmt(Codec::Pcmu, 2), OutputFormat::Stored, pieces.clone()).unwrap();
        assert_eq!(t.header_len(), 58);
        assert_eq!(t.data_len(), 2000 + extra);
        assert_eq!(t.file_len(), 58 + 2000 + extra);
        assert_eq!(t.frames(), (2000 + extra) / 2);
        let t = Timeline::new(fmt(Codec::Pcmu, 2), OutputFormat::Pcm16, pieces).unwrap();
        assert_eq!(t.header_len(), 44);
        assert_eq!(t.data_len(), 2 * (2000 + extra));
        assert_eq!(
            collect(&t, 0..t.file_len()).unwrap().len() as u64,
            t.file_len()
        );
    }
}

#[test]
fn stored_render_is_header_then_segments() {
    let t = small(OutputFormat::Stored, PauseRender::Silence);
    let all = collect(&t, 0..t.file_len()).unwrap();
    assert_eq!(t.data_len(), 11 + 5 + 6);
    assert_eq!(all.len() as u64, 58 + 22);
    assert_eq!(all[..58], t.wav_spec().header(22).unwrap()[..]);
    let data = &all[58..];
    let a: Vec<u8> = (0..11u8).map(|i| i.wrapping_mul(37)).collect();
    assert_eq!(data[..11], a[..]);
    assert_eq!(data[11..16], [0xFF; 5]);
    assert_eq!(data[16..], [0x80, 0x81, 0x82, 0x83, 0x84, 0x85]);
}

#[test]
fn odd_data_ends_with_a_pad_byte() {
    let t = small(OutputFormat::Stored, PauseRender::Skip);
    assert_eq!(t.data_len(), 17);
    assert_eq!(t.file_len(), 58 + 18);
    let all = collect(&t, 0..t.file_len()).unwrap();
    assert_eq!(all.last(), Some(&0));
    assert_eq!(collect(&t, 75..76).unwrap(), vec![0]);
}

#[test]
fn pcm16_decodes_g711() {
    let t = small(OutputFormat::Pcm16, PauseRender::Skip);
    let all = collect(&t, 0..t.file_len()).unwrap();
    let data = &all[44..];
    assert_eq!(data.len(), 34);
    for (i, b) in (0..11u8).map(|i| i.wrapping_mul(37)).enumerate() {
        let s = ULAW_TO_LINEAR[usize::from(b)].to_le_bytes();
        assert_eq!(data[2 * i..2 * i + 2], s);
    }
}

#[test]
fn every_range_is_the_same_slice_of_the_whole() {
    for output in [OutputFormat::Stored, OutputFormat::Pcm16] {
        for render in [PauseRender::Skip, PauseRender::Silence, PauseRender::Tone] {
            let t = small(output, render);
            let len = t.file_len();
            let all = collect(&t, 0..len).unwrap();
            assert_eq!(all.len() as u64, len);
            for a in 0..=len {
                for b in a..=len {
                    let part = collect(&t, a..b).unwrap();
                    assert_eq!(
                        part[..],
                        all[a as usize..b as usize],
                        "{output:?} {render} {a}..{b}"
                    );
                }
            }
        }
    }
}

#[test]
fn reads_are_bounded_by_the_step() {
    let src = Mem::new(vec![0x55; 100_000]);
    let t = Timeline::new(
        fmt(Codec::Pcma, 2),
        OutputFormat::Pcm16,
        vec![Piece::Audio(src.clone())],
    )
    .unwrap()
    .with_read_step(4096);
    let pieces: Vec<Bytes> = block_on(t.stream(0..t.file_len()).try_collect()).unwrap();
    assert!(pieces.iter().all(|p| p.len() <= 8192));
    assert_eq!(src.largest.load(Ordering::Relaxed), 4096);
    let total: usize = pieces.iter().map(Bytes::len).sum();
    assert_eq!(total as u64, t.file_len());
}

#[test]
fn an_hour_is_never_held_whole() {
    // one hour of stereo G.711 in two segments with a tone gap: about 57.6 MB of data that no
    // test ever allocates
    let half = 8000 * 2 * 1800;
    let t = Timeline::new(
        fmt(Codec::Pcmu, 2),
        OutputFormat::Pcm16,
        vec![
            Piece::Audio(Arc::new(Endless(half))),
            Piece::gap_ms(&fmt(Codec::Pcmu, 2), 30_000, PauseRender::Tone),
            Piece::Audio(Arc::new(Endless(half))),
        ],
    )
    .unwrap();
    assert_eq!(t.data_len(), 2 * (2 * half + 8000 * 2 * 30));
    let mid = t.file_len() / 2 + 3;
    let part = collect(&t, mid..mid + 300_000).unwrap();
    assert_eq!(part.len(), 300_000);
    let tail = collect(&t, t.file_len() - 5..t.file_len()).unwrap();
    assert_eq!(tail.len(), 5);
}

#[test]
fn ranges_outside_the_file_fail() {
    let t = small(OutputFormat::Stored, PauseRender::Tone);
    let len = t.file_len();
    for r in [len..len + 1, 0..len + 1, len + 10..len + 20] {
        let e = collect(&t, r).unwrap_err();
        assert!(matches!(e, RenderError::Range { .. }), "{e}");
    }
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 5..4;
    assert!(matches!(
        collect(&t, backwards),
        Err(RenderError::Range { .. })
    ));
    assert!(collect(&t, len..len).unwrap().is_empty());
    assert!(collect(&t, 3..3).unwrap().is_empty());
}

#[test]
fn partial_frames_are_cut() {
    let t = Timeline::new(
        fmt(Codec::Pcmu, 2),
        OutputFormat::Stored,
        vec![Piece::Audio(Mem::new(vec![1, 2, 3, 4, 5, 6, 7]))],
    )
    .unwrap();
    assert_eq!(t.data_len(), 6);
    let all = collect(&t, 0..t.file_len()).unwrap();
    assert_eq!(all[58..], [1, 2, 3, 4, 5, 6]);
}

#[test]
fn bad_inputs_are_refused() {
    let e = Timeline::new(fmt(Codec::Pcmu, 3), OutputFormat::Stored, vec![]).unwrap_err();
    assert_eq!(e.to_string(), "bad media format: channels must be 1 or 2");
    let mut m = fmt(Codec::Pcmu, 1);
    m.sample_rate = 0;
    assert!(matches!(
        Timeline::new(m, OutputFormat::Stored, vec![]),
        Err(RenderError::BadFormat { .. })
    ));
    let other = Arc::new(Mem {
        bytes: vec![0; 10],
        largest: AtomicU64::new(0),
        format: Some(fmt(Codec::Pcma, 1)),
    });
    let e = Timeline::new(
        fmt(Codec::Pcmu, 1),
        OutputFormat::Stored,
        vec![gap(3, PauseRender::Tone), Piece::Audio(other)],
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::FormatMismatch { index: 1 }), "{e}");
    let e = Timeline::new(
        fmt(Codec::L16, 2),
        OutputFormat::Stored,
        vec![Piece::Audio(Arc::new(Endless(5 << 30)))],
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::TooLong(_)), "{e}");
    let e = Timeline::new(
        fmt(Codec::L16, 2),
        OutputFormat::Stored,
        vec![gap(u64::MAX / 2, PauseRender::Silence)],
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::TooLong(_)), "{e}");
    // a skipped gap has no length, however long the pause
    let t = Timeline::new(
        fmt(Codec::L16, 2),
        OutputFormat::Stored,
        vec![gap(u64::MAX, PauseRender::Skip)],
    )
    .unwrap();
    assert_eq!(t.file_len(), 44);
}

#[test]
fn source_failures_end_the_stream() {
    let t = Timeline::new(
        fmt(Codec::Pcmu, 1),
        OutputFormat::Stored,
        vec![gap(10, PauseRender::Tone), Piece::Audio(Arc::new(Broken))],
    )
    .unwrap();
    let items: Vec<Result<Bytes, RenderError>> =
        block_on(futures::StreamExt::collect(t.stream(0..t.file_len())));
    assert!(items[0].is_ok(), "the header comes first");
    let last = items.last().unwrap();
    assert!(
        matches!(
            last,
            Err(RenderError::Source {
                source: VaultError::Authentication { chunk: 0 }
            })
        ),
        "{last:?}"
    );
    let t = Timeline::new(
        fmt(Codec::Pcmu, 1),
        OutputFormat::Pcm16,
        vec![Piece::Audio(Arc::new(Short))],
    )
    .unwrap();
    let e = collect(&t, 0..t.file_len()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "segment source returned 99 bytes for a range of 100"
    );
}

#[test]
fn gap_ms_rounds_to_frames() {
    let f = fmt(Codec::Pcmu, 2);
    assert!(matches!(
        Piece::gap_ms(&f, 1500, PauseRender::Tone),
        Piece::Gap {
            frames: 12_000,
            render: PauseRender::Tone
        }
    ));
    let mut f = f;
    f.sample_rate = 44_100;
    assert!(matches!(
        Piece::gap_ms(&f, 1, PauseRender::Skip),
        Piece::Gap { frames: 44, .. }
    ));
}
