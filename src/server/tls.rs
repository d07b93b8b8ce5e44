//! TLS for the public listener: rustls with the `ring` provider, TLS 1.2 and 1.3, ALPN for HTTP/2
//! and HTTP/1.1.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, TlsConfig};

/// Loads the certificate chain and private key named by `tls` into an acceptor.
pub fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, ConfigError> {
    let bad = |key: &str, reason: String| ConfigError::Invalid {
        key: key.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            bad(
                "public.tls.cert",
                format!("cannot read a pem certificate chain: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(bad("public.tls.cert", "holds no certificate".to_owned()));
    }
    let key_pem = tls.key.read()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.expose())
        .map_err(|_| bad("public.tls.key", "holds no pem private key".to_owned()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("public.tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(
                "public.tls.key",
                format!("does not match the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
