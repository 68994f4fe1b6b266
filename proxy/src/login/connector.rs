//! Reaching a mailbox server for a login: TCP connect, the PROXY v2 header when the client
//! address travels that way, TLS when `--upstream-tls` is on, then the login replayed in
//! the backend's protocol ([`crate::backend`]). Each phase has its own timeout and error.
//!
//! Upstream TLS verifies the certificate against the mailbox server's host name, as Dovecot's
//! proxy does (`--upstream-tls-name host`), or against its IP address (`ip`). A route
//! without a name (an auth_http server that sends no `Auth-Server-Name`) is verified against
//! the IP: no weaker, since the certificate must still name what is connected to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::AsyncWriteExt;

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
    #[error("TLS handshake with {backend} as {name} failed: {reason}")]
    Tls {
        /// The backend.
        backend: SocketAddr,
        /// The name its certificate was checked against (host name or IP).
        name: String,
        /// Why.
        reason: String,
    },
    /// The greeting or the login dialogue went wrong.
    #[error("{0}")]
    Dialogue(BackendError),
}

/// What a mailbox server's certificate is verified against (`--upstream-tls-name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsName {
    /// Its host name from the route, as Dovecot does (the IP when the route has none).
    Host,
    /// Its IP address.
    Ip,
}

/// Connects to mailbox servers and replays logins there.
#[derive(Clone)]
pub struct Connector {
    forward: Forward,
    tls: Option<Arc<rustls::ClientConfig>>,
    tls_name: TlsName,
    timeout: Duration,
    connect_time: std::sync::Arc<common::metrics::Histogram>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("forward", &self.forward)
            .field("tls", &self.tls.is_some())
            .field("tls_name", &self.tls_name)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Connector {
    /// A connector forwarding the client address as `forward` says, over TLS when `tls`
    /// is given, each phase (connect, handshake, dialogue) bounded by `timeout`.
    /// Certificates are verified against host names (see [`TlsName`]).
    pub fn new(
        forward: Forward,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Self {
        Self {
            forward,
            tls,
            tls_name: TlsName::Host,
            timeout,
            connect_time: Default::default(),
        }
    }

    /// Verifies mailbox servers' certificates against `name`.
    pub fn tls_name(mut self, name: TlsName) -> Self {
        self.tls_name = name;
        self
    }

    /// Whether routes should carry the mailbox server's host name (TLS verified by name).
    pub fn wants_names(&self) -> bool {
        self.tls.is_some() && self.tls_name == TlsName::Host
    }

    /// The name `backend`'s certificate must carry: its host name when so configured and
    /// known (and a valid name), else its IP.
    fn server_name(&self, backend: SocketAddr, host: Option<&str>) -> ServerName<'static> {
        let by_host = host.filter(|_| self.tls_name == TlsName::Host);
        match by_host.map(|h| ServerName::try_from(h.to_string())) {
            Some(Ok(name)) => name,
            Some(Err(_)) | None => ServerName::IpAddress(backend.ip().into()),
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

    /// Connects to `backend` (whose host name is `host`, if known) and logs in as `creds`
    /// there.
    pub async fn login(
        &self,
        backend: SocketAddr,
        host: Option<&str>,
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
            Some(config) => {
                let name = self.server_name(backend, host);
                let shown = name.to_str().into_owned();
                let tls = common::timeout::with_timeout(
                    "backend tls handshake",
                    self.timeout,
                    crate::tls::connect(tcp, config.clone(), name),
                )
                .await
                .map_err(|e| ConnectError::Tls {
                    backend,
                    name: shown,
                    reason: e.to_string(),
                })?;
                Upstream::Tls(Box::new(tls))
            }
        };
        let id = (self.forward == Forward::Id).then(|| peer.client.ip());
        // The client's own message, naming the account the route resolved to (an alias
        // or another spelling is what a mailbox server would not know).
        let oauth = creds.oauth.map(|o| backend::OAuthReplay {
            mechanism: o.mechanism,
            response: o.response_as(creds.user.as_bytes()),
        });
        let replayed = backend::Credentials {
            authzid: creds.authzid,
            user: creds.user.as_bytes(),
            pass: creds.pass,
            oauth: oauth.as_ref(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_checked_against_the_host_name_when_asked_and_known() {
        let tls = common::tls::client_config_from_pem(
            common::tls::self_signed(&["x.test"]).unwrap().0.as_bytes(),
        )
        .unwrap();
        let c = Connector::new(Forward::Off, Some(tls), Duration::from_secs(1));
        let backend: SocketAddr = "192.0.2.5:7993".parse().unwrap();
        let name = |c: &Connector, host| c.server_name(backend, host).to_str().into_owned();
        assert!(c.wants_names());
        assert_eq!(name(&c, Some("mbx1.example.com")), "mbx1.example.com");
        assert_eq!(name(&c, None), "192.0.2.5", "no name known: the IP");
        assert_eq!(name(&c, Some("not a name")), "192.0.2.5");
        let by_ip = c.clone().tls_name(TlsName::Ip);
        assert!(!by_ip.wants_names());
        assert_eq!(name(&by_ip, Some("mbx1.example.com")), "192.0.2.5");
        let plain = Connector::new(Forward::Off, None, Duration::from_secs(1));
        assert!(!plain.wants_names(), "no TLS, no names needed");
    }
}
