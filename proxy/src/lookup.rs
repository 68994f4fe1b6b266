//! The auth_http client: asks route-lookup where a login lives, over HTTP/1.1 keep-alive
//! (hyper's client connection; rustls for `https://` URLs), with the headers nginx sends
//! (values escaped as nginx escapes them). The answer is read by `codec::auth_http::answer`.
//!
//! Several lookup URLs may be configured: requests rotate over them; one that fails is
//! skipped for the retry interval (Zimbra's `zm_lookup_handler_retry_interval`), and the
//! request goes to the next. A failure means: no connection, a timeout, an HTTP status
//! other than 200, or an answer over the size bounds. When every URL has failed, they are
//! all tried again after a short, growing pause for as long as the retry budget lasts, so
//! a restart of route-lookup is waited out rather than failed. A request that fails on a
//! reused keep-alive connection before any byte of an answer came back is retried once on a
//! fresh one before that (the server may have closed it meanwhile; once an answer has begun
//! the server has seen the login, so it is not sent again), and pooled connections idle
//! for longer than the idle limit are dropped rather than tried, so a quiet spell or a
//! route-lookup restart costs no login. Credentials too long for any lookup server to read
//! are refused without asking ([`MAX_CREDENTIALS`]), so they never count against a URL.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use codec::auth_http::{self as ah, escape_for_http as escape};
use common::tls::TlsError;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONNECTION};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::ejection::Ejection;
use crate::upstream::Upstream;

/// Largest response head accepted (hyper's read buffer; nginx's default is 1 KiB).
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body drained (route-lookup sends none; a bigger one is refused).
const MAX_BODY: usize = 64 * 1024;
/// Largest escaped login and password (together) sent: with the other headers, well within
/// the 16 KiB request head route-lookup reads. Bigger ones it would refuse with a non-200,
/// which counts as the URL failing: one login with a huge password (the sessions take up
/// to 64 KiB) would eject every lookup URL and spin the retry budget. No real account has
/// credentials this long, so such a login is refused without asking.
pub const MAX_CREDENTIALS: usize = 8 * 1024;
/// The same bound for a login with an OAuth bearer token (`Auth-Method` xoauth2 or
/// oauthbearer): the longest token, every byte escaped, and a name.
pub const MAX_OAUTH_CREDENTIALS: usize = 3 * codec::sasl::MAX_TOKEN + 1024;
/// Most idle connections kept per URL: what a burst opened beyond this is closed after
/// use rather than held until the server times it out.
const MAX_IDLE: usize = 64;

pub use ah::Answer as LookupAnswer;

/// One lookup URL, `http://host:port/path` or `https://…`, parsed by the one URL parser
/// every HTTP client here shares.
pub type LookupUrl = common::http_url::HttpUrl;
pub use common::http_url::UrlError;

/// A login to look up.
#[derive(Clone)]
pub struct LookupRequest<'a> {
    /// The login as the client gave it.
    pub user: &'a [u8],
    /// The password (sent escaped; route-lookup may verify it), or a bearer token.
    pub pass: &'a [u8],
    /// Auth-Method: `plain`, or `xoauth2` / `oauthbearer` with a token in `pass`.
    pub method: &'a str,
    /// `imap`, `imapssl`, `pop3` or `pop3ssl`.
    pub protocol: &'a str,
    /// 1 for the first attempt of the session.
    pub attempt: u32,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The proxy's own address on the client's connection (virtual-IP domains).
    pub proxy_ip: Option<IpAddr>,
}

impl std::fmt::Debug for LookupRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupRequest")
            .field("user", &String::from_utf8_lossy(self.user))
            .field("pass", &format_args!("<{} bytes>", self.pass.len()))
            .field("method", &self.method)
            .field("protocol", &self.protocol)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Why there was no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    /// No lookup URL could be reached or answered usefully.
    #[error("no route-lookup reachable")]
    Unavailable,
    /// An answer nginx would call "invalid" (no status, no server or port…).
    #[error("invalid lookup answer: {0}")]
    Invalid(ah::AnswerError),
}

/// Counters.
#[derive(Debug, Default)]
pub struct LookupStats {
    /// Requests sent.
    pub requests: AtomicU64,
    /// New connections opened.
    pub connections: AtomicU64,
    /// Times a URL was marked failed.
    pub failovers: AtomicU64,
    /// Logins refused unasked for credentials over [`MAX_CREDENTIALS`].
    pub too_long: AtomicU64,
    /// Time to an answer (from any URL) or to giving up.
    pub latency: common::metrics::Histogram,
    /// When a URL last answered (a parsed answer, success or failure), as milliseconds
    /// after [`LookupStats::epoch`]; 0: never.
    last_answer_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl LookupStats {
    fn epoch(&self) -> Instant {
        *self.epoch.get_or_init(Instant::now)
    }

    fn answered(&self) {
        let ms = u64::try_from(self.epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_answer_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// How long ago a URL last answered, if ever.
    pub fn since_last_answer(&self) -> Option<Duration> {
        match self.last_answer_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.epoch()
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct LookupConfig {
    /// The URLs, in rotation (at least one).
    pub urls: Vec<LookupUrl>,
    /// Sent as X-Lookup-Secret when given.
    pub secret: Option<String>,
    /// Bound on one request (connect, TLS, send, answer).
    pub timeout: Duration,
    /// How long a failed URL is skipped.
    pub retry_interval: Duration,
    /// Pooled connections idle longer than this are dropped, not used (keep it under the
    /// server's own idle timeout).
    pub idle_timeout: Duration,
    /// When every URL failed, how long to keep trying them again (with a short, growing
    /// pause) before answering "unavailable": a route-lookup restart is waited out.
    pub retry_budget: Duration,
    /// TLS for `https://` URLs (`None`: the system's CA bundle).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why a client cannot be made as configured.
#[derive(Debug, Error)]
pub enum SetupError {
    /// `https://` URLs, no TLS configuration given, and the system's CA bundle unusable.
    #[error("https:// lookup URLs need CA certificates (give --ca); the system's: {0}")]
    SystemCas(#[source] TlsError),
    /// A secret that cannot be sent as an HTTP header value (control characters).
    #[error("the lookup secret is not a valid HTTP header value")]
    Secret,
}

/// A connection to one URL: the request sender and how many bytes it has read so far.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    read: Arc<AtomicU64>,
}

struct Pooled {
    conn: Conn,
    since: Instant,
}

struct Handler {
    url: LookupUrl,
    ejection: Ejection,
    idle: Mutex<Vec<Pooled>>,
}

/// The client.
pub struct LookupClient {
    handlers: Vec<Handler>,
    next: AtomicUsize,
    secret: Option<HeaderValue>,
    timeout: Duration,
    idle_timeout: Duration,
    retry_budget: Duration,
    /// For `https://` URLs, or why there is none.
    tls: Result<Arc<rustls::ClientConfig>, String>,
    /// Counters.
    pub stats: LookupStats,
}

impl std::fmt::Debug for LookupClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&LookupUrl> = self.handlers.iter().map(|h| &h.url).collect();
        f.debug_struct("LookupClient").field("urls", &urls).finish()
    }
}

/// Why one URL did not answer.
#[derive(Debug, Error)]
enum Attempt {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Invalid(ah::AnswerError),
}

/// The secret as a header value, checked.
fn secret(config: &LookupConfig) -> Result<Option<HeaderValue>, SetupError> {
    config
        .secret
        .as_deref()
        .map(|s| HeaderValue::from_str(s).map_err(|_| SetupError::Secret))
        .transpose()
}

/// The TLS client for `https://` URLs: the configured one, else the system's CAs when an
/// `https://` URL needs them (`None`: no URL does).
fn tls(config: &LookupConfig) -> Result<Option<Arc<rustls::ClientConfig>>, SetupError> {
    match &config.tls {
        Some(c) => Ok(Some(c.clone())),
        None if config.urls.iter().any(|u| u.tls) => common::tls::system_client_config()
            .map(Some)
            .map_err(SetupError::SystemCas),
        None => Ok(None),
    }
}

/// Why an `https://` URL fails when no URL needed TLS at setup (it cannot happen).
const NO_TLS: &str = "no TLS configuration";

impl LookupClient {
    /// A client as `config` says, or why it cannot work: `https://` URLs without a
    /// configured TLS client need the system's CA bundle, and the secret must be sendable.
    pub fn try_new(config: LookupConfig) -> Result<Self, SetupError> {
        let secret = secret(&config)?;
        let tls = tls(&config)?.ok_or_else(|| NO_TLS.to_string());
        Ok(Self::with(config, secret, tls))
    }

    /// Like [`LookupClient::try_new`], but a client that cannot work as configured is made
    /// anyway, after an error log: its `https://` URLs fail at each request (saying why),
    /// and a secret that cannot be sent is left out.
    pub fn new(config: LookupConfig) -> Self {
        let secret = secret(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "lookup secret not sent");
            None
        });
        let tls = match tls(&config) {
            Ok(c) => c.ok_or_else(|| NO_TLS.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "https:// lookup URLs will fail");
                Err(e.to_string())
            }
        };
        Self::with(config, secret, tls)
    }

    fn with(
        config: LookupConfig,
        secret: Option<HeaderValue>,
        tls: Result<Arc<rustls::ClientConfig>, String>,
    ) -> Self {
        Self {
            handlers: config
                .urls
                .into_iter()
                .map(|url| Handler {
                    url,
                    ejection: Ejection::fixed(config.retry_interval),
                    idle: Mutex::new(Vec::new()),
                })
                .collect(),
            next: AtomicUsize::new(0),
            secret,
            timeout: config.timeout,
            idle_timeout: config.idle_timeout,
            retry_budget: config.retry_budget,
            tls,
            stats: LookupStats::default(),
        }
    }

    fn request(&self, url: &LookupUrl, req: &LookupRequest<'_>) -> hyper::Request<Empty<Bytes>> {
        let mut b = hyper::Request::get(url.path.as_str())
            .header(hyper::header::HOST, url.host.as_str())
            .header(ah::AUTH_METHOD, req.method)
            .header(ah::AUTH_USER, escape(req.user))
            .header(ah::AUTH_PASS, escape(req.pass))
            .header(ah::AUTH_PROTOCOL, req.protocol)
            .header(ah::AUTH_LOGIN_ATTEMPT, req.attempt)
            .header(ah::CLIENT_IP, req.client_ip.to_string());
        if let Some(ip) = req.proxy_ip {
            b = b.header(ah::X_PROXY_IP, ip.to_string());
        }
        if let Some(s) = &self.secret {
            b = b.header(ah::X_LOOKUP_SECRET, s.clone());
        }
        // Every value is escaped, checked when the client was made, or made of safe
        // characters, so this cannot fail; an empty request (which route-lookup refuses)
        // would be the harmless outcome.
        b.body(Empty::new()).unwrap_or_default()
    }

    /// Whether route-lookup can be reached: a URL answered a lookup within `recent`, or
    /// one accepts a TCP connection now (within a second).
    pub async fn reachable(&self, recent: Duration) -> Result<(), String> {
        if self.stats.since_last_answer().is_some_and(|d| d <= recent) {
            return Ok(());
        }
        let mut why = Vec::new();
        for h in &self.handlers {
            let connect = tokio::net::TcpStream::connect((h.url.server_name(), h.url.port));
            match tokio::time::timeout(Duration::from_secs(1), connect).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => why.push(format!("{}: {e}", h.url.authority())),
                Err(_) => why.push(format!("{}: no answer within 1 s", h.url.authority())),
            }
        }
        Err(format!("no lookup URL answers ({})", why.join("; ")))
    }

    /// Looks `req` up, failing over across the URLs. Credentials longer than
    /// [`MAX_CREDENTIALS`] (escaped) are refused (`Authentication failed`) without asking.
    pub async fn lookup(&self, req: &LookupRequest<'_>) -> Result<LookupAnswer, LookupError> {
        let (user, pass) = (escape(req.user).len(), escape(req.pass).len());
        let max = if req.method == "plain" {
            MAX_CREDENTIALS
        } else {
            MAX_OAUTH_CREDENTIALS
        };
        if user + pass > max {
            self.stats.too_long.fetch_add(1, Ordering::Relaxed);
            // Lengths only: never the password.
            tracing::debug!(
                user_bytes = user,
                pass_bytes = pass,
                "login too long to look up; refused"
            );
            return Ok(LookupAnswer::Failed {
                status: ah::STATUS_FAILED.to_string(),
                wait: None,
                reason: None,
            });
        }
        let started = Instant::now();
        let result = self.lookup_failing_over(req).await;
        self.stats.latency.record(started.elapsed());
        result
    }

    /// Every URL in turn; when all failed, again after a pause (50 ms, doubling to 500 ms)
    /// while the retry budget lasts.
    async fn lookup_failing_over(
        &self,
        req: &LookupRequest<'_>,
    ) -> Result<LookupAnswer, LookupError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.one_round(req).await {
                Err(LookupError::Unavailable)
                    if started.elapsed() + pause < self.retry_budget.min(self.timeout) =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    async fn one_round(&self, req: &LookupRequest<'_>) -> Result<LookupAnswer, LookupError> {
        let n = self.handlers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Skip failed handlers while any other is available; if all are failed, try them
        // anyway rather than fail without asking.
        let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        let live: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| !self.handlers[i].ejection.is_out())
            .collect();
        let candidates = if live.is_empty() { order } else { live };
        for i in candidates {
            let started = Instant::now();
            match self.ask(&self.handlers[i], req).await {
                Ok(answer) => {
                    // Also when every URL was out and this one was asked anyway: it is
                    // back, and the others stay skipped.
                    self.handlers[i].ejection.succeed(started);
                    self.stats.answered();
                    return Ok(answer);
                }
                Err(Attempt::Unreachable(e)) => {
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    let (retry_in, _) = self.handlers[i].ejection.fail();
                    tracing::warn!(url = %self.handlers[i].url.authority(), error = %e, ?retry_in, "lookup handler failed");
                }
                Err(Attempt::Invalid(e)) => return Err(LookupError::Invalid(e)),
            }
        }
        Err(LookupError::Unavailable)
    }

    /// A pooled connection young enough to trust, if any.
    fn pooled(&self, handler: &Handler) -> Option<Conn> {
        let mut idle = handler
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The most recently used first: the likeliest to be alive, and the old ones at the
        // bottom age out.
        while let Some(p) = idle.pop() {
            if p.since.elapsed() < self.idle_timeout && !p.conn.sender.is_closed() {
                return Some(p.conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request, dropping the ones too old to be used.
    fn pool(&self, handler: &Handler, conn: Conn) {
        let mut idle = handler
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.retain(|p| p.since.elapsed() < self.idle_timeout && !p.conn.sender.is_closed());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Pooled {
            conn,
            since: Instant::now(),
        });
    }

    async fn connect(&self, url: &LookupUrl) -> Result<Conn, Attempt> {
        let tcp = TcpStream::connect((url.server_name(), url.port))
            .await
            .map_err(|e| Attempt::Unreachable(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let stream = if url.tls {
            let config = self
                .tls
                .as_ref()
                .map_err(|e| Attempt::Unreachable(e.clone()))?;
            let name = rustls::pki_types::ServerName::try_from(url.server_name().to_string())
                .map_err(|e| Attempt::Unreachable(format!("bad host name: {e}")))?;
            let tls = crate::tls::connect(tcp, config.clone(), name)
                .await
                .map_err(|e| Attempt::Unreachable(format!("TLS: {e}")))?;
            Upstream::Tls(Box::new(tls))
        } else {
            Upstream::Plain(tcp)
        };
        let read = Arc::new(AtomicU64::new(0));
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            // nginx writes `Auth-Method`, not `auth-method`; an auth_http server written
            // against nginx may compare names with their case.
            .title_case_headers(true)
            .handshake(TokioIo::new(Counted {
                inner: stream,
                read: read.clone(),
            }))
            .await
            .map_err(|e| Attempt::Unreachable(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        Ok(Conn { sender, read })
    }

    async fn ask(
        &self,
        handler: &Handler,
        req: &LookupRequest<'_>,
    ) -> Result<LookupAnswer, Attempt> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(self.timeout, async {
            let mut reuse = true;
            loop {
                let pooled = if reuse { self.pooled(handler) } else { None };
                let reused = pooled.is_some();
                let mut conn = match pooled {
                    Some(c) => c,
                    None => self.connect(&handler.url).await?,
                };
                let read_before = conn.read.load(Ordering::Relaxed);
                let sent = async {
                    conn.sender.ready().await?;
                    conn.sender
                        .send_request(self.request(&handler.url, req))
                        .await
                }
                .await;
                let response = match sent {
                    Ok(r) => r,
                    // The server closed the kept-alive connection (idle timeout, restart)
                    // before answering anything: it never saw the request, so sending it
                    // again on a fresh connection cannot count a login twice.
                    Err(e) if reused && conn.read.load(Ordering::Relaxed) == read_before => {
                        tracing::debug!(url = %handler.url.authority(), error = %e, "kept-alive lookup connection gone; retrying on a new one");
                        reuse = false;
                        continue;
                    }
                    Err(e) => return Err(Attempt::Unreachable(format!("HTTP: {e}"))),
                };
                return self.answer(handler, conn, response).await;
            }
        })
        .await
        .map_err(|_| Attempt::Unreachable(format!("no answer within {:?}", self.timeout)))?
    }

    /// Reads the answer off `response` and pools the connection if it may be reused.
    async fn answer(
        &self,
        handler: &Handler,
        conn: Conn,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<LookupAnswer, Attempt> {
        let (head, body) = response.into_parts();
        if head.status != hyper::StatusCode::OK {
            return Err(Attempt::Unreachable(format!("HTTP status {}", head.status)));
        }
        let header_bytes: usize = head
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if header_bytes > MAX_HEAD {
            return Err(Attempt::Unreachable("response header too large".into()));
        }
        // Drain the body (bounded) so the connection can serve the next request.
        if Limited::new(body, MAX_BODY).collect().await.is_err() {
            return Err(Attempt::Unreachable(
                "response body too large or cut short".into(),
            ));
        }
        let fields: Vec<(&str, &[u8])> = head
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let answer = ah::answer(fields.iter().copied()).map_err(Attempt::Invalid);
        // hyper closes the connection after such an answer, perhaps not at once: pooling it
        // would only cost the next request a failed first try.
        let closing = head.version < hyper::Version::HTTP_11
            || head.headers.get_all(CONNECTION).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            });
        if !closing && !conn.sender.is_closed() {
            self.pool(handler, conn);
        }
        answer
    }
}

/// A connection that counts the bytes it reads, so that a failed request can tell whether
/// any of an answer had arrived (then the server has seen the request).
struct Counted {
    inner: Upstream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let n = buf.filled().len().saturating_sub(before);
            this.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
