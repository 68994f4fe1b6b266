//! Wiring: the store (migrated), the HTTP and gRPC listeners and the membership poller,
//! started together and stopped by one shutdown watch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::shutdown::{Drain, ShutdownWatch};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{AdminAuth, RuntimeConfig};
use crate::directory::DirectoryCache;
use crate::http::{self, AppState};
use crate::metrics::LookupMetrics;
use crate::store::{SetupError, Store, StoreConfig, StoreError};

/// Why [`RouteLookup::bind`] could not start the service. The causes are kept as sources:
/// print the whole chain (`common::exit::chain`) to see, say, the server's
/// "password authentication failed" behind a migration failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database settings are unusable (a bad URL, refused pool settings).
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The schema could not be migrated before `db_wait` ran out.
    #[error("cannot migrate the database")]
    Migrate(#[source] StoreError),
    /// The domain directory could not be read after migrating.
    #[error("cannot read the directory")]
    Directory(#[source] StoreError),
    /// A listener could not be bound (the text names the address and the listener).
    #[error(transparent)]
    Listen(#[from] std::io::Error),
}

/// A bound, migrated route-lookup, ready to run.
#[derive(Debug)]
pub struct RouteLookup {
    config: RuntimeConfig,
    store: Store,
    directory: Arc<DirectoryCache>,
    http: Option<TcpListener>,
    https: Option<TcpListener>,
    grpc: Option<TcpListener>,
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    grpc_addr: Option<SocketAddr>,
}

impl RouteLookup {
    /// Connects to the database (waiting up to `db_wait` for it to come up), migrates the
    /// schema, and binds the listeners.
    pub async fn bind(config: RuntimeConfig, db_wait: Duration) -> Result<Self, StartError> {
        let store = Store::new(&StoreConfig {
            url: config.database_url.clone(),
            pool_size: config.db_pool_size,
            timeout: config.db_timeout,
            lookup_connections: config.db_lookup_connections,
        })?;
        let deadline = tokio::time::Instant::now() + db_wait;
        let version = loop {
            match store.migrate().await {
                Ok(v) => break v,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %common::exit::chain(&e), "database not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(StartError::Migrate(e)),
            }
        };
        tracing::info!(schema_version = version, "database ready");
        let directory = DirectoryCache::load(&store)
            .await
            .map_err(StartError::Directory)?;
        if matches!(config.admin_auth, AdminAuth::Insecure) && config.grpc_listen.is_some() {
            tracing::warn!(
                "gRPC admin calls are NOT authenticated (--insecure-admin); local development only"
            );
        }
        let http = match config.http_listen {
            Some(a) => Some(common::listener::bind("http", a).await?),
            None => None,
        };
        let https = match config.https_listen {
            Some(a) => Some(common::listener::bind("https", a).await?),
            None => None,
        };
        let grpc = match config.grpc_listen {
            Some(a) => Some(common::listener::bind("grpc", a).await?),
            None => None,
        };
        Ok(Self {
            http_addr: http.as_ref().map(TcpListener::local_addr).transpose()?,
            https_addr: https.as_ref().map(TcpListener::local_addr).transpose()?,
            grpc_addr: grpc.as_ref().map(TcpListener::local_addr).transpose()?,
            config,
            store,
            directory,
            http,
            https,
            grpc,
        })
    }

    /// The HTTP listener's address, if on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The HTTPS listener's address, if on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The gRPC listener's address, if on.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// The HOST:PORT this instance registers, if any: --advertise, else the address of the
    /// listener it registers (see [`RouteLookup::registered_url`]), with the host name in
    /// place of a wildcard IP.
    pub fn advertised(&self) -> Option<String> {
        let http = self.http_addr.or(self.https_addr)?;
        match &self.config.advertise {
            Some(explicit) => explicit.clone(),
            None if http.ip().is_unspecified() => {
                let host = hostname().unwrap_or_else(|| "localhost".into());
                Some(format!("{host}:{}", http.port()))
            }
            None => Some(http.to_string()),
        }
    }

    /// The lookup URL this instance registers (what `zmprov garpu` lists, for nginx): the
    /// plaintext listener's when it is on, since stock nginx's auth_http has no TLS; else
    /// the HTTPS listener's.
    pub fn registered_url(&self) -> Option<String> {
        let advertise = self.advertised()?;
        let scheme = if self.http_addr.is_some() {
            "http"
        } else {
            "https"
        };
        Some(crate::register::lookup_url(scheme, &advertise))
    }

    /// The database handle.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` fires, then drains within the grace period.
    pub async fn run(self, shutdown: ShutdownWatch) {
        let drain = Drain::new();
        let directory = self.directory.clone();
        tokio::spawn(
            directory
                .clone()
                .run_refresher(self.store.clone(), shutdown.clone()),
        );
        let (tx, rx) = watch::channel(None);
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(url) = self.registered_url() {
            // The drain guard keeps shutdown waiting for the deregistration.
            let registration = crate::register::run(
                self.store.clone(),
                url,
                self.config.lease_ttl,
                shutdown.clone(),
            );
            let guard = drain.guard();
            tasks.spawn(async move {
                registration.await;
                drop(guard);
            });
        }
        let events = Arc::new(crate::account_events::AccountEvents::default());
        tasks.spawn(crate::account_events::poll(
            self.store.clone(),
            events.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(crate::grpc::poll_membership(
            self.store.clone(),
            tx,
            shutdown.clone(),
        ));
        let passwords = crate::authenticate::Authenticator::new(
            self.store.clone(),
            directory.clone(),
            crate::password_checks::PasswordChecks::new(self.config.password_checks),
        );
        if let Some(certs) = &self.config.certs {
            certs.follow_reloads();
        }
        let https_tls = self
            .config
            .certs
            .as_ref()
            .map(|c| tokio_rustls::TlsAcceptor::from(c.server_config(&[b"http/1.1"])));
        let grpc_tls = self
            .config
            .certs
            .as_ref()
            .map(|c| c.server_config(&[b"h2"]));
        let http_listeners = [(self.http, None), (self.https, https_tls)];
        if http_listeners.iter().any(|(l, _)| l.is_some()) {
            let state = Arc::new(AppState {
                auth: passwords.clone(),
                soap_throttle: crate::throttle::PerAddress::new(
                    self.config.soap_rate,
                    self.config.soap_safe_ips.clone(),
                ),
                store: self.store.clone(),
                directory: directory.clone(),
                policy: self.config.lookup.clone(),
                metrics: Arc::new(LookupMetrics::default()),
                http_timeout: self.config.http_timeout,
                certs: self.config.certs.clone(),
            });
            let router = http::router(state);
            for (listener, tls) in http_listeners {
                let Some(listener) = listener else { continue };
                let serving = http::Serving {
                    max_connections: self.config.max_connections,
                    timeout: self.config.http_timeout,
                    tls,
                };
                tasks.spawn(http::serve(
                    listener,
                    router.clone(),
                    serving,
                    shutdown.clone(),
                    drain.guard(),
                ));
            }
        }
        if let Some(listener) = self.grpc {
            let services = crate::grpc::Services {
                store: self.store.clone(),
                directory: directory.clone(),
                passwords,
                lease_ttl: self.config.lease_ttl,
                snapshots: rx,
                events,
            };
            let auth = self.config.admin_auth.clone();
            let shutdown = shutdown.clone();
            let guard = drain.guard();
            tasks.spawn(async move {
                if let Err(e) =
                    crate::grpc::serve(listener, grpc_tls, services, &auth, shutdown).await
                {
                    tracing::error!(error = %common::exit::chain(&e), "gRPC server failed");
                }
                drop(guard);
            });
        }
        shutdown.triggered().await;
        if drain.wait(self.config.grace_period).await {
            tracing::info!("drained");
        } else {
            tracing::warn!(grace = ?self.config.grace_period, "grace period over; closing open connections");
        }
        tasks.abort_all();
        self.store.close();
    }
}

/// This machine's host name (inside a container, the name other containers resolve).
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;

    /// A migration that cannot reach the database fails with the server's reason in the
    /// printed chain, not only "cannot migrate the database".
    #[tokio::test]
    async fn a_start_failure_names_its_root_cause() {
        let admin = crate::testing::admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/rl_no_such_database");
        let config = Config::try_parse_from([
            "route-lookup",
            "--database-url",
            &url,
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "off",
            "--insecure-admin",
            "--advertise",
            "off",
        ])
        .unwrap()
        .validate()
        .unwrap();
        let e = RouteLookup::bind(config, Duration::ZERO).await.unwrap_err();
        assert!(matches!(e, StartError::Migrate(_)), "{e:?}");
        let chain = common::exit::chain(&e);
        assert!(
            chain.starts_with("cannot migrate the database: database unavailable: "),
            "{chain}"
        );
        assert!(
            chain.contains("rl_no_such_database\" does not exist"),
            "{chain}"
        );
    }
}
