//! Accepting connections: bind and log the real address, cap concurrent connections, back
//! off on accept errors instead of dying, give each connection its own span and drain guard.
//! Refusals at the limit are logged at most once per [`crate::log_limit::DEFAULT_INTERVAL`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::log_limit::LogLimit;
use crate::shutdown::{DrainGuard, ShutdownWatch};

/// Binds `addr` and logs the address actually bound (which differs for port 0).
pub async fn bind(name: &'static str, addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr} ({name}): {e}")))?;
    tracing::info!(listener = name, addr = %listener.local_addr()?, "listening");
    Ok(listener)
}

/// Binds `addr` with SO_REUSEPORT, so several processes can listen on it and the kernel
/// spreads new connections over them.
pub fn bind_shared(name: &'static str, addr: SocketAddr) -> io::Result<TcpListener> {
    let wrap =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {addr} ({name}): {e}"));
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(wrap)?;
    socket.set_reuseaddr(true).map_err(wrap)?;
    socket.set_reuseport(true).map_err(wrap)?;
    socket.bind(addr).map_err(wrap)?;
    let listener = socket.listen(1024).map_err(wrap)?;
    tracing::info!(listener = name, addr = %listener.local_addr()?, "listening (shared)");
    Ok(listener)
}

/// Connection counters of one listener, readable while it runs.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections accepted and handed to the handler.
    pub accepted: AtomicU64,
    /// Connections turned away at the connection limit.
    pub rejected: AtomicU64,
    /// Connections whose handler has finished.
    pub closed: AtomicU64,
}

impl ListenerStats {
    /// Connections open right now.
    pub fn active(&self) -> u64 {
        self.accepted
            .load(Ordering::Relaxed)
            .saturating_sub(self.closed.load(Ordering::Relaxed))
    }
}

/// How one listener behaves.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Name for logs and metrics (`memcached`, `imap`, …).
    pub name: &'static str,
    /// Most connections served at once; past it new ones get `reject_message` and close.
    pub max_connections: usize,
    /// Written to a connection refused at the limit, before it is closed.
    pub reject_message: &'static [u8],
}

/// Serves `listener` until `shutdown` fires: each accepted connection runs `handler` in
/// its own task with a span, a connection-limit permit and a drain guard.
pub async fn serve<H, F>(
    listener: TcpListener,
    config: ListenerConfig,
    stats: Arc<ListenerStats>,
    shutdown: ShutdownWatch,
    drain: DrainGuard,
    handler: H,
) where
    H: Fn(TcpStream, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let handler = Arc::new(handler);
    let mut backoff = Duration::from_millis(5);
    let mut next_id: u64 = 0;
    let refusals = LogLimit::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.triggered() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // EMFILE and friends: wait for connections to close rather than spin or exit.
                tracing::warn!(listener = config.name, error = %e, ?backoff, "accept failed");
                tokio::select! {
                    _ = shutdown.triggered() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            // A client hammering a full server would otherwise write one line per attempt.
            if let Some(refused) = refusals.hit() {
                tracing::warn!(
                    listener = config.name,
                    %peer,
                    max = config.max_connections,
                    refused_since_last_line = refused,
                    "connection limit reached"
                );
            }
            let message = config.reject_message;
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(message).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("conn", listener = config.name, %peer, id = next_id);
        let handler = handler.clone();
        let stats = stats.clone();
        let guard = drain.clone();
        tokio::spawn(
            async move {
                tracing::debug!("accepted");
                handler(stream, peer).await;
                tracing::debug!("closed");
                stats.closed.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                drop(guard);
            }
            .instrument(span),
        );
    }
    tracing::info!(listener = config.name, "stopped accepting");
}
