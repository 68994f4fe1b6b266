//! Copying bytes both ways after login, with backpressure (each direction writes what it
//! read before reading more) and an idle timeout shared by both directions, long enough
//! for IMAP IDLE.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes relayed in each direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Client → backend.
    pub up: u64,
    /// Backend → client.
    pub down: u64,
}

async fn pump<R, W>(
    mut from: R,
    mut to: W,
    last: Arc<AtomicU64>,
    started: Instant,
    idle: Duration,
) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    let tick = idle.min(Duration::from_secs(30));
    loop {
        match tokio::time::timeout(tick, from.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
                    break;
                }
                total += n as u64;
                last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                let quiet = started.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
                if quiet >= idle.as_millis() as u64 {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
    total
}

/// Relays until either side closes or both are silent for `idle`.
pub async fn relay<C, B>(client: C, backend: B, idle: Duration) -> Relayed
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, cw) = tokio::io::split(client);
    let (br, bw) = tokio::io::split(backend);
    let last = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let up = pump(cr, bw, last.clone(), started, idle);
    let down = pump(br, cw, last, started, idle);
    tokio::pin!(up, down);
    // When one direction ends, give the other a moment to flush what is in flight.
    let (up, down) = tokio::select! {
        u = &mut up => (u, tokio::time::timeout(Duration::from_secs(5), &mut down).await.unwrap_or(0)),
        d = &mut down => (tokio::time::timeout(Duration::from_secs(5), &mut up).await.unwrap_or(0), d),
    };
    Relayed { up, down }
}

/// Relays between two plain TCP streams without holding a copy buffer while the session
/// is idle: each direction waits for readability, then borrows a buffer only for the
/// bytes at hand. An idle relayed session costs its two sockets and this future's state.
pub async fn relay_tcp(
    client: tokio::net::TcpStream,
    backend: tokio::net::TcpStream,
    idle: Duration,
) -> Relayed {
    let (cr, cw) = client.into_split();
    let (br, bw) = backend.into_split();
    let last = AtomicU64::new(0);
    let started = Instant::now();
    let up = pump_tcp(cr, bw, &last, started, idle);
    let down = pump_tcp(br, cw, &last, started, idle);
    tokio::pin!(up, down);
    let (up, down) = tokio::select! {
        u = &mut up => (u, tokio::time::timeout(Duration::from_secs(5), &mut down).await.unwrap_or(0)),
        d = &mut down => (tokio::time::timeout(Duration::from_secs(5), &mut up).await.unwrap_or(0), d),
    };
    Relayed { up, down }
}

async fn pump_tcp(
    from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    last: &AtomicU64,
    started: Instant,
    idle: Duration,
) -> u64 {
    let mut total = 0u64;
    let tick = idle.min(Duration::from_secs(30));
    loop {
        match tokio::time::timeout(tick, from.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                let quiet = started.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
                if quiet >= idle.as_millis() as u64 {
                    break;
                }
                continue;
            }
        }
        // The buffer lives only while bytes move: it is kept for a burst and dropped
        // as soon as the socket has nothing more.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.try_read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown().await;
                    return total;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    let _ = to.shutdown().await;
                    return total;
                }
            };
            if to.write_all(&buf[..n]).await.is_err() {
                return total;
            }
            total += n as u64;
            last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
    // Half-close, so the other side sees the end at once.
    let _ = to.shutdown().await;
    total
}
