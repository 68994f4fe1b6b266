//! Finding a login's mailbox server: the alias key, then the route key in the cache
//! cluster (Zimbra's key shapes, escaped), then route-lookup; a route from route-lookup
//! is stored with `add` and the route TTL. The cache only ever speeds things up: a cache
//! that is down is a miss, never a failed login.
//!
//! Routes carry the mailbox server's host name for upstream TLS verified by name. The cached
//! value stays Zimbra's `ip:port` (other cache clients read it), so a cached route is named
//! from the registered mailbox servers (`--directory`) or from what route-lookup answered
//! for that address earlier; when neither knows it and names are needed, the cached route
//! is passed over and route-lookup, whose answer carries the name, is asked.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use codec::route_key::{alias_key, route_key};

use crate::cache::CacheCluster;
use crate::login::{BoxFuture, Decision, Login, Route, RouteResolver};
use crate::lookup::{LookupAnswer, LookupClient, LookupError, LookupRequest};
use crate::stale::StaleRoutes;

/// The real [`RouteResolver`]: the route cache, then route-lookup.
#[derive(Debug)]
pub struct Router {
    stale: Option<Arc<StaleRoutes>>,
    backends: Option<Arc<crate::membership::Backends>>,
    cache: Option<Arc<CacheCluster>>,
    lookup: Arc<LookupClient>,
    ttl: u32,
    /// Whether a route must carry its server's host name (TLS verified by name).
    names_needed: bool,
    /// Host names route-lookup gave, by backend address.
    names: Names,
}

/// The most backend addresses whose names are remembered: far more mailbox servers' ports
/// than a deployment has; past it the map starts over.
const MAX_NAMES: usize = 4096;

/// Host names by backend address, as route-lookup's answers gave them.
#[derive(Debug, Default)]
struct Names(std::sync::RwLock<std::collections::HashMap<SocketAddr, String>>);

impl Names {
    fn get(&self, backend: SocketAddr) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&backend)
            .cloned()
    }

    fn learn(&self, backend: SocketAddr, name: &str) {
        if self.get(backend).as_deref() == Some(name) {
            return;
        }
        let mut names = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.len() >= MAX_NAMES {
            names.clear();
        }
        names.insert(backend, name.to_string());
    }
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
            stale: None,
            backends: None,
            cache,
            lookup,
            ttl,
            names_needed: false,
            names: Names::default(),
        }
    }

    /// Routes must carry their server's host name (upstream TLS verified by name): a cached
    /// route whose name is not known here is looked up instead.
    pub fn with_names(mut self, needed: bool) -> Self {
        self.names_needed = needed;
        self
    }

    /// The host name of the mailbox server at `backend`, if known.
    fn name_of(&self, backend: SocketAddr) -> Option<String> {
        self.backends
            .as_ref()
            .and_then(|b| b.name_of(backend))
            .or_else(|| self.names.get(backend))
    }

    /// Only trusts cached routes that point at one of `backends` (the registered mailbox
    /// servers); others are deleted and looked up.
    pub fn with_backends(mut self, backends: Arc<crate::membership::Backends>) -> Self {
        self.backends = Some(backends);
        self
    }

    /// Keeps the routes used recently in `stale`, for when neither the cache nor any lookup
    /// URL can answer.
    pub fn with_stale(mut self, stale: Arc<StaleRoutes>) -> Self {
        self.stale = Some(stale);
        self
    }

    /// Routes `login`: the cache, else route-lookup, else (when route-lookup cannot be
    /// reached, or answers only with its temporary failure) the route this proxy used for
    /// it recently.
    pub async fn route(&self, login: &Login<'_>) -> Decision {
        let decision = self.fresh_route(login).await;
        let Some(stale) = &self.stale else {
            return decision;
        };
        let name = route_user(&login.user.to_lowercase(), login.proxy_ip);
        match &decision {
            Decision::Route(r) => stale.remember(login.protocol, &name, r.backend, &r.user),
            // route-lookup's own "temporary failure" (its database is down) says nothing
            // about the route either: as when it cannot be reached, a known route serves.
            Decision::Refused { status, .. } if status != codec::auth_http::STATUS_TEMPORARY => {
                stale.forget(login.protocol, &name)
            }
            Decision::Refused { .. } | Decision::Unavailable => {
                if let Some(r) = stale.recall(login.protocol, &name) {
                    stale
                        .served
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(backend = %r.backend, "route-lookup unavailable: using the route this login had last time");
                    return Decision::Route(Route {
                        backend: r.backend,
                        server_name: self.name_of(r.backend),
                        user: r.account,
                        pass: None,
                        // Like a cached route: if its backend is gone it is forgotten.
                        cached: true,
                        keys: Vec::new(),
                    });
                }
            }
        }
        decision
    }

    async fn fresh_route(&self, login: &Login<'_>) -> Decision {
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
                let named = route.map(|b| (b, self.name_of(b)));
                let usable = named
                    .filter(|(b, name)| registered(*b) && (name.is_some() || !self.names_needed));
                if let Some((backend, server_name)) = usable {
                    let mut keys = vec![key];
                    if account.is_some() {
                        keys.push(alias);
                    }
                    return Decision::Route(Route {
                        backend,
                        server_name,
                        user: account.unwrap_or_else(|| user.clone()),
                        pass: None,
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
                method: login.method,
                protocol: login.protocol,
                attempt: login.attempt,
                client_ip: login.client_ip,
                proxy_ip: Some(login.proxy_ip),
            })
            .await;
        match answer {
            Ok(LookupAnswer::Route {
                server,
                server_name,
                port,
                user: account,
                pass,
                cache_alias,
            }) => {
                let backend = SocketAddr::new(server, port);
                if let Some(name) = &server_name {
                    self.names.learn(backend, name);
                }
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
                    server_name,
                    user: account,
                    pass,
                    cached: false,
                    keys,
                })
            }
            Ok(LookupAnswer::Failed {
                status,
                wait,
                reason,
            }) => Decision::Refused {
                status,
                wait,
                unknown_user: reason.as_deref() == Some("unknown_user"),
            },
            Err(LookupError::Unavailable) => Decision::Unavailable,
            Err(LookupError::Invalid(e)) => {
                tracing::warn!(error = %e, "route-lookup gave an invalid answer");
                Decision::Unavailable
            }
        }
    }

    /// Forgets a route the backend refused (and its alias), in the cache and among the
    /// stale routes.
    pub async fn forget(&self, route: &Route) {
        if let Some(stale) = &self.stale {
            stale.forget_account(&route.user);
        }
        if let Some(cache) = &self.cache {
            for key in &route.keys {
                cache.delete(key).await;
            }
        }
    }
}

impl RouteResolver for Router {
    fn route<'a>(&'a self, login: &'a Login<'a>) -> BoxFuture<'a, Decision> {
        Box::pin(Router::route(self, login))
    }

    fn forget<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, ()> {
        Box::pin(Router::forget(self, route))
    }
}
