//! The simulator's connections: plain TCP, or TLS trusting one CA file; an HTTP/1.1 client for
//! posting events and a WebSocket client for the media stream.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use zeroize::Zeroizing;

use crate::config::Secret;
use crate::domain::CallId;

/// Bound on connecting, a TLS or WebSocket handshake, and one HTTP exchange.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of an error response kept for the error message.
const MAX_ERROR_BODY: usize = 4096;

/// A byte stream, plain or TLS.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The media socket.
pub(super) type Ws = WebSocketStream<Box<dyn Io>>;

/// Where callvault's public listener is, and how to reach it.
#[derive(Clone)]
pub(super) struct Target {
    tls: Option<TlsConnector>,
    /// Host without IPv6 brackets, for connecting and for TLS server names.
    host: String,
    port: u16,
    /// `host:port` as written in the URL, for `Host` headers.
    authority: String,
}

impl Target {
    /// Reads `http://host:port` or `https://host:port`; `https` needs `ca_cert`, the PEM file of
    /// the CA that signed the server's certificate.
    pub(super) fn parse(base_url: &str, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let uri: Uri = base_url
            .parse()
            .with_context(|| format!("{base_url:?} is not a url"))?;
        let tls = match uri.scheme_str() {
            Some("http" | "ws") => None,
            Some("https" | "wss") => {
                let ca = ca_cert.context(
                    "an https url needs --ca-cert: the simulator does not use the platform's roots",
                )?;
                Some(tls_connector(ca)?)
            }
            _ => bail!("{base_url:?}: expected an http:// or https:// url"),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            bail!("{base_url:?}: the url must be the listener's root, with no path");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("{base_url:?} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        Ok(Self {
            host: host.to_owned(),
            port,
            authority: authority.as_str().to_owned(),
            tls,
        })
    }

    /// Connects over TCP, with no delay for small writes: 20 ms frames must not wait for Nagle.
    async fn connect_tcp(&self) -> anyhow::Result<TcpStream> {
        let addr = format!("{}:{}", self.authority_host(), self.port);
        let tcp = timeout(TIMEOUT, TcpStream::connect((self.host.as_str(), self.port)))
            .await
            .with_context(|| format!("timed out connecting to {addr}"))?
            .with_context(|| format!("cannot connect to {addr}"))?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// Connects, with TLS when the URL said `https`.
    async fn connect(&self) -> anyhow::Result<Box<dyn Io>> {
        let tcp = self.connect_tcp().await?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = ServerName::try_from(self.host.clone())
            .with_context(|| format!("{} is not a tls server name", self.host))?;
        let stream = timeout(TIMEOUT, tls.connect(name, tcp))
            .await
            .context("timed out in the tls handshake")?
            .context("tls handshake failed")?;
        Ok(Box::new(stream))
    }

    fn authority_host(&self) -> &str {
        self.authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(h, _)| h)
    }

    /// POSTs a JSON body to `path` on a fresh connection; any status but 2xx is an error that
    /// carries the start of the response body.
    pub(super) async fn post_json(
        &self,
        path: &str,
        headers: &[(&'static str, String)],
        body: String,
    ) -> anyhow::Result<()> {
        let io = self.connect().await?;
        let (mut sender, conn) = timeout(
            TIMEOUT,
            hyper::client::conn::http1::handshake(TokioIo::new(io)),
        )
        .await
        .context("timed out in the http handshake")??;
        let conn = tokio::spawn(conn);
        let mut req = hyper::Request::post(path)
            .header(HOST, &self.authority)
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let resp = timeout(TIMEOUT, sender.send_request(req))
            .await
            .with_context(|| format!("timed out posting to {path}"))?
            .with_context(|| format!("cannot post to {path}"))?;
        let status = resp.status();
        let detail = if status.is_success() {
            String::new()
        } else {
            match timeout(
                TIMEOUT,
                Limited::new(resp.into_body(), MAX_ERROR_BODY).collect(),
            )
            .await
            {
                Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                _ => "(no readable body)".to_owned(),
            }
        };
        drop(sender);
        conn.abort();
        if !status.is_success() {
            bail!("POST {path} answered {status}: {detail}");
        }
        Ok(())
    }

    /// GETs `path` with a bearer token on a fresh connection; returns the status and the body (read
    /// whole: for checks on recordings after a load run, not for the audio path).
    pub(super) async fn get(&self, path: &str, token: &Secret) -> anyhow::Result<(u16, Bytes)> {
        let io = self.connect().await?;
        let (mut sender, conn) = timeout(
            TIMEOUT,
            hyper::client::conn::http1::handshake(TokioIo::new(io)),
        )
        .await
        .context("timed out in the http handshake")??;
        let conn = tokio::spawn(conn);
        let token = std::str::from_utf8(token.expose_trimmed()).context("the token is not text")?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).context("bad token")?;
        auth.set_sensitive(true);
        let req = hyper::Request::get(path)
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, auth)
            .body(Full::new(Bytes::new()))?;
        let resp = timeout(TIMEOUT, sender.send_request(req))
            .await
            .with_context(|| format!("timed out getting {path}"))??;
        let status = resp.status().as_u16();
        let body = timeout(Duration::from_secs(60), resp.into_body().collect())
            .await
            .with_context(|| format!("timed out reading {path}"))??
            .to_bytes();
        drop(sender);
        conn.abort();
        Ok((status, body))
    }

    /// Opens the media socket of `call_id` with a bearer token.
    pub(super) async fn media_socket(
        &self,
        call_id: &CallId,
        token: &Secret,
    ) -> anyhow::Result<Ws> {
        let req = self.media_request(call_id, token)?;
        let io = self.connect().await?;
        handshake(req, io).await
    }

    /// Opens the media socket of `call_id` over plain TCP and returns the bare stream once the
    /// handshake is done, for the load generator's own frame writer. The server sends nothing
    /// before the client's first frame, so no byte is left behind in the handshake's buffer.
    pub(super) async fn raw_media_socket(
        &self,
        call_id: &CallId,
        token: &Secret,
    ) -> anyhow::Result<TcpStream> {
        if self.tls.is_some() {
            bail!("the load generator streams plain ws: give it an http:// url on loopback");
        }
        let req = self.media_request(call_id, token)?;
        let tcp = self.connect_tcp().await?;
        Ok(handshake(req, tcp).await?.into_inner())
    }

    fn media_request(
        &self,
        call_id: &CallId,
        token: &Secret,
    ) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{}/v1/calls/{call_id}/media", self.authority);
        let mut req = url.as_str().into_client_request()?;
        let token = std::str::from_utf8(token.expose_trimmed())
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .context("the token must be one line of visible ascii")?;
        let bearer = Zeroizing::new(format!("Bearer {token}"));
        let mut auth = HeaderValue::from_str(&bearer).context("the token is not a header value")?;
        auth.set_sensitive(true);
        req.headers_mut().insert(AUTHORIZATION, auth);
        Ok(req)
    }
}

/// The WebSocket handshake over `io`, bounded by [`TIMEOUT`].
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
    io: S,
) -> anyhow::Result<WebSocketStream<S>> {
    let url = req.uri().to_string();
    let (ws, _) = timeout(TIMEOUT, tokio_tungstenite::client_async(req, io))
        .await
        .context("timed out opening the media socket")?
        .with_context(|| format!("the media socket {url} was refused"))?;
    Ok(ws)
}

fn tls_connector(ca: &Path) -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .and_then(|it| it.collect::<Result<_, _>>())
        .with_context(|| format!("cannot read pem certificates from {}", ca.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", ca.display());
    }
    for cert in certs {
        roots
            .add(cert)
            .with_context(|| format!("{} holds a bad certificate", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = Target::parse("http://127.0.0.1:8443", None).expect("plain url");
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("127.0.0.1", 8443, "127.0.0.1:8443")
        );
        assert!(t.tls.is_none());
        let t = Target::parse("http://[::1]:9000/", None).expect("ipv6 url");
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        let t = Target::parse("http://localhost", None).expect("default port");
        assert_eq!(t.port, 80);
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("https://localhost:8443", "--ca-cert"),
            ("ftp://localhost", "http://"),
            ("localhost:8443", "http://"),
            ("http://localhost:8443/v1", "no path"),
            ("not a url", "not a url"),
        ] {
            let e = Target::parse(url, None).err().expect(url);
            assert!(format!("{e:#}").contains(why), "{url}: {e:#}");
        }
        let e = Target::parse("https://localhost", Some(Path::new("/nonexistent/ca.pem")))
            .err()
            .expect("missing ca file");
        assert!(format!("{e:#}").contains("ca.pem"), "{e:#}");
    }
}
