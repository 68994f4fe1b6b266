//! proxy: the IMAP/POP3 front door. This crate owns finding a user's mailbox server
//! (the memcached route cache, then route-lookup over nginx's auth_http protocol), the
//! client-facing sessions, the login replay and the relay.
//!
//! It is a library app like the other services: [`Proxy::bind`] with a validated
//! [`config::RuntimeConfig`], then [`Proxy::run`] until the shutdown watch fires; `main`
//! only parses flags and sets up logging and worker processes.
//!
//! # Layout
//! - [`app`]: [`Proxy`]: builds the parts from the configuration, binds, serves, drains.
//! - [`login`]: everything from "credentials parsed" to "logged in upstream": the
//!   [`login::RouteResolver`] seam, the [`login::Connector`] (connect, PROXY v2, upstream
//!   TLS, replay) and the [`login::LoginService`] (throttle, forgetting wrong routes,
//!   counters) that the IMAP and POP3 front ends call.
//! - [`cache`]: the route-cache cluster client: libmemcached-compatible ketama placement,
//!   a few connections per node, a short fetch timeout, ejection of failing nodes for a
//!   retry interval; every failure is a miss, so the cache can never fail a login.
//! - [`lookup`]: the auth_http client: HTTP/1.1 keep-alive to route-lookup, several
//!   lookup URLs with failover and a retry interval for a failed one.
//! - [`membership`]: route-lookup's watch: cache nodes and registered mailbox servers.
//! - [`account_watch`]: route-lookup's account events: a moved, locked or deleted
//!   account's stale routes are forgotten and its [`sessions`] ended.
//! - [`sessions_admin`]: `GET /sessions` and `POST /sessions/kick` on the admin listener.
//! - [`route`]: the real resolver: alias key, route key, lookup, `add` with the TTL;
//!   forgetting refused routes.
//! - [`session`]: the client-facing IMAP and POP3 dialogues before login, on the shared
//!   line-session driver of `common`.
//! - [`backend`]: the backend dialogue (greeting, login replay) through `codec`'s client
//!   side.
//! - [`upstream`]: the backend connection, plain or TLS.
//! - [`relay`]: copying bytes both ways with an idle timeout; [`splice`]: its zero-copy
//!   path for bulk transfers.
//! - [`ejection`]: the one failover gate of cache nodes and lookup URLs (out for an
//!   interval after a failure, growing while failures go on).
//! - [`stale`]: routes used recently, for when neither the cache nor route-lookup answers.
//! - [`preauth`]: the cap on connections per client address not yet logged in.
//! - [`throttle`]: per-IP and per-user login limits, counted in the cache cluster.
//! - [`session_limit`]: `--max-sessions-per-user`, counted by worker 0 for all workers.
//! - [`server`]: listeners, TLS, STARTTLS, the admin endpoint; [`config`]: the flags.
//! - [`tls`]: the TLS stream of relayed sessions (towards clients and mailbox servers), on
//!   rustls' unbuffered API with buffers held only while bytes move.
//! - [`workers`]: several worker processes sharing the listeners (`--workers`).

pub mod account_watch;
pub mod app;
pub mod backend;
pub mod cache;
pub mod config;
pub mod ejection;
pub mod login;
pub mod lookup;
pub mod membership;
pub mod preauth;
pub mod relay;
pub mod route;
pub mod server;
pub mod session;
pub mod session_limit;
pub mod sessions;
pub mod sessions_admin;
pub mod splice;
pub mod stale;
pub mod throttle;
pub mod tls;
pub mod upstream;
pub mod workers;

pub use app::Proxy;
