//! The client side of memcached's ASCII authentication (cache-node's `--auth-file`,
//! memcached's `-Y`) for every program that talks to cache nodes with
//! `--memcached-auth-file` (the proxy's route cache, route-lookup's purge): on a fresh
//! connection the authenticating `set` goes before any other command, and only `STORED`
//! lets the connection be used. The encoding and the meaning of the answer are
//! [`codec::memcache`]'s; this is the one round trip.

use codec::memcache::{auth_reply, parse_response, AuthReply, Credentials, ResponseError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest answer read to the authenticating set: one status line.
const MAX_ANSWER: usize = 1024;

/// Why a cache node did not accept a connection's credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The node checked them and refused (`CLIENT_ERROR authentication failure`).
    #[error(
        "authentication refused: wrong credentials (--memcached-auth-file does not match an \
         entry of the node's --auth-file)"
    )]
    WrongCredentials,
    /// The node answered something that is no memcached authentication answer.
    #[error("authentication failed: the node answered {0}")]
    Unexpected(String),
    /// The node did not answer: the connection closed or failed. (Silence is the caller's
    /// timeout.)
    #[error("authentication failed: the node did not answer")]
    NotAnswering(#[source] std::io::Error),
}

/// Sends the authenticating set on `stream` and requires `STORED`. The caller bounds it in
/// time.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    credentials: &Credentials,
) -> Result<(), AuthError> {
    let mut request = Vec::with_capacity(64);
    credentials.encode_request(&mut request);
    stream
        .write_all(&request)
        .await
        .map_err(AuthError::NotAnswering)?;
    let mut buf = Vec::with_capacity(64);
    loop {
        match parse_response(&buf) {
            Ok((response, _)) => {
                return match auth_reply(&response) {
                    AuthReply::Accepted => Ok(()),
                    AuthReply::WrongCredentials => Err(AuthError::WrongCredentials),
                    AuthReply::Other => Err(AuthError::Unexpected(quote(&buf))),
                };
            }
            Err(ResponseError::Incomplete) if buf.len() <= MAX_ANSWER => {
                let n = stream
                    .read_buf(&mut buf)
                    .await
                    .map_err(AuthError::NotAnswering)?;
                if n == 0 {
                    return Err(AuthError::NotAnswering(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    )));
                }
            }
            Err(_) => return Err(AuthError::Unexpected(quote(&buf))),
        }
    }
}

/// The start of an answer, printable, for the log.
fn quote(answer: &[u8]) -> String {
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    format!(
        "{:?}",
        line[..line.len().min(80)].escape_ascii().to_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays `answer` as the node and returns what the client made of it, and what it sent.
    async fn against(answer: &'static [u8]) -> (Result<(), AuthError>, Vec<u8>) {
        let (mut client, mut node) = tokio::io::duplex(4096);
        let credentials = Credentials::new(b"proxy", b"s3cret").unwrap();
        let peer = tokio::spawn(async move {
            let mut got = vec![0u8; 64];
            let n = node.read(&mut got).await.unwrap();
            got.truncate(n);
            node.write_all(answer).await.unwrap();
            got
        });
        let result = authenticate(&mut client, &credentials).await;
        (result, peer.await.unwrap())
    }

    #[tokio::test]
    async fn only_stored_authenticates() {
        let (ok, sent) = against(b"STORED\r\n").await;
        assert!(ok.is_ok());
        assert_eq!(sent, b"set auth 0 -1 12\r\nproxy s3cret\r\n");
        let (wrong, _) = against(b"CLIENT_ERROR authentication failure\r\n").await;
        assert!(matches!(wrong, Err(AuthError::WrongCredentials)));
        let (other, _) = against(b"SERVER_ERROR out of memory\r\n").await;
        assert_eq!(
            other.unwrap_err().to_string(),
            "authentication failed: the node answered \"SERVER_ERROR out of memory\""
        );
        let (closed, _) = against(b"").await;
        assert!(matches!(closed, Err(AuthError::NotAnswering(_))));
    }
}
