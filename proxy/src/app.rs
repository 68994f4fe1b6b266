//! The proxy as one value: [`Proxy::bind`] builds the route cache client, the lookup
//! client, the resolver, the throttle and the login service from a [`RuntimeConfig`] and
//! binds every listener; [`Proxy::run`] serves until the shutdown watch fires, then drains.

use std::net::SocketAddr;
use std::sync::Arc;

use common::shutdown::{Shutdown, ShutdownWatch};
use thiserror::Error;
use tokio::net::TcpListener;

use crate::cache::{CacheCluster, CacheConfig};
use crate::config::RuntimeConfig;
use crate::login::{Connector, LoginService, RouteResolver};
use crate::lookup::{LookupClient, LookupConfig};
use crate::membership::Backends;
use crate::preauth::PreauthLimit;
use crate::route::Router;
use crate::server::{self, Kind, RelayStats, Service};
use crate::session::Frontend;
use crate::session_limit::SessionLimit;
use crate::stale::StaleRoutes;
use crate::throttle::Throttle;

/// Why the proxy could not start.
#[derive(Debug, Error)]
pub enum BindError {
    /// A listener could not be bound. The bind error already names the address and the
    /// listener (common::listener says it), so it is the whole message.
    #[error("{source}")]
    Listen {
        /// Which listener.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The session cap's socket between the workers could not be set up.
    #[error("--max-sessions-per-user: cannot {what} the workers' sessions socket: {source}")]
    SessionLimit {
        /// `serve` (worker 0) or `reach` (the others).
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound proxy, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    service: Arc<Service>,
    stop: Shutdown,
    listeners: Vec<(Kind, TcpListener)>,
    admin: Option<TcpListener>,
    membership: Option<Membership>,
    max_connections: usize,
    grace: std::time::Duration,
}

/// The real resolver's parts whose counters /metrics shows (none with a test's resolver).
#[derive(Default)]
struct Sources {
    cache: Option<Arc<CacheCluster>>,
    lookup: Option<Arc<LookupClient>>,
    stale: Option<Arc<StaleRoutes>>,
}

/// What following route-lookup's watch needs.
#[derive(Debug)]
struct Membership {
    url: crate::membership::DirectoryUrl,
    token: Option<String>,
    cache: Option<Arc<CacheCluster>>,
    seeds: Vec<String>,
    backends: Arc<Backends>,
}

impl Proxy {
    /// Builds the proxy of `config` (the route cache, then route-lookup) and binds it.
    pub async fn bind(config: RuntimeConfig) -> Result<Self, BindError> {
        let cache = (!config.memcached.is_empty() || config.directory.is_some()).then(|| {
            // With a directory and no static nodes, the cluster starts empty and follows
            // the watch.
            Arc::new(CacheCluster::with_credentials(
                &config.memcached,
                CacheConfig {
                    fetch_timeout: config.cache_timeout,
                    probe_interval: config.cache_probe_interval,
                    retry_interval: config.retry_interval,
                    connections_per_node: config.cache_connections_per_node,
                },
                config.memcached_auth.clone(),
            ))
        });
        let lookup = Arc::new(LookupClient::new(LookupConfig {
            urls: config.urls.clone(),
            secret: config.lookup_secret.clone(),
            timeout: config.lookup_timeout,
            retry_interval: config.retry_interval,
            idle_timeout: config.lookup_idle_timeout,
            retry_budget: config.lookup_retry,
            tls: config.ca.clone(),
        }));
        let backends = Arc::new(Backends::default());
        let stale = Arc::new(StaleRoutes::new(
            config.stale_routes_max,
            config.stale_routes_max_age,
        ));
        let mut router =
            Router::new(cache.clone(), lookup.clone(), config.route_ttl).with_stale(stale.clone());
        router = router.with_names(config.routes_need_names());
        if config.directory.is_some() {
            router = router.with_backends(backends.clone());
        }
        let membership = config.directory.clone().map(|(url, token)| Membership {
            url,
            token,
            cache: cache.clone(),
            seeds: config.memcached.clone(),
            backends,
        });
        let sources = Sources {
            cache,
            lookup: Some(lookup),
            stale: Some(stale),
        };
        let mut proxy = Self::assemble(&config, Arc::new(router), sources).await?;
        proxy.membership = membership;
        Ok(proxy)
    }

    /// The certificates in use, if any (their reloads and expiries are in /metrics), and
    /// the TLS ticket key file, re-read at SIGHUP.
    fn follow_certificates(config: &RuntimeConfig) {
        if let Some(certs) = &config.certs {
            certs.follow_reloads();
        }
        if let Some(tickets) = &config.tickets {
            tickets.follow_reloads();
        }
    }

    /// Binds a proxy of `config` that routes with `resolver` instead of the route cache and
    /// route-lookup (tests; login throttles are off without the cache).
    pub async fn bind_with_resolver(
        config: RuntimeConfig,
        resolver: Arc<dyn RouteResolver>,
    ) -> Result<Self, BindError> {
        Self::assemble(&config, resolver, Sources::default()).await
    }

    async fn assemble(
        config: &RuntimeConfig,
        resolver: Arc<dyn RouteResolver>,
        sources: Sources,
    ) -> Result<Self, BindError> {
        let Sources {
            cache,
            lookup,
            stale,
        } = sources;
        Self::follow_certificates(config);
        // Sessions are built with the proxy's own watch; `run` ties it to the caller's.
        let (stop, watch) = Shutdown::new();
        let connector = Connector::new(
            config.forward,
            config.upstream.clone(),
            config.backend_timeout,
        )
        .tls_name(config.upstream_tls_name);
        let throttle = Throttle::new(cache.clone(), config.limits);
        let front = Frontend {
            login: LoginService::new(resolver, connector, throttle)
                .session_limit(Self::session_limit(config).await?),
            tls: config.tls.clone(),
            starttls: config.starttls,
            sasl: config.sasl,
            preauth_timeout: config.preauth,
            login_deadline: config.login_deadline,
            max_bad_commands: config.max_bad_commands,
            max_sasl_line: MAX_SASL_LINE,
            preauth: Arc::new(PreauthLimit::new(config.max_preauth_per_ip)),
            proxy_protocol_from: config.proxy_protocol_from.clone(),
            proxy_header_errors: Default::default(),
            shutdown: watch,
            name: config.name.clone(),
        };
        let mut listeners = Vec::new();
        let addrs = [
            config.listen.imap,
            config.listen.imaps,
            config.listen.pop3,
            config.listen.pop3s,
        ];
        for (kind, addr) in Kind::ALL.into_iter().zip(addrs) {
            let Some(addr) = addr else { continue };
            let bound = if config.shared_listeners {
                common::listener::bind_shared(kind.name(), addr)
            } else {
                common::listener::bind(kind.name(), addr).await
            };
            let listener = bound.map_err(|source| BindError::Listen {
                what: kind.name(),
                addr,
                source,
            })?;
            listeners.push((kind, listener));
        }
        let admin =
            match config.admin_listen {
                Some(addr) => Some(common::listener::bind("admin", addr).await.map_err(
                    |source| BindError::Listen {
                        what: "admin",
                        addr,
                        source,
                    },
                )?),
                None => None,
            };
        let sessions = Arc::new(crate::sessions::Sessions::default());
        let sessions_admin = Arc::new(crate::sessions_admin::SessionsAdmin {
            sessions: sessions.clone(),
            token: config.admin_token.clone(),
            worker: config.worker,
            peers: worker_peers(config, admin.as_ref()),
        });
        Ok(Self {
            service: Arc::new(Service {
                front: Arc::new(front),
                idle_timeout: config.idle,
                relay: RelayStats::default(),
                lookup,
                cache,
                stale,
                certs: config.certs.clone(),
                sessions,
                account_events: Arc::default(),
                sessions_admin,
            }),
            stop,
            listeners,
            admin,
            membership: None,
            max_connections: config.max_connections,
            grace: config.grace,
        })
    }

    /// The bound address of a client listener.
    pub fn local_addr(&self, kind: Kind) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, l)| l.local_addr().ok())
    }

    /// `--max-sessions-per-user` as this process applies it: worker 0 keeps the counts
    /// (serving them to the other workers when there are any), the others ask it.
    async fn session_limit(config: &RuntimeConfig) -> Result<SessionLimit, BindError> {
        let max = config.max_sessions_per_user;
        if config.worker > 0 {
            let Some(path) = std::env::var_os(crate::session_limit::SOCKET_ENV) else {
                return Ok(SessionLimit::local(max));
            };
            return SessionLimit::connect(max, std::path::Path::new(&path))
                .await
                .map_err(|source| BindError::SessionLimit {
                    what: "reach",
                    source,
                });
        }
        if config.workers > 1 {
            SessionLimit::serve(max).map_err(|source| BindError::SessionLimit {
                what: "serve",
                source,
            })
        } else {
            Ok(SessionLimit::local(max))
        }
    }

    /// Worker 0's sessions socket for the other workers, when the cap is on.
    pub fn sessions_socket(&self) -> Option<std::path::PathBuf> {
        self.service.front.login.limit().socket()
    }

    /// The bound address of the admin listener.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` fires, then drains relayed sessions for the grace period.
    pub async fn run(self, shutdown: ShutdownWatch) {
        let (stop, watch) = (self.stop, self.service.front.shutdown.clone());
        tokio::spawn(async move {
            shutdown.triggered().await;
            stop.trigger();
        });
        let shutdown = watch;
        if let Some(m) = &self.membership {
            let targets = crate::account_watch::Targets {
                stale: self.service.stale.clone(),
                sessions: self.service.sessions.clone(),
                applied: self.service.account_events.clone(),
            };
            tokio::spawn(crate::account_watch::follow(
                m.url.clone(),
                m.token.clone(),
                targets,
                shutdown.clone(),
            ));
        }
        if let Some(m) = self.membership {
            tokio::spawn(crate::membership::follow(
                m.url,
                m.token,
                m.cache,
                m.seeds,
                m.backends,
                shutdown.clone(),
            ));
        }
        server::run(
            self.service,
            self.listeners,
            self.admin,
            self.max_connections,
            self.grace,
            shutdown,
        )
        .await;
    }
}

/// Longest SASL answer line: OAuth bearer tokens run to several kilobytes.
const MAX_SASL_LINE: usize = 64 * 1024;

/// The other workers' admin addresses, for worker 0 (worker i listens on worker 0's admin
/// port + i); none when there is one worker or the admin port is picked by the system.
fn worker_peers(config: &RuntimeConfig, admin: Option<&TcpListener>) -> Vec<SocketAddr> {
    let Some(addr) = admin.and_then(|l| l.local_addr().ok()) else {
        return Vec::new();
    };
    if config.worker != 0
        || config.workers < 2
        || config.admin_listen.is_some_and(|a| a.port() == 0)
    {
        return Vec::new();
    }
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    (1..config.workers)
        .filter_map(|i| u16::try_from(usize::from(addr.port()) + i).ok())
        .map(|port| SocketAddr::new(ip, port))
        .collect()
}
