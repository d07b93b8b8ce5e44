//! `callvault simulate`'s flags.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::script::parse_event_spec;
use super::{SimulateOptions, net};
use crate::config::Secret;
use crate::domain::{CallId, Codec};
use crate::ingest::webhook::WebhookSecret;

/// Flags of `callvault simulate`: play one call into a running callvault as a telephony platform
/// would.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of callvault's public listener: http://host:port, or https://host:port with
    /// --ca-cert.
    #[arg(long, default_value = "http://127.0.0.1:8443")]
    pub url: String,
    /// File holding a bearer token with the telephony role (`callvault tokens create --role telephony`).
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// PEM file of the CA that signed the server's certificate, for an https URL.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The call's id (default: a fresh random one).
    #[arg(long)]
    pub call_id: Option<String>,
    /// A 16-bit PCM WAV at 8000 Hz to play, mono or stereo (caller left, agent right); without it a
    /// tone is generated.
    #[arg(long, value_name = "FILE")]
    pub wav: Option<PathBuf>,
    /// Tone frequencies for the caller and agent channels, in Hz (one value sets both).
    #[arg(long, value_delimiter = ',', num_args = 1..=2, default_values_t = [440.0, 660.0])]
    pub tone_hz: Vec<f32>,
    /// How long the generated tone lasts (such as 30s or 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// An event to fire at an offset into the call, such as 10s=payment.started or
    /// 40s=complaint.opened:C-1234 (repeatable).
    #[arg(long = "event", value_name = "OFFSET=TYPE[:ARG]")]
    pub events: Vec<String>,
    /// File holding the Standard Webhooks secret (whsec_...): events are posted to /v1/events,
    /// signed. Without it, events are sent as control frames on the media socket.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Codec of the audio frames: PCMU, PCMA or L16.
    #[arg(long, default_value = "PCMU")]
    pub codec: Codec,
    /// The dialled line (E.164) in call.started.
    #[arg(long)]
    pub line: Option<String>,
    /// The caller's number in call.started.
    #[arg(long)]
    pub caller: Option<String>,
    /// The agent in call.started.
    #[arg(long)]
    pub agent: Option<String>,
    /// The queue in call.started.
    #[arg(long)]
    pub queue: Option<String>,
    /// Send audio as fast as the server takes it instead of in real time.
    #[arg(long)]
    pub fast: bool,
}

impl SimulateArgs {
    /// Reads the secret files and checks every flag, so a mistake is reported before connecting.
    pub fn into_options(self) -> anyhow::Result<SimulateOptions> {
        net::Target::parse(&self.url, self.ca_cert.as_deref())?;
        let token = read_secret(&self.token_file, "--token-file")?;
        let webhook_secret = self
            .webhook_secret_file
            .as_deref()
            .map(|p| {
                let s = read_secret(p, "--webhook-secret-file")?;
                WebhookSecret::from_secret(&s)
                    .with_context(|| format!("--webhook-secret-file {}", p.display()))
            })
            .transpose()?;
        let call_id = match &self.call_id {
            Some(c) => c.parse().with_context(|| format!("--call-id {c:?}"))?,
            None => random_call_id(),
        };
        let tone_hz = match self.tone_hz[..] {
            [both] => (both, both),
            [caller, agent] => (caller, agent),
            _ => bail!("--tone-hz takes one or two frequencies"),
        };
        if [tone_hz.0, tone_hz.1]
            .iter()
            .any(|hz| !(1.0..=4000.0).contains(hz))
        {
            bail!("--tone-hz must be between 1 and 4000 hz at 8000 samples a second");
        }
        let events = self
            .events
            .iter()
            .map(|spec| parse_event_spec(spec).map_err(|e| anyhow::anyhow!("--event {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if self.fast && !events.is_empty() {
            // audio sent faster than real time arrives long before it would have been spoken,
            // so events stamped on the call's clock cannot be placed in it: the daemon would
            // rightly drop everything that arrived after a pause's instant
            bail!(
                "--fast cannot be combined with --event: the audio would arrive ahead of the \
                 events' times; run in real time, or without events"
            );
        }
        Ok(SimulateOptions {
            base_url: self.url,
            ca_cert: self.ca_cert,
            token,
            call_id,
            wav: self.wav,
            tone_hz,
            duration: self.duration,
            events,
            webhook_secret,
            realtime: !self.fast,
            codec: self.codec,
            line: self.line,
            caller: self.caller,
            agent: self.agent,
            queue: self.queue,
        })
    }
}

/// A fresh call id: `sim-` and a UUIDv7, so simulated calls sort by time and stand out.
pub(super) fn random_call_id() -> CallId {
    format!("sim-{}", uuid::Uuid::now_v7().simple())
        .parse()
        .expect("sim- and 32 hex digits is a valid call id")
}

fn read_secret(path: &Path, flag: &str) -> anyhow::Result<Secret> {
    let bytes =
        fs::read(path).with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    let secret = Secret::new(bytes);
    if secret.expose_trimmed().is_empty() {
        bail!("{flag}: {} is empty", path.display());
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::domain::EventKind;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(extra: &[&str]) -> anyhow::Result<SimulateOptions> {
        let dir = tempfile::tempdir()?;
        let token = dir.path().join("token");
        fs::write(&token, "cv_telephony_token\n")?;
        let secret = dir.path().join("whsec");
        fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")?;
        let mut argv = vec![
            "x".to_owned(),
            "--token-file".to_owned(),
            token.display().to_string(),
        ];
        for a in extra {
            argv.push(a.replace("SECRET", &secret.display().to_string()));
        }
        Cli::try_parse_from(argv)?.args.into_options()
    }

    #[test]
    fn defaults() {
        let o = parse(&[]).expect("defaults are valid");
        assert_eq!(o.base_url, "http://127.0.0.1:8443");
        assert_eq!(o.token.expose_trimmed(), b"cv_telephony_token");
        assert!(o.call_id.as_str().starts_with("sim-"));
        assert_eq!(o.tone_hz, (440.0, 660.0));
        assert_eq!(o.duration, Duration::from_secs(30));
        assert!(o.realtime && o.events.is_empty() && o.webhook_secret.is_none());
        assert_eq!(o.codec, Codec::Pcmu);
        // secrets stay out of debug output
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("cv_telephony_token"), "{dbg}");
    }

    #[test]
    fn every_flag() {
        let o = parse(&[
            "--url=http://localhost:9000",
            "--call-id=CA42",
            "--tone-hz=300",
            "--duration=1m",
            "--event=10s=payment.started",
            "--event",
            "20s=payment.ended",
            "--webhook-secret-file=SECRET",
            "--codec=pcma",
            "--line=+441632960000",
            "--caller=07700900123",
            "--agent=a7",
            "--queue=council-tax",
        ])
        .expect("valid flags");
        assert_eq!(o.call_id.as_str(), "CA42");
        assert_eq!(o.tone_hz, (300.0, 300.0));
        assert_eq!(o.duration, Duration::from_secs(60));
        assert_eq!(
            o.events,
            [
                (Duration::from_secs(10), EventKind::PaymentStarted),
                (Duration::from_secs(20), EventKind::PaymentEnded)
            ]
        );
        assert!(o.webhook_secret.is_some() && o.realtime);
        assert_eq!(o.codec, Codec::Pcma);
        assert_eq!(o.queue.as_deref(), Some("council-tax"));
    }

    #[test]
    fn mistakes_are_named() {
        for (flags, why) in [
            (&["--call-id=a b"][..], "--call-id"),
            (&["--event=10s=nope"], "--event"),
            (&["--tone-hz=5000"], "--tone-hz"),
            (&["--fast", "--event=1s=payment.started"], "--fast"),
            (&["--url=https://x:1"], "--ca-cert"),
            (
                &["--webhook-secret-file=/nonexistent"],
                "--webhook-secret-file",
            ),
        ] {
            let e = parse(flags).expect_err(why);
            assert!(format!("{e:#}").contains(why), "{flags:?}: {e:#}");
        }
        assert!(parse(&["--codec=opus"]).is_err());
        assert!(parse(&["--duration=soon"]).is_err());
    }
}
