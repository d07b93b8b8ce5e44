//! Logs and metrics: structured log lines to stderr (the journal, under systemd) with `tracing`, and a
//! Prometheus recorder for `metrics`, rendered by the admin listener.
//!
//! Architecture invariant: nothing logs a secret or audio; secrets print as `[redacted]` even by
//! accident, because their `Debug` says so.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// The log target of audit checkpoints, always at `info` whatever `log.level` says.
const CHECKPOINT_LINES: &str = "callvault::audit::checkpointer=info";

/// Starts logging to stderr as `config` says; `RUST_LOG`, when set, overrides the level. A second
/// call (as in tests that boot several daemons in one process) keeps the first subscriber.
///
/// Colour (ANSI escapes) only when stderr is a terminal: never in the journal, a file or a pipe.
pub fn init_logging(config: &LogConfig) {
    let colour = std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // the audit checkpoint line is the chain head's copy outside the database: at any level
        .add_directive(CHECKPOINT_LINES.parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_span_events(FmtSpan::NONE);
    let _already_set = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // only fails when another recorder was installed first, and nothing else installs one
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
