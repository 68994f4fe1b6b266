//! The route-cache cluster client.
//!
//! Keys go to nodes by libmemcached's weighted ketama (so memcached's own tools agree on
//! placement); each node has a few persistent connections; a request that errors or
//! outlasts the fetch timeout ejects its node for the retry interval, and so does a node
//! that refuses the credentials of `--memcached-auth-file`. While a node is
//! ejected its keys go to the next node on the ring, as libmemcached's auto-eject does, so
//! routes are cached again at once instead of every login of a third of the accounts
//! asking route-lookup; when the node is back, its keys go back to it. Membership can
//! change at any time ([`CacheCluster::set_nodes`]); nodes that stay keep their
//! connections.

mod node;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use codec::memcache::{Credentials, KetamaNode, KetamaRing};
use codec::route_key::CacheKey;

pub use common::memcached_auth::AuthError;
pub use node::{ConnectError, Node, NodeStats};

/// Timeouts and sizes.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Bound on one request to a node (connecting included); past it the node is ejected.
    pub fetch_timeout: Duration,
    /// How long an ejected node is skipped at first; each failed probe doubles it.
    pub probe_interval: Duration,
    /// The longest an ejected node is skipped.
    pub retry_interval: Duration,
    /// Connections per node.
    pub connections_per_node: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            fetch_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_secs(1),
            retry_interval: Duration::from_secs(30),
            connections_per_node: 16,
        }
    }
}

struct Members {
    ring: KetamaRing,
    nodes: Vec<Arc<Node>>,
}

/// The cluster; cheap to share behind an `Arc`.
pub struct CacheCluster {
    config: CacheConfig,
    credentials: Option<Arc<Credentials>>,
    members: RwLock<Arc<Members>>,
}

impl std::fmt::Debug for CacheCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCluster")
            .field("nodes", &self.nodes())
            .finish()
    }
}

/// `host:port` → ketama node (weight 1); `None` if it is not `host:port`.
fn ketama_node(addr: &str) -> Option<KetamaNode> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(KetamaNode {
        host: host.to_string(),
        port: port.parse().ok()?,
        weight: 1,
    })
}

impl CacheCluster {
    /// A cluster of `nodes` (`host:port` each; others are skipped with a warning).
    pub fn new(nodes: &[String], config: CacheConfig) -> Self {
        Self::with_credentials(nodes, config, None)
    }

    /// A cluster whose every connection first authenticates with `credentials` (the
    /// nodes' `--auth-file`); a node that refuses them counts as failed and is ejected.
    pub fn with_credentials(
        nodes: &[String],
        config: CacheConfig,
        credentials: Option<Credentials>,
    ) -> Self {
        let c = Self {
            config,
            credentials: credentials.map(Arc::new),
            members: RwLock::new(Arc::new(Members {
                ring: KetamaRing::new(&[]),
                nodes: Vec::new(),
            })),
        };
        c.set_nodes(nodes);
        c
    }

    /// Replaces the membership; nodes present before and after keep their connections.
    pub fn set_nodes(&self, nodes: &[String]) {
        let old = self.members();
        let known: HashMap<&str, &Arc<Node>> = old.nodes.iter().map(|n| (n.addr(), n)).collect();
        let mut kept = Vec::new();
        let mut ketama = Vec::new();
        for addr in nodes {
            let Some(k) = ketama_node(addr) else {
                tracing::warn!(node = %addr, "not HOST:PORT; ignored");
                continue;
            };
            if kept.iter().any(|n: &Arc<Node>| n.addr() == addr) {
                continue;
            }
            kept.push(match known.get(addr.as_str()) {
                Some(n) => Arc::clone(n),
                None => Arc::new(Node::new(addr, self.config, self.credentials.clone())),
            });
            ketama.push(k);
        }
        let members = Members {
            ring: KetamaRing::new(&ketama),
            nodes: kept,
        };
        tracing::info!(nodes = ?nodes, "cache membership");
        *self
            .members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(members);
    }

    fn members(&self) -> Arc<Members> {
        self.members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The nodes, in membership order.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.members().nodes.clone()
    }

    /// The node that holds `key`: its ketama node, or while that one is ejected the next
    /// one on the ring that is not; `None` when every node is out.
    pub fn node_for(&self, key: &CacheKey) -> Option<Arc<Node>> {
        let m = self.members();
        let usable = |i: usize| m.nodes.get(i).is_some_and(|n| !n.is_ejected());
        m.ring
            .node_for_among(key.logical().as_bytes(), usable)
            .and_then(|i| m.nodes.get(i).cloned())
    }

    /// The cached value; `None` on a miss, an ejected node, or any error.
    pub async fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        get_from(self.node_for(key), key).await
    }

    /// The cached values of two keys at once: one request when the same node holds both
    /// (a multi-key get, as libmemcached's mget), else one to each node concurrently.
    pub async fn get_two(&self, a: &CacheKey, b: &CacheKey) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        match (self.node_for(a), self.node_for(b)) {
            (Some(na), Some(nb)) if Arc::ptr_eq(&na, &nb) => {
                let mut values = na.get_many(&[a.wire(), b.wire()]).await.into_iter();
                (values.next().flatten(), values.next().flatten())
            }
            (na, nb) => tokio::join!(get_from(na, a), get_from(nb, b)),
        }
    }

    /// `add` with `ttl` seconds; false if not stored (exists, or the node failed).
    pub async fn add(&self, key: &CacheKey, value: &[u8], ttl: u32) -> bool {
        match self.node_for(key) {
            Some(n) => n.add(key.wire(), value, ttl).await,
            None => false,
        }
    }

    /// Deletes `key`; false if it was not there or the node failed.
    pub async fn delete(&self, key: &CacheKey) -> bool {
        match self.node_for(key) {
            Some(n) => n.delete(key.wire()).await,
            None => false,
        }
    }

    /// Increments a counter, creating it with `ttl` at 1 when missing (Zimbra's throttle
    /// counters); `None` when the node cannot answer (callers fail open).
    pub async fn incr(&self, key: &CacheKey, ttl: u32) -> Option<u64> {
        self.node_for(key)?.incr_or_add(key.wire(), ttl).await
    }
}

/// `key` from `node` (the node ketama chose for it, if any).
async fn get_from(node: Option<Arc<Node>>, key: &CacheKey) -> Option<Vec<u8>> {
    node?.get(key.wire()).await
}
