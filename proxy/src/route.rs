//! Finding a login's mailbox server: the alias key, then the route key in the cache
//! cluster (Zimbra's key shapes, escaped), then route-lookup; a route from route-lookup
//! is stored with `add` and the route TTL. The cache only ever speeds things up: a cache
//! that is down is a miss, never a failed login.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use codec::route_key::{alias_key, route_key, CacheKey};

use crate::cache::CacheCluster;
use crate::lookup::{LookupAnswer, LookupClient, LookupError, LookupRequest};

/// A login to route.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    /// As the client typed it.
    pub user: &'a str,
    /// The password.
    pub pass: &'a [u8],
    /// `imap`, `imapssl`, `pop3` or `pop3ssl`.
    pub protocol: &'static str,
    /// 1 for the session's first attempt.
    pub attempt: u32,
    /// The client.
    pub client_ip: IpAddr,
    /// The proxy's address on the client connection.
    pub proxy_ip: IpAddr,
}

/// Where a login goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The backend.
    pub backend: SocketAddr,
    /// The account name to log in as upstream.
    pub user: String,
    /// Whether it came from the cache.
    pub cached: bool,
    /// The cache keys that produced or now hold it (deleted if the backend refuses).
    pub keys: Vec<CacheKey>,
}

/// The routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go there.
    Route(Route),
    /// route-lookup refused: its text and wait.
    Refused {
        /// Auth-Status text (generic).
        status: String,
        /// Seconds to wait before answering.
        wait: Option<u32>,
    },
    /// Nobody could answer.
    Unavailable,
}

/// The router.
#[derive(Debug)]
pub struct Router {
    backends: Option<Arc<crate::membership::Backends>>,
    cache: Option<Arc<CacheCluster>>,
    lookup: Arc<LookupClient>,
    ttl: u32,
}

/// Zimbra keys an unqualified login by the address it came in on.
fn route_user(user: &str, proxy_ip: IpAddr) -> String {
    if user.contains('@') {
        user.to_string()
    } else {
        format!("{user}@{proxy_ip}")
    }
}

fn parse_route(value: &[u8]) -> Option<SocketAddr> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

impl Router {
    /// A router over an optional cache cluster and route-lookup.
    pub fn new(cache: Option<Arc<CacheCluster>>, lookup: Arc<LookupClient>, ttl: u32) -> Self {
        Self {
            backends: None,
            cache,
            lookup,
            ttl,
        }
    }

    /// Only trusts cached routes that point at one of `backends` (the registered mailbox
    /// servers); others are deleted and looked up.
    pub fn with_backends(mut self, backends: Arc<crate::membership::Backends>) -> Self {
        self.backends = Some(backends);
        self
    }

    /// The route-lookup client.
    pub fn lookup_client(&self) -> &LookupClient {
        &self.lookup
    }

    /// The cache cluster, if any.
    pub fn cache(&self) -> Option<&Arc<CacheCluster>> {
        self.cache.as_ref()
    }

    /// Routes `login`.
    pub async fn route(&self, login: &Login<'_>) -> Decision {
        let user = login.user.to_lowercase();
        let alias = alias_key(&user, &login.proxy_ip.to_string());
        if let Some(cache) = &self.cache {
            // The alias key maps a login to its account. Both keys are asked for at once
            // (one request when one node holds both); only an alias hit costs a second
            // round trip (for its account's route).
            let direct_key = route_key(login.protocol, &route_user(&user, login.proxy_ip));
            let (alias_hit, direct) = cache.get_two(&alias, &direct_key).await;
            let account = alias_hit.and_then(|a| String::from_utf8(a).ok());
            let (key, value) = match &account {
                Some(a) => {
                    let k = route_key(login.protocol, a);
                    let v = cache.get(&k).await;
                    (k, v)
                }
                None => (direct_key, direct),
            };
            if let Some(value) = value {
                let registered = |b: SocketAddr| self.backends.as_ref().is_none_or(|r| r.allows(b));
                let route = parse_route(&value);
                if let Some(b) = route.filter(|b| !registered(*b)) {
                    tracing::warn!(key = key.wire(), backend = %b, "cached route points outside the registered mailbox servers; ignored");
                    cache.delete(&key).await;
                }
                if let Some(backend) = route.filter(|b| registered(*b)) {
                    let mut keys = vec![key];
                    if account.is_some() {
                        keys.push(alias);
                    }
                    return Decision::Route(Route {
                        backend,
                        user: account.unwrap_or_else(|| user.clone()),
                        cached: true,
                        keys,
                    });
                }
            }
        }
        let answer = self
            .lookup
            .lookup(&LookupRequest {
                user: login.user.as_bytes(),
                pass: login.pass,
                protocol: login.protocol,
                attempt: login.attempt,
                client_ip: login.client_ip,
                proxy_ip: Some(login.proxy_ip),
            })
            .await;
        match answer {
            Ok(LookupAnswer::Route {
                server,
                port,
                user: account,
                cache_alias,
            }) => {
                let backend = SocketAddr::new(server, port);
                let account = if account.is_empty() {
                    user.clone()
                } else {
                    account
                };
                let key = route_key(login.protocol, &account);
                let mut keys = vec![key.clone()];
                if let Some(cache) = &self.cache {
                    // Writes are best effort; a failure only costs a later lookup.
                    cache
                        .add(&key, backend.to_string().as_bytes(), self.ttl)
                        .await;
                    if cache_alias && account != user {
                        cache.add(&alias, account.as_bytes(), self.ttl).await;
                        keys.push(alias);
                    }
                }
                Decision::Route(Route {
                    backend,
                    user: account,
                    cached: false,
                    keys,
                })
            }
            Ok(LookupAnswer::Failed { status, wait }) => Decision::Refused { status, wait },
            Err(LookupError::Unavailable) => Decision::Unavailable,
            Err(LookupError::Invalid(e)) => {
                tracing::warn!(error = %e, "route-lookup gave an invalid answer");
                Decision::Unavailable
            }
        }
    }

    /// Forgets a route the backend refused (and its alias).
    pub async fn forget(&self, route: &Route) {
        if let Some(cache) = &self.cache {
            for key in &route.keys {
                cache.delete(key).await;
            }
        }
    }
}
