//! The live membership from route-lookup's Registry watch: the cache nodes (registered
//! cache-nodes and servers with the memcached service) and the registered mailbox servers.
//! The cache cluster follows the node list; the router uses the mailbox servers to refuse
//! a cached route that points anywhere else (a stale or planted cache entry).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::shutdown::ShutdownWatch;
use proto::v1::registry_client::RegistryClient;
use proto::v1::{Membership, WatchRequest};

use crate::cache::CacheCluster;

/// route-lookup's gRPC URL (`--directory`) and what an `https://` one is verified against
/// (`--ca`; `None`: the system's CAs).
#[derive(Clone)]
pub struct DirectoryUrl {
    /// The URL.
    pub url: String,
    /// The CAs for `https://`.
    pub ca: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for DirectoryUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryUrl")
            .field("url", &self.url)
            .field("ca", &self.ca.is_some())
            .finish()
    }
}

impl DirectoryUrl {
    /// The endpoint and bearer interceptor for the watches.
    pub fn endpoint(
        &self,
        token: Option<&str>,
    ) -> Result<(proto::Endpoint, proto::BearerToken), proto::ClientError> {
        proto::endpoint(
            &self.url,
            token,
            self.ca.as_ref(),
            Duration::from_secs(3),
            None,
        )
    }
}

/// The registered mailbox servers' backend addresses (every protocol's port), with their
/// host names.
#[derive(Debug, Default)]
pub struct Backends {
    known: RwLock<Option<HashMap<SocketAddr, String>>>,
}

impl Backends {
    /// Whether `addr` belongs to a registered mailbox server. Before the first snapshot
    /// arrives nothing is known, and nothing is refused.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        match &*self
            .known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(set) => set.contains_key(&addr),
            None => true,
        }
    }

    /// The host name of the registered mailbox server at `addr`, if known.
    pub fn name_of(&self, addr: SocketAddr) -> Option<String> {
        self.known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()?
            .get(&addr)
            .filter(|n| !n.is_empty())
            .cloned()
    }

    fn set(&self, m: &Membership) {
        let mut set = HashMap::new();
        for s in &m.mailbox_servers {
            let Ok(ip) = s.address.parse() else { continue };
            for port in [s.imap_port, s.imaps_port, s.pop3_port, s.pop3s_port] {
                if let Ok(port) = u16::try_from(port) {
                    set.insert(SocketAddr::new(ip, port), s.hostname.clone());
                }
            }
        }
        *self
            .known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(set);
    }
}

/// Follows route-lookup's watch until `shutdown`, reconnecting with backoff.
pub async fn follow(
    url: DirectoryUrl,
    token: Option<String>,
    cache: Option<Arc<CacheCluster>>,
    static_nodes: Vec<String>,
    backends: Arc<Backends>,
    shutdown: ShutdownWatch,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let run = watch_once(
            &url,
            token.as_deref(),
            cache.as_deref(),
            &static_nodes,
            &backends,
        );
        tokio::select! {
            _ = shutdown.triggered() => return,
            r = run => match r {
                Ok(()) => tracing::warn!("membership watch ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, ?backoff, "membership watch failed; retrying"),
            }
        }
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Why one watch stream ended.
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("--directory: {0}")]
    Client(#[from] proto::ClientError),
    #[error("route-lookup answered {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
}

async fn watch_once(
    url: &DirectoryUrl,
    token: Option<&str>,
    cache: Option<&CacheCluster>,
    static_nodes: &[String],
    backends: &Backends,
) -> Result<(), WatchError> {
    let (endpoint, token) = url.endpoint(token)?;
    let channel = endpoint.connect().await?;
    let mut client = RegistryClient::with_interceptor(channel, token);
    let mut stream = client.watch(WatchRequest {}).await?.into_inner();
    while let Some(m) = stream.message().await? {
        tracing::info!(
            revision = m.revision,
            cache_nodes = m.cache_nodes.len(),
            mailbox_servers = m.mailbox_servers.len(),
            "membership"
        );
        if let Some(cache) = cache {
            let mut nodes: Vec<String> = static_nodes.to_vec();
            for n in &m.cache_nodes {
                if !nodes.contains(n) {
                    nodes.push(n.clone());
                }
            }
            cache.set_nodes(&nodes);
        }
        backends.set(&m);
    }
    Ok(())
}
