//! The mailbox-server side: connect with a timeout, check the greeting (`* OK` / `+OK`;
//! PREAUTH, BYE or anything odd is refused), and replay the login (IMAP LOGIN with
//! literals under the client's own tag, POP3 USER/PASS; SASL PLAIN when the client gave
//! an authorization identity, as Zimbra does). The dialogue is `codec`'s client side:
//! its encoders write the commands and its resumable parsers read the answers, every
//! one bounded in size.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use codec::imap::client::{self as imap, Condition, Kind, ResponseLimits, ServerResponse};
use codec::pop3::{self, Command, Status};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bounds on what a mailbox server may answer during login.
const LIMITS: ResponseLimits = ResponseLimits {
    max_line: 64 * 1024,
    max_response: 256 * 1024,
};

/// Why the backend could not be used.
#[derive(Debug, Error)]
pub enum BackendError {
    /// Connecting failed or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The backend.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The greeting was not `* OK` / `+OK`.
    #[error("unexpected greeting: {0}")]
    Greeting(String),
    /// An I/O error, a timeout, a protocol violation or a BYE during login.
    #[error("backend login failed: {0}")]
    Protocol(String),
}

/// The backend's answer to the replayed login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginReply {
    /// Whether the login succeeded.
    pub ok: bool,
    /// The lines to pass on to the client (untagged ones included), CRLF-terminated.
    pub lines: Vec<u8>,
    /// A refusal that says "try again later" (IMAP `[UNAVAILABLE]`, POP3 `[SYS/TEMP]`): it
    /// says nothing about whether the route is right.
    pub temporary: bool,
}

/// Connects within `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, BackendError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| BackendError::Connect {
            addr,
            reason: "timeout".into(),
        })?
        .map_err(|e| BackendError::Connect {
            addr,
            reason: e.to_string(),
        })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Reads the backend's responses in chunks (not a byte per system call), keeping what
/// follows the current response for the next one.
struct Reader {
    buf: Vec<u8>,
}

fn protocol(e: impl std::fmt::Display) -> BackendError {
    BackendError::Protocol(e.to_string())
}

impl Reader {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(512),
        }
    }

    async fn fill<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> Result<(), BackendError> {
        self.buf.reserve(4096);
        match s.read_buf(&mut self.buf).await {
            Ok(0) => Err(protocol("connection closed")),
            Ok(_) => Ok(()),
            Err(e) => Err(protocol(e)),
        }
    }

    /// The next IMAP response, whole (literals included), as received.
    async fn imap<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> Result<Vec<u8>, BackendError> {
        loop {
            match imap::parse_response(&self.buf, &LIMITS) {
                Ok((_, used)) => return Ok(self.buf.drain(..used).collect()),
                Err(imap::ResponseError::Incomplete) => self.fill(s).await?,
                Err(e) => return Err(protocol(e)),
            }
        }
    }

    /// The next POP3 status line, as received.
    async fn pop3<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> Result<Vec<u8>, BackendError> {
        let limits = pop3::Limits {
            max_line: LIMITS.max_line,
        };
        loop {
            match pop3::parse_status_line(&self.buf, &limits) {
                Ok((_, used)) => return Ok(self.buf.drain(..used).collect()),
                Err(pop3::ResponseError::Incomplete) => self.fill(s).await?,
                Err(e) => return Err(protocol(e)),
            }
        }
    }

    /// Bytes read past the last response (the backend spoke first after its answer): they
    /// belong to the client.
    fn rest(self) -> Vec<u8> {
        self.buf
    }
}

/// A response read by [`Reader::imap`], parsed again from its own bytes.
fn view(raw: &[u8]) -> Result<ServerResponse<'_>, BackendError> {
    imap::parse_response(raw, &LIMITS)
        .map(|(r, _)| r)
        .map_err(protocol)
}

fn printable(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .trim_end()
        .chars()
        .take(200)
        .collect()
}

/// What the login replays.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The authorization identity the client asked to act as, if other than `user`.
    pub authzid: Option<&'a [u8]>,
    /// The account name (the route's canonical name).
    pub user: &'a [u8],
    /// The password.
    pub pass: &'a [u8],
}

impl Credentials<'_> {
    /// The SASL PLAIN response, base64: authzid NUL user NUL password.
    fn plain_response(&self) -> String {
        use base64::Engine;
        let mut raw = Vec::with_capacity(self.user.len() + self.pass.len() + 64);
        raw.extend_from_slice(self.authzid.unwrap_or_default());
        raw.push(0);
        raw.extend_from_slice(self.user);
        raw.push(0);
        raw.extend_from_slice(self.pass);
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> Result<(), BackendError> {
    s.write_all(bytes).await.map_err(protocol)
}

/// Logs in over IMAP: greeting, then `tag LOGIN` with the user name and password as
/// literals (LITERAL+ when the greeting advertises it, else waiting for each `+`), or
/// `tag AUTHENTICATE PLAIN` (with SASL-IR when advertised) when there is an
/// authorization identity.
pub async fn imap_login<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    tag: &[u8],
    creds: Credentials<'_>,
    client: Option<IpAddr>,
    timeout: Duration,
) -> Result<LoginReply, BackendError> {
    tokio::time::timeout(timeout, async {
        let mut reader = Reader::new();
        let greeting = match reader.imap(s).await {
            Ok(g) => g,
            // Not IMAP at all (an HTTP server, say): that is what the greeting says.
            Err(BackendError::Protocol(_)) if !reader.buf.is_empty() => {
                let first = reader.buf.split(|&b| b == b'\n').next().unwrap_or_default();
                return Err(BackendError::Greeting(printable(first)));
            }
            Err(e) => return Err(e),
        };
        let g = view(&greeting)?;
        if (g.kind, g.condition) != (Kind::Untagged, Some(Condition::Ok)) {
            return Err(BackendError::Greeting(printable(&greeting)));
        }
        // The greeting's capabilities decide how to send the login.
        let literal_plus = g.has_capability(b"LITERAL+");
        let sasl_ir = g.has_capability(b"SASL-IR");
        if let Some(ip) = client {
            // Dovecot's and Zimbra's forwarding field; a backend that does not trust us
            // ignores it, which is not a reason to fail the login.
            let mut id = Vec::new();
            let id_tag = imap::id_forward(&mut id, tag, ip);
            send(s, &id).await?;
            loop {
                let raw = reader.imap(s).await?;
                if view(&raw)?.kind == Kind::Tagged(&id_tag) {
                    break;
                }
            }
        }
        let pieces = match creds.authzid {
            Some(_) => imap::authenticate_plain(tag, creds.plain_response().as_bytes(), sasl_ir),
            None => imap::login(tag, creds.user, creds.pass, literal_plus),
        };
        let mut pieces = pieces.into_iter();
        if let Some(first) = pieces.next() {
            send(s, &first).await?;
        }
        // Each further piece waits for the server's go-ahead.
        for piece in pieces {
            let raw = reader.imap(s).await?;
            if view(&raw)?.kind != Kind::Continuation {
                // A refusal of the literal or the mechanism: pass the backend's answer on.
                return imap_answer(raw, tag);
            }
            send(s, &piece).await?;
        }
        let mut lines = Vec::new();
        loop {
            let raw = reader.imap(s).await?;
            let r = view(&raw)?;
            match (r.kind, r.condition) {
                (Kind::Tagged(t), _) if t == tag => {
                    lines.extend_from_slice(&raw);
                    let mut reply = imap_answer(lines, tag)?;
                    reply.lines.extend_from_slice(&reader.rest());
                    return Ok(reply);
                }
                (Kind::Untagged, Some(Condition::Bye)) => {
                    return Err(protocol(format!("the server said {}", printable(&raw))))
                }
                _ => lines.extend_from_slice(&raw),
            }
            if lines.len() > LIMITS.max_response {
                return Err(protocol("too many untagged lines"));
            }
        }
    })
    .await
    .map_err(|_| protocol("timeout"))?
}

/// The login's outcome from `lines`, whose last response is the tagged one (or a refused
/// go-ahead).
fn imap_answer(lines: Vec<u8>, tag: &[u8]) -> Result<LoginReply, BackendError> {
    let last_start = last_response_start(&lines);
    let r = view(&lines[last_start..])?;
    let ok = r.kind == Kind::Tagged(tag) && r.condition == Some(Condition::Ok);
    let temporary = !ok
        && r.code
            .is_some_and(|c| c.eq_ignore_ascii_case(b"UNAVAILABLE"));
    Ok(LoginReply {
        ok,
        lines,
        temporary,
    })
}

/// Where the last response in `lines` starts (responses end in LF; a literal inside one is
/// never the last response's start, since the tagged line carries none).
fn last_response_start(lines: &[u8]) -> usize {
    let body = lines.strip_suffix(b"\n").unwrap_or(lines);
    body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

/// Logs in over POP3: greeting, `USER`, `PASS`; or `AUTH PLAIN` with an initial
/// response when there is an authorization identity.
pub async fn pop3_login<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    creds: Credentials<'_>,
    client: Option<IpAddr>,
    timeout: Duration,
) -> Result<LoginReply, BackendError> {
    let (user, pass) = (creds.user, creds.pass);
    if user.iter().chain(pass).any(|&b| b == b'\r' || b == b'\n') {
        return Err(protocol("line break in credentials"));
    }
    tokio::time::timeout(timeout, async {
        let mut reader = Reader::new();
        let greeting = reader.pop3(s).await?;
        if !matches!(pop3_status(&greeting)?, Status::Ok(_)) {
            return Err(BackendError::Greeting(printable(&greeting)));
        }
        let mut out = Vec::new();
        if let Some(ip) = client {
            let addr = format!("ADDR={ip}");
            Command::Xclient(addr.as_bytes()).encode(&mut out);
            send(s, &out).await?;
            let line = reader.pop3(s).await?;
            if !matches!(pop3_status(&line)?, Status::Ok(_)) {
                tracing::debug!(reply = %printable(&line), "backend did not take XCLIENT");
            }
        }
        let plain = creds.plain_response();
        let steps = match creds.authzid {
            Some(_) => vec![Command::Auth {
                mechanism: Some(b"PLAIN"),
                initial: Some(plain.as_bytes()),
            }],
            None => vec![Command::User(user), Command::Pass(pass)],
        };
        let mut line = Vec::new();
        for step in steps {
            out.clear();
            step.encode(&mut out);
            send(s, &out).await?;
            line = reader.pop3(s).await?;
            if !matches!(pop3_status(&line)?, Status::Ok(_)) {
                break;
            }
        }
        let (ok, temporary) = match pop3_status(&line)? {
            Status::Ok(_) => (true, false),
            Status::Err(text) => (
                false,
                pop3::response_code(text).is_some_and(|c| c.eq_ignore_ascii_case(b"SYS/TEMP")),
            ),
            Status::Continuation(_) => (false, false),
        };
        Ok(LoginReply {
            ok,
            lines: line,
            temporary,
        })
    })
    .await
    .map_err(|_| protocol("timeout"))?
}

fn pop3_status(line: &[u8]) -> Result<Status<'_>, BackendError> {
    let limits = pop3::Limits {
        max_line: LIMITS.max_line,
    };
    pop3::parse_status_line(line, &limits)
        .map(|(status, _)| status)
        .map_err(protocol)
}
