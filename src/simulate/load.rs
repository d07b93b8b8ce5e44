//! The load generator and its baseline: many simulated calls at once against a running daemon,
//! sampling the daemon's CPU time and memory from `/proc`, then checking that every recording was
//! stored and decrypts; and a bare-receive server on the same tokio, hyper and WebSocket stack that
//! reads and discards the same traffic, so a run can report callvault's cost as a ratio to the floor.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocketUpgrade};
use axum::routing::{get, post};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::fleet::{self, CallPlan, Counters, Wire};
use super::net::Target;
use super::source::frames_for;
use crate::config::Secret;
use crate::domain::{CallId, EventKind};
use crate::ingest::webhook::WebhookSecret;

/// `callvault loadgen`: N concurrent calls, ramped up, held, ramped down, checked.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Base URL of the public listener (plain `http://`: the load streams ws on loopback).
    #[arg(long, default_value = "http://127.0.0.1:8443")]
    pub url: String,
    /// File holding a telephony-role token.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// File holding a supervisor token: with it, every recording is fetched and decrypted afterwards.
    #[arg(long, value_name = "FILE")]
    pub supervisor_token_file: Option<PathBuf>,
    /// Webhook secret file: events are posted signed; without it they go as control frames.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Concurrent calls.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Time over which calls are started, evenly (and over which they end, after the hold).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// Time every call is up together, after the ramp.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// Audio frames written to a socket at once. 1 (the default) sends every 20 ms frame on its
    /// own, as platforms do; 5 sends five together every 100 ms, a fifth of the system calls and
    /// TCP segments on both sides, for loads the machine could not otherwise generate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=50))]
    pub frames_per_write: u64,
    /// Process id of the server to sample (callvault or the baseline).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Write one line per sample (time, calls, frames, server CPU and RSS, own CPU) to this file;
    /// samples are a second apart, or a tenth of a hold shorter than 10 s.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Append the run's figures as one CSV line (with a header if the file is new) to this file.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Name of the run in the summary line, e.g. `baseline` or `callvault`.
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Prefix of the call ids (each run should use a new one).
    #[arg(long, default_value = "load")]
    pub prefix: String,
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Name of the run.
    pub label: String,
    /// Calls started.
    pub calls: usize,
    /// Audio frames written to a socket at once.
    pub frames_per_write: u64,
    /// Calls whose simulation failed.
    pub failed: usize,
    /// The first few failures.
    pub errors: Vec<String>,
    /// Most calls open at once.
    pub peak_calls: usize,
    /// Audio frames sent in all.
    pub frames: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The hold phase as measured: its length, the frames sent in it, the server's and the load
    /// generator's own CPU seconds over it.
    pub hold: Option<Hold>,
    /// Server resident memory at the start, and its peak, in KiB.
    pub rss_kib: Option<(u64, u64)>,
    /// Recordings checked after the run: (stored and decrypted whole, not).
    pub verified: Option<(usize, usize)>,
}

/// Figures over the hold phase, when every call is up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hold {
    /// Seconds.
    pub seconds: f64,
    /// Audio frames sent.
    pub frames: u64,
    /// Server CPU seconds (user and system).
    pub server_cpu_s: f64,
    /// The load generator's own CPU seconds.
    pub loadgen_cpu_s: f64,
}

impl LoadReport {
    /// Server CPU microseconds per audio frame received over the hold.
    pub fn cpu_us_per_frame(&self) -> Option<f64> {
        let h = self.hold?;
        (h.frames > 0).then(|| 1e6 * h.server_cpu_s / h.frames as f64)
    }

    /// Server resident memory grown per call, in KiB.
    pub fn rss_kib_per_call(&self) -> Option<f64> {
        let (start, peak) = self.rss_kib?;
        Some(peak.saturating_sub(start) as f64 / self.calls.max(1) as f64)
    }

    const SUMMARY_HEADER: &str = "label,calls,frames_per_write,failed,hold_s,hold_frames,expected_frames,server_cpu_s,loadgen_cpu_s,cpu_us_per_frame,rss_start_kib,rss_peak_kib,rss_kib_per_call,verified_ok,verified_bad";

    fn summary_line(&self) -> String {
        let h = self.hold.unwrap_or_default();
        let (rs, rp) = self.rss_kib.unwrap_or((0, 0));
        let (ok, bad) = self.verified.unwrap_or((0, 0));
        format!(
            "{},{},{},{},{:.2},{},{:.0},{:.3},{:.3},{:.3},{},{},{:.1},{},{}",
            self.label,
            self.calls,
            self.frames_per_write,
            self.failed,
            h.seconds,
            h.frames,
            h.seconds * self.calls as f64 * 1000.0 / super::source::FRAME_MS as f64,
            h.server_cpu_s,
            h.loadgen_cpu_s,
            self.cpu_us_per_frame().unwrap_or(0.0),
            rs,
            rp,
            self.rss_kib_per_call().unwrap_or(0.0),
            ok,
            bad
        )
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} calls started, {} failed, {} at once at peak; {} frame(s) per write",
            self.label, self.calls, self.failed, self.peak_calls, self.frames_per_write
        )?;
        writeln!(
            f,
            "frames: {} in {:.1} s",
            self.frames,
            self.elapsed.as_secs_f64(),
        )?;
        if let Some(h) = self.hold {
            let expected = h.seconds * self.calls as f64 * 1000.0 / super::source::FRAME_MS as f64;
            writeln!(
                f,
                "hold: {:.1} s, {} frames ({:.0}/s, {:.1}% of real time)",
                h.seconds,
                h.frames,
                h.frames as f64 / h.seconds.max(1e-9),
                100.0 * h.frames as f64 / expected.max(1e-9)
            )?;
            writeln!(
                f,
                "server cpu over the hold: {:.2} s ({:.1}% of one core; {:.2} us per frame)",
                h.server_cpu_s,
                100.0 * h.server_cpu_s / h.seconds.max(1e-9),
                self.cpu_us_per_frame().unwrap_or(0.0)
            )?;
            writeln!(
                f,
                "load generator cpu over the hold: {:.2} s ({:.1}% of one core)",
                h.loadgen_cpu_s,
                100.0 * h.loadgen_cpu_s / h.seconds.max(1e-9)
            )?;
        }
        if let Some((start, peak)) = self.rss_kib {
            writeln!(
                f,
                "server rss: {start} KiB at start, {peak} KiB at peak ({:.1} KiB per call)",
                self.rss_kib_per_call().unwrap_or(0.0)
            )?;
        }
        if let Some((ok, bad)) = self.verified {
            writeln!(
                f,
                "recordings: {ok} stored and decrypted, {bad} missing or wrong"
            )?;
        }
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

/// One sample of the server process and the run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    calls: usize,
    frames: u64,
    cpu_s: f64,
    rss_kib: u64,
    hwm_kib: u64,
    own_cpu_s: f64,
}

/// Reads CPU seconds (user + system) and resident memory of `pid` from `/proc`.
fn sample_proc(pid: u32) -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name, which is in parentheses and may hold spaces
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; in USER_HZ (100)
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((ticks / 100.0, kib("VmRSS:")?, kib("VmHWM:")?))
}

fn read_secret(path: &PathBuf) -> anyhow::Result<Secret> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Secret::new(bytes))
}

/// The calls of a run: `calls` calls started evenly over `ramp`, each lasting `ramp + hold` (so all
/// are up together for `hold`, and they end as evenly as they started), with a card payment from
/// 40% to 60% of its length.
fn plans(args: &LoadArgs) -> anyhow::Result<Vec<CallPlan>> {
    let frames = frames_for(args.ramp + args.hold);
    (0..args.calls)
        .map(|i| {
            let call_id: CallId = format!("{}-{i:05}", args.prefix)
                .parse()
                .context("call id prefix")?;
            Ok(CallPlan {
                call_id,
                start: args.ramp.mul_f64(i as f64 / args.calls.max(1) as f64),
                frames,
                events: vec![
                    (frames * 2 / 5, EventKind::PaymentStarted),
                    (frames * 3 / 5, EventKind::PaymentEnded),
                ],
            })
        })
        .collect()
}

/// Runs the load: `calls` calls started evenly over `ramp`, each lasting `ramp + hold`, with a card
/// payment from 40% to 60% of it; samples the server while it runs, then checks every recording.
pub async fn loadgen(args: LoadArgs) -> anyhow::Result<LoadReport> {
    let token = read_secret(&args.token_file)?;
    let webhook = match &args.webhook_secret_file {
        Some(p) => Some(WebhookSecret::from_secret(&read_secret(p)?)?),
        None => None,
    };
    let target = Target::parse(&args.url, None)?;
    let plans = plans(&args)?;
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let hold = args.hold;
    let sampler = args.pid.map(|pid| {
        let counters = Arc::clone(&counters);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            // once a second, or ten times over a short hold
            let every = (hold / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let own = sample_proc(std::process::id()).map_or(0.0, |(cpu, _, _)| cpu);
                if let Some((cpu_s, rss_kib, hwm_kib)) = sample_proc(pid) {
                    samples.push(Sample {
                        t: started.elapsed().as_secs_f64(),
                        calls: counters.active.load(Ordering::Relaxed),
                        frames: counters.frames.load(Ordering::Relaxed),
                        cpu_s,
                        rss_kib,
                        hwm_kib,
                        own_cpu_s: own,
                    });
                }
            }
            samples
        })
    });
    let wire = Wire {
        target: target.clone(),
        token,
        webhook,
        per_write: args.frames_per_write,
    };
    let outcomes = fleet::run(wire, plans, Arc::clone(&counters)).await;
    let mut report = LoadReport {
        label: args.label.clone(),
        calls: args.calls,
        frames_per_write: args.frames_per_write,
        frames: counters.frames.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        ..LoadReport::default()
    };
    let mut ids = Vec::new();
    for (call_id, result) in outcomes {
        match result {
            Ok(_) => ids.push(call_id),
            Err(e) => {
                report.failed += 1;
                if report.errors.len() < 5 {
                    report.errors.push(format!("{call_id}: {e}"));
                }
            }
        }
    }
    stop.cancel();
    if let Some(sampler) = sampler {
        let samples = sampler.await.unwrap_or_default();
        report.peak_calls = samples.iter().map(|s| s.calls).max().unwrap_or(0);
        let ramp_end = args.ramp.as_secs_f64();
        let hold_end = (args.ramp + args.hold).as_secs_f64();
        let at = |t: f64| {
            samples
                .iter()
                .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
                .copied()
        };
        if let (Some(a), Some(b)) = (at(ramp_end), at(hold_end)) {
            report.hold = Some(Hold {
                seconds: b.t - a.t,
                frames: b.frames - a.frames,
                server_cpu_s: b.cpu_s - a.cpu_s,
                loadgen_cpu_s: b.own_cpu_s - a.own_cpu_s,
            });
        }
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            report.rss_kib = Some((first.rss_kib, last.hwm_kib));
        }
        if let Some(path) = &args.csv {
            let mut csv = String::from("t_s,calls,frames,cpu_s,rss_kib,loadgen_cpu_s\n");
            for s in &samples {
                csv.push_str(&format!(
                    "{:.1},{},{},{:.2},{},{:.2}\n",
                    s.t, s.calls, s.frames, s.cpu_s, s.rss_kib, s.own_cpu_s
                ));
            }
            std::fs::write(path, csv)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if let Some(path) = &args.supervisor_token_file {
        let supervisor = read_secret(path)?;
        report.verified = Some(verify(&target, &supervisor, &ids).await);
    }
    if let Some(path) = &args.summary {
        let mut text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("{}\n", LoadReport::SUMMARY_HEADER)
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        text.push_str(&report.summary_line());
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report)
}

/// How long the check waits for a recording to seal: the last calls seal only after the look-back
/// window, and thousands ending together queue for the spool and the store.
const SEAL_WAIT: Duration = Duration::from_secs(120);
/// Recordings checked at once.
const VERIFY_CONCURRENCY: usize = 4;

/// Fetches every call's recording, waiting for it to seal, and its whole audio (which decrypts
/// every chunk and checks its tag).
async fn verify(target: &Target, token: &Secret, ids: &[CallId]) -> (usize, usize) {
    let deadline = Instant::now() + SEAL_WAIT;
    let checks = futures::stream::iter(ids.iter().map(|id| async move {
        let result = check_one(target, token, id, deadline).await;
        if let Err(e) = &result {
            tracing::warn!(call_id = %id, error = %format!("{e:#}"), "recording check failed");
        }
        result.is_ok()
    }))
    .buffer_unordered(VERIFY_CONCURRENCY);
    let results: Vec<bool> = checks.collect().await;
    let ok = results.iter().filter(|r| **r).count();
    (ok, results.len() - ok)
}

async fn check_one(
    target: &Target,
    token: &Secret,
    id: &CallId,
    deadline: Instant,
) -> anyhow::Result<()> {
    let rid = loop {
        let (status, body) = target
            .get(&format!("/v1/recordings?call_id={id}"), token)
            .await?;
        anyhow::ensure!(status == 200, "search answered {status}");
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let rec = &v["recordings"][0];
        if rec["status"] == "sealed" {
            break rec["id"].as_str().context("no id")?.to_owned();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "status {} after the wait",
            rec["status"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    loop {
        let (status, wav) = target
            .get(&format!("/v1/recordings/{rid}/audio?reason=loadgen"), token)
            .await?;
        // 503: sealed, but a segment is still on its way to the object store
        if status == 503 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        anyhow::ensure!(status == 200 && wav.len() > 58, "audio answered {status}");
        return Ok(());
    }
}

/// `callvault loadgen-baseline`: the floor to compare with.
#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8543")]
    pub listen: SocketAddr,
}

/// Serves the same routes as callvault's native ingest, but only reads and discards: events are
/// answered 200 and media frames dropped. Runs until `shutdown`.
pub async fn baseline(args: BaselineArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "the baseline listens on loopback only"
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "baseline serving");
    baseline_on(listener, shutdown).await
}

/// [`baseline`] on a listener already bound.
pub async fn baseline_on(
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let router = Router::new()
        .route(
            "/v1/events",
            post(|body: axum::body::Bytes| async move {
                let _ = body.len();
                axum::Json(serde_json::json!({ "status": "applied" }))
            }),
        )
        .route(
            "/v1/calls/{call_id}/media",
            get(|ws: WebSocketUpgrade| async move {
                crate::api::telephony_socket(ws).on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        match msg {
                            WsMessage::Text(t) if t.as_str().contains("\"stop\"") => break,
                            WsMessage::Close(_) => break,
                            _ => {}
                        }
                    }
                    let bye = CloseFrame {
                        code: 1000,
                        reason: "stop".into(),
                    };
                    let _ = socket.send(WsMessage::Close(Some(bye))).await;
                })
            }),
        );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_sampling_reads_this_process() {
        let (cpu, rss, hwm) = sample_proc(std::process::id()).expect("our own /proc entry");
        assert!(cpu >= 0.0);
        assert!(rss > 0 && hwm >= rss);
        assert!(sample_proc(u32::MAX).is_none());
    }
}
