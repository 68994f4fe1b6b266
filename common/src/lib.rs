//! Runtime plumbing shared by every binary of the workspace: it binds and accepts, bounds
//! concurrency, shuts down, logs, serves the admin endpoints, and drives line-protocol
//! sessions. Of the protocols it knows only their framing (through `codec`), never what a
//! command means; the one exception is the cache clients' authentication round trip, shared
//! by the proxy and route-lookup.
//!
//! # Layout
//! - [`cidr`]: address ranges in flags (`--proxy-protocol-from`, trusted proxies);
//!   [`local_subnets`]: the networks this host (or container) is attached to.
//! - [`proxy_header`]: taking a PROXY protocol header off a connection from a trusted load
//!   balancer, bounded in size and time, leaving what follows in the socket.
//! - [`listen`]: the `HOST:PORT | off` listen-address type every listen flag uses.
//! - [`listener`]: bind, the accept loop with a connection limit and backoff, per-connection
//!   spans and drain tracking.
//! - [`line_session`]: the one driver of every IMAP and POP3 session (the proxy's and
//!   mailbox-stub's): bounded reads, the bad-command and failed-login cap, timeouts and the
//!   login deadline, last words.
//! - [`session_io`]: reading into and writing out of a line-protocol session's buffers,
//!   bounded by time and the shutdown watch.
//! - [`memcached_auth`]: the client's round trip of memcached's ASCII authentication
//!   (`--memcached-auth-file`).
//! - [`log_limit`]: at most one log line per interval for events that come in floods.
//! - [`reload`]: SIGHUP means reload, never exit, in every binary.
//! - [`secret`]: secrets read from files (`--admin-token-file` and the like).
//! - [`http_url`]: the `http://`/`https://` URL flags of the HTTP clients (lookup URLs,
//!   the introspection endpoint), parsed and checked once.
//! - [`oauth_introspection`]: the OAuth 2.0 token introspection client (RFC 7662) with its
//!   cache of active answers, shared by route-lookup and mailbox-stub.
//! - [`certs`]: certificates chosen by SNI from several PEM pairs, reloaded on SIGHUP.
//! - [`tls_tickets`]: TLS session ticket keys derived from one secret on a rotation
//!   schedule, so every worker (and every proxy with the same key file) resumes the others'
//!   sessions.
//! - [`tls_ciphers`]: the cipher suites a TLS server offers and whose order picks one.
//! - [`shutdown`]: the one shutdown contract: SIGTERM/SIGINT flip a [`shutdown::ShutdownWatch`],
//!   listeners stop, sessions finish, `main` waits under a grace period.
//! - [`admin`]: the admin HTTP server with `/healthz` and Prometheus `/metrics`.
//! - [`metrics`]: a tiny Prometheus text-format writer.
//! - [`telemetry`]: tracing setup with `RUST_LOG` filtering.
//! - [`tls`]: rustls server/client configurations from PEM, self-signed certificates.
//! - [`timeout`]: `with_timeout`, whose error names the phase that ran out.
//! - [`exit`]: process exit codes (64 for a bad configuration), the one-line `ConfigError`,
//!   and `chain`, an error with every cause after it for log lines and exit reasons.

pub mod admin;
pub mod certs;
pub mod cidr;
pub mod exit;
pub mod http_url;
pub mod line_session;
pub mod listen;
pub mod listener;
pub mod local_subnets;
pub mod log_limit;
pub mod memcached_auth;
pub mod metrics;
pub mod oauth_introspection;
pub mod proxy_header;
pub mod reload;
pub mod secret;
pub mod session_io;
pub mod shutdown;
pub mod telemetry;
pub mod timeout;
pub mod tls;
pub mod tls_ciphers;
pub mod tls_tickets;
