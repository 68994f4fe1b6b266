//! The gRPC listener: Provisioning, Directory and Registry, each behind the admin-token
//! interceptor.

mod auth;
mod directory;
mod provisioning;
mod registry;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use proto::v1::directory_server::DirectoryServer;
use proto::v1::provisioning_server::ProvisioningServer;
use proto::v1::registry_server::RegistryServer;
use proto::v1::Membership;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Status;

pub use auth::AdminCheck;
pub use directory::DirectoryService;
pub use provisioning::ProvisioningService;
pub use registry::{poll_membership, RegistryService, POLL_INTERVAL};

use crate::authenticate::Authenticator;
use crate::config::AdminAuth;
use crate::directory::DirectoryCache;
use crate::store::{Store, StoreError};

/// Maps a store error to the gRPC status an admin sees (the message names the problem;
/// database internals stay in the log).
pub(crate) fn status(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(detail) => {
            tracing::warn!(error = %common::exit::chain(&detail), "database unavailable");
            Status::unavailable("database unavailable")
        }
        e @ StoreError::NotFound { .. } => Status::not_found(echo(e.to_string())),
        e @ StoreError::Exists { .. } => Status::already_exists(echo(e.to_string())),
        StoreError::Invalid(m) => Status::invalid_argument(echo(m)),
    }
}

/// The most of a message (which may quote the caller's input) that goes back in
/// `grpc-message`: a 200 KB name must not come back whole in a header.
const MAX_ECHO: usize = 256;

/// `text` cut to [`MAX_ECHO`] bytes on a character boundary, marked with `…` when cut.
pub(crate) fn echo(mut text: String) -> String {
    if text.len() > MAX_ECHO {
        let mut cut = MAX_ECHO;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_input_is_bounded() {
        let long = format!("no such account: {}", "ü".repeat(100_000));
        let s = status(StoreError::Invalid(long));
        assert!(s.message().len() <= MAX_ECHO + '…'.len_utf8());
        assert!(s.message().ends_with('…'));
        let short = status(StoreError::NotFound {
            kind: "account",
            name: "a@b.c".into(),
        });
        assert_eq!(short.message(), "no such account: a@b.c");
    }
}

/// What the three services work on.
#[derive(Debug)]
pub struct Services {
    /// The database.
    pub store: Store,
    /// The directory snapshot.
    pub directory: Arc<DirectoryCache>,
    /// Password checks and lockouts.
    pub passwords: Authenticator,
    /// Default lease length.
    pub lease_ttl: u32,
    /// Membership snapshots for watchers.
    pub snapshots: watch::Receiver<Option<Membership>>,
    /// Account events for watchers.
    pub events: Arc<crate::account_events::AccountEvents>,
}

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the three services on `listener` (over TLS with `tls`) until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    services: Services,
    auth: &AdminAuth,
    shutdown: common::shutdown::ShutdownWatch,
) -> Result<(), tonic::transport::Error> {
    let Services {
        store,
        directory,
        passwords,
        lease_ttl,
        snapshots,
        events,
    } = services;
    let check = AdminCheck::new(auth);
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(ProvisioningServer::with_interceptor(
            ProvisioningService::new(store.clone(), directory.clone(), passwords.checks().clone()),
            check.clone(),
        ))
        .add_service(DirectoryServer::with_interceptor(
            DirectoryService::new(store.clone(), directory, passwords),
            check.clone(),
        ))
        .add_service(RegistryServer::with_interceptor(
            RegistryService::new(store, lease_ttl, snapshots, events),
            check,
        ));
    let stop = async move { shutdown.triggered().await };
    match tls {
        Some(config) => {
            let incoming = tls::incoming(listener, config, HANDSHAKE_TIMEOUT);
            router.serve_with_incoming_shutdown(incoming, stop).await
        }
        None => {
            // Our own listener (bound and logged by common::listener), so the builder's
            // tcp_nodelay does not apply: set it here, or small replies wait on delayed
            // ACKs.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, stop).await
        }
    }
}
