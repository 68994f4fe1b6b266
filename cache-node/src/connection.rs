//! One client connection: read whatever has arrived, execute every complete request in it
//! (pipelining), write all their replies with one write, repeat.
//!
//! Bounds: a command line is limited by the codec's [`Limits`]; a data block is limited by
//! the item size (a bigger one is skipped as it streams in, never buffered); a multi-get's
//! replies are written out whenever they pass [`OUTPUT_FLUSH`], so one request cannot make
//! the server buffer gigabytes; reads and writes time out after the idle timeout; buffers
//! grown by a burst are released once the connection is idle again.
//!
//! With `--auth-file` a connection first runs memcached's authentication dialogue
//! ([`crate::auth::dialogue`]) and nothing else until it has authenticated.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use codec::memcache::{parse_request, ParseError, Request};
use common::shutdown::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::auth::dialogue::{self, PreAuth, Step};
use crate::auth::Auth;
use crate::execute::{self, Next};
use crate::node::Node;

/// Replies buffered past this are written before executing more of a multi-get.
pub const OUTPUT_FLUSH: usize = 256 * 1024;
/// Starting size of the read buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers larger than this are released when the connection goes idle.
const KEEP_WHEN_IDLE: usize = 64 * 1024;

/// How a connection ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed or sent `quit`.
    ClientClosed,
    /// No bytes moved within the idle timeout.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
    /// A line longer than the limits allow.
    LineTooLong,
    /// A binary-protocol request.
    BinaryProtocol,
    /// An HTTP request line: another protocol's request sent here (a browser's
    /// cross-protocol POST, an SSRF), closed before anything after it runs.
    CrossProtocol,
    /// A socket error.
    Io,
}

/// Serves one client until it leaves, misbehaves past recovery, or shutdown begins.
pub async fn serve<S>(mut stream: S, node: &Node, shutdown: &ShutdownWatch) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut swallow = 0usize;
    // Length of a partial command line already scanned for its newline: re-parsing it on
    // every read would make a long get line trickling in cost quadratic time.
    let mut scanned = 0usize;
    let idle = node.idle_timeout;
    // With --auth-file, nothing but the authentication dialogue until it succeeds.
    let mut pre_auth = node.auth.as_deref().map(|auth| (PreAuth::default(), auth));
    loop {
        if buf.is_empty() {
            if buf.capacity() > KEEP_WHEN_IDLE {
                buf = BytesMut::with_capacity(READ_CHUNK);
            }
            if out.capacity() > KEEP_WHEN_IDLE {
                out = Vec::with_capacity(READ_CHUNK);
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            r = timed(idle, stream.read_buf(&mut buf)) => r,
            _ = shutdown.triggered() => return Ended::Shutdown,
        };
        let n = match read {
            Some(Ok(0)) => return Ended::ClientClosed,
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "read failed");
                return Ended::Io;
            }
            None => return Ended::IdleTimeout,
        };
        node.server
            .bytes_read
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some((pre, auth)) = pre_auth.as_mut() {
            let gate = authenticate(pre, auth, &mut buf, &mut out, node);
            if !out.is_empty() && !flush(&mut stream, &mut out, node).await {
                return Ended::Io;
            }
            match gate {
                Gate::Waiting => continue,
                // What follows the authenticating set in this read runs below.
                Gate::Passed => pre_auth = None,
                Gate::Closed(ended) => {
                    let _ = timed(idle, stream.shutdown()).await;
                    return ended;
                }
            }
        }
        if scanned > 0 && memchr::memchr(b'\n', &buf[scanned..]).is_none() {
            let limits = &node.limits;
            // Below the short limit nothing can be decided yet; past it the parser has
            // already accepted the line as a multi-get, so only the long limit matters.
            let undecided = buf.len() < limits.max_line
                || (scanned >= limits.max_line && buf.len() < limits.max_get_line);
            if undecided {
                scanned = buf.len();
                continue;
            }
        }
        scanned = 0;

        let now = node.server.clock.now();
        let mut ended = None;
        loop {
            if swallow > 0 {
                let skip = swallow.min(buf.len());
                buf.advance(skip);
                swallow -= skip;
                if swallow > 0 {
                    break;
                }
            }
            match parse_request(&buf, &node.limits) {
                Ok(parsed) => {
                    let (consumed, skip) = (parsed.consumed, parsed.swallow);
                    let next = match &parsed.request {
                        // Multi-gets (and multi-gats) are executed key by key so their
                        // replies can be written out as they accumulate.
                        Request::Get { keys, with_cas }
                        | Request::GetAndTouch { keys, with_cas, .. } => {
                            let touch = match &parsed.request {
                                Request::GetAndTouch { exptime, .. } => Some(*exptime),
                                _ => None,
                            };
                            for key in keys.iter() {
                                execute::write_value(
                                    &node.store,
                                    key,
                                    now,
                                    touch,
                                    *with_cas,
                                    &mut out,
                                );
                                if out.len() >= OUTPUT_FLUSH
                                    && !flush(&mut stream, &mut out, node).await
                                {
                                    return Ended::Io;
                                }
                            }
                            out.extend_from_slice(b"END\r\n");
                            Next::Continue
                        }
                        req => execute::execute(req, &node.store, &node.server, now, &mut out),
                    };
                    buf.advance(consumed);
                    swallow = skip;
                    if next == Next::Close {
                        ended = Some(Ended::ClientClosed);
                        break;
                    }
                }
                Err(ParseError::Incomplete { needed }) => {
                    match needed {
                        Some(needed) => buf.reserve(needed.saturating_sub(buf.len())),
                        None => scanned = buf.len(),
                    }
                    break;
                }
                Err(ParseError::Invalid {
                    reply,
                    consumed,
                    swallow: skip,
                    noreply,
                }) => {
                    if is_http_request_line(&buf[..consumed.min(buf.len())]) {
                        // memcached's own defence: close at once, run nothing that follows
                        // (an HTTP body could carry memcached commands).
                        node.server.cross_protocol.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("HTTP request line; closing");
                        ended = Some(Ended::CrossProtocol);
                        break;
                    }
                    if !noreply {
                        let line = &buf[..consumed.min(buf.len())];
                        if execute::flush_refused_instead(&node.server, line, reply) {
                            out.extend_from_slice(execute::FLUSH_REFUSED);
                        } else {
                            out.extend_from_slice(reply.as_bytes());
                            out.extend_from_slice(b"\r\n");
                        }
                    }
                    buf.advance(consumed);
                    swallow = skip;
                }
                Err(ParseError::LineTooLong) => {
                    node.server.line_too_long.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(limit = node.limits.max_line, "line too long; closing");
                    out.extend_from_slice(b"CLIENT_ERROR line too long\r\n");
                    ended = Some(Ended::LineTooLong);
                    break;
                }
                Err(ParseError::Binary) => {
                    node.server.binary_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "binary protocol request refused; closing (text and meta protocols only)"
                    );
                    binary_refusal(&buf, &mut out);
                    ended = Some(Ended::BinaryProtocol);
                    break;
                }
            }
            if out.len() >= OUTPUT_FLUSH && !flush(&mut stream, &mut out, node).await {
                return Ended::Io;
            }
        }
        if !out.is_empty() && !flush(&mut stream, &mut out, node).await {
            return Ended::Io;
        }
        if let Some(ended) = ended {
            let _ = timed(idle, stream.shutdown()).await;
            return ended;
        }
    }
}

/// Whether `line` is an HTTP request line (`METHOD TARGET HTTP/x.y`): its last token starts
/// with `HTTP/`, the test memcached 1.6 applies.
pub(crate) fn is_http_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.split(|&b| b == b' ')
        .rfind(|t| !t.is_empty())
        .is_some_and(|t| t.starts_with(b"HTTP/"))
        && line.contains(&b' ')
}

/// Where a connection stands after the authentication dialogue ran over what it sent.
enum Gate {
    /// Not authenticated yet; read more.
    Waiting,
    /// Authenticated: every command is served from now on.
    Passed,
    /// To be closed.
    Closed(Ended),
}

/// Runs the pre-authentication dialogue over the buffered bytes, replies into `out`.
fn authenticate(
    pre: &mut PreAuth,
    auth: &Auth,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    node: &Node,
) -> Gate {
    loop {
        match pre.step(buf) {
            Step::More => return Gate::Waiting,
            Step::Reply { consumed, reply } => {
                out.extend_from_slice(reply);
                buf.advance(consumed);
            }
            Step::Attempt {
                consumed,
                user,
                password,
            } => {
                let accepted = auth.check(user, password);
                buf.advance(consumed);
                node.server.auth_cmds.fetch_add(1, Ordering::Relaxed);
                if accepted {
                    out.extend_from_slice(dialogue::STORED);
                    return Gate::Passed;
                }
                node.server.auth_errors.fetch_add(1, Ordering::Relaxed);
                // Neither the user nor the password is logged: either may be a secret
                // typed into the wrong field.
                if let Some(failures) = node.auth_failures.hit() {
                    tracing::warn!(
                        failures_since_last_line = failures,
                        "cache authentication failed"
                    );
                }
                out.extend_from_slice(dialogue::FAILURE);
            }
            Step::Close => {
                node.server.line_too_long.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("unauthenticated junk (a long line or data block); closing");
                return Gate::Closed(Ended::LineTooLong);
            }
            Step::CrossProtocol => {
                node.server.cross_protocol.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("HTTP request line before authentication; closing");
                return Gate::Closed(Ended::CrossProtocol);
            }
        }
    }
}

/// Writes and clears `out`; false when the client is gone or stopped reading.
async fn flush<S: AsyncWrite + Unpin>(stream: &mut S, out: &mut Vec<u8>, node: &Node) -> bool {
    match timed(node.idle_timeout, stream.write_all(out)).await {
        Some(Ok(())) => {
            node.server
                .bytes_written
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            out.clear();
            true
        }
        Some(Err(e)) => {
            tracing::debug!(error = %e, "write failed");
            false
        }
        None => {
            tracing::info!("client stopped reading within the idle timeout; closing");
            false
        }
    }
}

/// Runs `fut` under the idle timeout (none when it is zero); `None` on expiry.
async fn timed<F: std::future::Future>(limit: Duration, fut: F) -> Option<F::Output> {
    if limit.is_zero() {
        Some(fut.await)
    } else {
        tokio::time::timeout(limit, fut).await.ok()
    }
}

/// A binary-protocol "unknown command" response, so a binary client fails at once with
/// a clear status instead of waiting for a reply that never comes.
fn binary_refusal(request: &[u8], out: &mut Vec<u8>) {
    const BODY: &[u8] = b"binary protocol not supported; use the text or meta protocol";
    let opcode = request.get(1).copied().unwrap_or(0);
    let opaque = request.get(12..16).unwrap_or(&[0; 4]);
    out.extend_from_slice(&[0x81, opcode, 0, 0, 0, 0, 0x00, 0x81]);
    out.extend_from_slice(&(BODY.len() as u32).to_be_bytes());
    out.extend_from_slice(opaque);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(BODY);
}
