//! Service registrations with leases: cache nodes and route-lookup instances register,
//! heartbeat within their lease, and drop out of the membership when it runs out.
//! Expiry is decided by the database clock alone, so every route-lookup instance agrees.

use super::{Ports, Store, StoreError};

/// What registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// A cache-node (address HOST:PORT).
    CacheNode,
    /// A route-lookup instance (address: its lookup URL).
    RouteLookup,
}

impl LeaseKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::CacheNode => "cache_node",
            Self::RouteLookup => "route_lookup",
        }
    }
}

/// A mailbox server as the proxy needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxServer {
    /// zimbraServiceHostname.
    pub hostname: String,
    /// serviceAddress, if set (else the proxy-facing layer resolves the host name).
    pub service_address: Option<String>,
    /// Backend ports.
    pub ports: Ports,
}

/// Everything the watch reports, as read from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    /// Live registered cache nodes, then servers with the memcached service (HOST:PORT).
    pub cache_nodes: Vec<String>,
    /// Servers with the mailbox service.
    pub mailbox_servers: Vec<MailboxServer>,
    /// Live registered route-lookup URLs, then servers that are lookup targets.
    pub lookup_urls: Vec<String>,
}

impl Store {
    /// Registers (or re-registers) `address`; returns the new lease id.
    pub async fn register(
        &self,
        kind: LeaseKind,
        address: &str,
        ttl_seconds: u32,
    ) -> Result<String, StoreError> {
        let ttl = i32::try_from(ttl_seconds).unwrap_or(i32::MAX);
        self.bounded(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO registrations (lease_id, kind, address, ttl_seconds, expires_at)
                     VALUES (gen_random_uuid()::text, $1, $2, $3, now() + $3::integer * interval '1 second')
                     ON CONFLICT (kind, address) DO UPDATE
                        SET lease_id = EXCLUDED.lease_id, ttl_seconds = EXCLUDED.ttl_seconds,
                            expires_at = EXCLUDED.expires_at
                     RETURNING lease_id",
                )
                .await?;
            let row = client
                .query_one(&stmt, &[&kind.as_str(), &address, &ttl])
                .await?;
            Ok(row.get(0))
        })
        .await
    }

    /// Extends a live lease; `NotFound` once it has expired (the registrant must register
    /// again). Returns the lease length.
    pub async fn heartbeat(&self, lease_id: &str) -> Result<u32, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE registrations
                        SET expires_at = now() + ttl_seconds * interval '1 second'
                      WHERE lease_id = $1 AND expires_at > now()
                     RETURNING ttl_seconds",
                )
                .await?;
            match client.query_opt(&stmt, &[&lease_id]).await? {
                Some(row) => Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(0)),
                None => Err(StoreError::NotFound {
                    kind: "lease",
                    name: lease_id.to_string(),
                }),
            }
        })
        .await
    }

    /// Ends a lease now.
    pub async fn deregister(&self, lease_id: &str) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    "DELETE FROM registrations WHERE lease_id = $1",
                    &[&lease_id],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Deletes leases that expired more than a minute ago (they are already invisible).
    pub async fn reap_leases(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            Ok(client
                .execute(
                    "DELETE FROM registrations WHERE expires_at < now() - interval '1 minute'",
                    &[],
                )
                .await?)
        })
        .await
    }

    /// Live registrations of one kind, sorted.
    pub async fn live(&self, kind: LeaseKind) -> Result<Vec<String>, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT address FROM registrations
                      WHERE kind = $1 AND expires_at > now() ORDER BY address",
                )
                .await?;
            let rows = client.query(&stmt, &[&kind.as_str()]).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// The whole membership snapshot the watch streams.
    pub async fn membership(&self) -> Result<Membership, StoreError> {
        let mut m = Membership {
            cache_nodes: self.live(LeaseKind::CacheNode).await?,
            lookup_urls: self.live(LeaseKind::RouteLookup).await?,
            ..Membership::default()
        };
        self.bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT name, service_address, services, imap_port, imaps_port, pop3_port,
                            pop3s_port, memcached_port, extension_port, lookup_target
                       FROM servers ORDER BY name",
                    &[],
                )
                .await?;
            for row in rows {
                let name: String = row.get(0);
                let service_address: Option<String> = row.get(1);
                let services: Vec<String> = row.get(2);
                let port = |i: usize| u16::try_from(row.get::<_, i32>(i)).unwrap_or(0);
                let host = service_address.clone().unwrap_or_else(|| name.clone());
                if services.iter().any(|s| s == "memcached") {
                    m.cache_nodes.push(join_host_port(&host, port(7)));
                }
                if row.get::<_, bool>(9) {
                    m.lookup_urls.push(format!(
                        "http://{}/service/extension/nginx-lookup",
                        join_host_port(&host, port(8))
                    ));
                }
                if services.iter().any(|s| s == "mailbox") {
                    m.mailbox_servers.push(MailboxServer {
                        hostname: name,
                        service_address,
                        ports: Ports {
                            imap: port(3),
                            imaps: port(4),
                            pop3: port(5),
                            pop3s: port(6),
                        },
                    });
                }
            }
            Ok(())
        })
        .await?;
        m.cache_nodes.dedup();
        Ok(m)
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
