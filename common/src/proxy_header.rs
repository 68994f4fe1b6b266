//! Taking a PROXY protocol header (v1 or v2) off the start of a connection from a trusted
//! load balancer, and nothing more: the bytes after it (a TLS ClientHello, say) stay in the
//! socket for whoever reads next. Bounded in size and time.

use std::time::Duration;

use codec::proxy_protocol::{self, Header, ProxyError};
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Largest header taken (a v2 header with a few TLVs fits easily; HAProxy's v1 line is at
/// most 107 bytes).
pub const MAX_HEADER: usize = 1024;

/// Why there is no header.
#[derive(Debug, Error)]
pub enum HeaderError {
    /// Nothing, or not all of it, arrived in time.
    #[error("no PROXY header within {0:?}")]
    TimedOut(Duration),
    /// The peer closed first.
    #[error("the peer closed before its PROXY header was complete")]
    Closed,
    /// Not a PROXY header, a malformed one, or one over [`MAX_HEADER`].
    #[error("{0}")]
    Invalid(ProxyError),
    /// Reading failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the header at the start of `stream` within `timeout`.
pub async fn read(stream: &mut TcpStream, timeout: Duration) -> Result<Header, HeaderError> {
    match tokio::time::timeout(timeout, read_unbounded(stream)).await {
        Ok(r) => r,
        Err(_) => Err(HeaderError::TimedOut(timeout)),
    }
}

async fn read_unbounded(stream: &mut TcpStream) -> Result<Header, HeaderError> {
    let mut buf = vec![0u8; MAX_HEADER];
    let mut seen = 0;
    loop {
        // Peeking leaves whatever follows the header in the socket.
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(HeaderError::Closed);
        }
        match proxy_protocol::parse(&buf[..n]) {
            Ok(header) => {
                let mut taken = vec![0u8; header.consumed];
                stream.read_exact(&mut taken).await?;
                return Ok(header);
            }
            Err(ProxyError::Incomplete) if n < MAX_HEADER => {
                if n == seen {
                    // The rest is on its way; peek would only return the same bytes.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen = n;
            }
            Err(ProxyError::Incomplete) => {
                return Err(HeaderError::Invalid(ProxyError::Invalid(
                    "header longer than the read bound",
                )))
            }
            Err(e) => return Err(HeaderError::Invalid(e)),
        }
    }
}
