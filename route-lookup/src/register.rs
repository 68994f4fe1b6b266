//! Self-registration: a running route-lookup puts its own lookup URL in the registry under
//! a lease (kept alive every third of it, dropped at shutdown), so `zmprov garpu` and the
//! proxies' watch list the instances that are actually up.

use std::time::Duration;

use common::shutdown::ShutdownWatch;

use crate::store::{LeaseKind, Store, StoreError};

/// The registered URL for an HTTP listener reachable at `advertise` (HOST:PORT) with
/// `scheme` (`http`, or `https` for the TLS listener).
pub fn lookup_url(scheme: &str, advertise: &str) -> String {
    format!("{scheme}://{advertise}/service/extension/nginx-lookup")
}

/// Keeps `url` registered until `shutdown`, then deregisters it.
pub async fn run(store: Store, url: String, ttl_seconds: u32, shutdown: ShutdownWatch) {
    let ttl = Duration::from_secs(u64::from(ttl_seconds.max(3)));
    let mut lease: Option<String> = None;
    loop {
        let wait = match &lease {
            None => match store
                .register(LeaseKind::RouteLookup, &url, ttl_seconds)
                .await
            {
                Ok(id) => {
                    tracing::info!(%url, "registered");
                    lease = Some(id);
                    ttl / 3
                }
                Err(e) => {
                    tracing::warn!(error = %common::exit::chain(&e), "self-registration failed; retrying");
                    Duration::from_secs(1)
                }
            },
            Some(id) => match store.heartbeat(id).await {
                Ok(_) => ttl / 3,
                Err(StoreError::NotFound { .. }) => {
                    // Expired while the database was away: register again at once.
                    lease = None;
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(error = %common::exit::chain(&e), "registration heartbeat failed; retrying");
                    Duration::from_secs(1)
                }
            },
        };
        tokio::select! {
            _ = shutdown.triggered() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(id) = lease {
        if let Err(e) = store.deregister(&id).await {
            tracing::warn!(error = %common::exit::chain(&e), "deregistration failed; the lease will expire");
        }
    }
}
