//! Client sessions: what IMAP and POP3 share: the environment, the routing-and-login step
//! (route, connect, forward the client address, replay the login, fall back once when a
//! cached route's backend is gone), and the STARTTLS outcome.

pub mod imap;
pub mod pop3;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::upstream::Upstream;
use common::shutdown::ShutdownWatch;
use tokio_rustls::TlsAcceptor;

use crate::backend::{self, BackendError, LoginReply};
use crate::route::{Decision, Login, Route, Router};

/// When STARTTLS/STLS is offered and whether login needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// Never offered.
    Off,
    /// Offered; login allowed without it.
    On,
    /// Offered; no login before it (LOGINDISABLED).
    Only,
}

/// How the client's address reaches the mailbox server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// IMAP `ID` with x-originating-ip, POP3 `XCLIENT ADDR=`.
    Id,
    /// A PROXY protocol v2 header at connection start.
    ProxyV2,
    /// Not forwarded.
    Off,
}

/// Why `run` returned.
#[derive(Debug)]
pub enum Outcome {
    /// Done.
    Close,
    /// Wrap the stream in TLS and run again.
    StartTls,
    /// Logged in: relay the client to this backend (the backend's login answer has been
    /// passed on, and any bytes the client pipelined after its login forwarded).
    Relay(Box<(Upstream, Route)>),
}

/// Hands a logged-in client over to the relay: anything it pipelined after its login goes
/// to the backend first.
async fn hand_over(
    pipelined: &mut Vec<u8>,
    job: Box<(Upstream, Route)>,
) -> std::io::Result<Outcome> {
    use tokio::io::AsyncWriteExt;
    let (mut backend, route) = *job;
    if !pipelined.is_empty() {
        backend.write_all(pipelined).await?;
        pipelined.clear();
    }
    Ok(Outcome::Relay(Box::new((backend, route))))
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Logins relayed.
    pub logins_ok: AtomicU64,
    /// Logins refused by route-lookup or the backend.
    pub logins_refused: AtomicU64,
    /// Logins that failed for lack of a lookup service or backend.
    pub logins_unavailable: AtomicU64,
    /// Routes served from the cache.
    pub cache_hits: AtomicU64,
    /// Routes looked up.
    pub cache_misses: AtomicU64,
    /// Bytes relayed client → backend.
    pub bytes_up: AtomicU64,
    /// Bytes relayed backend → client.
    pub bytes_down: AtomicU64,
    /// Of the bytes relayed, those spliced socket to socket (bulk transfers).
    pub bytes_spliced: AtomicU64,
    /// Sessions relaying now.
    pub relaying: AtomicU64,
    /// Time to connect to a mailbox server (TCP; TLS comes after).
    pub backend_connect: common::metrics::Histogram,
}

/// What every session shares.
pub struct Env {
    /// The router.
    pub router: Router,
    /// TLS, if configured.
    pub tls: Option<TlsAcceptor>,
    /// STARTTLS mode.
    pub starttls: StartTls,
    /// Client address forwarding.
    pub forward: Forward,
    /// Pre-auth read timeout.
    pub preauth_timeout: Duration,
    /// Relay idle timeout.
    pub idle_timeout: Duration,
    /// Backend connect + login bound.
    pub backend_timeout: Duration,
    /// Invalid commands (and failed logins) before the connection is closed.
    pub max_bad_commands: u32,
    /// Counters.
    pub stats: Stats,
    /// Shutdown.
    pub shutdown: ShutdownWatch,
    /// The name in greetings.
    pub name: String,
    /// TLS to the mailbox servers (`--upstream-tls`), verified against `--upstream-ca`.
    pub upstream_tls: Option<tokio_rustls::TlsConnector>,
    /// Login limits.
    pub throttle: crate::throttle::Throttle,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("name", &self.name).finish()
    }
}

/// Where a session is.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client.
    pub client: SocketAddr,
    /// Our address on the client connection.
    pub local: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

/// What logging in produced.
pub enum LoggedIn {
    /// The backend accepted: relay with this stream; pass `reply` on first.
    Ok {
        /// The backend connection.
        backend: Upstream,
        /// Its answer to the login.
        reply: LoginReply,
        /// Where.
        route: Route,
    },
    /// The backend refused: pass its answer on; the session may retry.
    Refused(LoginReply),
    /// route-lookup refused, after its Auth-Wait.
    LookupRefused(String),
    /// The user is over its login limit.
    Throttled,
    /// Nobody could serve the login.
    Unavailable,
}

/// The protocol-specific login step.
pub enum Replay<'a> {
    /// IMAP, with the client's tag.
    Imap {
        /// The client's tag.
        tag: &'a [u8],
        /// The SASL authorization identity, when the client asked for one other than
        /// itself (replayed as AUTHENTICATE PLAIN; routing follows the login name).
        authzid: Option<&'a [u8]>,
    },
    /// POP3.
    Pop3 {
        /// As for IMAP (replayed as AUTH PLAIN).
        authzid: Option<&'a [u8]>,
    },
}

impl Env {
    /// Routes and logs in: cache or lookup, connect (a cached route whose backend cannot be
    /// reached is dropped and looked up again once), forward the client address, replay.
    pub async fn login(
        &self,
        peer: &Peer,
        user: &str,
        pass: &[u8],
        attempt: u32,
        replay: Replay<'_>,
    ) -> LoggedIn {
        if !self.throttle.allow_user(user).await {
            tracing::warn!(user, client = %peer.client.ip(), "login rejected: user over its limit");
            return LoggedIn::Throttled;
        }
        let result = self
            .login_unthrottled(peer, user, pass, attempt, replay)
            .await;
        match &result {
            LoggedIn::Ok { .. } => self.throttle.record(user, true).await,
            LoggedIn::Refused(_) | LoggedIn::LookupRefused(_) => {
                self.throttle.record(user, false).await
            }
            LoggedIn::Throttled | LoggedIn::Unavailable => {}
        }
        result
    }

    async fn login_unthrottled(
        &self,
        peer: &Peer,
        user: &str,
        pass: &[u8],
        attempt: u32,
        replay: Replay<'_>,
    ) -> LoggedIn {
        // The backend port depends on how we reach the backend, not on how the client
        // reached us.
        let protocol = match (&replay, self.upstream_tls.is_some()) {
            (Replay::Imap { .. }, false) => "imap",
            (Replay::Imap { .. }, true) => "imapssl",
            (Replay::Pop3 { .. }, false) => "pop3",
            (Replay::Pop3 { .. }, true) => "pop3ssl",
        };
        let login = Login {
            user,
            pass,
            protocol,
            attempt,
            client_ip: peer.client.ip(),
            proxy_ip: peer.local.ip(),
        };
        for round in 0..2 {
            let route = match self.router.route(&login).await {
                Decision::Route(r) => r,
                Decision::Refused { status, wait } => {
                    if let Some(w) = wait.filter(|&w| w > 0) {
                        tokio::time::sleep(Duration::from_secs(u64::from(w.min(60)))).await;
                    }
                    return LoggedIn::LookupRefused(status);
                }
                Decision::Unavailable => return LoggedIn::Unavailable,
            };
            let counter = if route.cached {
                &self.stats.cache_hits
            } else {
                &self.stats.cache_misses
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let connecting = std::time::Instant::now();
            let connected = backend::connect(route.backend, self.backend_timeout).await;
            self.stats.backend_connect.record(connecting.elapsed());
            let mut tcp = match connected {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(backend = %route.backend, error = %e, cached = route.cached, "backend unreachable");
                    self.router.forget(&route).await;
                    if route.cached && round == 0 {
                        continue;
                    }
                    return LoggedIn::Unavailable;
                }
            };
            if self.forward == Forward::ProxyV2 {
                let mut header = Vec::new();
                codec::proxy_protocol::encode_v2(&mut header, peer.client, peer.local);
                use tokio::io::AsyncWriteExt;
                if tcp.write_all(&header).await.is_err() {
                    return LoggedIn::Unavailable;
                }
            }
            let mut stream = match &self.upstream_tls {
                None => Upstream::Plain(tcp),
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::IpAddress(route.backend.ip().into());
                    match tokio::time::timeout(self.backend_timeout, connector.connect(name, tcp))
                        .await
                    {
                        Ok(Ok(tls)) => Upstream::Tls(Box::new(tls)),
                        Ok(Err(e)) => {
                            tracing::warn!(backend = %route.backend, error = %e, "backend TLS handshake failed");
                            self.router.forget(&route).await;
                            return LoggedIn::Unavailable;
                        }
                        Err(_) => {
                            tracing::warn!(backend = %route.backend, "backend TLS handshake timed out");
                            self.router.forget(&route).await;
                            return LoggedIn::Unavailable;
                        }
                    }
                }
            };
            let id = (self.forward == Forward::Id).then(|| peer.client.ip());
            let result = match replay {
                Replay::Imap { tag, authzid } => {
                    let creds = backend::Credentials {
                        authzid,
                        user: route.user.as_bytes(),
                        pass,
                    };
                    backend::imap_login(&mut stream, tag, creds, id, self.backend_timeout).await
                }
                Replay::Pop3 { authzid } => {
                    let creds = backend::Credentials {
                        authzid,
                        user: route.user.as_bytes(),
                        pass,
                    };
                    backend::pop3_login(&mut stream, creds, id, self.backend_timeout).await
                }
            };
            return match result {
                Ok(reply) if reply.ok => LoggedIn::Ok {
                    backend: stream,
                    reply,
                    route,
                },
                Ok(reply) => {
                    self.router.forget(&route).await;
                    LoggedIn::Refused(reply)
                }
                Err(BackendError::Greeting(g)) => {
                    tracing::warn!(backend = %route.backend, greeting = %g, "backend greeting refused");
                    self.router.forget(&route).await;
                    LoggedIn::Unavailable
                }
                Err(e) => {
                    tracing::warn!(backend = %route.backend, error = %e, "backend login failed");
                    self.router.forget(&route).await;
                    LoggedIn::Unavailable
                }
            };
        }
        LoggedIn::Unavailable
    }
}
