//! The mailbox-server side: connect with a timeout, check the greeting (`* OK` / `+OK`;
//! PREAUTH, BYE or anything odd is refused), and replay the login (IMAP LOGIN with
//! literals under the client's own tag, POP3 USER/PASS; SASL PLAIN when the client gave
//! an authorization identity, as Zimbra does; an OAuth login's own mechanism and message,
//! whose error challenge is acknowledged and kept for the client). The dialogue is `codec`'s client side
//! (`codec::imap::client`, `codec::pop3::client`): its encoders write the commands and
//! its resumable parsers read the answers, every one bounded in size, the whole login
//! under one timeout. Whether a refusal is temporary comes from the parsed response code
//! of the answer itself, never from text elsewhere in it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use codec::imap::client::{self as imap, Condition, Kind, LoginStyle, ResponseLimits};
use codec::pop3::{self, client as pop3c};
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
    /// A refused OAuth login's error challenge (base64 JSON, RFC 7628 3.2.2), which the
    /// client gets before the refusal.
    pub challenge: Option<Vec<u8>>,
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
        loop {
            match pop3c::parse_response(&self.buf, &POP3_LIMITS) {
                Ok((_, used)) => return Ok(self.buf.drain(..used).collect()),
                Err(pop3::ResponseError::Incomplete) => self.fill(s).await?,
                Err(e) => return Err(protocol(e)),
            }
        }
    }

    /// The first line of what was read, when a greeting could not be parsed: a server
    /// that speaks something else (HTTP, the other mail protocol) says so there.
    fn unparsed_greeting(&self, e: BackendError) -> BackendError {
        match e {
            BackendError::Protocol(_) if !self.buf.is_empty() => {
                let first = self.buf.split(|&b| b == b'\n').next().unwrap_or_default();
                BackendError::Greeting(printable(first))
            }
            e => e,
        }
    }

    /// Bytes read past the last response (the backend spoke first after its answer): they
    /// belong to the client.
    fn rest(self) -> Vec<u8> {
        self.buf
    }
}

/// Bounds on a POP3 status line from a mailbox server.
const POP3_LIMITS: pop3::Limits = pop3::Limits {
    max_line: LIMITS.max_line,
};

/// A response read by [`Reader::imap`], parsed again from its own bytes.
fn imap_view(raw: &[u8]) -> Result<imap::ServerResponse<'_>, BackendError> {
    imap::parse_response(raw, &LIMITS)
        .map(|(r, _)| r)
        .map_err(protocol)
}

/// A line read by [`Reader::pop3`], parsed again from its own bytes.
fn pop3_view(raw: &[u8]) -> Result<pop3c::ServerResponse<'_>, BackendError> {
    pop3c::parse_response(raw, &POP3_LIMITS)
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

/// An OAuth login as the client sent it.
#[derive(Debug, Clone)]
pub struct OAuthReplay {
    /// Its mechanism.
    pub mechanism: codec::sasl::OAuthMechanism,
    /// The client's message, base64.
    pub response: String,
}

impl OAuthReplay {
    /// What acknowledges the server's error challenge: OAUTHBEARER's ^A (RFC 7628
    /// 3.2.3), XOAUTH2's empty response.
    fn ack(&self) -> &'static [u8] {
        match self.mechanism {
            codec::sasl::OAuthMechanism::XOAuth2 => b"",
            codec::sasl::OAuthMechanism::OAuthBearer => b"AQ==",
        }
    }
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
    /// An OAuth login: replayed with its own mechanism and message instead.
    pub oauth: Option<&'a OAuthReplay>,
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

/// What ended a wait for the IMAP server.
enum Stop {
    /// `+`: send the next piece; its text.
    Continuation(Vec<u8>),
    /// The tagged answer, as received.
    Answer(Vec<u8>),
}

/// Reads IMAP responses up to a continuation or the tagged answer to `tag`. Untagged ones
/// (a server may send them at any time) and stray tagged ones go to `lines`, bounded; a
/// BYE fails the login, as no answer will follow it.
async fn imap_until<S: AsyncRead + Unpin>(
    reader: &mut Reader,
    s: &mut S,
    tag: &[u8],
    lines: &mut Vec<u8>,
) -> Result<Stop, BackendError> {
    loop {
        let raw = reader.imap(s).await?;
        let r = imap_view(&raw)?;
        match (r.kind, r.condition) {
            (Kind::Tagged(t), _) if t == tag => return Ok(Stop::Answer(raw)),
            (Kind::Continuation, _) => return Ok(Stop::Continuation(r.text.to_vec())),
            (Kind::Untagged, Some(Condition::Bye)) => {
                return Err(protocol(format!("the server said {}", printable(&raw))))
            }
            _ => lines.extend_from_slice(&raw),
        }
        if lines.len() > LIMITS.max_response {
            return Err(protocol("too many untagged responses"));
        }
    }
}

/// The login's outcome from its tagged `answer`, after the untagged `lines`; what the
/// server sent after the answer is the client's too.
fn imap_reply(
    mut lines: Vec<u8>,
    answer: &[u8],
    reader: Reader,
    challenge: Option<Vec<u8>>,
) -> Result<LoginReply, BackendError> {
    let r = imap_view(answer)?;
    let ok = r.condition == Some(Condition::Ok);
    let temporary = !ok && r.code_is(b"UNAVAILABLE");
    lines.extend_from_slice(answer);
    lines.extend_from_slice(&reader.rest());
    Ok(LoginReply {
        ok,
        lines,
        temporary,
        challenge: challenge.filter(|_| !ok),
    })
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
            Err(e) => return Err(reader.unparsed_greeting(e)),
        };
        let g = imap_view(&greeting)?;
        if (g.kind, g.condition) != (Kind::Untagged, Some(Condition::Ok)) {
            return Err(BackendError::Greeting(printable(&greeting)));
        }
        // The greeting's capabilities decide how to send the login.
        let literal_plus = g.has_capability(b"LITERAL+");
        let sasl_ir = g.has_capability(b"SASL-IR");
        if let Some(ip) = client {
            // Dovecot's and Zimbra's forwarding field; a backend that does not trust us
            // ignores it (or refuses it), which is not a reason to fail the login.
            let mut id = Vec::new();
            let id_tag = imap::id_forward(&mut id, tag, ip);
            send(s, &id).await?;
            let mut ignored = Vec::new();
            if let Stop::Continuation(_) = imap_until(&mut reader, s, &id_tag, &mut ignored).await?
            {
                return Err(protocol("continuation request during ID"));
            }
        }
        let authenticate = creds.authzid.is_some() || creds.oauth.is_some();
        let pieces = if let Some(o) = creds.oauth {
            let name = o.mechanism.name().as_bytes();
            imap::authenticate(tag, name, o.response.as_bytes(), sasl_ir)
        } else if authenticate {
            imap::authenticate_plain(tag, creds.plain_response().as_bytes(), sasl_ir)
        } else {
            // Always literals, as Zimbra's proxy sends them: no byte of a credential is
            // ever read by the server's quoted-string parser.
            let style = LoginStyle {
                literal_plus,
                always_literal: true,
            };
            imap::login(tag, creds.user, creds.pass, style)
        };
        let mut pieces = pieces.into_iter();
        if let Some(first) = pieces.next() {
            send(s, &first).await?;
        }
        let mut lines = Vec::new();
        // Each further piece waits for the server's go-ahead; a tagged answer instead is
        // a refusal of the literal or the mechanism, passed on.
        for piece in pieces {
            match imap_until(&mut reader, s, tag, &mut lines).await? {
                Stop::Continuation(_) => send(s, &piece).await?,
                Stop::Answer(answer) => return imap_reply(lines, &answer, reader, None),
            }
        }
        let mut answered = false;
        let mut challenge = None;
        loop {
            match imap_until(&mut reader, s, tag, &mut lines).await? {
                Stop::Answer(answer) => return imap_reply(lines, &answer, reader, challenge),
                // An OAuth refusal: the server's error challenge, acknowledged; the
                // client gets it before the tagged NO that follows.
                Stop::Continuation(text) if !answered && creds.oauth.is_some() => {
                    let ack = creds.oauth.map(OAuthReplay::ack).unwrap_or_default();
                    send(s, &[ack, b"\r\n"].concat()).await?;
                    challenge = Some(text);
                    answered = true;
                }
                // PLAIN is one message: a server asking for more gets the exchange
                // cancelled and answers with a tagged BAD, passed on as the refusal.
                Stop::Continuation(_) if authenticate && !answered => {
                    let mut cancel = Vec::new();
                    imap::cancel_authenticate(&mut cancel);
                    send(s, &cancel).await?;
                    answered = true;
                }
                Stop::Continuation(_) => return Err(protocol("unexpected continuation request")),
            }
        }
    })
    .await
    .map_err(|_| protocol("timeout"))?
}

/// One POP3 login command and what a `+` continuation after it gets.
struct Step {
    line: Vec<u8>,
    then: Then,
}

/// What follows a `+` from the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Nothing may: USER and PASS take no continuation.
    Nothing,
    /// PLAIN is one message: the exchange is cancelled.
    Cancel,
    /// An OAuth exchange: the message (when it did not fit the AUTH line, `true` here),
    /// then the acknowledgement of an error challenge.
    OAuth(bool),
}

/// The commands that replay `creds`, encoded before anything is sent: a credential with a
/// line break or NUL is refused here and never reaches the server.
fn pop3_steps(creds: &Credentials<'_>) -> Result<Vec<Step>, pop3c::EncodeError> {
    let mut steps = Vec::with_capacity(2);
    if let Some(o) = creds.oauth {
        let name = o.mechanism.name().as_bytes();
        let response = o.response.as_bytes();
        // `AUTH NAME RESPONSE\r\n` within RFC 5034's 255 octets, else the response on
        // its own line after the server's `+`.
        let fits = name.len() + response.len() + 8 <= pop3c::MAX_AUTH_LINE;
        let mut line = Vec::new();
        pop3c::auth(&mut line, name, fits.then_some(response))?;
        // Checked now, sent at the server's `+`.
        pop3c::sasl_response(&mut Vec::new(), response)?;
        steps.push(Step {
            line,
            then: Then::OAuth(!fits),
        });
    } else if creds.authzid.is_some() {
        let mut line = Vec::new();
        pop3c::auth_plain(&mut line, creds.plain_response().as_bytes())?;
        steps.push(Step {
            line,
            then: Then::Cancel,
        });
    } else {
        let (mut user, mut pass) = (Vec::new(), Vec::new());
        pop3c::user(&mut user, creds.user)?;
        pop3c::pass(&mut pass, creds.pass)?;
        steps.push(Step {
            line: user,
            then: Then::Nothing,
        });
        steps.push(Step {
            line: pass,
            then: Then::Nothing,
        });
    }
    Ok(steps)
}

/// Logs in over POP3: greeting, `USER`, `PASS`; or `AUTH PLAIN` with an initial
/// response when there is an authorization identity.
pub async fn pop3_login<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    creds: Credentials<'_>,
    client: Option<IpAddr>,
    timeout: Duration,
) -> Result<LoginReply, BackendError> {
    let steps = pop3_steps(&creds).map_err(protocol)?;
    tokio::time::timeout(timeout, async {
        let mut reader = Reader::new();
        let greeting = match reader.pop3(s).await {
            Ok(g) => g,
            Err(e) => return Err(reader.unparsed_greeting(e)),
        };
        if !pop3_view(&greeting)?.is_ok() {
            return Err(BackendError::Greeting(printable(&greeting)));
        }
        if let Some(ip) = client {
            let mut xclient = Vec::new();
            pop3c::xclient_addr(&mut xclient, ip);
            send(s, &xclient).await?;
            let line = reader.pop3(s).await?;
            if !pop3_view(&line)?.is_ok() {
                tracing::debug!(reply = %printable(&line), "backend did not take XCLIENT");
            }
        }
        let mut line = Vec::new();
        let mut challenge = None;
        for step in steps {
            send(s, &step.line).await?;
            line = reader.pop3(s).await?;
            let mut sent_message = step.then != Then::OAuth(true);
            let mut answered = false;
            while pop3_view(&line)?.indicator == pop3c::Indicator::Continuation {
                let mut next = Vec::new();
                match (step.then, creds.oauth) {
                    (Then::OAuth(_), Some(o)) if !sent_message => {
                        pop3c::sasl_response(&mut next, o.response.as_bytes()).map_err(protocol)?;
                        sent_message = true;
                    }
                    (Then::OAuth(_), Some(o)) if !answered => {
                        challenge = Some(pop3_view(&line)?.text.to_vec());
                        pop3c::sasl_response(&mut next, o.ack()).map_err(protocol)?;
                        answered = true;
                    }
                    (Then::Cancel, _) if !answered => {
                        pop3c::cancel_auth(&mut next);
                        answered = true;
                    }
                    _ => return Err(protocol("unexpected continuation request")),
                }
                send(s, &next).await?;
                line = reader.pop3(s).await?;
            }
            if !pop3_view(&line)?.is_ok() {
                break;
            }
        }
        let r = pop3_view(&line)?;
        let ok = r.is_ok();
        let temporary = !ok && r.code_is(b"SYS/TEMP");
        Ok(LoginReply {
            ok,
            lines: line,
            temporary,
            challenge: challenge.filter(|_| !ok),
        })
    })
    .await
    .map_err(|_| protocol("timeout"))?
}
