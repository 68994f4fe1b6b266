//! The admin HTTP endpoint of every service: `GET /healthz` (liveness: the process and
//! what it cannot work without), `GET /readyz` (readiness: it can do its job now, so a
//! load balancer or orchestrator should send it traffic) and `GET /metrics`.
//!
//! It binds loopback by default (the flags' defaults) because metrics name internal
//! addresses; operators who scrape from elsewhere opt in with the listen flag.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::shutdown::ShutdownWatch;

/// Why a service is not healthy, in words fit for the probe's answer body.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(pub String);

/// A health probe: `Ok` for healthy, `Err` with the reason otherwise.
pub type HealthFuture = Pin<Box<dyn Future<Output = Result<(), Unhealthy>> + Send>>;

/// What the admin endpoint reports on.
pub trait AdminSource: Send + Sync + 'static {
    /// Checks the service's health (its dependencies, for services that have them).
    fn health(&self) -> HealthFuture;
    /// Checks that the service can do its job now; by default, its health.
    fn ready(&self) -> HealthFuture {
        self.health()
    }
    /// Renders the Prometheus text page.
    fn metrics(&self) -> String;
}

/// The admin routes over `source`.
pub fn router(source: Arc<dyn AdminSource>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(source)
}

async fn healthz(State(source): State<Arc<dyn AdminSource>>) -> impl IntoResponse {
    match source.health().await {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        ),
    }
}

async fn readyz(State(source): State<Arc<dyn AdminSource>>) -> impl IntoResponse {
    match source.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics(State(source): State<Arc<dyn AdminSource>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        source.metrics(),
    )
}

/// Serves the admin routes and a service's own `extra` routes on `listener` until
/// `shutdown` fires.
pub async fn serve_with(
    listener: TcpListener,
    source: Arc<dyn AdminSource>,
    extra: Router,
    shutdown: ShutdownWatch,
) -> std::io::Result<()> {
    axum::serve(listener, router(source).merge(extra))
        .with_graceful_shutdown(async move { shutdown.triggered().await })
        .await
}

/// Serves the admin routes on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn AdminSource>,
    shutdown: ShutdownWatch,
) -> std::io::Result<()> {
    axum::serve(listener, router(source))
        .with_graceful_shutdown(async move { shutdown.triggered().await })
        .await
}
