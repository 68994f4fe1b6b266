//! The auth_http client: asks route-lookup where a login lives, over HTTP/1.1 keep-alive
//! (hyper's client connection; rustls for `https://` URLs), with the headers nginx sends
//! (values escaped as nginx escapes them). The answer is read by `codec::auth_http::answer`.
//!
//! Several lookup URLs may be configured: requests rotate over them; one that fails is
//! skipped for the retry interval (Zimbra's `zm_lookup_handler_retry_interval`), and the
//! request goes to the next. A failure means: no connection, a timeout, an HTTP status
//! other than 200, or an answer over the size bounds. When every URL has failed, they are
//! all tried again after a short, growing pause for as long as the retry budget lasts, so
//! a restart of route-lookup is waited out rather than failed. A request that fails on a reused
//! keep-alive connection is retried once on a fresh one before that (the server may have
//! closed it meanwhile), and pooled connections idle for longer than the idle limit are
//! dropped rather than tried, so a quiet spell or a route-lookup restart costs no login.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use codec::auth_http::{self as ah, escape_for_http as escape};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

use crate::ejection::Ejection;
use crate::upstream::Upstream;

/// Largest response head accepted (hyper's read buffer; nginx's default is 1 KiB).
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body drained (route-lookup sends none; a bigger one is refused).
const MAX_BODY: usize = 64 * 1024;

pub use ah::Answer as LookupAnswer;

/// One lookup URL, `http://host:port/path` or `https://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupUrl {
    /// Whether it is `https://`.
    pub tls: bool,
    /// `host:port` to connect to.
    pub authority: String,
    /// The request path.
    pub path: String,
}

/// A lookup URL that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    /// Neither `http://` nor `https://`.
    #[error("`{0}`: lookup URLs are http:// or https://")]
    Scheme(String),
    /// No host.
    #[error("`{0}` has no host")]
    Host(String),
}

impl std::str::FromStr for LookupUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (tls, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(UrlError::Scheme(s.to_string()));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty()
            || authority.starts_with(':')
            || authority
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(UrlError::Host(s.to_string()));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        Ok(Self {
            tls,
            authority,
            path: path.to_string(),
        })
    }
}

impl LookupUrl {
    /// The host, without the port (and without IPv6 brackets).
    fn host(&self) -> &str {
        let host = self
            .authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// A login to look up.
#[derive(Debug, Clone)]
pub struct LookupRequest<'a> {
    /// The login as the client gave it.
    pub user: &'a [u8],
    /// The password (sent escaped; route-lookup may verify it).
    pub pass: &'a [u8],
    /// `imap`, `imapssl`, `pop3` or `pop3ssl`.
    pub protocol: &'a str,
    /// 1 for the first attempt of the session.
    pub attempt: u32,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The proxy's own address on the client's connection (virtual-IP domains).
    pub proxy_ip: Option<IpAddr>,
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
    /// Time to an answer (from any URL) or to giving up.
    pub latency: common::metrics::Histogram,
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

struct Pooled {
    sender: SendRequest<Empty<Bytes>>,
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
    secret: Option<String>,
    timeout: Duration,
    idle_timeout: Duration,
    retry_budget: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
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

/// Debian's (and most distributions') bundle of the system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl LookupClient {
    /// A client as `config` says. `https://` URLs without a configured TLS client use the
    /// system's CA bundle; if it cannot be read they fail (and say so) at each request.
    pub fn new(config: LookupConfig) -> Self {
        let wants_tls = config.urls.iter().any(|u| u.tls);
        let tls = config.tls.or_else(|| {
            if !wants_tls {
                return None;
            }
            match std::fs::read(SYSTEM_CAS)
                .map_err(|e| e.to_string())
                .and_then(|pem| {
                    common::tls::client_config_from_pem(&pem).map_err(|e| e.to_string())
                }) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(bundle = SYSTEM_CAS, error = %e, "no CA bundle for https:// lookup URLs (give --ca)");
                    None
                }
            }
        });
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
            secret: config.secret,
            timeout: config.timeout,
            idle_timeout: config.idle_timeout,
            retry_budget: config.retry_budget,
            tls: tls.map(tokio_rustls::TlsConnector::from),
            stats: LookupStats::default(),
        }
    }

    fn request(&self, url: &LookupUrl, req: &LookupRequest<'_>) -> hyper::Request<Empty<Bytes>> {
        let mut b = hyper::Request::get(url.path.as_str())
            .header(hyper::header::HOST, url.host())
            .header(ah::AUTH_METHOD, "plain")
            .header(ah::AUTH_USER, escape(req.user))
            .header(ah::AUTH_PASS, escape(req.pass))
            .header(ah::AUTH_PROTOCOL, req.protocol)
            .header(ah::AUTH_LOGIN_ATTEMPT, req.attempt)
            .header(ah::CLIENT_IP, req.client_ip.to_string());
        if let Some(ip) = req.proxy_ip {
            b = b.header(ah::X_PROXY_IP, ip.to_string());
        }
        if let Some(s) = &self.secret {
            b = b.header(ah::X_LOOKUP_SECRET, s.as_str());
        }
        // Every value is escaped or made of safe characters, so this cannot fail; an
        // empty request (which route-lookup refuses) would be the harmless outcome.
        b.body(Empty::new()).unwrap_or_default()
    }

    /// Looks `req` up, failing over across the URLs.
    pub async fn lookup(&self, req: &LookupRequest<'_>) -> Result<LookupAnswer, LookupError> {
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
            match self.ask(&self.handlers[i], req).await {
                Ok(answer) => {
                    self.handlers[i].ejection.succeed();
                    return Ok(answer);
                }
                Err(Attempt::Unreachable(e)) => {
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    let (retry_in, _) = self.handlers[i].ejection.fail();
                    tracing::warn!(url = %self.handlers[i].url.authority, error = %e, ?retry_in, "lookup handler failed");
                }
                Err(Attempt::Invalid(e)) => return Err(LookupError::Invalid(e)),
            }
        }
        Err(LookupError::Unavailable)
    }

    /// A pooled connection young enough to trust, if any.
    fn pooled(&self, handler: &Handler) -> Option<SendRequest<Empty<Bytes>>> {
        let mut idle = handler
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(p) = idle.pop() {
            if p.since.elapsed() < self.idle_timeout && !p.sender.is_closed() {
                return Some(p.sender);
            }
        }
        None
    }

    async fn connect(&self, url: &LookupUrl) -> Result<SendRequest<Empty<Bytes>>, Attempt> {
        let tcp = TcpStream::connect(&url.authority)
            .await
            .map_err(|e| Attempt::Unreachable(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let stream = if url.tls {
            let connector = self.tls.as_ref().ok_or_else(|| {
                Attempt::Unreachable("no CA certificates for https:// (give --ca)".into())
            })?;
            let name = rustls::pki_types::ServerName::try_from(url.host().to_string())
                .map_err(|e| Attempt::Unreachable(format!("bad host name: {e}")))?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| Attempt::Unreachable(format!("TLS: {e}")))?;
            Upstream::Tls(Box::new(tls))
        } else {
            Upstream::Plain(tcp)
        };
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Attempt::Unreachable(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        Ok(sender)
    }

    async fn ask(
        &self,
        handler: &Handler,
        req: &LookupRequest<'_>,
    ) -> Result<LookupAnswer, Attempt> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(self.timeout, async {
            // A pooled connection may have been closed by the server meanwhile: one retry
            // on a fresh connection if the reused one fails.
            let mut reuse = true;
            loop {
                let pooled = if reuse { self.pooled(handler) } else { None };
                let reused = pooled.is_some();
                let mut sender = match pooled {
                    Some(s) => s,
                    None => self.connect(&handler.url).await?,
                };
                let sent = async {
                    sender.ready().await?;
                    sender.send_request(self.request(&handler.url, req)).await
                }
                .await;
                let response = match sent {
                    Ok(r) => r,
                    Err(_) if reused => {
                        reuse = false;
                        continue;
                    }
                    Err(e) => return Err(Attempt::Unreachable(format!("HTTP: {e}"))),
                };
                return self.answer(handler, sender, response).await;
            }
        })
        .await
        .map_err(|_| Attempt::Unreachable(format!("no answer within {:?}", self.timeout)))?
    }

    /// Reads the answer off `response` and pools the connection if it may be reused.
    async fn answer(
        &self,
        handler: &Handler,
        sender: SendRequest<Empty<Bytes>>,
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
        if !sender.is_closed() {
            handler
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Pooled {
                    sender,
                    since: Instant::now(),
                });
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u: LookupUrl = "http://10.0.0.7:7072/service/extension/nginx-lookup"
            .parse()
            .unwrap();
        assert_eq!(u.authority, "10.0.0.7:7072");
        assert_eq!(u.path, "/service/extension/nginx-lookup");
        assert!(!u.tls);
        assert_eq!(
            "http://lookup".parse::<LookupUrl>().unwrap().authority,
            "lookup:80"
        );
        let s: LookupUrl = "https://lookup.example.com/x".parse().unwrap();
        assert!(s.tls);
        assert_eq!(s.authority, "lookup.example.com:443");
        assert_eq!(s.host(), "lookup.example.com");
        assert_eq!(
            "http://[::1]:7072/".parse::<LookupUrl>().unwrap().host(),
            "::1"
        );
        assert!("ftp://x/".parse::<LookupUrl>().is_err());
        assert!("x:1/".parse::<LookupUrl>().is_err());
        assert!("http:///x".parse::<LookupUrl>().is_err());
    }
}
