//! One driver for every line-protocol session (the proxy's and mailbox-stub's IMAP and
//! POP3): read into the session buffer under the read timeout, the session deadline and the
//! shutdown watch; take commands off the front with the protocol's [`Dialect`]; answer
//! malformed ones; count bad commands and failed logins against one cap; flush the output
//! under a write timeout; say the protocol's last words when the driver closes.
//!
//! What a command means is the session's business: [`LineSession::drive`] hands each one
//! to a [`Dispatch`] and stops on its [`Step`].

pub mod imap;
pub mod pop3;
#[cfg(test)]
mod tests;

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::session_io::{self, Filled};
use crate::shutdown::ShutdownWatch;

/// What decoding the front of the buffer gave.
#[derive(Debug)]
pub enum Decoded<C> {
    /// A whole command, `consumed` bytes long.
    Command {
        /// The command, owned (the buffer is drained next).
        command: C,
        /// Its length in the buffer.
        consumed: usize,
    },
    /// Not a whole command yet.
    Incomplete,
    /// The client waits for a go-ahead (IMAP's `+` for a synchronizing literal): write the
    /// dialect's prompt, then read on.
    Prompt,
    /// Bytes to drop without a reply (the rest of a line already answered).
    Skip {
        /// Bytes to drop.
        consumed: usize,
    },
    /// A malformed command: answer it, drop `consumed` bytes, count it.
    Bad {
        /// The command's tag, when the protocol has tags and it had a usable one.
        tag: Option<Vec<u8>>,
        /// What was wrong, fit for the client.
        message: &'static str,
        /// Bytes to drop.
        consumed: usize,
    },
    /// The stream cannot be resynchronised: say `message` and close.
    Fatal {
        /// What was wrong.
        message: &'static str,
    },
}

/// Why the driver closes a session on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Farewell {
    /// Nothing arrived within the read timeout.
    TimedOut,
    /// The session's total deadline passed.
    Deadline,
    /// Shutdown began.
    ShuttingDown,
    /// Too many malformed commands.
    TooManyBad,
    /// Too many failed logins.
    TooManyFailures,
    /// The stream could not be resynchronised; the text comes from the decoder.
    Fatal(&'static str),
}

/// A protocol's framing and its stock replies.
pub trait Dialect {
    /// A command, owned.
    type Command;
    /// Takes the next command off the front of `buf`.
    fn decode(&mut self, buf: &[u8]) -> Decoded<Self::Command>;
    /// Writes the go-ahead for [`Decoded::Prompt`].
    fn prompt(&self, out: &mut Vec<u8>);
    /// Writes the answer to a malformed command.
    fn bad(&self, out: &mut Vec<u8>, tag: Option<&[u8]>, message: &str);
    /// Writes the last words before the driver closes.
    fn farewell(&self, out: &mut Vec<u8>, why: Farewell);
    /// Forgets all parser state (after STARTTLS).
    fn reset(&mut self);
}

/// What a dispatched command leads to.
#[derive(Debug)]
pub enum Step<D> {
    /// Read the next command.
    Continue,
    /// Flush and close.
    Close,
    /// Flush, discard everything buffered (it came in the clear) and upgrade to TLS.
    StartTls,
    /// Flush and hand the connection on.
    Done(D),
}

/// How [`LineSession::drive`] ended.
#[derive(Debug)]
pub enum Ended<D> {
    /// The connection is over (the peer closed, or the driver or the session closed it).
    Closed,
    /// Upgrade to TLS, then drive again without a greeting.
    StartTls,
    /// The session is handed on.
    Done(D),
}

/// Malformed commands and failed logins that a session answered on its own (deep in its
/// command handlers), handed to the driver's count after each command.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Malformed commands answered.
    pub bad: u32,
    /// Failed logins answered.
    pub failed: u32,
}

impl Tally {
    /// Has `io` count them (writing its last words at the cap); false when the session must
    /// close.
    pub fn settle<L: Dialect>(&mut self, io: &mut LineSession<L>) -> bool {
        let Tally { bad, failed } = std::mem::take(self);
        let mut go_on = true;
        for _ in 0..bad {
            go_on = go_on && io.count_bad();
        }
        for _ in 0..failed {
            go_on = go_on && io.failed_login();
        }
        go_on
    }
}

/// The session's side of the driver: what each command does.
// Only used with static dispatch: each concrete session's future is checked for `Send`
// where it is spawned.
#[allow(async_fn_in_trait)]
pub trait Dispatch<L: Dialect, S> {
    /// What [`Step::Done`] carries.
    type Done;
    /// Acts on one command, writing replies into `io.out()`.
    async fn dispatch(
        &mut self,
        command: L::Command,
        io: &mut LineSession<L>,
        stream: &mut S,
    ) -> io::Result<Step<Self::Done>>;
}

/// The driver's bounds.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Silence allowed between reads.
    pub read_timeout: Duration,
    /// A write must finish within this.
    pub write_timeout: Duration,
    /// When the session must be done (pre-auth: the login deadline), if ever.
    pub deadline: Option<Instant>,
    /// Malformed commands plus failed logins before the connection is closed.
    pub max_bad: u32,
    /// Longest line taken by [`LineSession::read_line`] (SASL answers).
    pub max_line: usize,
}

/// One connection's buffers, counters and bounds, around its [`Dialect`].
#[derive(Debug)]
pub struct LineSession<L> {
    dialect: L,
    buf: Vec<u8>,
    out: Vec<u8>,
    bad: u32,
    bounds: Bounds,
    shutdown: ShutdownWatch,
    /// Until the first bytes show otherwise, a PROXY protocol header here is refused.
    refuse_proxy_header: bool,
}

impl<L: Dialect> LineSession<L> {
    /// A session speaking `dialect` within `bounds`.
    pub fn new(dialect: L, bounds: Bounds, shutdown: ShutdownWatch) -> Self {
        Self {
            dialect,
            buf: Vec::new(),
            out: Vec::new(),
            bad: 0,
            bounds,
            shutdown,
            refuse_proxy_header: false,
        }
    }

    /// Refuses a connection that starts with a PROXY protocol header (v1 or v2): the peer
    /// is not one allowed to say where the client is, and a header it sends must not be
    /// taken for commands.
    pub fn refuse_proxy_header(&mut self) {
        self.refuse_proxy_header = true;
    }

    /// The pending output; replies are written here and sent at the next flush.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// The dialect (for protocol-specific settings).
    pub fn dialect(&self) -> &L {
        &self.dialect
    }

    /// Changes the bounds (after login, a session reads with its idle timeout and no
    /// deadline).
    pub fn set_bounds(&mut self, bounds: Bounds) {
        self.bounds = bounds;
    }

    /// The current bounds.
    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// Malformed commands and failed logins so far.
    pub fn strikes(&self) -> u32 {
        self.bad
    }

    /// Runs commands through `session` until the connection closes, asks for TLS or is
    /// handed on.
    pub async fn drive<S, D>(
        &mut self,
        stream: &mut S,
        session: &mut D,
    ) -> io::Result<Ended<D::Done>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        D: Dispatch<L, S>,
    {
        loop {
            let Some(command) = self.next_command(stream).await? else {
                return Ok(Ended::Closed);
            };
            let step = session.dispatch(command, self, stream).await?;
            self.flush(stream).await?;
            match step {
                Step::Continue => {}
                Step::Close => return Ok(Ended::Closed),
                Step::StartTls => {
                    // Bytes sent before the handshake are never executed (CVE-2011-0411).
                    self.buf.clear();
                    self.dialect.reset();
                    return Ok(Ended::StartTls);
                }
                Step::Done(d) => return Ok(Ended::Done(d)),
            }
        }
    }

    /// The next command, or `None` when the connection is over (the farewell, if any, has
    /// been sent).
    pub async fn next_command<S>(&mut self, stream: &mut S) -> io::Result<Option<L::Command>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            if self.refuse_proxy_header && !self.buf.is_empty() {
                match proxy_header_start(&self.buf) {
                    Some(true) => {
                        tracing::warn!("connection refused: PROXY protocol header from a peer not allowed to send one");
                        let why =
                            Farewell::Fatal("PROXY protocol header not accepted from this address");
                        self.dialect.farewell(&mut self.out, why);
                        self.flush(stream).await?;
                        return Ok(None);
                    }
                    Some(false) => self.refuse_proxy_header = false,
                    None => {
                        if !self.fill(stream).await? {
                            return Ok(None);
                        }
                        continue;
                    }
                }
            }
            match self.dialect.decode(&self.buf) {
                Decoded::Command { command, consumed } => {
                    self.buf.drain(..consumed.min(self.buf.len()));
                    return Ok(Some(command));
                }
                Decoded::Incomplete => {
                    if !self.fill(stream).await? {
                        return Ok(None);
                    }
                }
                Decoded::Prompt => {
                    self.dialect.prompt(&mut self.out);
                    self.flush(stream).await?;
                }
                Decoded::Skip { consumed } => {
                    self.buf.drain(..consumed.min(self.buf.len()));
                }
                Decoded::Bad {
                    tag,
                    message,
                    consumed,
                } => {
                    self.buf.drain(..consumed.min(self.buf.len()));
                    let go_on = self.bad_command(tag.as_deref(), message);
                    self.flush(stream).await?;
                    if !go_on {
                        return Ok(None);
                    }
                }
                Decoded::Fatal { message } => {
                    self.dialect
                        .farewell(&mut self.out, Farewell::Fatal(message));
                    self.flush(stream).await?;
                    return Ok(None);
                }
            }
        }
    }

    /// Answers a malformed command and counts it; false when that was one too many (the
    /// farewell is written: close after flushing).
    pub fn bad_command(&mut self, tag: Option<&[u8]>, message: &str) -> bool {
        self.dialect.bad(&mut self.out, tag, message);
        self.strike(Farewell::TooManyBad)
    }

    /// Counts a malformed command the session has already answered itself; false when
    /// that was one too many (the farewell is written: close after flushing).
    pub fn count_bad(&mut self) -> bool {
        self.strike(Farewell::TooManyBad)
    }

    /// Counts a failed login (its answer is the session's); false when that was one too
    /// many (the farewell is written: close after flushing).
    pub fn failed_login(&mut self) -> bool {
        self.strike(Farewell::TooManyFailures)
    }

    /// Writes the last words for `why` (when the session itself gives up, e.g. at its
    /// deadline); close after flushing.
    pub fn farewell(&mut self, why: Farewell) {
        self.dialect.farewell(&mut self.out, why);
    }

    fn strike(&mut self, why: Farewell) -> bool {
        self.bad += 1;
        if self.bad >= self.bounds.max_bad {
            self.dialect.farewell(&mut self.out, why);
            return false;
        }
        true
    }

    /// Flushes, then reads one line (a SASL answer) bounded by [`Bounds::max_line`]; a
    /// longer one is read to its end and dropped.
    pub async fn read_line<S>(&mut self, stream: &mut S) -> io::Result<Line>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.flush(stream).await?;
        self.next_line(stream).await
    }

    /// Flushes, then reads one bounded line as [`LineSession::read_line`] does, unless
    /// `until` resolves first (IMAP IDLE: a mailbox change); then its output comes back and
    /// whatever part of a line was read stays buffered for the next call.
    pub async fn read_line_until<S, F>(
        &mut self,
        stream: &mut S,
        until: F,
    ) -> io::Result<Result<Line, F::Output>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: std::future::Future,
    {
        self.flush(stream).await?;
        // Reading is cancel-safe: bytes are appended to the buffer as they come and only a
        // whole line is taken off it.
        tokio::select! {
            line = self.next_line(stream) => line.map(Ok),
            other = until => Ok(Err(other)),
        }
    }

    async fn next_line<S>(&mut self, stream: &mut S) -> io::Result<Line>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            if let Some(end) = memchr_newline(&self.buf) {
                if end > self.bounds.max_line {
                    self.buf.drain(..=end);
                    return Ok(Line::TooLong);
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Read(line));
            }
            if self.buf.len() > self.bounds.max_line {
                // Keep reading to the end of the line, but hold none of it.
                self.buf.clear();
                loop {
                    if !self.fill(stream).await? {
                        return Ok(Line::Closed);
                    }
                    if let Some(end) = memchr_newline(&self.buf) {
                        self.buf.drain(..=end);
                        return Ok(Line::TooLong);
                    }
                    self.buf.clear();
                }
            }
            if !self.fill(stream).await? {
                return Ok(Line::Closed);
            }
        }
    }

    /// Bytes that arrived before the session started (after a PROXY header): they are
    /// read before anything from the stream.
    pub fn prefill(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Hands over what the client sent after the command that ended the dialogue (pipelined
    /// after its login), leaving the buffer empty.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Writes the pending output.
    pub async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> io::Result<()> {
        session_io::flush(
            stream,
            &mut self.out,
            "session write",
            self.bounds.write_timeout,
        )
        .await
    }

    /// Reads more input; false when the connection is over (after the farewell, if one is
    /// due).
    async fn fill<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> io::Result<bool> {
        let mut timeout = self.bounds.read_timeout;
        let mut deadline_first = false;
        if let Some(deadline) = self.bounds.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < timeout {
                timeout = left;
                deadline_first = true;
            }
        }
        let why = match session_io::fill(stream, &mut self.buf, timeout, &self.shutdown).await? {
            Filled::Data => return Ok(true),
            Filled::Closed => return Ok(false),
            Filled::TimedOut if deadline_first => Farewell::Deadline,
            Filled::TimedOut => Farewell::TimedOut,
            Filled::ShuttingDown => Farewell::ShuttingDown,
        };
        self.dialect.farewell(&mut self.out, why);
        self.flush(stream).await?;
        Ok(false)
    }
}

/// What [`LineSession::read_line`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line, without its CRLF.
    Read(Vec<u8>),
    /// A line longer than [`Bounds::max_line`], dropped.
    TooLong,
    /// The connection is over.
    Closed,
}

/// Whether `buf` starts with a PROXY protocol signature: `Some(true)` yes, `Some(false)`
/// no, `None` not enough bytes to tell.
fn proxy_header_start(buf: &[u8]) -> Option<bool> {
    let signatures: [&[u8]; 2] = [b"PROXY ", &codec::proxy_protocol::V2_SIGNATURE];
    let mut undecided = false;
    for sig in signatures {
        let n = buf.len().min(sig.len());
        if buf[..n] == sig[..n] {
            if n == sig.len() {
                return Some(true);
            }
            undecided = true;
        }
    }
    (!undecided).then_some(false)
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}
