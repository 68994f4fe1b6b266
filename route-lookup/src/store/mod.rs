//! The account database: a PostgreSQL pool with bounded waits, the schema migrations, and
//! every query the service runs (all parameterised, all prepared and cached per connection).
//!
//! When PostgreSQL is down every call fails within the configured timeout with
//! [`StoreError::Unavailable`]; the pool drops dead connections and opens new ones on the
//! next call, so the service recovers by itself when the database comes back.

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

pub use migrate::latest_version;
pub use provision::{split_address, valid_domain, Change, ChangeOp, Entry, EntryKind};
pub use registry::{join_host_port, LeaseKind, MailboxServer, Membership};
pub use route::{AccountRoute, Directory, Ports, ServerRoute};

/// What can go wrong talking to the database, in terms the callers act on.
#[derive(Debug, Error)]
pub enum StoreError {
    /// PostgreSQL cannot be reached, timed out, or failed unexpectedly: a temporary failure.
    #[error("database unavailable: {0}")]
    Unavailable(String),
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
            Some(c) if c.code().starts_with("22") => Self::Invalid(format!("invalid value: {e}")),
            // The whole chain: "db error" alone hides e.g. a refused password.
            _ => Self::Unavailable(common::exit::chain(&e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(common::exit::chain(&e))
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
    pub fn new(config: &StoreConfig) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("bad database URL: {e}")))?;
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
            .map_err(|e| StoreError::Invalid(format!("cannot build the database pool: {e}")))?;
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
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
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
