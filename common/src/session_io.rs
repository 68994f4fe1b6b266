//! The byte plumbing every line-protocol session shares (mailbox-stub's and the proxy's
//! IMAP and POP3): read more input into the session's buffer under a timeout and the
//! shutdown watch, and write the pending output under a timeout. What to say when the
//! read ends is the protocol's business; this only says why it ended.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::shutdown::ShutdownWatch;

/// Bytes reserved in the buffer before each read.
const READ_RESERVE: usize = 4096;

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// Bytes were appended to the buffer.
    Data,
    /// The peer closed the connection.
    Closed,
    /// Nothing arrived within the timeout.
    TimedOut,
    /// Shutdown began while waiting.
    ShuttingDown,
}

/// Reads what is available into the spare capacity of `buf` (no separate chunk buffer).
pub async fn fill<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    timeout: Duration,
    shutdown: &ShutdownWatch,
) -> io::Result<Filled> {
    buf.reserve(READ_RESERVE);
    tokio::select! {
        r = tokio::time::timeout(timeout, stream.read_buf(buf)) => match r {
            Ok(Ok(0)) => Ok(Filled::Closed),
            Ok(Ok(_)) => Ok(Filled::Data),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(Filled::TimedOut),
        },
        _ = shutdown.triggered() => Ok(Filled::ShuttingDown),
    }
}

/// Writes and flushes `out` within `timeout` (the error names `phase`), then empties it.
pub async fn flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    phase: &'static str,
    timeout: Duration,
) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    crate::timeout::with_timeout(phase, timeout, async {
        stream.write_all(out).await?;
        stream.flush().await
    })
    .await?;
    out.clear();
    Ok(())
}
