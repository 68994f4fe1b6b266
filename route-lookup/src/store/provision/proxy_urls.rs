//! The seed's three proxy commands: garpu, gamau, gamcs, in Zimbra's text forms.

use crate::store::registry::join_host_port;
use crate::store::{LeaseKind, Store, StoreError};

impl Store {
    // ----- the seed's three proxy commands -----

    /// getAllReverseProxyURLs: lookup targets, then live registered route-lookups, in
    /// Zimbra's form (`host:port/service/extension/nginx-lookup`, no scheme).
    pub async fn reverse_proxy_urls(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .bounded(async {
                let client = self.client().await?;
                Ok(client
                    .query(
                        "SELECT name, extension_port FROM servers WHERE lookup_target ORDER BY name",
                        &[],
                    )
                    .await?)
            })
            .await?;
        let mut urls: Vec<String> = rows
            .iter()
            .map(|r| {
                let port = u16::try_from(r.get::<_, i32>(1)).unwrap_or(7072);
                format!(
                    "{}/service/extension/nginx-lookup",
                    join_host_port(r.get(0), port)
                )
            })
            .collect();
        for url in self.live(LeaseKind::RouteLookup).await? {
            let url = url.strip_prefix("http://").unwrap_or(&url).to_string();
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        Ok(urls)
    }

    /// getAllMtaAuthURLs: the admin SOAP URLs of MTA auth targets.
    pub async fn mta_auth_urls(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .bounded(async {
                let client = self.client().await?;
                Ok(client
                    .query(
                        "SELECT name, mta_auth_port FROM servers WHERE mta_auth_target ORDER BY name",
                        &[],
                    )
                    .await?)
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let port = u16::try_from(r.get::<_, i32>(1)).unwrap_or(7072);
                format!(
                    "http://{}/service/admin/soap/",
                    join_host_port(r.get(0), port)
                )
            })
            .collect())
    }

    /// getAllMemcachedServers: servers with the memcached service, then live registered
    /// cache nodes.
    pub async fn memcached_servers(&self) -> Result<Vec<String>, StoreError> {
        self.memcached_nodes("name").await
    }

    /// The addresses to dial the cache nodes at: like [`Store::memcached_servers`], but a
    /// configured server with a `serviceAddress` is dialled there, as mailbox servers are
    /// (its name need not resolve).
    pub async fn memcached_addresses(&self) -> Result<Vec<String>, StoreError> {
        self.memcached_nodes("coalesce(nullif(service_address, ''), name)")
            .await
    }

    async fn memcached_nodes(&self, host: &'static str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .bounded(async {
                let client = self.client().await?;
                Ok(client
                    .query(
                        &format!(
                            "SELECT {host}, memcached_port FROM servers
                              WHERE 'memcached' = ANY(services) ORDER BY name"
                        ),
                        &[],
                    )
                    .await?)
            })
            .await?;
        let mut nodes: Vec<String> = rows
            .iter()
            .map(|r| join_host_port(r.get(0), u16::try_from(r.get::<_, i32>(1)).unwrap_or(11211)))
            .collect();
        for node in self.live(LeaseKind::CacheNode).await? {
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
        Ok(nodes)
    }
}
