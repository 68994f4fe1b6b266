//! The mailbox-server side: connect with a timeout, check the greeting (`* OK` / `+OK`;
//! PREAUTH, BYE or anything odd is refused), and replay the login (IMAP LOGIN with
//! literals under the client's own tag, POP3 USER/PASS; SASL PLAIN when the client gave
//! an authorization identity, as Zimbra does). Every line read is bounded.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest backend line accepted during login.
const MAX_LINE: usize = 64 * 1024;

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
    /// An I/O error, a timeout or a protocol violation during login.
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

impl LoginReply {
    fn new(ok: bool, lines: Vec<u8>) -> Self {
        let temporary = !ok && temporary_refusal(&lines);
        Self {
            ok,
            lines,
            temporary,
        }
    }
}

/// Whether the last line carries a temporary-failure response code.
fn temporary_refusal(lines: &[u8]) -> bool {
    let last = lines
        .trim_ascii_end()
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    [&b"[UNAVAILABLE]"[..], b"[SYS/TEMP]"].iter().any(|code| {
        last.windows(code.len())
            .any(|w| w.eq_ignore_ascii_case(code))
    })
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

/// Reads the backend's lines in chunks (not a byte per system call), keeping what follows
/// the current line for the next one.
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(512),
        }
    }

    /// The next line (CRLF or LF terminated) into `line`, bounded.
    async fn next<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        line: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                line.clear();
                line.extend(self.buf.drain(..=i));
                return Ok(());
            }
            if self.buf.len() > MAX_LINE {
                return Err(BackendError::Protocol("line too long".into()));
            }
            self.buf.reserve(4096);
            let n = s
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| BackendError::Protocol(e.to_string()))?;
            if n == 0 {
                return Err(BackendError::Protocol("connection closed".into()));
            }
        }
    }

    /// Bytes read past the last line (the backend spoke first after its answer): they
    /// belong to the client.
    fn rest(self) -> Vec<u8> {
        self.buf
    }
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
    s.write_all(bytes)
        .await
        .map_err(|e| BackendError::Protocol(e.to_string()))
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
    let (user, pass) = (creds.user, creds.pass);
    tokio::time::timeout(timeout, async {
        let mut line = Vec::with_capacity(256);
        let mut lines = Lines::new();
        lines.next(s, &mut line).await?;
        if !line.starts_with(b"* OK") {
            return Err(BackendError::Greeting(printable(&line)));
        }
        // The greeting's capabilities decide how to send the login (the ID exchange
        // below reuses `line`).
        let caps = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let literal_plus = caps.contains("LITERAL+");
        let sasl_ir = caps.contains("SASL-IR");
        if let Some(ip) = client {
            // Dovecot's and Zimbra's forwarding field; a backend that does not trust us
            // ignores it, which is not a reason to fail the login.
            let id_tag = [tag, b".id"].concat();
            let mut id = id_tag.clone();
            id.extend_from_slice(
                format!(" ID (\"x-originating-ip\" \"{ip}\" \"X-ORIGINATING-IP\" \"{ip}\")\r\n")
                    .as_bytes(),
            );
            s.write_all(&id)
                .await
                .map_err(|e| BackendError::Protocol(e.to_string()))?;
            let mut prefix = id_tag;
            prefix.push(b' ');
            loop {
                lines.next(s, &mut line).await?;
                if line.starts_with(&prefix) {
                    break;
                }
            }
        }
        let plus = if literal_plus { "+" } else { "" };
        let mut out = Vec::with_capacity(64 + user.len() + pass.len());
        out.extend_from_slice(tag);
        if creds.authzid.is_some() {
            let response = creds.plain_response();
            if sasl_ir {
                out.extend_from_slice(format!(" AUTHENTICATE PLAIN {response}\r\n").as_bytes());
                send(s, &out).await?;
            } else {
                out.extend_from_slice(b" AUTHENTICATE PLAIN\r\n");
                send(s, &out).await?;
                lines.next(s, &mut line).await?;
                if !line.starts_with(b"+") {
                    return Ok(LoginReply::new(false, line.clone()));
                }
                send(s, format!("{response}\r\n").as_bytes()).await?;
            }
        } else if literal_plus {
            out.extend_from_slice(format!(" LOGIN {{{}{plus}}}\r\n", user.len()).as_bytes());
            out.extend_from_slice(user);
            out.extend_from_slice(format!(" {{{}+}}\r\n", pass.len()).as_bytes());
            out.extend_from_slice(pass);
            out.extend_from_slice(b"\r\n");
            s.write_all(&out)
                .await
                .map_err(|e| BackendError::Protocol(e.to_string()))?;
        } else {
            out.extend_from_slice(format!(" LOGIN {{{}}}\r\n", user.len()).as_bytes());
            for (i, chunk) in [user, pass].iter().enumerate() {
                s.write_all(&out)
                    .await
                    .map_err(|e| BackendError::Protocol(e.to_string()))?;
                lines.next(s, &mut line).await?;
                if !line.starts_with(b"+") {
                    // A refusal of the literal: pass the backend's answer on.
                    return Ok(LoginReply::new(false, line.clone()));
                }
                out.clear();
                out.extend_from_slice(chunk);
                if i == 0 {
                    out.extend_from_slice(format!(" {{{}}}\r\n", pass.len()).as_bytes());
                } else {
                    out.extend_from_slice(b"\r\n");
                }
            }
            s.write_all(&out)
                .await
                .map_err(|e| BackendError::Protocol(e.to_string()))?;
        }
        let mut out_lines = Vec::new();
        let mut prefix = tag.to_vec();
        prefix.push(b' ');
        loop {
            lines.next(s, &mut line).await?;
            out_lines.extend_from_slice(&line);
            if line.starts_with(&prefix) {
                let ok = line[prefix.len()..].starts_with(b"OK");
                let mut all = out_lines;
                all.extend_from_slice(&lines.rest());
                return Ok(LoginReply::new(ok, all));
            }
            if line.starts_with(b"* BYE") {
                return Ok(LoginReply::new(false, out_lines));
            }
            if out_lines.len() > MAX_LINE {
                return Err(BackendError::Protocol("too many untagged lines".into()));
            }
        }
    })
    .await
    .map_err(|_| BackendError::Protocol("timeout".into()))?
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
        return Err(BackendError::Protocol("line break in credentials".into()));
    }
    tokio::time::timeout(timeout, async {
        let mut line = Vec::with_capacity(256);
        let mut lines = Lines::new();
        lines.next(s, &mut line).await?;
        if !line.starts_with(b"+OK") {
            return Err(BackendError::Greeting(printable(&line)));
        }
        if let Some(ip) = client {
            s.write_all(format!("XCLIENT ADDR={ip}\r\n").as_bytes())
                .await
                .map_err(|e| BackendError::Protocol(e.to_string()))?;
            lines.next(s, &mut line).await?;
            if !line.starts_with(b"+OK") {
                tracing::debug!(reply = %printable(&line), "backend did not take XCLIENT");
            }
        }
        if creds.authzid.is_some() {
            send(
                s,
                format!("AUTH PLAIN {}\r\n", creds.plain_response()).as_bytes(),
            )
            .await?;
            lines.next(s, &mut line).await?;
            return Ok(LoginReply::new(line.starts_with(b"+OK"), line.clone()));
        }
        let mut out = b"USER ".to_vec();
        out.extend_from_slice(user);
        out.extend_from_slice(b"\r\n");
        s.write_all(&out)
            .await
            .map_err(|e| BackendError::Protocol(e.to_string()))?;
        lines.next(s, &mut line).await?;
        if !line.starts_with(b"+OK") {
            return Ok(LoginReply::new(false, line.clone()));
        }
        out.clear();
        out.extend_from_slice(b"PASS ");
        out.extend_from_slice(pass);
        out.extend_from_slice(b"\r\n");
        s.write_all(&out)
            .await
            .map_err(|e| BackendError::Protocol(e.to_string()))?;
        lines.next(s, &mut line).await?;
        Ok(LoginReply::new(line.starts_with(b"+OK"), line.clone()))
    })
    .await
    .map_err(|_| BackendError::Protocol("timeout".into()))?
}
