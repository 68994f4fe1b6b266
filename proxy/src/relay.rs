//! Copying bytes both ways after login, with backpressure (each direction writes what it
//! read before reading more) and an idle timeout shared by both directions, long enough
//! for IMAP IDLE.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Bytes moved so far, each way, readable while the session runs (`GET /sessions`).
#[derive(Debug, Default)]
pub struct Meter {
    /// Client → backend.
    pub up: AtomicU64,
    /// Backend → client.
    pub down: AtomicU64,
}

/// Bytes relayed in each direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Client → backend.
    pub up: u64,
    /// Backend → client.
    pub down: u64,
    /// Of those, the bytes moved socket to socket with splice(2), never copied through
    /// the proxy's memory.
    pub spliced: u64,
}

/// A stream the relay can ask whether bytes are waiting, before it takes a buffer to
/// read them into.
pub trait ReadReady: AsyncRead + AsyncWrite + Unpin {
    /// Ready when a read may return something (or fail); Pending, with the waker
    /// registered, when the stream has nothing for now.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
}

impl ReadReady for tokio::net::TcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl ReadReady for crate::upstream::Upstream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self {
            crate::upstream::Upstream::Plain(s) => ReadReady::poll_read_ready(s, cx),
            crate::upstream::Upstream::Tls(s) => ReadReady::poll_read_ready(s.as_mut(), cx),
        }
    }
}

impl<T: ReadReady + ?Sized> ReadReady for &mut T {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        (**self).poll_read_ready(cx)
    }
}

impl<T: ReadReady + ?Sized> ReadReady for Box<T> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        (**self).poll_read_ready(cx)
    }
}

/// Copy buffers relayed sessions hold now (for /metrics; an idle session holds none).
pub static BUFFERS_HELD: AtomicU64 = AtomicU64::new(0);

/// A relay's copy buffer, counted in [`BUFFERS_HELD`] while it exists.
struct RelayBuf(Vec<u8>);

impl RelayBuf {
    fn new() -> Self {
        BUFFERS_HELD.fetch_add(1, Ordering::Relaxed);
        Self(Vec::with_capacity(RELAY_BUFFER))
    }
}

impl Drop for RelayBuf {
    fn drop(&mut self) {
        BUFFERS_HELD.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What both relays' directions share: reads what `from` has into `buf`, taking the
/// buffer only once bytes are waiting and giving it back when `from` has nothing more (a
/// readiness without a whole TLS record, say), so an idle direction holds none.
/// `Ready(Ok(0))` is the end of the stream.
fn read_some<R: ReadReady>(
    buf: &mut Option<RelayBuf>,
    from: &mut R,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    if buf.is_none() {
        std::task::ready!(from.poll_read_ready(cx))?;
    }
    let b = &mut buf.get_or_insert_with(RelayBuf::new).0;
    b.clear();
    // Through the stream's own poll_read rather than try_read: a read that does not fill
    // the buffer has drained the socket, and poll_read then waits for the next readiness
    // instead of trying again (a recv that would only say EAGAIN, once per message).
    let read = std::pin::pin!(from.read_buf(b)).poll(cx);
    if read.is_pending() {
        *buf = None;
    }
    read
}

/// What both relays share: polls the two directions (`step` says whether each is done and
/// moves `last`, the time since `started` of the last byte) until both are done, both
/// have been silent for `idle`, or the other has had 5 s to flush after one ended. One
/// timer serves the idle check and the grace.
async fn drive(
    idle: Duration,
    mut step: impl FnMut(&mut Context<'_>, &mut Duration, Instant) -> (bool, bool),
) {
    let started = Instant::now();
    let tick = idle.min(Duration::from_secs(30));
    let mut last = Duration::ZERO;
    let mut timer = std::pin::pin!(tokio::time::sleep(tick));
    let mut closing = false;
    std::future::poll_fn(|cx| {
        let (up_done, down_done) = step(cx, &mut last, started);
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
}

/// Relays between any two streams (TLS on either side) until either side closes or both
/// are silent for `idle`, counting into `meter`. Like [`relay_tcp`], a direction takes a
/// buffer only when its source has bytes waiting and gives it back once the source has no
/// more for now, so an idle session holds only its streams' own state (rustls keeps a few
/// KiB per connection). The streams are borrowed, so a caller that stops the relay early
/// (a kick) can still write its last words to the client.
pub async fn relay<C, B>(client: &mut C, backend: &mut B, idle: Duration, meter: &Meter) -> Relayed
where
    C: ReadReady,
    B: ReadReady,
{
    let mut up = Stream::default();
    let mut down = Stream::default();
    drive(idle, |cx, last, started| {
        let up_done = up.poll(cx, &mut *client, &mut *backend, last, started, &meter.up);
        let down_done = down.poll(cx, &mut *backend, &mut *client, last, started, &meter.down);
        (up_done, down_done)
    })
    .await;
    Relayed {
        up: up.total,
        down: down.total,
        spliced: 0,
    }
}

/// One direction of [`relay`].
#[derive(Default)]
struct Stream {
    /// Present only while bytes move.
    buf: Option<RelayBuf>,
    /// Bytes read but not yet written: `buf[start..end]`.
    start: usize,
    end: usize,
    /// Everything was written: flush it through (TLS keeps records until flushed).
    flushing: bool,
    total: u64,
    eof: bool,
    done: bool,
}

impl Stream {
    /// Moves what it can; true once this direction is finished.
    fn poll<R: ReadReady, W: ReadReady>(
        &mut self,
        cx: &mut Context<'_>,
        mut from: R,
        mut to: W,
        last: &mut Duration,
        started: Instant,
        meter: &AtomicU64,
    ) -> bool {
        let mut reads = 0;
        while !self.done {
            if self.start < self.end {
                let buf = self
                    .buf
                    .as_ref()
                    .map(|b| &b.0[self.start..self.end])
                    .unwrap_or_default();
                match Pin::new(&mut to).poll_write(cx, buf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.done = true,
                    Poll::Ready(Ok(n)) => {
                        self.start += n;
                        self.flushing = true;
                    }
                    Poll::Pending => return false,
                }
                continue;
            }
            if self.flushing {
                match Pin::new(&mut to).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.flushing = false,
                    Poll::Ready(Err(_)) => self.done = true,
                    Poll::Pending => return false,
                }
                continue;
            }
            if self.eof {
                // Half-close (TLS: close_notify), so the other side sees the end at once.
                if Pin::new(&mut to).poll_shutdown(cx).is_pending() {
                    return false;
                }
                self.done = true;
                break;
            }
            if reads == READS_PER_POLL {
                cx.waker().wake_by_ref();
                return false;
            }
            reads += 1;
            match read_some(&mut self.buf, &mut from, cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.eof = true,
                Poll::Ready(Ok(n)) => {
                    (self.start, self.end) = (0, n);
                    self.total += n as u64;
                    meter.fetch_add(n as u64, Ordering::Relaxed);
                    *last = started.elapsed();
                }
                Poll::Pending => return false,
            }
        }
        self.buf = None;
        true
    }
}

/// Relays between two plain TCP streams without holding a copy buffer while the session
/// is idle. It is one hand-written poll loop rather than two copy futures: each direction
/// waits on its socket's readiness (reads and writes of a socket keep separate wakers),
/// borrows a buffer only for the bytes at hand, and one timer serves both directions (the
/// idle check, then the grace for the second direction after the first ends). An idle
/// relayed session costs its two sockets and this future's few hundred bytes.
pub async fn relay_tcp(
    client: &mut tokio::net::TcpStream,
    backend: &mut tokio::net::TcpStream,
    idle: Duration,
    meter: &Meter,
) -> Relayed {
    let mut up = Direction::default();
    let mut down = Direction::default();
    drive(idle, |cx, last, started| {
        let up_done = up.poll(cx, client, backend, last, started, &meter.up);
        let down_done = down.poll(cx, backend, client, last, started, &meter.down);
        (up_done, down_done)
    })
    .await;
    Relayed {
        up: up.total,
        down: down.total,
        spliced: up.spliced + down.spliced,
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
    buf: Option<RelayBuf>,
    /// Bytes read but not yet written: `buf[start..end]`.
    start: usize,
    end: usize,
    /// Present only during a bulk transfer (a read filled the whole buffer): bytes then
    /// go through it with splice(2) until the source has nothing more for now.
    pipe: Option<crate::splice::Pipe>,
    /// Bytes in the pipe not yet written.
    in_pipe: usize,
    /// The last read filled the buffer: take a pipe for the next ones.
    bulk: bool,
    /// splice(2) failed for a reason other than the sockets': copy from now on.
    no_splice: bool,
    total: u64,
    spliced: u64,
    eof: bool,
    done: bool,
}

impl Direction {
    /// Moves what it can; true once this direction is finished.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut tokio::net::TcpStream,
        to: &mut tokio::net::TcpStream,
        last: &mut Duration,
        started: Instant,
        meter: &AtomicU64,
    ) -> bool {
        use tokio::io::Interest;
        let mut reads = 0;
        while !self.done {
            // What was read and not yet written: copied bytes in the buffer, or spliced
            // bytes in the pipe.
            let written = if self.start < self.end {
                let buf = self.buf.as_ref().map(|b| &b.0[..]).unwrap_or_default();
                Some(to.try_write(&buf[self.start..self.end]))
            } else if let Some(pipe) = self.pipe.as_ref().filter(|_| self.in_pipe > 0) {
                let to_ref = &*to;
                Some(to_ref.try_io(Interest::WRITABLE, || pipe.drain_into(to_ref, self.in_pipe)))
            } else {
                None
            };
            if let Some(written) = written {
                match written {
                    Ok(n) if self.start < self.end => self.start += n,
                    Ok(n) => self.in_pipe -= n,
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
            if self.bulk && self.pipe.is_none() && !self.no_splice {
                // A pipe that cannot be had (out of descriptors) only means copying.
                self.pipe = crate::splice::Pipe::take().ok();
                if self.pipe.is_some() {
                    self.buf = None;
                }
            }
            if let Some(pipe) = &self.pipe {
                reads += 1;
                let from_ref = &*from;
                match from_ref.try_io(Interest::READABLE, || pipe.fill_from(from_ref)) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.in_pipe = n;
                        self.total += n as u64;
                        meter.fetch_add(n as u64, Ordering::Relaxed);
                        self.spliced += n as u64;
                        *last = started.elapsed();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // The transfer paused: the (empty) pipe goes back to the pool and
                        // the next bytes start out copied.
                        if let Some(p) = self.pipe.take() {
                            p.give_back();
                        }
                        self.bulk = false;
                    }
                    Err(e) if crate::splice::unsupported(&e) => {
                        tracing::debug!(error = %e, "splice unavailable; copying");
                        self.pipe = None;
                        self.bulk = false;
                        self.no_splice = true;
                    }
                    Err(_) => self.eof = true,
                }
                continue;
            }
            reads += 1;
            match read_some(&mut self.buf, &mut *from, cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.eof = true,
                Poll::Ready(Ok(n)) => {
                    (self.start, self.end) = (0, n);
                    self.total += n as u64;
                    meter.fetch_add(n as u64, Ordering::Relaxed);
                    self.bulk = n >= RELAY_BUFFER;
                    *last = started.elapsed();
                }
                Poll::Pending => return false,
            }
        }
        self.buf = None;
        // A pipe still holding bytes (the destination failed) is closed, not pooled.
        if let Some(p) = self.pipe.take().filter(|_| self.in_pipe == 0) {
            p.give_back();
        }
        true
    }
}
