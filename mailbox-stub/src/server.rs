//! The listeners (IMAP, IMAPS, POP3, POP3S) and the connection path: the optional PROXY
//! header from a trusted proxy, the implicit-TLS handshake, the session, and the STARTTLS
//! restart. [`MailboxStub::builder`] is also the API tests use to run one in-process.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::listener::{ListenerConfig, ListenerStats};
use common::shutdown::{Drain, Shutdown, ShutdownWatch};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::auth::{Authenticator, StaticUsers};
use crate::env::{ClientAddr, Env, Faults, Timeouts};
use crate::imap::{self, Outcome};
use crate::pop3;
use crate::store::Store;
use crate::trusted::TrustedProxies;

/// Which protocol and whether TLS starts at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// IMAP, STARTTLS available.
    Imap,
    /// IMAP over implicit TLS.
    Imaps,
    /// POP3, STLS available.
    Pop3,
    /// POP3 over implicit TLS.
    Pop3s,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Imap => "imap",
            Kind::Imaps => "imaps",
            Kind::Pop3 => "pop3",
            Kind::Pop3s => "pop3s",
        }
    }

    fn implicit_tls(self) -> bool {
        matches!(self, Kind::Imaps | Kind::Pop3s)
    }
}

/// Builds a mailbox server.
pub struct Builder {
    hostname: String,
    messages: usize,
    auth: Option<Arc<dyn Authenticator>>,
    users: StaticUsers,
    tls: Option<Arc<rustls::ServerConfig>>,
    listen: Vec<(Kind, SocketAddr)>,
    trusted: TrustedProxies,
    proxy_protocol: bool,
    timeouts: Timeouts,
    max_bad_commands: u32,
    max_connections: usize,
    faults: Faults,
    grace: Duration,
    oauth: Option<Arc<common::oauth_introspection::Introspector>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("hostname", &self.hostname)
            .finish()
    }
}

/// A bound server, ready to run.
pub struct MailboxStub {
    env: Arc<Env>,
    listeners: Vec<(Kind, TcpListener, SocketAddr)>,
    max_connections: usize,
    grace: Duration,
}

impl std::fmt::Debug for MailboxStub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxStub")
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

/// A running in-process server (tests): its addresses, its fault switches, its shutdown.
#[derive(Debug)]
pub struct Handle {
    /// Bound addresses by kind.
    pub addrs: Vec<(Kind, SocketAddr)>,
    faults: Arc<Mutex<Faults>>,
    env: Arc<Env>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// The address of the listener of `kind`.
    pub fn addr(&self, kind: Kind) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| *a)
            .expect("listener of that kind")
    }

    /// Changes the fault switches for new connections and logins.
    pub fn set_faults(&self, faults: Faults) {
        *self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = faults;
    }

    /// The logins so far, oldest first.
    pub fn logins(&self) -> Vec<crate::env::Login> {
        self.env
            .logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.task.await;
    }
}

impl MailboxStub {
    /// A builder for host `hostname` (plain IMAP and POP3 on 127.0.0.1:0 by default).
    pub fn builder(hostname: &str) -> Builder {
        Builder {
            hostname: hostname.to_string(),
            messages: 3,
            auth: None,
            users: StaticUsers::default(),
            tls: None,
            listen: vec![
                (Kind::Imap, "127.0.0.1:0".parse().expect("literal")),
                (Kind::Pop3, "127.0.0.1:0".parse().expect("literal")),
            ],
            trusted: TrustedProxies::default(),
            proxy_protocol: false,
            timeouts: Timeouts {
                preauth: Duration::from_secs(60),
                idle: Duration::from_secs(1800),
                handshake: Duration::from_secs(10),
            },
            max_bad_commands: 10,
            max_connections: 1024,
            faults: Faults::default(),
            grace: Duration::from_secs(10),
            oauth: None,
        }
    }

    /// The bound addresses.
    pub fn addrs(&self) -> Vec<(Kind, SocketAddr)> {
        self.listeners.iter().map(|(k, _, a)| (*k, *a)).collect()
    }

    /// Serves until `shutdown`, then drains within the grace period.
    pub async fn run(self, shutdown: ShutdownWatch) {
        let drain = Drain::new();
        let mut tasks = tokio::task::JoinSet::new();
        for (kind, listener, _) in self.listeners {
            let env = self.env.clone();
            let config = ListenerConfig {
                name: kind.name(),
                max_connections: self.max_connections,
                reject_message: match kind {
                    Kind::Imap | Kind::Imaps => b"* BYE Too many connections\r\n",
                    Kind::Pop3 | Kind::Pop3s => b"-ERR [SYS/TEMP] Too many connections\r\n",
                },
            };
            tasks.spawn(common::listener::serve(
                listener,
                config,
                Arc::new(ListenerStats::default()),
                shutdown.clone(),
                drain.guard(),
                move |stream, peer| connection(env.clone(), kind, stream, peer),
            ));
        }
        shutdown.triggered().await;
        while tasks.join_next().await.is_some() {}
        if drain.wait(self.grace).await {
            tracing::info!("drained");
        } else {
            tracing::warn!(grace = ?self.grace, "grace period over; closing open sessions");
        }
    }
}

impl Builder {
    /// Messages generated per account.
    pub fn messages(mut self, n: usize) -> Self {
        self.messages = n;
        self
    }

    /// An in-memory user on this host.
    pub fn user(mut self, account: &str, password: &str) -> Self {
        let host = self.hostname.clone();
        self.users.add(account, password, &host);
        self
    }

    /// An in-memory user whose mail host is another server.
    pub fn foreign_user(mut self, account: &str, password: &str, mail_host: &str) -> Self {
        self.users.add(account, password, mail_host);
        self
    }

    /// Checks passwords with `auth` instead of the in-memory users.
    pub fn authenticator(mut self, auth: Arc<dyn Authenticator>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// TLS for STARTTLS/STLS and the implicit-TLS listeners.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The listeners to bind (replaces the defaults).
    pub fn listen(mut self, listen: Vec<(Kind, SocketAddr)>) -> Self {
        self.listen = listen;
        self
    }

    /// Peers allowed to forward client addresses.
    pub fn trusted(mut self, trusted: TrustedProxies) -> Self {
        self.trusted = trusted;
        self
    }

    /// Expect a PROXY header on connections from trusted peers.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
    }

    /// Phase timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Invalid commands tolerated per connection.
    pub fn max_bad_commands(mut self, n: u32) -> Self {
        self.max_bad_commands = n;
        self
    }

    /// Concurrent connections per listener.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Initial fault switches.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Drain bound at shutdown.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Offers XOAUTH2 and OAUTHBEARER, checking bearer tokens with `introspector`.
    pub fn oauth(mut self, introspector: Arc<common::oauth_introspection::Introspector>) -> Self {
        self.oauth = Some(introspector);
        self
    }

    /// Binds the listeners.
    pub async fn bind(self, shutdown: ShutdownWatch) -> std::io::Result<MailboxStub> {
        let auth = self
            .auth
            .unwrap_or_else(|| Arc::new(self.users) as Arc<dyn Authenticator>);
        let oauth_line = self.oauth.is_some().then_some(crate::oauth::MAX_LINE);
        let env = Arc::new(Env {
            store: Arc::new(Store::new(&self.hostname, self.messages)),
            hostname: self.hostname,
            auth,
            tls: self.tls.map(TlsAcceptor::from),
            trusted: self.trusted,
            proxy_protocol: self.proxy_protocol,
            timeouts: self.timeouts,
            max_bad_commands: self.max_bad_commands.max(1),
            // Bearer tokens run to KiBs, and clients send them as initial responses on the
            // command line: the lines grow only when they are offered.
            imap_limits: codec::imap::Limits {
                max_line: oauth_line.unwrap_or(codec::imap::Limits::default().max_line),
                ..codec::imap::Limits::default()
            },
            pop3_limits: codec::pop3::Limits {
                max_line: oauth_line.unwrap_or(codec::pop3::Limits::default().max_line),
            },
            sasl_line: oauth_line.unwrap_or(8192),
            oauth: self.oauth,
            faults: Arc::new(Mutex::new(self.faults)),
            shutdown,
            logins: Mutex::new(std::collections::VecDeque::new()),
        });
        let mut listeners = Vec::new();
        for (kind, addr) in self.listen {
            if kind.implicit_tls() && env.tls.is_none() {
                tracing::warn!(
                    listener = kind.name(),
                    "no --tls-cert: implicit-TLS listener not started"
                );
                continue;
            }
            let l = common::listener::bind(kind.name(), addr).await?;
            let a = l.local_addr()?;
            listeners.push((kind, l, a));
        }
        Ok(MailboxStub {
            env,
            listeners,
            max_connections: self.max_connections,
            grace: self.grace,
        })
    }

    /// Binds and runs in the background (tests).
    pub async fn spawn(self) -> std::io::Result<Handle> {
        let (shutdown, watch) = Shutdown::new();
        let stub = self.bind(watch.clone()).await?;
        let addrs = stub.addrs();
        let faults = stub.env.faults.clone();
        let env = stub.env.clone();
        let task = tokio::spawn(stub.run(watch));
        Ok(Handle {
            addrs,
            faults,
            env,
            shutdown,
            task,
        })
    }
}

/// Reads a PROXY header from a trusted peer; returns the client address and any bytes
/// that followed it.
async fn read_proxy_header(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Option<(ClientAddr, Vec<u8>)> {
    let mut buf = Vec::with_capacity(256);
    let read = async {
        loop {
            match codec::proxy_protocol::parse(&buf) {
                Ok(h) => return Some(h),
                Err(codec::proxy_protocol::ProxyError::Incomplete) if buf.len() < 600 => {
                    let mut chunk = [0u8; 256];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                Err(_) => return None,
            }
        }
    };
    let header = tokio::time::timeout(timeout, read).await.ok().flatten()?;
    let rest = buf[header.consumed..].to_vec();
    let client = match header.source {
        Some(src) => ClientAddr {
            ip: src.ip(),
            forwarded: true,
        },
        None => ClientAddr {
            ip: stream.peer_addr().ok()?.ip(),
            forwarded: false,
        },
    };
    Some((client, rest))
}

async fn connection(env: Arc<Env>, kind: Kind, mut stream: TcpStream, peer: SocketAddr) {
    let peer_ip: IpAddr = peer.ip();
    let mut client = ClientAddr {
        ip: peer_ip,
        forwarded: false,
    };
    let mut prefill = Vec::new();
    if env.proxy_protocol && env.trusted.contains(peer_ip) {
        match read_proxy_header(&mut stream, env.timeouts.handshake).await {
            Some((c, rest)) => {
                if c.forwarded {
                    tracing::info!(client = %c.ip, proxy = %peer_ip, "client address forwarded (PROXY header)");
                }
                client = c;
                prefill = rest;
            }
            None => {
                tracing::warn!(%peer, "expected a PROXY header from a trusted proxy; closing");
                return;
            }
        }
    }
    let result = serve(&env, kind, stream, peer_ip, client, prefill).await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn handshake(
    env: &Env,
    stream: TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let acceptor = env
        .tls
        .clone()
        .ok_or_else(|| std::io::Error::other("no TLS configured"))?;
    common::timeout::with_timeout(
        "tls handshake",
        env.timeouts.handshake,
        acceptor.accept(stream),
    )
    .await
}

/// The session of the listener's protocol.
enum Dialogue {
    Imap(imap::Connection),
    Pop3(pop3::Connection),
}

impl Dialogue {
    async fn run<S>(&mut self, stream: &mut S, greet: bool) -> std::io::Result<Outcome>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match self {
            Dialogue::Imap(s) => s.run(stream, greet).await,
            Dialogue::Pop3(s) => s.run(stream, greet).await,
        }
    }

    fn set_tls(&mut self) {
        match self {
            Dialogue::Imap(s) => s.set_tls(),
            Dialogue::Pop3(s) => s.set_tls(),
        }
    }
}

/// Runs the listener's session: TLS first for implicit-TLS listeners; after STARTTLS or
/// STLS, the same session again on the encrypted stream.
async fn serve(
    env: &Arc<Env>,
    kind: Kind,
    mut stream: TcpStream,
    peer: IpAddr,
    client: ClientAddr,
    prefill: Vec<u8>,
) -> std::io::Result<()> {
    let tls = kind.implicit_tls();
    let mut session = match kind {
        Kind::Imap | Kind::Imaps => {
            Dialogue::Imap(imap::Connection::new(env.clone(), tls, peer, client))
        }
        Kind::Pop3 | Kind::Pop3s => {
            Dialogue::Pop3(pop3::Connection::new(env.clone(), tls, peer, client))
        }
    };
    match &mut session {
        Dialogue::Imap(s) => s.prefill(&prefill),
        Dialogue::Pop3(s) => s.prefill(&prefill),
    }
    if tls {
        let mut tls = handshake(env, stream).await?;
        session.run(&mut tls, true).await?;
        return Ok(());
    }
    if session.run(&mut stream, true).await? == Outcome::StartTls {
        let mut tls = handshake(env, stream).await?;
        session.set_tls();
        session.run(&mut tls, false).await?;
    }
    Ok(())
}
