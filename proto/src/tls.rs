//! gRPC over TLS for `https://` URLs: a connector that dials TCP and runs a rustls handshake
//! (ALPN `h2`) verified against the caller's CAs, for tonic's `Endpoint` to run HTTP/2 over.
//! tonic's own TLS features are not used: they would bring a second way to load roots, and
//! this keeps every client of route-lookup on the one rustls setup in `common::tls`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::Uri;

/// Why a TLS connection to route-lookup failed. The text names the step and, for the
/// handshake, rustls' reason (`invalid peer certificate: UnknownIssuer`, …).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL has no host.
    #[error("{0}: no host in the URL")]
    NoHost(Uri),
    /// The host cannot be a TLS server name.
    #[error("{host}: not a valid TLS server name")]
    Name {
        /// The host.
        host: String,
    },
    /// TCP connect failed.
    #[error("connect to {authority}: {source}")]
    Connect {
        /// HOST:PORT.
        authority: String,
        /// Why.
        source: std::io::Error,
    },
    /// The handshake failed: most often the certificate (unknown issuer, wrong name,
    /// expired).
    #[error("TLS handshake with {authority}: {source}")]
    Handshake {
        /// HOST:PORT.
        authority: String,
        /// rustls' reason.
        source: std::io::Error,
    },
}

/// Dials `https://` URIs: TCP, then TLS verified against `config`'s roots.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
}

impl TlsConnector {
    /// A connector offering HTTP/2 by ALPN (what gRPC needs) over `config`.
    pub(crate) fn new(config: &Arc<rustls::ClientConfig>) -> Self {
        let mut config = (**config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| ConnectError::NoHost(uri.clone()))?;
            // An IPv6 literal comes bracketed from the URI; the name is the bare address.
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let authority = match host.contains(':') {
                true => format!("[{host}]:{port}"),
                false => format!("{host}:{port}"),
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|_| ConnectError::Name { host: host.clone() })?;
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|source| ConnectError::Connect {
                    authority: authority.clone(),
                    source,
                })?;
            // Small gRPC frames must not wait on delayed ACKs.
            let _ = tcp.set_nodelay(true);
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|source| ConnectError::Handshake { authority, source })?;
            Ok(TokioIo::new(stream))
        })
    }
}
