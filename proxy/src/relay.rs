//! Copying bytes both ways after login, with backpressure (each direction writes what it
//! read before reading more) and an idle timeout shared by both directions, long enough
//! for IMAP IDLE.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
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
/// is idle. It is one hand-written poll loop rather than two copy futures: each direction
/// waits on its socket's readiness (reads and writes of a socket keep separate wakers),
/// borrows a buffer only for the bytes at hand, and one timer serves both directions (the
/// idle check, then the grace for the second direction after the first ends). An idle
/// relayed session costs its two sockets and this future's few hundred bytes.
pub async fn relay_tcp(
    mut client: tokio::net::TcpStream,
    mut backend: tokio::net::TcpStream,
    idle: Duration,
) -> Relayed {
    let started = Instant::now();
    let tick = idle.min(Duration::from_secs(30));
    let mut last = Duration::ZERO;
    let mut up = Direction::default();
    let mut down = Direction::default();
    let mut timer = std::pin::pin!(tokio::time::sleep(tick));
    let mut closing = false;
    std::future::poll_fn(|cx| {
        let up_done = up.poll(cx, &client, &mut backend, &mut last, started);
        let down_done = down.poll(cx, &backend, &mut client, &mut last, started);
        if up_done && down_done {
            return Poll::Ready(());
        }
        if (up_done || down_done) && !closing {
            // One side is done: give the other a moment to flush what is in flight.
            closing = true;
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + Duration::from_secs(5));
        }
        while timer.as_mut().poll(cx).is_ready() {
            let quiet = started.elapsed().saturating_sub(last);
            if closing || quiet >= idle {
                return Poll::Ready(());
            }
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + (idle - quiet).min(tick));
        }
        Poll::Pending
    })
    .await;
    Relayed {
        up: up.total,
        down: down.total,
    }
}

/// How many reads one direction does per wakeup before yielding, so a busy session
/// cannot starve the others on its worker thread.
const READS_PER_POLL: usize = 16;

/// The copy buffer of a direction while bytes move; an idle session holds none. (256 KiB
/// measured no faster: above glibc's mmap threshold every burst maps and unmaps it.)
const RELAY_BUFFER: usize = 64 * 1024;

/// One direction of `relay_tcp`.
#[derive(Default)]
struct Direction {
    /// Present only while bytes move. Reads go into its spare capacity, so taking it
    /// costs an allocation but no zeroing.
    buf: Option<Vec<u8>>,
    /// Bytes read but not yet written: `buf[start..end]`.
    start: usize,
    end: usize,
    total: u64,
    eof: bool,
    done: bool,
}

impl Direction {
    /// Moves what it can; true once this direction is finished.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &tokio::net::TcpStream,
        to: &mut tokio::net::TcpStream,
        last: &mut Duration,
        started: Instant,
    ) -> bool {
        let mut reads = 0;
        while !self.done {
            if self.start < self.end {
                let buf = self.buf.as_deref().unwrap_or_default();
                match to.try_write(&buf[self.start..self.end]) {
                    Ok(n) => self.start += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        match to.poll_write_ready(cx) {
                            Poll::Ready(Ok(())) => {}
                            Poll::Ready(Err(_)) => self.done = true,
                            Poll::Pending => return false,
                        }
                    }
                    Err(_) => self.done = true,
                }
                continue;
            }
            if self.eof {
                // Half-close, so the other side sees the end at once.
                if Pin::new(&mut *to).poll_shutdown(cx).is_pending() {
                    return false;
                }
                self.done = true;
                break;
            }
            if reads == READS_PER_POLL {
                cx.waker().wake_by_ref();
                return false;
            }
            if self.buf.is_none() {
                match from.poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => {
                        self.eof = true;
                        continue;
                    }
                    Poll::Pending => return false,
                }
            }
            let buf = self
                .buf
                .get_or_insert_with(|| Vec::with_capacity(RELAY_BUFFER));
            buf.clear();
            reads += 1;
            match from.try_read_buf(buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    (self.start, self.end) = (0, n);
                    self.total += n as u64;
                    *last = started.elapsed();
                }
                // Nothing more for now: give the buffer back until the next bytes.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.buf = None,
                Err(_) => self.eof = true,
            }
        }
        self.buf = None;
        true
    }
}
