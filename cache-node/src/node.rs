//! What every connection of a cache node shares: the store, the counters, the bounds. Its
//! own module so that the connection handler and the registration task depend on it, not
//! on the server that wires them (module dependencies point one way).

use std::sync::Arc;
use std::time::Duration;

use codec::memcache::Limits;

use common::log_limit::LogLimit;

use crate::auth::Auth;
use crate::stats::ServerStats;
use crate::storage::Store;

/// Everything a connection needs, shared by all of them.
#[derive(Debug)]
pub struct Node {
    /// The items.
    pub store: Store,
    /// Server-wide counters and settings.
    pub server: ServerStats,
    /// Request bounds.
    pub limits: Limits,
    /// Silence allowed on a connection (zero = unlimited).
    pub idle_timeout: Duration,
    /// With `--auth-file`: the entries a connection must authenticate with first.
    pub auth: Option<Arc<Auth>>,
    /// Failed authentications are logged at most once per interval, with a count.
    pub auth_failures: LogLimit,
    /// With `--register`: whether this node holds a lease now (`/readyz`).
    pub registered: Option<std::sync::atomic::AtomicBool>,
}
