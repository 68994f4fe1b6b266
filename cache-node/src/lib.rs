//! cache-node: a memcached-protocol server that holds the proxy's route entries and that
//! any memcached client (pymemcache, libmemcached, memccapable) can use.
//!
//! # Layout
//! - [`config`]: the command line (clap + `CACHE_*` environment twins) and its validation.
//! - [`auth`]: memcached's ASCII authentication (`--auth-file`, memcached's `-Y`): the
//!   file, reloaded on SIGHUP, and the dialogue before a connection has authenticated.
//! - [`clock`]: server time in memcached's units; expiry rules.
//! - [`storage`]: the sharded, memory-bounded LRU store with cas, expiry and flush.
//! - [`execute`]: one parsed request against the store, its reply appended to a buffer;
//!   pure and synchronous. The meta commands' replies are in `meta`, one file each.
//! - [`connection`]: one client: read, parse every buffered request (pipelining), execute,
//!   write once; swallow refused data blocks; bounds and timeouts.
//! - [`node`]: what every connection shares (store, counters, bounds).
//! - [`server`]: listeners, the expiry sweeper, admin endpoint and shutdown wiring.
//! - [`stats`]: connection counters and the `stats` / `/metrics` renderings.
//! - [`register`]: self-registration with route-lookup (lease, heartbeat, deregister;
//!   emptied before a rejoin).

pub mod auth;
pub mod clock;
pub mod config;
pub mod connection;
pub mod execute;
mod meta;
pub mod node;
pub mod register;
pub mod server;
pub mod stats;
pub mod storage;
