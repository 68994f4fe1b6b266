//! Wiring: the memcached listener, the expiry sweeper, the auth file's reloads and the admin
//! endpoint, all under the shutdown contract of [`common::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::admin::{AdminSource, HealthFuture};
use common::listener::{self, ListenerConfig, ListenerStats};
use common::log_limit::LogLimit;
use common::shutdown::{Drain, ShutdownWatch};
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::clock::Clock;
use crate::config::RuntimeConfig;
use crate::connection;
use crate::stats::{self, ServerStats, Settings};
use crate::storage::Store;

pub use crate::node::Node;

/// How often the sweeper runs, and how many slots per shard it visits each time: enough to
/// walk a million-item store in well under a minute without holding a lock for long.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_BUDGET: usize = 4096;

/// memcached's refusal at the connection limit, word for word.
const TOO_MANY: &[u8] = b"ERROR Too many open connections\r\n";

/// A bound, not yet running, cache node.
#[derive(Debug)]
pub struct CacheNode {
    node: Arc<Node>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: RuntimeConfig,
    connections: Arc<ListenerStats>,
}

impl CacheNode {
    /// Binds the listeners (logging the real addresses) and builds the empty store.
    pub async fn bind(config: RuntimeConfig) -> std::io::Result<Self> {
        let listener = listener::bind("memcached", config.listen).await?;
        let admin = match config.admin_listen {
            Some(addr) => Some(listener::bind("admin", addr).await?),
            None => None,
        };
        let store = Store::new(config.store);
        let connections = Arc::new(ListenerStats::default());
        let settings = Settings {
            max_connections: config.max_connections,
            threads: config.threads,
            max_item_size: config.store.max_item_size,
            memory_limit: config.store.memory_limit,
            port: listener.local_addr()?.port(),
            shards: store.shards(),
            flush_enabled: config.flush_enabled,
            auth_file: config.auth.as_ref().map(|a| a.path().display().to_string()),
        };
        let node = Arc::new(Node {
            store,
            server: ServerStats::new(Clock::new(), connections.clone(), settings),
            limits: config.limits,
            idle_timeout: config.idle_timeout,
            auth: config.auth.clone(),
            auth_failures: LogLimit::default(),
            registered: config
                .register
                .as_ref()
                .map(|_| std::sync::atomic::AtomicBool::new(false)),
        });
        Ok(Self {
            node,
            listener,
            admin,
            config,
            connections,
        })
    }

    /// The memcached listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The admin listener's address, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state (tests read counters through it).
    pub fn node(&self) -> Arc<Node> {
        self.node.clone()
    }

    /// Serves until `shutdown` fires, then waits up to the grace period for open
    /// connections to finish. Returns whether they all did.
    pub async fn run(self, shutdown: ShutdownWatch) -> bool {
        let CacheNode {
            node,
            listener,
            admin,
            config,
            connections,
        } = self;
        let drain = Drain::new();
        let registration = config.register.clone().map(|reg| {
            let port = listener.local_addr().map_or(0, |a| a.port());
            tokio::spawn(crate::register::run(
                reg,
                port,
                node.clone(),
                shutdown.clone(),
            ))
        });
        if let Some(admin) = admin {
            let source: Arc<dyn AdminSource> = Arc::new(AdminView(node.clone()));
            let sd = shutdown.clone();
            let guard = drain.guard();
            tokio::spawn(async move {
                if let Err(e) = common::admin::serve(admin, source, sd).await {
                    tracing::error!(error = %e, "admin endpoint failed");
                }
                drop(guard);
            });
        }
        if let Some(auth) = node.auth.clone() {
            tokio::spawn(reload_on_sighup(auth, shutdown.clone()));
        }
        let sweeper = {
            let node = node.clone();
            let sd = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                loop {
                    tokio::select! {
                        _ = sd.triggered() => break,
                        _ = tick.tick() => {
                            let removed = node.store.sweep(node.server.clock.now(), SWEEP_BUDGET);
                            if removed > 0 {
                                tracing::trace!(removed, "swept expired items");
                            }
                        }
                    }
                }
            })
        };
        let handler_node = node.clone();
        let handler_shutdown = shutdown.clone();
        listener::serve(
            listener,
            ListenerConfig {
                name: "memcached",
                max_connections: config.max_connections,
                reject_message: TOO_MANY,
            },
            connections,
            shutdown,
            drain.guard(),
            move |stream, _peer| {
                let node = handler_node.clone();
                let shutdown = handler_shutdown.clone();
                async move {
                    let ended = connection::serve(stream, &node, &shutdown).await;
                    tracing::debug!(?ended, "connection ended");
                }
            },
        )
        .await;
        let _ = sweeper.await;
        // Deregistered before draining, so proxies stop sending new requests here.
        if let Some(r) = registration {
            let _ = r.await;
        }
        let drained = drain.wait(config.grace_period).await;
        if drained {
            tracing::info!("all connections closed");
        } else {
            tracing::warn!(grace = ?config.grace_period, "grace period over; closing remaining connections");
        }
        drained
    }
}

/// Reads the auth file again at every SIGHUP, as memcached does; a file that has become
/// unusable leaves the entries in force (and says so), so a bad edit locks nobody out.
async fn reload_on_sighup(auth: Arc<Auth>, shutdown: ShutdownWatch) {
    let mut hup = common::reload::subscribe();
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return,
            changed = hup.changed() => if changed.is_err() { return },
        }
        match auth.reload() {
            Ok(entries) => {
                tracing::info!(file = %auth.path().display(), entries, "auth file reloaded")
            }
            Err(e) => tracing::error!(
                error = %common::exit::chain(&e),
                "auth file not reloaded; the previous entries stay in force"
            ),
        }
    }
}

struct AdminView(Arc<Node>);

impl AdminSource for AdminView {
    fn health(&self) -> HealthFuture {
        Box::pin(async { Ok(()) })
    }

    /// With `--register`, ready only while registered: proxies find the node through its
    /// lease, so before that (or after losing it) it serves nobody's routes.
    fn ready(&self) -> HealthFuture {
        let registered = self
            .0
            .registered
            .as_ref()
            .map(|r| r.load(std::sync::atomic::Ordering::Relaxed));
        Box::pin(async move {
            match registered {
                Some(false) => Err(common::admin::Unhealthy(
                    "not registered with route-lookup (yet)".into(),
                )),
                _ => Ok(()),
            }
        })
    }

    fn metrics(&self) -> String {
        stats::prometheus(&self.0.server, &self.0.store.stats())
    }
}
