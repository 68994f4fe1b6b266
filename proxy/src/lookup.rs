//! The auth_http client: asks route-lookup where a login lives, over HTTP/1.1 keep-alive,
//! with the headers nginx sends (values escaped as nginx escapes them).
//!
//! Several lookup URLs may be configured: requests rotate over them; one whose connection
//! fails is skipped for the retry interval (Zimbra's `zm_lookup_handler_retry_interval`),
//! and the request goes to the next. A reused keep-alive connection that turns out to be
//! closed is retried once on a fresh one.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use codec::auth_http::{self as ah, escape_for_http as escape};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// One lookup URL, `http://host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupUrl {
    /// `host:port` to connect to.
    pub authority: String,
    /// The request path.
    pub path: String,
}

impl std::str::FromStr for LookupUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{s}`: only http:// lookup URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("`{s}` has no host"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path: path.to_string(),
        })
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

/// route-lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAnswer {
    /// Where to go.
    Route {
        /// The mailbox server.
        server: IpAddr,
        /// Its port.
        port: u16,
        /// The account name to log in as.
        user: String,
        /// The password to log in with upstream (`Auth-Pass`, taken as it is, as nginx does).
        pass: Option<Vec<u8>>,
        /// Zimbra's Auth-Cache-Alias.
        cache_alias: bool,
    },
    /// A refusal with its text and the wait before answering the client.
    Failed {
        /// Auth-Status text.
        status: String,
        /// Auth-Wait seconds, when given.
        wait: Option<u32>,
    },
}

/// Why there was no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    /// No lookup URL could be reached.
    #[error("no route-lookup reachable")]
    Unavailable,
    /// An answer nginx would call "invalid" (bad header, missing server or port…).
    #[error("invalid lookup answer: {0}")]
    Invalid(String),
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

struct Handler {
    url: LookupUrl,
    failed_until: Mutex<Option<Instant>>,
    idle: Mutex<Vec<TcpStream>>,
}

/// The client.
pub struct LookupClient {
    handlers: Vec<Handler>,
    next: AtomicUsize,
    secret: Option<String>,
    timeout: Duration,
    retry_interval: Duration,
    /// Counters.
    pub stats: LookupStats,
}

impl std::fmt::Debug for LookupClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&LookupUrl> = self.handlers.iter().map(|h| &h.url).collect();
        f.debug_struct("LookupClient").field("urls", &urls).finish()
    }
}

impl LookupClient {
    /// A client of `urls` (at least one), sending `secret` as X-Lookup-Secret if given.
    pub fn new(
        urls: Vec<LookupUrl>,
        secret: Option<String>,
        timeout: Duration,
        retry_interval: Duration,
    ) -> Self {
        Self {
            handlers: urls
                .into_iter()
                .map(|url| Handler {
                    url,
                    failed_until: Mutex::new(None),
                    idle: Mutex::new(Vec::new()),
                })
                .collect(),
            next: AtomicUsize::new(0),
            secret,
            timeout,
            retry_interval,
            stats: LookupStats::default(),
        }
    }

    fn request_bytes(&self, url: &LookupUrl, req: &LookupRequest<'_>) -> Vec<u8> {
        let host = url
            .authority
            .rsplit_once(':')
            .map_or(url.authority.as_str(), |(h, _)| h);
        let mut r = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nAuth-Method: plain\r\nAuth-User: ",
            url.path
        )
        .into_bytes();
        r.extend_from_slice(&escape(req.user));
        r.extend_from_slice(b"\r\nAuth-Pass: ");
        r.extend_from_slice(&escape(req.pass));
        r.extend_from_slice(
            format!(
                "\r\nAuth-Protocol: {}\r\nAuth-Login-Attempt: {}\r\nClient-IP: {}\r\n",
                req.protocol, req.attempt, req.client_ip
            )
            .as_bytes(),
        );
        if let Some(ip) = req.proxy_ip {
            r.extend_from_slice(format!("X-Proxy-IP: {ip}\r\n").as_bytes());
        }
        if let Some(s) = &self.secret {
            r.extend_from_slice(format!("X-Lookup-Secret: {s}\r\n").as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r
    }

    /// Looks `req` up, failing over across the URLs.
    pub async fn lookup(&self, req: &LookupRequest<'_>) -> Result<LookupAnswer, LookupError> {
        let started = Instant::now();
        let result = self.lookup_failing_over(req).await;
        self.stats.latency.record(started.elapsed());
        result
    }

    async fn lookup_failing_over(
        &self,
        req: &LookupRequest<'_>,
    ) -> Result<LookupAnswer, LookupError> {
        let n = self.handlers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Skip failed handlers while any other is available; if all are failed, try them
        // anyway rather than fail without asking.
        let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        let live: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| !self.is_failed(i))
            .collect();
        let candidates = if live.is_empty() { order } else { live };
        for i in candidates {
            match self.ask(i, req).await {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Unreachable(e)) => {
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.handlers[i].url.authority, error = %e, retry_in = ?self.retry_interval, "lookup handler failed");
                    *self.handlers[i]
                        .failed_until
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Instant::now() + self.retry_interval);
                }
                Err(Attempt::Invalid(e)) => return Err(LookupError::Invalid(e)),
            }
        }
        Err(LookupError::Unavailable)
    }

    fn is_failed(&self, i: usize) -> bool {
        let mut until = self.handlers[i]
            .failed_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    async fn ask(&self, i: usize, req: &LookupRequest<'_>) -> Result<LookupAnswer, Attempt> {
        let handler = &self.handlers[i];
        let bytes = self.request_bytes(&handler.url, req);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        // A pooled connection may have been closed by the server meanwhile: one retry on
        // a fresh connection if nothing at all came back.
        for _ in 0..2 {
            let pooled = handler
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let fresh = pooled.is_none();
            let mut stream = match pooled {
                Some(s) => s,
                None => {
                    let s = tokio::time::timeout(
                        self.timeout,
                        TcpStream::connect(&handler.url.authority),
                    )
                    .await
                    .map_err(|_| Attempt::Unreachable("connect timeout".into()))?
                    .map_err(|e| Attempt::Unreachable(e.to_string()))?;
                    let _ = s.set_nodelay(true);
                    self.stats.connections.fetch_add(1, Ordering::Relaxed);
                    s
                }
            };
            match tokio::time::timeout(self.timeout, exchange(&mut stream, &bytes)).await {
                Ok(Ok((answer, keep))) => {
                    if keep {
                        handler
                            .idle
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(stream);
                    }
                    return answer.map_err(Attempt::Invalid);
                }
                Ok(Err(Exchange::NothingBack)) if !fresh => continue,
                Ok(Err(Exchange::NothingBack)) => {
                    return Err(Attempt::Unreachable("connection closed".into()))
                }
                Ok(Err(Exchange::Io(e))) => return Err(Attempt::Unreachable(e)),
                Err(_) => return Err(Attempt::Unreachable("timeout".into())),
            }
        }
        Err(Attempt::Unreachable("connection closed".into()))
    }
}

enum Attempt {
    Unreachable(String),
    Invalid(String),
}

enum Exchange {
    NothingBack,
    Io(String),
}

/// Writes the request and reads the answer; returns it and whether the connection may be
/// reused.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
) -> Result<(Result<LookupAnswer, String>, bool), Exchange> {
    if stream.write_all(request).await.is_err() {
        return Err(Exchange::NothingBack);
    }
    let mut buf = Vec::with_capacity(512);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Ok((Err("response head too large".into()), false));
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => return Err(Exchange::NothingBack),
            Ok(0) => return Err(Exchange::Io("connection closed mid-answer".into())),
            Ok(_) => {}
            Err(e) if buf.is_empty() => return Err(Exchange::Io(e.to_string())),
            Err(e) => return Err(Exchange::Io(e.to_string())),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut keep = status_line.starts_with("HTTP/1.1");
    let mut content_length = 0usize;
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Ok((Err("malformed header".into()), false));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Ok((Err(format!("invalid header name {name:?}")), false));
        }
        let value = value.trim().to_string();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse().unwrap_or(0),
            "connection" if value.eq_ignore_ascii_case("close") => keep = false,
            _ => {}
        }
        fields.push((name.to_ascii_lowercase(), value));
    }
    // Skip a body, bounded (route-lookup sends none).
    if content_length > MAX_HEAD {
        return Ok((Err("response body too large".into()), false));
    }
    let mut have = buf.len() - head_end;
    while have < content_length {
        let mut chunk = vec![0u8; content_length - have];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Exchange::Io("connection closed mid-body".into())),
            Ok(n) => have += n,
        }
    }
    if have > content_length {
        keep = false;
    }
    Ok((answer_of(&fields), keep))
}

fn answer_of(fields: &[(String, String)]) -> Result<LookupAnswer, String> {
    // Last one wins, as in nginx.
    let get = |n: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let status = get("auth-status").unwrap_or(ah::STATUS_OK);
    let wait = get("auth-wait").and_then(|w| w.parse().ok());
    if status != ah::STATUS_OK {
        return Ok(LookupAnswer::Failed {
            status: status.to_string(),
            wait,
        });
    }
    let server = get("auth-server").ok_or("no Auth-Server")?;
    let server: IpAddr = server
        .parse()
        .map_err(|_| format!("Auth-Server {server:?} is not an IP literal"))?;
    let port: u16 = get("auth-port")
        .and_then(|p| p.parse().ok())
        .filter(|&p| p > 0)
        .ok_or("no valid Auth-Port")?;
    Ok(LookupAnswer::Route {
        server,
        port,
        user: get("auth-user").unwrap_or_default().to_string(),
        pass: get("auth-pass").map(|p| p.as_bytes().to_vec()),
        cache_alias: get("auth-cache-alias") == Some("TRUE"),
    })
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
        assert_eq!(
            "http://lookup".parse::<LookupUrl>().unwrap().authority,
            "lookup:80"
        );
        assert!("https://x/".parse::<LookupUrl>().is_err());
        assert!("x:1/".parse::<LookupUrl>().is_err());
    }

    #[test]
    fn answers() {
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            answer_of(&f(&[
                ("auth-status", "OK"),
                ("auth-server", "10.0.0.5"),
                ("auth-port", "7143"),
                ("auth-user", "a@b"),
                ("auth-pass", "s%20cret")
            ])),
            Ok(LookupAnswer::Route {
                server: "10.0.0.5".parse().unwrap(),
                port: 7143,
                user: "a@b".into(),
                pass: Some(b"s%20cret".to_vec()),
                cache_alias: false
            })
        );
        assert_eq!(
            answer_of(&f(&[
                ("auth-status", "Authentication failed"),
                ("auth-wait", "10")
            ])),
            Ok(LookupAnswer::Failed {
                status: "Authentication failed".into(),
                wait: Some(10)
            })
        );
        assert!(answer_of(&f(&[
            ("auth-status", "OK"),
            ("auth-server", "mbx1.example.com"),
            ("auth-port", "7143")
        ]))
        .is_err());
        assert!(answer_of(&f(&[("auth-status", "OK"), ("auth-server", "10.0.0.5")])).is_err());
        assert!(answer_of(&f(&[
            ("auth-status", "OK"),
            ("auth-server", "10.0.0.5"),
            ("auth-port", "0")
        ]))
        .is_err());
    }
}
