//! proxy: the IMAP/POP3 front door. This crate owns finding a user's mailbox server
//! (the memcached route cache, then route-lookup over nginx's auth_http protocol) and,
//! in later work, the client-facing sessions, the login replay and the relay.
//!
//! # Layout
//! - [`cache`]: the route-cache cluster client: libmemcached-compatible ketama placement,
//!   a few connections per node, a short fetch timeout, ejection of failing nodes for a
//!   retry interval; every failure is a miss, so the cache can never fail a login.
//! - [`lookup`]: the auth_http client: HTTP/1.1 keep-alive to route-lookup, several
//!   lookup URLs with failover and a retry interval for a failed one.

pub mod cache;
pub mod lookup;
