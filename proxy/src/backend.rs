//! The mailbox-server side: connect with a timeout, check the greeting (`* OK` / `+OK`;
//! PREAUTH, BYE or anything odd is refused), and replay the login (IMAP LOGIN with
//! literals under the client's own tag, POP3 USER/PASS). Every line read is bounded.

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

/// Logs in over IMAP: greeting, then `tag LOGIN` with the user name and password as
/// literals (LITERAL+ when the greeting advertises it, else waiting for each `+`).
pub async fn imap_login<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    tag: &[u8],
    user: &[u8],
    pass: &[u8],
    client: Option<IpAddr>,
    timeout: Duration,
) -> Result<LoginReply, BackendError> {
    tokio::time::timeout(timeout, async {
        let mut line = Vec::with_capacity(256);
        let mut lines = Lines::new();
        lines.next(s, &mut line).await?;
        if !line.starts_with(b"* OK") {
            return Err(BackendError::Greeting(printable(&line)));
        }
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
        let literal_plus = String::from_utf8_lossy(&line)
            .to_ascii_uppercase()
            .contains("LITERAL+");
        let plus = if literal_plus { "+" } else { "" };
        let mut out = Vec::with_capacity(64 + user.len() + pass.len());
        out.extend_from_slice(tag);
        out.extend_from_slice(format!(" LOGIN {{{}{plus}}}\r\n", user.len()).as_bytes());
        if literal_plus {
            out.extend_from_slice(user);
            out.extend_from_slice(format!(" {{{}+}}\r\n", pass.len()).as_bytes());
            out.extend_from_slice(pass);
            out.extend_from_slice(b"\r\n");
            s.write_all(&out)
                .await
                .map_err(|e| BackendError::Protocol(e.to_string()))?;
        } else {
            for (i, chunk) in [user, pass].iter().enumerate() {
                s.write_all(&out)
                    .await
                    .map_err(|e| BackendError::Protocol(e.to_string()))?;
                lines.next(s, &mut line).await?;
                if !line.starts_with(b"+") {
                    // A refusal of the literal: pass the backend's answer on.
                    return Ok(LoginReply {
                        ok: false,
                        lines: line.clone(),
                    });
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
                return Ok(LoginReply { ok, lines: all });
            }
            if line.starts_with(b"* BYE") {
                return Ok(LoginReply {
                    ok: false,
                    lines: out_lines,
                });
            }
            if out_lines.len() > MAX_LINE {
                return Err(BackendError::Protocol("too many untagged lines".into()));
            }
        }
    })
    .await
    .map_err(|_| BackendError::Protocol("timeout".into()))?
}

/// Logs in over POP3: greeting, `USER`, `PASS`.
pub async fn pop3_login<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    user: &[u8],
    pass: &[u8],
    client: Option<IpAddr>,
    timeout: Duration,
) -> Result<LoginReply, BackendError> {
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
        let mut out = b"USER ".to_vec();
        out.extend_from_slice(user);
        out.extend_from_slice(b"\r\n");
        s.write_all(&out)
            .await
            .map_err(|e| BackendError::Protocol(e.to_string()))?;
        lines.next(s, &mut line).await?;
        if !line.starts_with(b"+OK") {
            return Ok(LoginReply {
                ok: false,
                lines: line.clone(),
            });
        }
        out.clear();
        out.extend_from_slice(b"PASS ");
        out.extend_from_slice(pass);
        out.extend_from_slice(b"\r\n");
        s.write_all(&out)
            .await
            .map_err(|e| BackendError::Protocol(e.to_string()))?;
        lines.next(s, &mut line).await?;
        Ok(LoginReply {
            ok: line.starts_with(b"+OK"),
            lines: line.clone(),
        })
    })
    .await
    .map_err(|_| BackendError::Protocol("timeout".into()))?
}
