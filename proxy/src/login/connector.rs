//! Reaching a mailbox server for a login: TCP connect, the PROXY v2 header when the client
//! address travels that way, TLS when `--upstream-tls` is on, then the login replayed in
//! the backend's protocol ([`crate::backend`]). Each phase has its own timeout and error.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use super::{Credentials, Forward, Peer, Protocol};
use crate::backend::{self, BackendError, LoginReply};
use crate::upstream::Upstream;

/// Why a backend could not take the login.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// TCP connect failed or timed out: the route may be stale.
    #[error("{0}")]
    Unreachable(BackendError),
    /// Writing the PROXY v2 header failed.
    #[error("cannot send the PROXY header to {backend}: {source}")]
    ProxyHeader {
        /// The backend.
        backend: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed or timed out.
    #[error("TLS handshake with {backend} failed: {reason}")]
    Tls {
        /// The backend.
        backend: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The greeting or the login dialogue went wrong.
    #[error("{0}")]
    Dialogue(BackendError),
}

/// Connects to mailbox servers and replays logins there.
#[derive(Clone)]
pub struct Connector {
    forward: Forward,
    tls: Option<TlsConnector>,
    timeout: Duration,
    connect_time: std::sync::Arc<common::metrics::Histogram>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("forward", &self.forward)
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Connector {
    /// A connector forwarding the client address as `forward` says, over TLS when `tls`
    /// is given, each phase (connect, handshake, dialogue) bounded by `timeout`.
    pub fn new(forward: Forward, tls: Option<TlsConnector>, timeout: Duration) -> Self {
        Self {
            forward,
            tls,
            timeout,
            connect_time: Default::default(),
        }
    }

    /// Whether mailbox servers are reached over TLS (their imapssl/pop3ssl ports).
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Time to connect to a mailbox server (TCP; TLS comes after).
    pub fn connect_time(&self) -> &common::metrics::Histogram {
        &self.connect_time
    }

    /// Connects to `backend` and logs in as `creds` there.
    pub async fn login(
        &self,
        backend: SocketAddr,
        peer: &Peer,
        creds: &Credentials<'_>,
        protocol: Protocol<'_>,
    ) -> Result<(Upstream, LoginReply), ConnectError> {
        let started = Instant::now();
        let connected = backend::connect(backend, self.timeout).await;
        self.connect_time.record(started.elapsed());
        let mut tcp = connected.map_err(ConnectError::Unreachable)?;
        if self.forward == Forward::ProxyV2 {
            let mut header = Vec::new();
            codec::proxy_protocol::encode_v2(&mut header, peer.client, peer.local);
            tcp.write_all(&header)
                .await
                .map_err(|source| ConnectError::ProxyHeader { backend, source })?;
        }
        let mut stream = match &self.tls {
            None => Upstream::Plain(tcp),
            Some(connector) => {
                let name = rustls::pki_types::ServerName::IpAddress(backend.ip().into());
                let tls = common::timeout::with_timeout(
                    "backend tls handshake",
                    self.timeout,
                    connector.connect(name, tcp),
                )
                .await
                .map_err(|e| ConnectError::Tls {
                    backend,
                    reason: e.to_string(),
                })?;
                Upstream::Tls(Box::new(tls))
            }
        };
        let id = (self.forward == Forward::Id).then(|| peer.client.ip());
        let replayed = backend::Credentials {
            authzid: creds.authzid,
            user: creds.user.as_bytes(),
            pass: creds.pass,
        };
        let reply = match protocol {
            Protocol::Imap { tag } => {
                backend::imap_login(&mut stream, tag, replayed, id, self.timeout).await
            }
            Protocol::Pop3 => backend::pop3_login(&mut stream, replayed, id, self.timeout).await,
        }
        .map_err(ConnectError::Dialogue)?;
        Ok((stream, reply))
    }
}
