//! Self-registration with route-lookup's registry (`--register`): register this node's
//! address under a lease, heartbeat at a third of it, and deregister at shutdown so the
//! proxies drop the node at once. When the lease is lost (a heartbeat answered NOT_FOUND)
//! the store is emptied before the node registers again: while it was out of the
//! membership the proxies wrote routes elsewhere and purges skipped it, so whatever it
//! still holds may be stale, and a node that (re)joins must start empty.
//!
//! A heartbeat that merely fails (route-lookup or its database unreachable) changes
//! nothing: the proxies cannot learn of a membership change either, so they keep using
//! this node and its routes stay right, which is what lets cached users log in while
//! route-lookup is down. If the lease ran out meanwhile, the first heartbeat after the
//! outage gets NOT_FOUND and the node starts over empty.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::shutdown::ShutdownWatch;
use proto::v1::registry_client::RegistryClient;
use proto::v1::{LeaseRequest, RegisterRequest, ServiceKind};
use proto::BearerToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::node::Node;

/// Where and how to register.
#[derive(Debug, Clone)]
pub struct Registration {
    /// route-lookup's gRPC URL (`http://HOST:PORT`).
    pub url: String,
    /// The address to register; `None` takes the local address this node reaches
    /// route-lookup from, with the memcached listener's port.
    pub advertise: Option<String>,
    /// The admin bearer token.
    pub token: Option<String>,
    /// Lease length.
    pub ttl: Duration,
    /// What an https:// URL is verified against (`None`: the system's CAs).
    pub ca: Option<Arc<rustls::ClientConfig>>,
}

type Client = RegistryClient<InterceptedService<Channel, BearerToken>>;

/// Why registering failed (each is retried; the node serves meanwhile).
#[derive(Debug, thiserror::Error)]
enum RegisterError {
    #[error("timed out connecting to {0}")]
    Timeout(String),
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("{}", call_error(.0))]
    Refused(#[from] tonic::Status),
}

/// A failed call in words: route-lookup's refusal, or why it could not be reached (a
/// certificate problem, say).
fn call_error(status: &tonic::Status) -> String {
    match std::error::Error::source(status) {
        Some(_) => format!("cannot reach route-lookup: {}", proto::status_text(status)),
        None => format!("route-lookup refused: {}", status.message()),
    }
}

/// The address to register: `--advertise`, or the local IP of a connection to
/// route-lookup with the listener's port (the right answer inside a compose replica).
async fn advertised(reg: &Registration, listen_port: u16) -> Result<String, RegisterError> {
    if let Some(a) = &reg.advertise {
        return Ok(a.clone());
    }
    let authority = reg
        .url
        .split_once("://")
        .map_or(reg.url.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let stream = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    .map_err(|_| RegisterError::Timeout(authority.to_string()))?
    .map_err(|source| RegisterError::Connect {
        authority: authority.to_string(),
        source,
    })?;
    let local = stream
        .local_addr()
        .map_err(|source| RegisterError::Connect {
            authority: authority.to_string(),
            source,
        })?;
    Ok(SocketAddr::new(local.ip(), listen_port).to_string())
}

fn client(reg: &Registration) -> Result<Client, proto::ClientError> {
    let (endpoint, token) = proto::endpoint(
        &reg.url,
        reg.token.as_deref(),
        reg.ca.as_ref(),
        Duration::from_secs(3),
        Some(Duration::from_secs(5)),
    )?;
    Ok(RegistryClient::with_interceptor(
        endpoint.connect_lazy(),
        token,
    ))
}

fn set_registered(node: &Node, on: bool) {
    if let Some(r) = &node.registered {
        r.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Keeps this node registered until `shutdown`, then deregisters.
pub async fn run(reg: Registration, listen_port: u16, node: Arc<Node>, shutdown: ShutdownWatch) {
    let mut client = match client(&reg) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot register");
            return;
        }
    };
    let ttl_seconds = u32::try_from(reg.ttl.as_secs()).unwrap_or(u32::MAX).max(1);
    let mut lease: Option<(String, Instant)> = None;
    let mut joined_before = false;
    let mut backoff = Duration::from_millis(250);
    loop {
        let wait = match &mut lease {
            None => {
                match join(
                    &reg,
                    &mut client,
                    listen_port,
                    ttl_seconds,
                    &node,
                    joined_before,
                )
                .await
                {
                    Ok(id) => {
                        set_registered(&node, true);
                        joined_before = true;
                        backoff = Duration::from_millis(250);
                        lease = Some((id, Instant::now()));
                        reg.ttl / 3
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "registration failed");
                        let w = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        w
                    }
                }
            }
            Some((id, last_ok)) => {
                let beat = client
                    .heartbeat(LeaseRequest {
                        lease_id: id.clone(),
                    })
                    .await;
                match beat {
                    Ok(_) => {
                        *last_ok = Instant::now();
                        reg.ttl / 3
                    }
                    Err(s) if s.code() == tonic::Code::NotFound => {
                        set_registered(&node, false);
                        tracing::warn!("lease expired; emptying the store and registering again");
                        lease = None;
                        Duration::ZERO
                    }
                    Err(s) => {
                        tracing::warn!(
                            error = %s.message(),
                            since_last_ok = ?last_ok.elapsed(),
                            "heartbeat failed; retrying"
                        );
                        Duration::from_secs(1).min(reg.ttl / 3)
                    }
                }
            }
        };
        tokio::select! {
            _ = shutdown.triggered() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    set_registered(&node, false);
    if let Some((id, _)) = lease {
        match client.deregister(LeaseRequest { lease_id: id }).await {
            Ok(_) => tracing::info!("deregistered"),
            Err(s) => {
                tracing::warn!(error = %s.message(), "deregistration failed; the lease will expire")
            }
        }
    }
}

async fn join(
    reg: &Registration,
    client: &mut Client,
    listen_port: u16,
    ttl_seconds: u32,
    node: &Node,
    joined_before: bool,
) -> Result<String, RegisterError> {
    let address = advertised(reg, listen_port).await?;
    if joined_before {
        node.store.flush_all(node.server.clock.now(), 0);
        tracing::info!("store emptied before rejoining");
    }
    let lease = client
        .register(RegisterRequest {
            kind: ServiceKind::CacheNode.into(),
            address: address.clone(),
            ttl_seconds,
        })
        .await?
        .into_inner();
    tracing::info!(%address, ttl = lease.ttl_seconds, "registered");
    Ok(lease.lease_id)
}
