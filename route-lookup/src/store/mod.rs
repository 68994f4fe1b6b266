//! The account database: a PostgreSQL pool with bounded waits, the schema migrations, and
//! every query the service runs (all parameterised, all prepared and cached per connection).
//!
//! When PostgreSQL is down every call fails within the configured timeout with
//! [`StoreError::Unavailable`]; the pool drops dead connections and opens new ones on the
//! next call, so the service recovers by itself when the database comes back.

mod account_events;
mod lockout;
mod migrate;
mod provision;
mod registry;
mod route;
mod shared;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use thiserror::Error;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

pub use account_events::{EventKind, StoredEvent};
pub use lockout::LockoutState;
pub use migrate::latest_version;
pub use provision::{split_address, valid_domain, Change, ChangeOp, Entry, EntryKind};
pub use registry::{join_host_port, LeaseKind, MailboxServer, Membership};
pub use route::{AccountRoute, Directory, Ports, ServerRoute};

/// What can go wrong talking to the database, in terms the callers act on.
#[derive(Debug, Error)]
pub enum StoreError {
    /// PostgreSQL cannot be reached, timed out, or failed unexpectedly: a temporary failure.
    /// The cause is the source, not part of this text: log it with `common::exit::chain`.
    #[error("database unavailable")]
    Unavailable(#[source] Outage),
    /// The named entry does not exist.
    #[error("no such {kind}: {name}")]
    NotFound {
        /// account, domain, server, alias, lease.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// An entry with this name (or an address equal to it) already exists.
    #[error("{kind} already exists: {name}")]
    Exists {
        /// account, domain, server, alias.
        kind: &'static str,
        /// The clashing name.
        name: String,
    },
    /// The request is not acceptable (bad attribute, bad value, entry still in use).
    #[error("{0}")]
    Invalid(String),
}

/// Why the database is unavailable: the driver's or the pool's own error, kept whole so
/// that a log line can name the root cause ("password authentication failed for user …"
/// behind the driver's bare "db error").
#[derive(Debug, Error)]
pub enum Outage {
    /// No answer within the configured timeout.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The driver failed (connection lost, refused, an unexpected server error).
    #[error(transparent)]
    Database(tokio_postgres::Error),
    /// The pool could not hand out a connection.
    #[error(transparent)]
    Pool(deadpool_postgres::PoolError),
}

/// Why [`Store::new`] could not set up the pool: a configuration error, not an outage.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The database URL does not parse.
    #[error("bad database URL")]
    Url(#[source] tokio_postgres::Error),
    /// deadpool refused the pool settings.
    #[error("cannot build the database pool")]
    Pool(#[source] deadpool_postgres::BuildError),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => Self::Exists {
                kind: "entry",
                name: e
                    .as_db_error()
                    .and_then(|d| d.detail())
                    .unwrap_or("")
                    .to_string(),
            },
            Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => {
                Self::Invalid("the entry is still in use".into())
            }
            // Class 22, data exception: the value was unacceptable, the database is fine.
            // The server's message says which (tokio-postgres's own text is "db error").
            Some(c) if c.code().starts_with("22") => Self::Invalid(format!(
                "invalid value: {}",
                e.as_db_error().map_or("rejected", |d| d.message())
            )),
            _ => Self::Unavailable(Outage::Database(e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(Outage::Pool(e))
    }
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// postgres://… URL or key=value string.
    pub url: String,
    /// Most connections.
    pub pool_size: usize,
    /// Bound on waiting for a connection, on connecting, and on each operation.
    pub timeout: Duration,
    /// Long-lived connections shared (pipelined) by all lookups.
    pub lookup_connections: usize,
}

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    shared: Arc<shared::SharedClients>,
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// Pool occupancy for /metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    /// Connections open.
    pub size: usize,
    /// Connections idle in the pool.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Configured maximum.
    pub max_size: usize,
}

impl Store {
    /// Builds the pool. Connects lazily: a database that is down now is not an error here.
    pub fn new(config: &StoreConfig) -> Result<Self, SetupError> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(SetupError::Url)?;
        pg.connect_timeout(config.timeout);
        // Notice a silently dead database host instead of waiting on it forever.
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(30));
        if pg.get_application_name().is_none() {
            pg.application_name("route-lookup");
        }
        let shared = Arc::new(shared::SharedClients::new(
            pg.clone(),
            config.lookup_connections,
        ));
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .recycle_timeout(Some(config.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(SetupError::Pool)?;
        Ok(Self {
            pool,
            shared,
            timeout: config.timeout,
        })
    }

    /// A pooled connection, or `Unavailable` within the timeout.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Runs one database operation under the timeout.
    async fn bounded<T, F>(&self, fut: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(Outage::Timeout(self.timeout))),
        }
    }

    /// Checks that a query round-trips.
    pub async fn health(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    /// Pool occupancy.
    pub fn pool_state(&self) -> PoolState {
        let s = self.pool.status();
        PoolState {
            size: s.size,
            available: s.available,
            waiting: s.waiting,
            max_size: s.max_size,
        }
    }

    /// Closes the pool (at shutdown).
    pub fn close(&self) {
        self.pool.close();
    }
}

/// Normalises a name for storage and comparison: trimmed, lowercase.
pub fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The driver's own text for a refused connection is "db error"; the operator needs
    /// the server's reason, which only the kept source carries.
    #[tokio::test]
    async fn an_outage_keeps_the_server_reason_as_its_source() {
        let admin = crate::testing::admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let store = Store::new(&StoreConfig {
            url: format!("{base}/rl_no_such_database"),
            pool_size: 1,
            timeout: Duration::from_secs(5),
            lookup_connections: 1,
        })
        .unwrap();
        let e = store.health().await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        assert_eq!(e.to_string(), "database unavailable");
        let chain = common::exit::chain(&e);
        assert!(
            chain.contains("rl_no_such_database\" does not exist"),
            "{chain}"
        );
    }

    #[test]
    fn a_bad_url_is_a_setup_error_naming_the_parser_reason() {
        let e = Store::new(&StoreConfig {
            url: "postgres://h/db?sslmode=sometimes".into(),
            pool_size: 1,
            timeout: Duration::from_secs(1),
            lookup_connections: 1,
        })
        .unwrap_err();
        assert!(matches!(e, SetupError::Url(_)), "{e:?}");
        let chain = common::exit::chain(&e);
        assert!(chain.starts_with("bad database URL: "), "{chain}");
        assert!(chain.contains("sslmode"), "{chain}");
    }
}
