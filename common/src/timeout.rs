//! Timeouts that say which phase ran out, so a log line reads "tls handshake timed out
//! after 10s" instead of "deadline has elapsed".

use std::future::Future;
use std::io;
use std::time::Duration;

/// Runs `fut` for at most `limit`; on expiry returns an `io::ErrorKind::TimedOut` error
/// naming `phase`.
pub async fn with_timeout<T, F>(phase: &'static str, limit: Duration, fut: F) -> io::Result<T>
where
    F: Future<Output = io::Result<T>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{phase} timed out after {limit:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn names_the_phase() {
        let err = with_timeout("backend connect", Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "backend connect timed out after 5s");
    }
}
