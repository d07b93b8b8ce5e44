//! The Asterisk AudioSocket listener: plain TCP, one connection per call.
//!
//! The protocol has no authentication, so a peer outside `audiosocket.allow` is closed at once and
//! logged. Each connection's frames are checked by [`crate::ingest::audiosocket`]; the UUID frame
//! names the call, audio goes to the recorder, a hangup or end of file ends the call, and a bad frame
//! (unknown kind, a length beyond the payload) ends only that connection's stream, with its reason
//! logged.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::limits::{Gate, IdleIo, Permit};
use crate::catalog::{CallNote, CallSource, Catalog};
use crate::config::{AudioSocketConfig, LimitsConfig};
use crate::domain::timeline::MediaClock;
use crate::domain::{CallEvent, CallId, Clock, EventKind};
use crate::ingest::IngestError;
use crate::ingest::audiosocket::{SocketOutput, SocketSession, decode};
use crate::recorder::{MediaSink, Recorder};

/// Largest buffered input: one full frame (3 + 65535 bytes) and a read's worth.
const MAX_BUFFER: usize = 3 + 65_535 + 16 * 1024;

/// Binds `config.listen` and serves until `shutdown`; a bind failure is logged.
pub async fn serve(
    config: AudioSocketConfig,
    limits: LimitsConfig,
    recorder: Recorder,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let Some(addr) = config.listen else {
        return;
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, error = %e, "cannot bind the audiosocket listener");
            return;
        }
    };
    info!(%addr, allow = ?config.allow, "audiosocket listening");
    let connections = TaskTracker::new();
    let gate = Gate::new("audiosocket", &limits);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "audiosocket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if !config.allows(peer.ip()) {
            warn!(%peer, "audiosocket connection from outside audiosocket.allow refused");
            metrics::counter!("callvault_media_rejected_total").increment(1);
            drop(stream);
            continue;
        }
        let Ok(permit) = gate.admit(peer.ip()) else {
            warn!(%peer, "audiosocket connection over limits.max_connections refused");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // a silent connection is closed (Asterisk sends audio every 20 ms)
        let stream = IdleIo::new(stream, limits.idle_timeout, "audiosocket");
        connections.spawn(connection(
            permit,
            stream,
            peer,
            recorder.clone(),
            Arc::clone(&catalog),
            Arc::clone(&clock),
            shutdown.child_token(),
        ));
    }
    connections.close();
    connections.wait().await;
}

enum End {
    Hangup,
    Eof,
    Shutdown,
    Bad(IngestError),
    Asterisk(Option<u8>),
    Refused(String),
}

async fn connection(
    _permit: Permit,
    mut stream: IdleIo<TcpStream>,
    peer: std::net::SocketAddr,
    recorder: Recorder,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let mut session = SocketSession::new();
    let mut sink: Option<MediaSink> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let end = 'conn: loop {
        // audio waits here at most until its batch is due at the call (an idle peer is ended by
        // the read's own idle timeout)
        let due = sink.as_ref().and_then(MediaSink::due);
        let n = tokio::select! {
            () = shutdown.cancelled() => break End::Shutdown,
            () = sleep_until(due), if due.is_some() => {
                if let Some(s) = &mut sink
                    && s.flush().await.is_err()
                {
                    break End::Refused("call ended".into());
                }
                continue;
            }
            r = stream.read(&mut chunk) => match r {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    break End::Refused("idle: no audio within limits.idle_timeout".into())
                }
                Err(e) => break End::Refused(format!("read failed: {e}")),
            },
        };
        if n == 0 {
            if buf.is_empty() {
                break End::Eof;
            }
            break End::Bad(IngestError::BadAudioFrame {
                reason: format!(
                    "stream ended inside a frame: the length is beyond the payload ({} bytes left)",
                    buf.len()
                ),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        loop {
            let (frame, len) = match decode(&buf[used..]) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => break 'conn End::Bad(e),
            };
            used += len;
            match session.on_frame(frame) {
                Ok(SocketOutput::Call(id)) => {
                    info!(call_id = %id, %peer, "audiosocket call");
                    // AudioSocket carries no times: the connection is the call's start
                    let now = clock.now();
                    let note = CallNote {
                        started_at: Some(now),
                        ..CallNote::seen(id, CallSource::AudioSocket, now)
                    };
                    note_call(catalog.as_ref(), &note).await;
                }
                Ok(SocketOutput::Open(format)) => {
                    let Some(id) = session.call() else { continue };
                    match recorder
                        .open_media(id, format, MediaClock::Counted, None)
                        .await
                    {
                        Ok(s) => sink = Some(s),
                        Err(e) => break 'conn End::Refused(format!("media not opened: {e}")),
                    }
                }
                Ok(SocketOutput::Audio(bytes)) => {
                    if let Some(s) = &mut sink
                        && s.push(bytes)
                        && s.flush().await.is_err()
                    {
                        break 'conn End::Refused("call ended".into());
                    }
                }
                Ok(SocketOutput::Key) => {
                    if let Some(s) = &mut sink
                        && s.key()
                        && s.flush().await.is_err()
                    {
                        break 'conn End::Refused("call ended".into());
                    }
                }
                Ok(SocketOutput::Hangup) => break 'conn End::Hangup,
                Ok(SocketOutput::Error(code)) => break 'conn End::Asterisk(code),
                Err(e) => break 'conn End::Bad(e),
            }
        }
        buf.drain(..used);
        if buf.len() > MAX_BUFFER {
            break End::Bad(IngestError::FrameTooLarge {
                len: buf.len(),
                max: MAX_BUFFER,
            });
        }
    };
    let call = session.call().cloned();
    let call_name = call.as_ref().map_or_else(String::new, ToString::to_string);
    if let Some(s) = &mut sink
        && let Err(e) = s.flush().await
    {
        debug!(call_id = %call_name, error = %e, "the call ended before the last audio reached it");
    }
    drop(sink);
    match end {
        End::Hangup | End::Eof => {
            info!(call_id = %call_name, %peer, "audiosocket call ended");
            if let Some(id) = call {
                let note = CallNote {
                    ended_at: Some(clock.now()),
                    ..CallNote::seen(id.clone(), CallSource::AudioSocket, clock.now())
                };
                note_call(catalog.as_ref(), &note).await;
                end_call(&recorder, clock.as_ref(), id).await;
            }
        }
        End::Shutdown => info!(call_id = %call_name, "audiosocket closed at shutdown"),
        End::Bad(e) => {
            warn!(call_id = %call_name, %peer, code = e.code(), reason = %e, "audiosocket stream ended on a bad frame");
            metrics::counter!("callvault_media_rejected_total").increment(1);
        }
        End::Asterisk(code) => {
            warn!(call_id = %call_name, %peer, code = ?code, "asterisk reported an error; stream ended");
        }
        End::Refused(reason) => {
            warn!(call_id = %call_name, %peer, %reason, "audiosocket stream ended")
        }
    }
}

/// Notes the call in the call roster (issue 16). The connection is not refused when the catalog
/// refuses the note: the call's recording, once its media opens, notes it too; so it is logged as
/// an error and counted.
async fn note_call(catalog: &dyn Catalog, note: &CallNote) {
    if let Err(e) = catalog.note_call(note).await {
        error!(call_id = %note.call_id, error = %e, "audiosocket call not noted in the call roster");
        metrics::counter!("callvault_call_notes_failed_total").increment(1);
    }
}

async fn end_call(recorder: &Recorder, clock: &dyn Clock, call_id: CallId) {
    let now = clock.now();
    let event = CallEvent {
        id: format!("audiosocket:{call_id}:call.ended"),
        call_id: call_id.clone(),
        at: now,
        kind: EventKind::CallEnded,
    };
    if let Err(e) = recorder.event(event, now).await {
        warn!(call_id = %call_id, error = %e, "call.ended from audiosocket refused");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
