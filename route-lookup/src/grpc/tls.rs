//! gRPC over TLS: the handshakes are done here and tonic serves HTTP/2 over the finished
//! connections. tonic's own TLS takes one fixed identity; doing it here lets every handshake
//! take the current certificate from the `common::certs` store that SIGHUP reloads.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Handshakes in progress at once; past it accepting waits, so a crowd of silent clients
/// cannot hold unbounded tasks.
const MAX_HANDSHAKES: usize = 256;

/// One accepted connection after its handshake.
pub(crate) struct TlsConn {
    inner: TlsStream<TcpStream>,
    info: TcpConnectInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Accepts on `listener` and yields the connections whose TLS handshake (bounded by
/// `timeout`) succeeded. Stops when the stream is dropped (the server shut down).
pub(crate) fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let failures = Arc::new(common::log_limit::LogLimit::new(
        common::log_limit::DEFAULT_INTERVAL,
    ));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, mostly: pause rather than spin.
                        tracing::warn!(error = %e, "grpc accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let info = TcpConnectInfo {
                local_addr: stream.local_addr().ok(),
                remote_addr: Some(peer),
            };
            let (acceptor, tx, failures) = (acceptor.clone(), tx.clone(), failures.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(timeout, acceptor.accept(stream)).await;
                drop(permit);
                match handshake {
                    Ok(Ok(inner)) => {
                        let _ = tx.send(Ok(TlsConn { inner, info })).await;
                    }
                    // A client that does not trust us, or a port scanner: the client sees
                    // why; here a line now and then says that it happens.
                    Ok(Err(e)) => {
                        if let Some(n) = failures.hit() {
                            tracing::info!(%peer, error = %e, since_last = n, "grpc TLS handshake failed");
                        }
                    }
                    Err(_) => {
                        if let Some(n) = failures.hit() {
                            tracing::info!(%peer, ?timeout, since_last = n, "grpc TLS handshake timed out");
                        }
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
