//! The Registry service: leases for cache nodes and route-lookup instances, and the
//! membership watch. One poller per process reads the membership from the database every
//! second (so instances sharing a database agree) and publishes a snapshot whenever it
//! changes; each watcher gets the current snapshot at once, then every change.

use std::pin::Pin;
use std::time::Duration;

use proto::v1::account_event::Kind;
use proto::v1::registry_server::Registry;
use proto::v1::{
    AccountEvent, Empty, Lease, LeaseRequest, MailboxServer, Membership, RegisterRequest,
    ServiceKind, WatchAccountsRequest, WatchRequest,
};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status;
use crate::account_events::{AccountEvents, Since};
use crate::resolve::resolve_host;
use crate::store::{self, EventKind, LeaseKind, Store, StoredEvent};

/// How often the poller reads the membership.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The longest lease a registrant may ask for.
const MAX_TTL: u32 = 300;

/// The service.
#[derive(Debug, Clone)]
pub struct RegistryService {
    store: Store,
    default_ttl: u32,
    snapshots: watch::Receiver<Option<Membership>>,
    events: Arc<AccountEvents>,
}

impl RegistryService {
    /// A service over `store`, publishing what `snapshots` and `events` carry.
    pub fn new(
        store: Store,
        default_ttl: u32,
        snapshots: watch::Receiver<Option<Membership>>,
        events: Arc<AccountEvents>,
    ) -> Self {
        Self {
            store,
            default_ttl,
            snapshots,
            events,
        }
    }
}

fn event(e: StoredEvent) -> AccountEvent {
    AccountEvent {
        seq: e.seq,
        kind: match e.kind {
            EventKind::Moved => Kind::Moved,
            EventKind::Status => Kind::Status,
            EventKind::Deleted => Kind::Deleted,
            EventKind::Kicked => Kind::Kicked,
        }
        .into(),
        addresses: e.addresses,
        value: e.value,
    }
}

/// Polls the membership until `shutdown`, publishing changes; also reaps old leases.
pub async fn poll_membership(
    store: Store,
    tx: watch::Sender<Option<Membership>>,
    shutdown: common::shutdown::ShutdownWatch,
) {
    let mut revision = 0u64;
    let mut last: Option<store::Membership> = None;
    let mut tick = 0u64;
    loop {
        match store.membership().await {
            Ok(m) => {
                if last.as_ref() != Some(&m) {
                    let resolved = resolve_servers(&m.mailbox_servers).await;
                    revision += 1;
                    tracing::info!(
                        revision,
                        cache_nodes = m.cache_nodes.len(),
                        mailbox_servers = m.mailbox_servers.len(),
                        lookup_urls = m.lookup_urls.len(),
                        "membership changed"
                    );
                    tx.send_replace(Some(Membership {
                        revision,
                        cache_nodes: m.cache_nodes.clone(),
                        mailbox_servers: resolved,
                        lookup_urls: m.lookup_urls.clone(),
                    }));
                    last = Some(m);
                }
            }
            Err(e) => {
                tracing::warn!(error = %common::exit::chain(&e), "cannot read the membership; keeping the last one")
            }
        }
        tick += 1;
        if tick.is_multiple_of(30) {
            if let Err(e) = store.reap_leases().await {
                tracing::debug!(error = %common::exit::chain(&e), "lease reaping failed");
            }
        }
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

async fn resolve_servers(servers: &[store::MailboxServer]) -> Vec<MailboxServer> {
    let mut out = Vec::with_capacity(servers.len());
    for s in servers {
        let address = match &s.service_address {
            Some(a) => a.clone(),
            None => match resolve_host(&s.hostname).await {
                Some(ip) => ip.to_string(),
                None => continue,
            },
        };
        out.push(MailboxServer {
            hostname: s.hostname.clone(),
            address,
            imap_port: u32::from(s.ports.imap),
            imaps_port: u32::from(s.ports.imaps),
            pop3_port: u32::from(s.ports.pop3),
            pop3s_port: u32::from(s.ports.pop3s),
        });
    }
    out
}

fn check_address(kind: LeaseKind, address: &str) -> Result<(), Status> {
    let ok = match kind {
        LeaseKind::CacheNode => address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)),
        LeaseKind::RouteLookup => address.starts_with("http://") && address.len() > 7,
    };
    if !ok || address.len() > 512 || address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Status::invalid_argument(match kind {
            LeaseKind::CacheNode => "a cache node registers as HOST:PORT",
            LeaseKind::RouteLookup => "a route-lookup registers its http:// lookup URL",
        }));
    }
    Ok(())
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<Membership, Status>> + Send>>;
type WatchAccountsStream = Pin<Box<dyn Stream<Item = Result<AccountEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Registry for RegistryService {
    async fn register(&self, r: Request<RegisterRequest>) -> Result<Response<Lease>, Status> {
        let r = r.into_inner();
        let kind = match r.kind() {
            ServiceKind::CacheNode => LeaseKind::CacheNode,
            ServiceKind::RouteLookup => LeaseKind::RouteLookup,
            ServiceKind::Unspecified => return Err(Status::invalid_argument("kind is required")),
        };
        check_address(kind, &r.address)?;
        let ttl = match r.ttl_seconds {
            0 => self.default_ttl,
            t => t.min(MAX_TTL),
        };
        let lease_id = self
            .store
            .register(kind, &r.address, ttl)
            .await
            .map_err(status)?;
        tracing::info!(?kind, address = %r.address, ttl, "registered");
        Ok(Response::new(Lease {
            lease_id,
            ttl_seconds: ttl,
        }))
    }

    async fn heartbeat(&self, r: Request<LeaseRequest>) -> Result<Response<Lease>, Status> {
        let lease_id = r.into_inner().lease_id;
        let ttl = self.store.heartbeat(&lease_id).await.map_err(status)?;
        Ok(Response::new(Lease {
            lease_id,
            ttl_seconds: ttl,
        }))
    }

    async fn deregister(&self, r: Request<LeaseRequest>) -> Result<Response<Empty>, Status> {
        let lease_id = r.into_inner().lease_id;
        self.store.deregister(&lease_id).await.map_err(status)?;
        tracing::info!(%lease_id, "deregistered");
        Ok(Response::new(Empty {}))
    }

    type WatchStream = WatchStream;
    type WatchAccountsStream = WatchAccountsStream;

    async fn watch_accounts(
        &self,
        r: Request<WatchAccountsRequest>,
    ) -> Result<Response<Self::WatchAccountsStream>, Status> {
        let after = r.into_inner().after;
        let hub = self.events.clone();
        let mut rx = hub.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            // Until the poller has read the log once, nothing is known.
            let mut cursor = loop {
                if let Some(latest) = *rx.borrow_and_update() {
                    break if after == 0 { latest } else { after };
                }
                if rx.changed().await.is_err() {
                    return;
                }
            };
            loop {
                let batch = match hub.since(cursor) {
                    Since::Events(events) => events.into_iter().map(event).collect(),
                    Since::Gap { latest } => {
                        cursor = latest;
                        vec![AccountEvent {
                            seq: latest,
                            kind: Kind::Reset.into(),
                            addresses: vec![],
                            value: String::new(),
                        }]
                    }
                };
                for e in batch {
                    cursor = cursor.max(e.seq);
                    if tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let mut rx = self.snapshots.clone();
        let stream = async_stream(move |tx| async move {
            loop {
                let snapshot = rx.borrow_and_update().clone();
                if let Some(m) = snapshot {
                    if tx.send(Ok(m)).await.is_err() {
                        return;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a small channel; the task ends when the client goes.
fn async_stream<F, Fut>(body: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Membership, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
