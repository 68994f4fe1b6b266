//! The HTTP listener: nginx-lookup, the admin SOAP AuthRequest, `/healthz` and `/metrics`,
//! served by hyper's HTTP/1 server so that both nginx's one-shot HTTP/1.0 requests and our
//! proxy's HTTP/1.1 keep-alive connections work, with bounded header size and read time.

mod nginx_lookup;
mod soap;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use common::admin::{AdminSource, HealthFuture};
use common::listener::{ListenerConfig, ListenerStats};
use common::shutdown::{DrainGuard, ShutdownWatch};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::authenticate::Authenticator;
use crate::config::LookupPolicy;
use crate::directory::DirectoryCache;
use crate::metrics::LookupMetrics;
use crate::store::Store;
use crate::throttle::PerAddress;

pub use soap::SoapOutcome;

/// The path nginx's `auth_http` points at.
pub const LOOKUP_PATH: &str = "/service/extension/nginx-lookup";
/// The admin SOAP path (MTA auth).
pub const SOAP_PATH: &str = "/service/admin/soap/";

/// Largest request head (request line and headers) hyper buffers: room for an OAuth bearer
/// token of 16 KiB sent as Auth-Pass with every byte escaped (the proxy's bound, so that a
/// login it sends is never one this server cannot read).
const MAX_HEAD: usize = 64 * 1024;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The directory snapshot.
    pub directory: Arc<DirectoryCache>,
    /// Lookup behaviour.
    pub policy: LookupPolicy,
    /// Counters.
    pub metrics: Arc<LookupMetrics>,
    /// Bound on reading a request.
    pub http_timeout: Duration,
    /// Password checks and lockouts.
    pub auth: Authenticator,
    /// The per-address limit on admin SOAP requests.
    pub soap_throttle: PerAddress,
    /// The TLS certificates (their reloads and expiries are in /metrics).
    pub certs: Option<Arc<common::certs::CertStore>>,
}

struct Admin(Arc<AppState>);

impl AdminSource for Admin {
    fn health(&self) -> HealthFuture {
        let store = self.0.store.clone();
        Box::pin(async move {
            store
                .health()
                .await
                .map_err(|e| common::admin::Unhealthy(common::exit::chain(&e)))
        })
    }

    fn metrics(&self) -> String {
        self.0.metrics.render(
            self.0.store.pool_state(),
            self.0.auth.checks(),
            self.0.certs.as_deref(),
        )
    }
}

/// All routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(LOOKUP_PATH, get(nginx_lookup::handle))
        .route(SOAP_PATH, post(soap::handle))
        .route("/service/admin/soap", post(soap::handle))
        .with_state(state.clone())
        .merge(common::admin::router(Arc::new(Admin(state))))
}

/// How one HTTP listener serves.
#[derive(Clone)]
pub struct Serving {
    /// Most connections at once.
    pub max_connections: usize,
    /// Bound on reading a request's headers (and on the TLS handshake), and idle time
    /// between keep-alive requests.
    pub timeout: Duration,
    /// TLS (`--https-listen`), or plaintext.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves `router` on `listener` until shutdown; open connections finish their request.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    serving: Serving,
    shutdown: ShutdownWatch,
    drain: DrainGuard,
) {
    let stats = Arc::new(ListenerStats::default());
    let config = ListenerConfig {
        name: if serving.tls.is_some() {
            "https"
        } else {
            "http"
        },
        max_connections: serving.max_connections,
        // Plaintext would only garble a TLS client's handshake: it is just closed.
        reject_message: if serving.tls.is_some() {
            b""
        } else {
            b"HTTP/1.0 503 Service Unavailable\r\nAuth-Status: Temporary authentication failure\r\nContent-Length: 0\r\n\r\n"
        },
    };
    let conn_shutdown = shutdown.clone();
    common::listener::serve(
        listener,
        config,
        stats,
        shutdown,
        drain,
        move |stream, peer| {
            // The client's address, for handlers that limit per address.
            let router = router.clone();
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    tower_service::Service::call(&mut router.clone(), req)
                },
            );
            let shutdown = conn_shutdown.clone();
            let (tls, timeout) = (serving.tls.clone(), serving.timeout);
            async move {
                match tls {
                    None => connection(stream, service, timeout, shutdown).await,
                    Some(tls) => match tokio::time::timeout(timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, service, timeout, shutdown).await,
                        // The client learns why from its own side; per connection this is
                        // noise in our log.
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    },
                }
            }
        },
    )
    .await;
}

/// One HTTP/1 connection until it ends or shutdown (then the request in flight finishes).
async fn connection<S, Svc>(stream: S, service: Svc, timeout: Duration, shutdown: ShutdownWatch)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %common::exit::chain(&e), "http connection ended with an error");
            }
        }
        _ = shutdown.triggered() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(timeout, conn).await;
        }
    }
}
