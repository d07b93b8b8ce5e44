//! Acceptance test of a full spool disk: the daemon's spool directory is a small tmpfs this test
//! mounts, filled by a filler file in the middle of a call and freed about fifteen seconds of audio
//! later. The call keeps what its in-memory backlog (`recorder.spool_backlog`) can hold, drops the
//! rest with a ledger entry naming the seconds lost and the cause, `/readyz` is not ready while the
//! spool cannot be written, the metrics count the episode and the seconds lost, and the stuck
//! segment is uploaded once space returns, without a restart.
//!
//! Needs root (it mounts a tmpfs). Where that is impossible the test fails loudly rather than
//! passing without having run.

mod common;

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use callvault::catalog::{LedgerEntry, SegmentStatus};
use callvault::domain::{Codec, MediaFormat};
use common::Deployment;
use common::audio::{assert_spans, decode_wav, tone, tone_spans};
use common::live::{Live, close_of, sync};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The metrics registry is process-wide: these tests count episodes, so they run one at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn stereo() -> MediaFormat {
    MediaFormat {
        codec: Codec::Pcmu,
        sample_rate: 8000,
        channels: 2,
    }
}

/// A tmpfs mounted for this test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "THIS TEST NEEDS TO MOUNT A TMPFS (run it as root): mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _unmounted = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the filesystem of `path` with a filler file until the kernel says it is full.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let block = vec![0x5a_u8; 64 * 1024];
    let mut written = 0;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // the last partial pages too
    loop {
        match f.write(&block[..512]) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    written
}

async fn readyz(live: &Live) -> u16 {
    common::get(live.admin, "/readyz").await.0
}

async fn metric(live: &Live, name: &str) -> f64 {
    let (status, _, text) = common::get(live.admin, "/metrics").await;
    assert_eq!(status, 200, "metrics answer");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

/// Polls `$cond` in real time until it holds, or fails naming `$what`.
macro_rules! eventually {
    ($secs:expr, $what:expr, $cond:expr) => {{
        let deadline = tokio::time::Instant::now() + Duration::from_secs($secs);
        loop {
            if $cond {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

/// Waits until each of `calls` `.cva.part` files under `spool` holds at least `chunks` whole
/// chunks (about a second each), so the disk fills at a known point of each call.
async fn chunks_on_disk(spool: &Path, calls: usize, chunks: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let sizes: Vec<u64> = std::fs::read_dir(spool)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|d| d.path().is_dir())
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter(|f| f.file_name().to_string_lossy().ends_with(".part"))
            .filter_map(|f| f.metadata().ok().map(|m| m.len()))
            .collect();
        if sizes.len() == calls && sizes.iter().all(|&n| n >= 53 + chunks * (16_384 + 16)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the calls' first chunks never reached the spool: {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `range` without the `lost` ranges, leaving out pieces too short to detect a tone in.
fn minus(range: Range<u64>, lost: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = vec![range];
    for l in lost {
        out = out
            .into_iter()
            .flat_map(|r| [r.start..r.end.min(l.start), r.start.max(l.end)..r.end])
            .filter(|r| r.end > r.start + 200)
            .collect();
    }
    out
}

fn loss_entries(ledger: &[LedgerEntry]) -> Vec<Value> {
    ledger
        .iter()
        .filter(|e| e.kind == "audio_lost")
        .map(|e| serde_json::from_str(&e.details).expect("ledger details are JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::single_range_in_vec_init)]
async fn a_full_spool_disk_holds_a_bounded_backlog_ledgers_the_loss_and_drains_without_restart() {
    let _alone = ALONE.lock().await;
    let deployment = Deployment::new(
        "[recorder]\nspool_backlog = \"5s\"\nspool_retry = \"200ms\"\n\
         [policies.standard]\nretention = \"3 months\"\npause_render = \"silence\"\n",
    );
    // the spool's own small disk (the catalog and the local object store stay on the big one)
    let spool = deployment.path("state/spool");
    let mount = Tmpfs::mount(&spool, "8m");
    let live = Live::start_in(deployment).await;
    eventually!(30, "the daemon is ready", readyz(&live).await == 200);
    let filler = spool.join("filler");

    // two calls: a long one that passes its backlog bound, and a short one that ends while the
    // disk is full, within its bound
    let call = "call-disk-full";
    let short = "call-short";
    for c in [call, short] {
        let (status, _) = live.event(c, "call.started", None, json!({})).await;
        assert_eq!(status, 200, "call.started applied");
    }
    let mut ws = live.media(call).await;
    let mut ws_short = live.media(short).await;
    // 0 - 6 s: 600 Hz (700 Hz on the short call), written to the spool as usual
    let a = tone(stereo(), 600.0, 6_000);
    let b = tone(stereo(), 700.0, 6_000);
    // in real time on the manual clock: each frame read by the server before the clock moves on,
    // so it arrives when it was spoken
    for (fa, fb) in a.chunks(320).zip(b.chunks(320)) {
        live.advance_ms(20);
        ws.send(Message::Binary(fa.to_vec().into()))
            .await
            .expect("frame");
        ws_short
            .send(Message::Binary(fb.to_vec().into()))
            .await
            .expect("frame");
        sync(&mut ws).await;
        sync(&mut ws_short).await;
    }
    chunks_on_disk(&spool, 2, 2).await;
    let episodes = metric(&live, "callvault_spool_full_episodes_total").await;
    let lost_before = metric(&live, "callvault_audio_lost_milliseconds_total").await;

    // the disk fills; the short call ends: its last 3.5 s (the look-back window) are committed
    // now, into memory
    fill(&filler);
    ws_short
        .send(Message::Text(json!({"type": "stop"}).to_string().into()))
        .await
        .expect("stop");
    let _closed = close_of(&mut ws_short).await;
    let (status, _) = live.event(short, "call.ended", None, json!({})).await;
    assert_eq!(status, 200, "call.ended applied");
    // 6 - 21 s: 900 Hz on the long call, while nothing can be written
    live.stream(&mut ws, &tone(stereo(), 900.0, 15_000)).await;
    sync(&mut ws).await;
    eventually!(
        10,
        "/readyz reports the spool cannot be written",
        readyz(&live).await == 503
    );
    let (_, _, body) = common::get(live.admin, "/readyz").await;
    assert!(
        body.contains("no space left on device"),
        "/readyz names the cause: {body}"
    );
    // the short call's segment waits in memory to be written and uploaded
    eventually!(
        10,
        "the stuck segment counts as pending",
        metric(&live, "callvault_spool_pending_segments").await >= 1.0
    );
    let short_row = live
        .recording(short)
        .await
        .expect("the short call's recording");
    assert!(
        live.catalog
            .segments(short_row.id)
            .await
            .expect("segments")
            .iter()
            .any(|s| s.status == SegmentStatus::Spooled),
        "the short call's segment is not uploaded while the disk is full"
    );
    eventually!(
        10,
        "the episode is counted",
        metric(&live, "callvault_spool_full_episodes_total").await == episodes + 1.0
    );

    // space returns: no restart
    std::fs::remove_file(&filler).expect("free the disk");
    eventually!(
        40,
        "/readyz is ready again once space returns",
        readyz(&live).await == 200
    );
    // 21 - 27 s: 1200 Hz
    live.stream(&mut ws, &tone(stereo(), 1_200.0, 6_000)).await;
    sync(&mut ws).await;
    let (status, _) = live.event(call, "call.ended", None, json!({})).await;
    assert_eq!(status, 200, "call.ended applied");
    ws.send(Message::Text(json!({"type": "stop"}).to_string().into()))
        .await
        .expect("stop");
    let _closed = close_of(&mut ws).await;
    live.advance_ms(10_000);
    let row = live.wait_sealed(call).await;

    // every segment uploaded, the stuck one included
    let segments = live.catalog.segments(row.id).await.expect("segments");
    assert!(
        segments.len() >= 2,
        "the backlog bound cut a segment: {segments:?}"
    );
    assert!(
        segments.iter().all(|s| s.status == SegmentStatus::Stored),
        "every segment uploaded without a restart: {segments:?}"
    );

    // the ledger names the loss: when, how long, why
    let ledger = live.catalog.ledger(row.id).await.expect("ledger");
    let losses = loss_entries(&ledger);
    assert_eq!(losses.len(), 1, "one loss entry: {ledger:?}");
    let loss = &losses[0];
    assert_eq!(loss["cause"], "spool_full", "{loss}");
    assert!(
        loss["error"]
            .as_str()
            .is_some_and(|e| e.contains("no space left on device")),
        "the entry names the system's error: {loss}"
    );
    let start = loss["start_ms"].as_u64().expect("start_ms");
    let length = loss["length_ms"].as_u64().expect("length_ms");
    // about 2.5 s of 600 Hz was still in the look-back window when the disk filled; the 5 s
    // backlog then holds the rest of the 600 Hz and the first 900 Hz
    assert!(
        (6_000..=8_500).contains(&start),
        "the loss starts after the backlog's 5 s: {loss}"
    );
    assert!(
        (8_000..=12_000).contains(&length),
        "about 15 s full, less the 5 s backlog: {loss}"
    );
    assert_eq!(
        loss["seconds"].as_f64(),
        Some(length as f64 / 1000.0),
        "{loss}"
    );
    let lost = metric(&live, "callvault_audio_lost_milliseconds_total").await;
    assert_eq!(
        lost - lost_before,
        length as f64,
        "the metric counts the audio lost"
    );
    assert_eq!(metric(&live, "callvault_spool_pending_segments").await, 0.0);

    // what plays is what the ledger says: the kept audio in place, the lost seconds as silence
    let (status, wav) = live.play(&row.id.to_string(), &live.compliance).await;
    assert_eq!(status, 200, "the recording plays");
    let audio = decode_wav(&wav);
    let spans = |hz| tone_spans(&audio.samples[0], audio.rate, hz, 100, 0.05);
    assert_spans(
        &spans(600.0),
        &[0..6_000],
        150,
        "600 Hz before the disk filled",
    );
    assert_spans(
        &spans(900.0),
        &[6_000..start, start + length..21_000],
        150,
        "900 Hz kept by the backlog and after space returned",
    );
    assert_spans(
        &spans(1_200.0),
        &[21_000..27_000],
        150,
        "1200 Hz at the end",
    );
    assert!(
        audio.duration_ms().abs_diff(27_000) <= 150,
        "the timeline keeps its length: {} ms",
        audio.duration_ms()
    );

    // the short call's stuck segment was written and uploaded too: nothing lost, it plays whole
    let short_row = live.wait_sealed(short).await;
    let ledger = live.catalog.ledger(short_row.id).await.expect("ledger");
    assert!(loss_entries(&ledger).is_empty(), "nothing lost: {ledger:?}");
    let (status, wav) = live.play(&short_row.id.to_string(), &live.compliance).await;
    assert_eq!(status, 200, "the short call plays");
    let audio = decode_wav(&wav);
    let spans = tone_spans(&audio.samples[0], audio.rate, 700.0, 100, 0.05);
    assert_spans(&spans, &[0..6_000], 150, "the short call end to end");

    let deployment = live.stop().await;
    drop(mount);
    drop(deployment);
}

/// The whole state directory on the small disk, as a default install has it: the catalog and the
/// local object store fill with the spool. Events may fail while it is full (the catalog cannot
/// remember them); the audio of the call is still held, ledgered and drained the same way.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::single_range_in_vec_init)]
async fn a_full_state_disk_with_the_catalog_on_it_loses_only_what_the_ledger_says() {
    let _alone = ALONE.lock().await;
    let deployment = Deployment::new(
        "[recorder]\nspool_backlog = \"5s\"\nspool_retry = \"200ms\"\n\
         [policies.standard]\nretention = \"3 months\"\npause_render = \"silence\"\n",
    );
    let state = deployment.path("state");
    let mount = Tmpfs::mount(&state, "32m");
    let live = Live::start_in(deployment).await;
    eventually!(30, "the daemon is ready", readyz(&live).await == 200);
    let filler = state.join("filler");

    let call = "call-state-full";
    let (status, _) = live.event(call, "call.started", None, json!({})).await;
    assert_eq!(status, 200, "call.started applied");
    let mut ws = live.media(call).await;
    live.stream(&mut ws, &tone(stereo(), 600.0, 6_000)).await;
    sync(&mut ws).await;
    chunks_on_disk(&state.join("spool"), 1, 1).await;

    fill(&filler);
    live.stream(&mut ws, &tone(stereo(), 900.0, 15_000)).await;
    sync(&mut ws).await;
    eventually!(
        10,
        "/readyz reports the full disk",
        readyz(&live).await == 503
    );

    std::fs::remove_file(&filler).expect("free the disk");
    eventually!(
        40,
        "/readyz is ready again once space returns",
        readyz(&live).await == 200
    );
    live.stream(&mut ws, &tone(stereo(), 1_200.0, 6_000)).await;
    sync(&mut ws).await;
    let (status, _) = live.event(call, "call.ended", None, json!({})).await;
    assert_eq!(status, 200, "call.ended applied");
    ws.send(Message::Text(json!({"type": "stop"}).to_string().into()))
        .await
        .expect("stop");
    let _closed = close_of(&mut ws).await;
    live.advance_ms(10_000);
    let row = live.wait_sealed(call).await;

    let segments = live.catalog.segments(row.id).await.expect("segments");
    assert!(
        segments.iter().all(|s| s.status == SegmentStatus::Stored),
        "every segment uploaded without a restart: {segments:?}"
    );
    // whatever was lost, the ledger says exactly what, and the rest plays in place
    let ledger = live.catalog.ledger(row.id).await.expect("ledger");
    let lost: Vec<Range<u64>> = loss_entries(&ledger)
        .iter()
        .map(|l| {
            let start = l["start_ms"].as_u64().expect("start_ms");
            assert_eq!(l["cause"], "spool_full", "{l}");
            start..start + l["length_ms"].as_u64().expect("length_ms")
        })
        .collect();
    // (the catalog's journal shares the disk: a checkpoint may free room mid-episode and let some
    // backlog drain, so how many losses there are varies; the ledger and the audio always agree)
    let (status, wav) = live.play(&row.id.to_string(), &live.compliance).await;
    assert_eq!(status, 200, "the recording plays");
    let audio = decode_wav(&wav);
    let spans = |hz| tone_spans(&audio.samples[0], audio.rate, hz, 100, 0.05);
    for (hz, sent) in [
        (600.0, 0..6_000),
        (900.0, 6_000..21_000),
        (1_200.0, 21_000..27_000),
    ] {
        assert_spans(
            &spans(hz),
            &minus(sent, &lost),
            150,
            &format!("{hz} Hz where the ledger says nothing was lost ({lost:?})"),
        );
    }
    assert!(
        audio.duration_ms().abs_diff(27_000) <= 150,
        "the timeline keeps its length: {} ms",
        audio.duration_ms()
    );

    let deployment = live.stop().await;
    drop(mount);
    drop(deployment);
}
