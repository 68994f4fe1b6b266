//! Listeners and the connection path: implicit TLS, the session, the STARTTLS restart, the
//! relay; the admin endpoint with the proxy's counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::admin::{AdminSource, HealthFuture, Unhealthy};

use crate::sessions::{End, SessionInfo};
use common::listener::{ListenerConfig, ListenerStats};
use common::metrics::PromWriter;
use common::shutdown::{Drain, ShutdownWatch};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::cache::CacheCluster;
use crate::login::Route;
use crate::lookup::LookupClient;
use crate::relay;
use crate::session::{imap, pop3, Frontend, Outcome, Peer};
use crate::upstream::Upstream;

/// Relay counters for /metrics.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Bytes relayed client → backend.
    pub bytes_up: AtomicU64,
    /// Bytes relayed backend → client.
    pub bytes_down: AtomicU64,
    /// Of the bytes relayed, those spliced socket to socket (bulk transfers).
    pub bytes_spliced: AtomicU64,
    /// Sessions relaying now.
    pub relaying: AtomicU64,
    /// Client TLS handshakes that were full, and that resumed a session.
    pub tls_full: AtomicU64,
    /// See `tls_full`.
    pub tls_resumed: AtomicU64,
    /// Client TLS handshakes by the suite they settled on, in `tls_ciphers::index` order:
    /// what an operator checks before narrowing `--tls-ciphers`.
    pub tls_by_suite: [AtomicU64; common::tls_ciphers::SUITES],
}

/// What every connection of a proxy shares: the front end up to login, the relay after.
#[derive(Debug)]
pub struct Service {
    /// The sessions' settings and the login service.
    pub front: Arc<Frontend>,
    /// Relay idle timeout.
    pub idle_timeout: Duration,
    /// Relay counters.
    pub relay: RelayStats,
    /// The lookup client, for its counters (absent with a resolver of a test's own).
    pub lookup: Option<Arc<LookupClient>>,
    /// The cache cluster, for its counters.
    pub cache: Option<Arc<CacheCluster>>,
    /// The routes kept for when the route source is down, for their counters.
    pub stale: Option<Arc<crate::stale::StaleRoutes>>,
    /// The client-facing certificates, for their reloads and expiries.
    pub certs: Option<Arc<common::certs::CertStore>>,
    /// Relayed sessions by account, to end them when their account changes.
    pub sessions: Arc<crate::sessions::Sessions>,
    /// Account events applied (with --directory).
    pub account_events: Arc<AtomicU64>,
    /// The admin endpoints that list and end sessions.
    pub sessions_admin: Arc<crate::sessions_admin::SessionsAdmin>,
}

/// Which listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// IMAP.
    Imap,
    /// IMAPS.
    Imaps,
    /// POP3.
    Pop3,
    /// POP3S.
    Pop3s,
}

impl Kind {
    /// Every listener, in flag order.
    pub const ALL: [Kind; 4] = [Kind::Imap, Kind::Imaps, Kind::Pop3, Kind::Pop3s];

    /// Its name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Imap => "imap",
            Kind::Imaps => "imaps",
            Kind::Pop3 => "pop3",
            Kind::Pop3s => "pop3s",
        }
    }

    /// The flag that sets its address.
    pub fn flag(self) -> &'static str {
        match self {
            Kind::Imap => "--imap-listen",
            Kind::Imaps => "--imaps-listen",
            Kind::Pop3 => "--pop3-listen",
            Kind::Pop3s => "--pop3s-listen",
        }
    }
}

/// A lookup answer this recent makes the proxy ready without probing.
const READY_RECENT: Duration = Duration::from_secs(30);

struct Admin {
    env: Arc<Service>,
    listeners: Vec<(Kind, Arc<ListenerStats>)>,
}

impl AdminSource for Admin {
    fn health(&self) -> HealthFuture {
        Box::pin(async { Ok(()) })
    }

    /// Ready when logins can work: the listeners are bound (they are, once this answers),
    /// route-lookup answered lately or accepts a connection, and the cache ring has a node
    /// when a cache is configured.
    fn ready(&self) -> HealthFuture {
        let env = self.env.clone();
        Box::pin(async move {
            if let Some(cache) = &env.cache {
                if cache.nodes().is_empty() {
                    return Err(Unhealthy("no cache node known yet".into()));
                }
            }
            if let Some(lookup) = &env.lookup {
                lookup.reachable(READY_RECENT).await.map_err(Unhealthy)?;
            }
            Ok(())
        })
    }

    fn metrics(&self) -> String {
        let logins = self.env.front.login.stats();
        let s = &self.env.relay;
        let mut w = PromWriter::new();
        w.header(
            "proxy_connections_total",
            "counter",
            "client connections by listener and result",
        );
        for (kind, l) in &self.listeners {
            for (result, v) in [("accepted", &l.accepted), ("rejected", &l.rejected)] {
                w.sample(
                    "proxy_connections_total",
                    &[("listener", kind.name()), ("result", result)],
                    v.load(Ordering::Relaxed),
                );
            }
        }
        w.header(
            "proxy_connections_active",
            "gauge",
            "client connections open now, by listener",
        );
        for (kind, l) in &self.listeners {
            w.sample(
                "proxy_connections_active",
                &[("listener", kind.name())],
                l.active(),
            );
        }
        w.header("proxy_logins_total", "counter", "logins by outcome");
        for (outcome, v) in [
            ("ok", &logins.ok),
            ("refused", &logins.refused),
            ("unavailable", &logins.unavailable),
        ] {
            w.sample(
                "proxy_logins_total",
                &[("outcome", outcome)],
                v.load(Ordering::Relaxed),
            );
        }
        w.header(
            "proxy_login_failures_total",
            "counter",
            "failed logins by reason (each also logged as `login failed`)",
        );
        for (reason, v) in crate::login::FailReason::ALL.iter().zip(&logins.failures) {
            w.sample(
                "proxy_login_failures_total",
                &[("reason", reason.word())],
                v.load(Ordering::Relaxed),
            );
        }
        w.header("proxy_routes_total", "counter", "routes by source");
        w.sample(
            "proxy_routes_total",
            &[("source", "cache")],
            logins.cache_hits.load(Ordering::Relaxed),
        );
        w.sample(
            "proxy_routes_total",
            &[("source", "lookup")],
            logins.cache_misses.load(Ordering::Relaxed),
        );
        w.header("proxy_relayed_bytes_total", "counter", "bytes relayed");
        w.sample(
            "proxy_relayed_bytes_total",
            &[("direction", "up")],
            s.bytes_up.load(Ordering::Relaxed),
        );
        w.sample(
            "proxy_relayed_bytes_total",
            &[("direction", "down")],
            s.bytes_down.load(Ordering::Relaxed),
        );
        w.single(
            "proxy_relayed_spliced_bytes_total",
            "counter",
            "of the bytes relayed, those moved socket to socket with splice(2)",
            s.bytes_spliced.load(Ordering::Relaxed),
        );
        w.single(
            "proxy_protocol_header_errors_total",
            "counter",
            "connections from --proxy-protocol-from peers closed for a missing or bad PROXY header",
            self.env.front.proxy_header_errors.load(Ordering::Relaxed),
        );
        w.single(
            "proxy_preauth_refused_total",
            "counter",
            "connections refused because their address held --max-preauth-per-ip connections not yet logged in",
            self.env.front.preauth.refused.load(Ordering::Relaxed),
        );
        w.single(
            "proxy_sessions_relaying",
            "gauge",
            "sessions relaying now",
            s.relaying.load(Ordering::Relaxed),
        );
        w.single(
            "proxy_relay_buffers",
            "gauge",
            "copy buffers (64 KiB) relayed sessions hold now; an idle session holds none",
            crate::relay::BUFFERS_HELD.load(Ordering::Relaxed),
        );
        w.header(
            "proxy_tls_handshakes_total",
            "counter",
            "client TLS handshakes by kind (resumed: from a session ticket or ID)",
        );
        for (kind, v) in [("full", &s.tls_full), ("resumed", &s.tls_resumed)] {
            w.sample(
                "proxy_tls_handshakes_total",
                &[("kind", kind)],
                v.load(Ordering::Relaxed),
            );
        }
        w.header(
            "proxy_tls_ciphers_total",
            "counter",
            "client TLS handshakes by the protocol version and cipher suite negotiated",
        );
        for ((version, cipher), v) in common::tls_ciphers::known().zip(&s.tls_by_suite) {
            w.sample(
                "proxy_tls_ciphers_total",
                &[("version", version), ("cipher", cipher)],
                v.load(Ordering::Relaxed),
            );
        }
        w.single(
            "proxy_sessions_ended_by_account_change_total",
            "counter",
            "relayed sessions ended because their account moved, was locked or deleted",
            self.env.sessions.ended.load(Ordering::Relaxed),
        );
        w.single(
            "proxy_sessions_kicked_total",
            "counter",
            "relayed sessions ended by POST /sessions/kick",
            self.env.sessions.kicked.load(Ordering::Relaxed),
        );
        w.single(
            "proxy_account_events_total",
            "counter",
            "route-lookup account events applied (--directory)",
            self.env.account_events.load(Ordering::Relaxed),
        );
        if let Some(lookup) = &self.env.lookup {
            w.histogram(
                "proxy_lookup_duration_seconds",
                "route-lookup requests, to an answer or to giving up",
                &lookup.stats.latency,
            );
            w.single(
                "proxy_lookup_failovers_total",
                "counter",
                "times a lookup URL was marked failed",
                lookup.stats.failovers.load(Ordering::Relaxed),
            );
        }
        w.histogram(
            "proxy_backend_connect_duration_seconds",
            "TCP connects to mailbox servers",
            self.env.front.login.connector().connect_time(),
        );
        if let Some(certs) = &self.env.certs {
            w.header(
                "proxy_tls_reloads_total",
                "counter",
                "certificate reloads on SIGHUP, by result (failed: the previous certificates stayed)",
            );
            for (result, v) in [("ok", &certs.reloads_ok), ("failed", &certs.reloads_failed)] {
                w.sample(
                    "proxy_tls_reloads_total",
                    &[("result", result)],
                    v.load(Ordering::Relaxed),
                );
            }
            w.header(
                "proxy_tls_certificate_expiry_seconds",
                "gauge",
                "when each certificate in use expires (notAfter), seconds since the epoch",
            );
            for (cert, at) in certs.expiries() {
                w.sample(
                    "proxy_tls_certificate_expiry_seconds",
                    &[("cert", &cert)],
                    at,
                );
            }
        }
        if let Some(stale) = &self.env.stale {
            w.single(
                "proxy_stale_routes",
                "gauge",
                "routes kept from recent logins for when the route source is down",
                stale.len() as u64,
            );
            w.single(
                "proxy_stale_routes_served_total",
                "counter",
                "logins routed by a kept route because neither the cache nor route-lookup answered",
                stale.served.load(Ordering::Relaxed),
            );
        }
        if let Some(cache) = &self.env.cache {
            w.header(
                "proxy_cache_requests_total",
                "counter",
                "cache gets by node and result",
            );
            for n in cache.nodes() {
                for (result, v) in [
                    ("hit", &n.stats.hits),
                    ("miss", &n.stats.misses),
                    ("error", &n.stats.errors),
                ] {
                    w.sample(
                        "proxy_cache_requests_total",
                        &[("node", n.addr()), ("result", result)],
                        v.load(Ordering::Relaxed),
                    );
                }
            }
            w.header(
                "proxy_cache_auth_failures_total",
                "counter",
                "connections a cache node refused to authenticate (--memcached-auth-file)",
            );
            for n in cache.nodes() {
                w.sample(
                    "proxy_cache_auth_failures_total",
                    &[("node", n.addr())],
                    n.stats.auth_failures.load(Ordering::Relaxed),
                );
            }
        }
        w.finish()
    }
}

/// Serves `listeners` (and the admin listener) until `shutdown`, then drains.
pub async fn run(
    env: Arc<Service>,
    listeners: Vec<(Kind, TcpListener)>,
    admin: Option<TcpListener>,
    max_connections: usize,
    grace: Duration,
    shutdown: ShutdownWatch,
) {
    let drain = Drain::new();
    let mut tasks = tokio::task::JoinSet::new();
    let listeners: Vec<(Kind, TcpListener, Arc<ListenerStats>)> = listeners
        .into_iter()
        .map(|(k, l)| (k, l, Arc::new(ListenerStats::default())))
        .collect();
    if let Some(l) = admin {
        let source: Arc<dyn AdminSource> = Arc::new(Admin {
            env: env.clone(),
            listeners: listeners.iter().map(|(k, _, s)| (*k, s.clone())).collect(),
        });
        let s = shutdown.clone();
        let extra = crate::sessions_admin::router(env.sessions_admin.clone());
        tasks.spawn(async move {
            let _ = common::admin::serve_with(l, source, extra, s).await;
        });
    }
    for (kind, listener, stats) in listeners {
        let env = env.clone();
        let config = ListenerConfig {
            name: kind.name(),
            max_connections,
            reject_message: match kind {
                Kind::Imap | Kind::Imaps => b"* BYE Too many connections\r\n",
                Kind::Pop3 | Kind::Pop3s => b"-ERR [SYS/TEMP] Too many connections\r\n",
            },
        };
        tasks.spawn(common::listener::serve(
            listener,
            config,
            stats,
            shutdown.clone(),
            drain.guard(),
            move |stream, peer| connection(env.clone(), kind, stream, peer),
        ));
    }
    shutdown.triggered().await;
    if drain.wait(grace).await {
        tracing::info!("drained");
    } else {
        tracing::warn!(?grace, "grace period over; closing relayed sessions");
    }
    tasks.abort_all();
}

/// One client connection, in a `session` span (inside the listener's span, which names
/// the listener, the client and the connection id) that gains the TLS state, the user and
/// the backend as they become known, so every later log line of the session carries them.
async fn connection(env: Arc<Service>, kind: Kind, stream: TcpStream, client: SocketAddr) {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "session",
        client = tracing::field::Empty,
        tls = tracing::field::Empty,
        tls_cipher = tracing::field::Empty,
        user = tracing::field::Empty,
        backend = tracing::field::Empty,
    );
    session(env, kind, stream, client).instrument(span).await;
}

async fn session(env: Arc<Service>, kind: Kind, mut stream: TcpStream, peer_addr: SocketAddr) {
    let accepted = Instant::now();
    let Ok(mut local) = stream.local_addr() else {
        return;
    };
    let implicit = matches!(kind, Kind::Imaps | Kind::Pop3s);
    // Behind a load balancer the client is who its PROXY header says; everything below
    // (throttles, forwarding, logs, lookups) sees that address.
    let from_balancer = env.front.proxy_protocol_from.contains(peer_addr.ip());
    let mut client = peer_addr;
    if from_balancer {
        match common::proxy_header::read(&mut stream, env.front.preauth_timeout).await {
            Ok(header) => {
                if let Some(source) = header.source {
                    client = source;
                    tracing::Span::current().record("client", tracing::field::display(source));
                }
                if let Some(destination) = header.destination {
                    local = destination;
                }
            }
            Err(e) => {
                env.front
                    .proxy_header_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "connection closed: no valid PROXY header from a --proxy-protocol-from peer");
                return;
            }
        }
    }
    if !Box::pin(env.front.login.throttle().allow_ip(client.ip())).await {
        tracing::warn!(client = %client.ip(), "connection rejected: IP over its login limit");
        let line: &[u8] = match kind {
            Kind::Imap | Kind::Imaps => b"* BYE Login rejected from this IP\r\n",
            Kind::Pop3 | Kind::Pop3s => b"-ERR [LOGIN-DELAY] Login rejected from this IP\r\n",
        };
        if !implicit {
            use tokio::io::AsyncWriteExt;
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(line)).await;
        }
        return;
    }
    let Some(preauth) = env.front.preauth.admit(client.ip()) else {
        tracing::warn!(client = %client.ip(), "connection refused: too many connections from this address not logged in (--max-preauth-per-ip)");
        let line: &[u8] = match kind {
            Kind::Imap | Kind::Imaps => b"* BYE Too many connections from your address\r\n",
            Kind::Pop3 | Kind::Pop3s => {
                b"-ERR [SYS/TEMP] Too many connections from your address\r\n"
            }
        };
        if !implicit {
            use tokio::io::AsyncWriteExt;
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(line)).await;
        }
        return;
    };
    let peer = Peer {
        client,
        local,
        tls: implicit,
        listener: kind.name(),
    };
    // The session lives on the heap and is gone before the relay starts, and the TLS path
    // (handshake state, TLS stream) is boxed: this future is what an idle relayed plain
    // session keeps, so it must hold nothing of the login dialogue.
    let protocol = match kind {
        Kind::Imap | Kind::Imaps => {
            Protocol::Imap(Box::new(imap::session(env.front.clone(), peer, accepted)))
        }
        Kind::Pop3 | Kind::Pop3s => {
            Protocol::Pop3(Box::new(pop3::session(env.front.clone(), peer, accepted)))
        }
    };
    let mut session = Dialogue {
        protocol,
        _preauth: preauth,
    };
    if !from_balancer {
        session.refuse_proxy_header();
    }
    let at = Origin { kind, client };
    let result = if implicit {
        Box::pin(tls_path(&env, session, stream, true, at)).await
    } else {
        match session.run(&mut stream, true).await {
            Ok(Outcome::Close) => Ok(()),
            Ok(Outcome::Relay(job)) => {
                drop(session);
                relay_job(&env, Client::Plain(stream), *job, at).await;
                Ok(())
            }
            Ok(Outcome::StartTls) => {
                session.set_tls();
                Box::pin(tls_path(&env, session, stream, false, at)).await
            }
            Err(e) => Err(e),
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The TLS handshake (implicit TLS or after STARTTLS), the session over TLS, the relay.
async fn tls_path(
    env: &Service,
    mut session: Dialogue,
    stream: TcpStream,
    greet: bool,
    at: Origin,
) -> std::io::Result<()> {
    let config = env
        .front
        .tls
        .clone()
        .ok_or_else(|| std::io::Error::other("no TLS"))?;
    // The handshake's state and the TLS stream live in their own allocations: this
    // future's own size is what every relayed TLS session keeps for its whole life, and
    // an inline handshake (a whole rustls connection) would be dead weight in it.
    let mut tls = Box::new(
        common::timeout::with_timeout(
            "tls handshake",
            Duration::from_secs(10),
            Box::pin(crate::tls::accept(stream, config)),
        )
        .await?,
    );
    let span = tracing::Span::current();
    span.record("tls", true);
    // Looked up once: the span, the per-suite counter and the session list share it.
    let suite = tls
        .connection()
        .negotiated_cipher_suite()
        .and_then(common::tls_ciphers::index);
    let cipher = suite.map_or("unknown", common::tls_ciphers::name_at);
    span.record("tls_cipher", tracing::field::display(cipher));
    if let Some(i) = suite {
        env.relay.tls_by_suite[i].fetch_add(1, Ordering::Relaxed);
    }
    if tls.resumed() {
        env.relay.tls_resumed.fetch_add(1, Ordering::Relaxed);
    } else {
        env.relay.tls_full.fetch_add(1, Ordering::Relaxed);
    }
    let outcome = session.run(&mut tls, greet).await?;
    drop(session);
    if let Outcome::Relay(job) = outcome {
        relay_job(env, Client::Tls(tls, cipher), *job, at).await;
    }
    Ok(())
}

/// The session of the listener's protocol, and its place among its address's pre-auth
/// connections (given back when the dialogue is dropped, before the relay).
struct Dialogue {
    protocol: Protocol,
    _preauth: crate::preauth::PreauthGuard,
}

enum Protocol {
    Imap(Box<imap::Session>),
    Pop3(Box<pop3::Session>),
}

impl Dialogue {
    async fn run<S>(&mut self, stream: &mut S, greet: bool) -> std::io::Result<Outcome>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match &mut self.protocol {
            Protocol::Imap(s) => Box::pin(s.run(stream, greet)).await,
            Protocol::Pop3(s) => Box::pin(s.run(stream, greet)).await,
        }
    }

    fn refuse_proxy_header(&mut self) {
        match &mut self.protocol {
            Protocol::Imap(s) => s.refuse_proxy_header(),
            Protocol::Pop3(s) => s.refuse_proxy_header(),
        }
    }

    fn set_tls(&mut self) {
        match &mut self.protocol {
            Protocol::Imap(s) => s.set_tls(),
            Protocol::Pop3(s) => s.set_tls(),
        }
    }
}

enum Client {
    Plain(TcpStream),
    /// With the IANA name of the suite it negotiated.
    Tls(Box<crate::tls::TlsServerStream<TcpStream>>, &'static str),
}

/// Where a session came in: for the session list.
#[derive(Debug, Clone, Copy)]
struct Origin {
    kind: Kind,
    client: SocketAddr,
}

/// What an IMAP client is told when its session is ended from here.
const BYE_ACCOUNT: &[u8] = b"* BYE Your account was moved or changed; please log in again\r\n";
const BYE_KICKED: &[u8] = b"* BYE Session ended by the administrator\r\n";

/// Relays a logged-in session: plain to plain without idle buffers, else the generic way,
/// until it ends or is ended (its account changed, or a kick).
async fn relay_job(
    env: &Service,
    client: Client,
    (backend, route, _permit): (Upstream, Route, Option<Box<crate::session_limit::Permit>>),
    at: Origin,
) {
    // Each field is recorded once (the log formatter appends every recording).
    let span = tracing::Span::current();
    let tls = match &client {
        Client::Tls(_, cipher) => Some(*cipher),
        Client::Plain(_) => {
            span.record("tls", false);
            None
        }
    };
    span.record("user", tracing::field::display(&route.user));
    span.record("backend", tracing::field::display(route.backend));
    tracing::info!(cached = route.cached, "relaying");
    let mut registered = env.sessions.register(SessionInfo {
        user: route.user.clone(),
        client: at.client,
        listener: at.kind.name(),
        backend: route.backend,
        tls,
    });
    // An idle relayed session keeps no more than it must: not even the route's cache keys.
    drop(route);
    let stats = &env.relay;
    stats.relaying.fetch_add(1, Ordering::Relaxed);
    let imap = matches!(at.kind, Kind::Imap | Kind::Imaps);
    let meter = registered.meter.clone();
    let (moved, ended) = match (client, backend) {
        (Client::Plain(mut c), Upstream::Plain(mut b)) => {
            let r = relay::relay_tcp(&mut c, &mut b, env.idle_timeout, &meter);
            let out = until_ended(r, &mut registered.end).await;
            last_words(&mut c, out.1, imap).await;
            out
        }
        (Client::Plain(mut c), mut b) => {
            let r = Box::pin(relay::relay(&mut c, &mut b, env.idle_timeout, &meter));
            let out = until_ended(r, &mut registered.end).await;
            last_words(&mut c, out.1, imap).await;
            out
        }
        (Client::Tls(mut c, _), mut b) => {
            let r = Box::pin(relay::relay(&mut *c, &mut b, env.idle_timeout, &meter));
            let out = until_ended(r, &mut registered.end).await;
            last_words(&mut *c, out.1, imap).await;
            out
        }
    };
    // A relay ended from here returned nothing: what it moved is on the meter.
    let moved = match ended {
        None => moved,
        Some(_) => relay::Relayed {
            up: meter.up.load(Ordering::Relaxed),
            down: meter.down.load(Ordering::Relaxed),
            spliced: 0,
        },
    };
    drop(registered);
    stats.relaying.fetch_sub(1, Ordering::Relaxed);
    stats.bytes_up.fetch_add(moved.up, Ordering::Relaxed);
    stats.bytes_down.fetch_add(moved.down, Ordering::Relaxed);
    stats
        .bytes_spliced
        .fetch_add(moved.spliced, Ordering::Relaxed);
    match ended {
        None => tracing::info!(up = moved.up, down = moved.down, "session ended"),
        Some(End::AccountChanged) => tracing::info!(
            up = moved.up,
            down = moved.down,
            "session ended: its account moved, was locked or deleted"
        ),
        Some(End::Kicked) => tracing::info!(
            up = moved.up,
            down = moved.down,
            "session ended: kicked by the administrator"
        ),
    }
}

/// Runs the relay until it ends by itself, or is ended (then its own count is lost: the
/// caller reads the meter).
async fn until_ended<F>(
    relay: F,
    end: &mut tokio::sync::oneshot::Receiver<End>,
) -> (relay::Relayed, Option<End>)
where
    F: std::future::Future<Output = relay::Relayed>,
{
    tokio::select! {
        moved = relay => (moved, None),
        Ok(why) = end => (relay::Relayed::default(), Some(why)),
    }
}

/// An IMAP client whose session is ended from here is told why (`* BYE`), briefly.
async fn last_words<S>(client: &mut S, ended: Option<End>, imap: bool)
where
    S: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let Some(why) = ended else { return };
    if imap {
        let line = match why {
            End::AccountChanged => BYE_ACCOUNT,
            End::Kicked => BYE_KICKED,
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            client.write_all(line).await?;
            client.shutdown().await
        })
        .await;
    }
}
