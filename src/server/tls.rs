//! TLS of the media listeners: the WebSocket listener (`wss://` whenever the server has a
//! certificate) and AudioSocket (`--audiosocket-tls`, for a TLS-terminating proxy such as
//! stunnel beside Asterisk, whose AudioSocket speaks no TLS itself). The certificate is
//! gRPC's (`--tls-cert/--tls-key`), and the TLS is the same rustls on ring that tonic's
//! `tls-ring` serves gRPC with; tonic's own acceptor is private to its server, so the media
//! listeners use tokio-rustls directly.
//!
//! Client certificates (`--tls-client-ca`) are asked of AudioSocket connections (stunnel can
//! present one) but not of WebSocket ones: Twilio, Genesys and jambonz present none. An
//! AudioSocket client whose certificate a `cert:NAME TENANT` line of the token file maps
//! starts its calls as that tenant's.
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::security::{SecurityConfig, TlsFiles};

/// How the WebSocket media listener takes connections: TLS whenever the server has a
/// certificate, unless `ws_plaintext`; no client certificates (the cloud platforms present
/// none).
pub fn ws_accept(sec: &SecurityConfig) -> anyhow::Result<Accept> {
    Ok(match &sec.tls {
        Some(files) if !sec.ws_plaintext => Accept::tls(server_config(files, ClientCerts::Never)?),
        _ => Accept::Plain,
    })
}

/// How the AudioSocket listener takes connections: TLS with `audiosocket_tls`, with client
/// certificates of `--tls-client-ca` required when one is given.
pub fn audiosocket_accept(sec: &SecurityConfig) -> anyhow::Result<Accept> {
    match (&sec.tls, sec.audiosocket_tls) {
        (Some(files), true) => Ok(Accept::tls(server_config(
            files,
            ClientCerts::AsConfigured,
        )?)),
        (None, true) => anyhow::bail!("AudioSocket TLS needs --tls-cert and --tls-key"),
        (_, false) => Ok(Accept::Plain),
    }
}

/// Whether a media listener's clients must present a certificate of `--tls-client-ca`
/// (when one is configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCerts {
    /// Required when `--tls-client-ca` is given (AudioSocket through stunnel).
    AsConfigured,
    /// Never asked for (WebSocket: the cloud platforms present none).
    Never,
}

/// The rustls settings of a media listener, from the server's PEM files; an unreadable or
/// unparsable file is named by its flag.
pub fn server_config(files: &TlsFiles, client_certs: ClientCerts) -> anyhow::Result<ServerConfig> {
    let certs = read_certs("--tls-cert", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow::anyhow!("--tls-key {}: {e}", files.key.display()))?;
    // ring, as tonic's `tls-ring` (rustls's own default when ring is its only provider):
    // explicit, so another provider in the tree can never make the default ambiguous.
    // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange;
    // gRPC has the same, and aws-lc-rs would change both at once.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (&files.client_ca, client_certs) {
        (Some(ca), ClientCerts::AsConfigured) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs("--tls-client-ca", ca)? {
                roots.add(c)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))
}

/// The certificates of a PEM file; none is an error.
fn read_certs(flag: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{flag} {}: no certificate in it", path.display());
    }
    Ok(certs)
}

/// How a media listener takes a connection: as it comes, or after a TLS handshake.
#[derive(Clone, Default)]
pub enum Accept {
    /// Plain TCP.
    #[default]
    Plain,
    /// TLS with these settings.
    Tls(TlsAcceptor),
}

impl Accept {
    /// TLS with `cfg`.
    pub fn tls(cfg: ServerConfig) -> Self {
        Accept::Tls(TlsAcceptor::from(Arc::new(cfg)))
    }

    /// The connection, after its TLS handshake if this listener has TLS (the caller
    /// bounds how long that may take). A plaintext client of a TLS listener fails here.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<MediaStream> {
        match self {
            Accept::Plain => Ok(MediaStream::Plain(tcp)),
            Accept::Tls(a) => Ok(MediaStream::Tls(Box::new(a.accept(tcp).await?))),
        }
    }

    /// What the start line says of the listener.
    pub fn describe(&self) -> &'static str {
        match self {
            Accept::Tls(_) => "TLS on (the gRPC certificate)",
            Accept::Plain => {
                "TLS off: plaintext (loopback, development, or behind a TLS-terminating proxy only)"
            }
        }
    }
}

/// A media connection: plain TCP, or TLS over it.
pub enum MediaStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl MediaStream {
    /// The client's certificate (the leaf of its chain), when it presented one over TLS.
    pub fn client_cert(&self) -> Option<&CertificateDer<'static>> {
        match self {
            MediaStream::Tls(s) => s.get_ref().1.peer_certificates()?.first(),
            MediaStream::Plain(_) => None,
        }
    }
}

impl AsyncRead for MediaStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MediaStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MediaStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MediaStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MediaStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MediaStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MediaStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MediaStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MediaStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MediaStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_files_are_named_by_their_flag() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, "not a certificate\n").unwrap();
        std::fs::write(&key, "nor a key\n").unwrap();
        let files = TlsFiles {
            cert: cert.clone(),
            key,
            client_ca: None,
        };
        let e = server_config(&files, ClientCerts::Never).unwrap_err();
        assert!(e.to_string().starts_with("--tls-cert"), "{e}");
        let missing = TlsFiles {
            cert: dir.path().join("none.pem"),
            ..files
        };
        let e = server_config(&missing, ClientCerts::Never).unwrap_err();
        assert!(e.to_string().contains("none.pem"), "{e}");
    }
}
