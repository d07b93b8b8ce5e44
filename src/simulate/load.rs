//! The load generator and its baseline: many simulated calls at once against a running daemon,
//! sampling the daemon's CPU time and memory from `/proc`, then checking that every recording was
//! stored and decrypts; and a bare-receive server on the same tokio, hyper and WebSocket stack that
//! reads and discards the same traffic, so a run can report callvault's cost as a ratio to the floor.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use super::net::Target;
use super::{SimulateOptions, simulate};
use crate::config::Secret;
use crate::domain::{CallId, EventKind};
use crate::ingest::webhook::WebhookSecret;

/// `callvault loadgen`: N concurrent calls, ramped up, held, checked.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Base URL of the public listener.
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
    /// Time over which calls are started, evenly.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// Time every call is held together after the ramp.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// Process id of the server to sample (callvault or the baseline).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Write one line per second (time, calls, CPU seconds, RSS) to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Prefix of the call ids (each run should use a new one).
    #[arg(long, default_value = "load")]
    pub prefix: String,
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Calls started.
    pub calls: usize,
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
    /// Server CPU seconds over the hold phase, when a pid was given.
    pub hold_cpu_s: Option<f64>,
    /// Length of the hold phase as measured.
    pub hold_s: f64,
    /// Server resident memory at the start, and its peak, in KiB.
    pub rss_kib: Option<(u64, u64)>,
    /// Recordings checked after the run: (stored and decrypted whole, not).
    pub verified: Option<(usize, usize)>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "calls: {} started, {} failed, {} at once at peak",
            self.calls, self.failed, self.peak_calls
        )?;
        writeln!(
            f,
            "frames: {} in {:.1} s ({:.0} frames/s over the run)",
            self.frames,
            self.elapsed.as_secs_f64(),
            self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )?;
        if let Some(cpu) = self.hold_cpu_s {
            writeln!(
                f,
                "server cpu over the {:.1} s hold: {:.2} s ({:.1}% of one core; {:.3} ms per call-second)",
                self.hold_s,
                cpu,
                100.0 * cpu / self.hold_s.max(1e-9),
                1000.0 * cpu / (self.hold_s * self.calls as f64).max(1e-9)
            )?;
        }
        if let Some((start, peak)) = self.rss_kib {
            let per_call = peak.saturating_sub(start) as f64 / self.calls.max(1) as f64;
            writeln!(
                f,
                "server rss: {start} KiB at start, {peak} KiB at peak ({per_call:.1} KiB per call)"
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

/// One sample of the server process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    calls: usize,
    cpu_s: f64,
    rss_kib: u64,
    hwm_kib: u64,
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

/// Runs the load: starts `calls` calls evenly over `ramp`, each lasting until `ramp + hold`, with a
/// card payment from 40% to 60% of its length; samples the server; then checks every recording.
pub async fn loadgen(args: LoadArgs) -> anyhow::Result<LoadReport> {
    let token = read_secret(&args.token_file)?;
    let webhook = match &args.webhook_secret_file {
        Some(p) => Some(WebhookSecret::from_secret(&read_secret(p)?)?),
        None => None,
    };
    let active = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let started = Instant::now();
    let sampler = args.pid.map(|pid| {
        let active = Arc::clone(&active);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if let Some((cpu_s, rss_kib, hwm_kib)) = sample_proc(pid) {
                    let t = started.elapsed().as_secs_f64();
                    samples.push(Sample {
                        t,
                        calls: active.load(Ordering::Relaxed),
                        cpu_s,
                        rss_kib,
                        hwm_kib,
                    });
                }
            }
            samples
        })
    });
    let total = args.ramp + args.hold;
    let mut tasks = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let offset = args.ramp.mul_f64(i as f64 / args.calls.max(1) as f64);
        let call_id: CallId = format!("{}-{i:05}", args.prefix)
            .parse()
            .context("call id prefix")?;
        let mut opts = SimulateOptions::new(args.url.clone(), token.clone(), call_id);
        opts.duration = total - offset;
        opts.tone_hz = (300.0 + (i % 40) as f32 * 20.0, 2500.0);
        opts.webhook_secret = webhook.clone();
        opts.events = vec![
            (opts.duration.mul_f64(0.4), EventKind::PaymentStarted),
            (opts.duration.mul_f64(0.6), EventKind::PaymentEnded),
        ];
        let active = Arc::clone(&active);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            active.fetch_add(1, Ordering::Relaxed);
            let result = simulate(opts).await;
            active.fetch_sub(1, Ordering::Relaxed);
            result
        }));
    }
    let mut report = LoadReport {
        calls: args.calls,
        ..LoadReport::default()
    };
    let mut ids = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => {
                report.frames += r.frames;
                ids.push(r.call_id);
            }
            Ok(Err(e)) => {
                report.failed += 1;
                if report.errors.len() < 5 {
                    report.errors.push(format!("{e:#}"));
                }
            }
            Err(e) => {
                report.failed += 1;
                report.errors.push(format!("task: {e}"));
            }
        }
    }
    report.elapsed = started.elapsed();
    stop.cancel();
    if let Some(sampler) = sampler {
        let samples = sampler.await.unwrap_or_default();
        report.peak_calls = samples.iter().map(|s| s.calls).max().unwrap_or(0);
        let ramp_end = args.ramp.as_secs_f64();
        let hold_end = total.as_secs_f64();
        let at = |t: f64| {
            samples
                .iter()
                .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
                .copied()
        };
        if let (Some(a), Some(b)) = (at(ramp_end), at(hold_end)) {
            report.hold_cpu_s = Some(b.cpu_s - a.cpu_s);
            report.hold_s = b.t - a.t;
        }
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            report.rss_kib = Some((first.rss_kib, last.hwm_kib));
        }
        if let Some(path) = &args.csv {
            let mut csv = String::from("t_s,calls,cpu_s,rss_kib\n");
            for s in &samples {
                csv.push_str(&format!(
                    "{:.1},{},{:.2},{}\n",
                    s.t, s.calls, s.cpu_s, s.rss_kib
                ));
            }
            std::fs::write(path, csv)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if let Some(path) = &args.supervisor_token_file {
        let supervisor = read_secret(path)?;
        let target = Target::parse(&args.url, None)?;
        // the last calls sealed only after the look-back window; give them time
        tokio::time::sleep(Duration::from_secs(6)).await;
        report.verified = Some(verify(&target, &supervisor, &ids).await);
    }
    Ok(report)
}

/// Fetches every call's recording and its whole audio (which decrypts every chunk).
async fn verify(target: &Target, token: &Secret, ids: &[CallId]) -> (usize, usize) {
    let (mut ok, mut bad) = (0, 0);
    for id in ids {
        let found = async {
            let (status, body) = target
                .get(&format!("/v1/recordings?call_id={id}"), token)
                .await?;
            anyhow::ensure!(status == 200, "search answered {status}");
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            let rec = &v["recordings"][0];
            anyhow::ensure!(rec["status"] == "sealed", "status {}", rec["status"]);
            let rid = rec["id"].as_str().context("no id")?;
            let (status, wav) = target
                .get(&format!("/v1/recordings/{rid}/audio?reason=loadgen"), token)
                .await?;
            anyhow::ensure!(status == 200 && wav.len() > 58, "audio answered {status}");
            Ok(())
        }
        .await;
        match found {
            Ok(()) => ok += 1,
            Err(e) => {
                bad += 1;
                tracing::warn!(call_id = %id, error = %format!("{e:#}"), "recording check failed");
            }
        }
    }
    (ok, bad)
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
                ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        match msg {
                            WsMessage::Text(t) if t.as_str().contains("\"stop\"") => break,
                            WsMessage::Close(_) => break,
                            _ => {}
                        }
                    }
                    let _ = socket.send(WsMessage::Close(None)).await;
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "baseline serving");
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
