//! route-lookup: the equivalent of Zimbra's route lookup handler. It owns the account
//! database (PostgreSQL): its schema, its migrations and every query, and the three ways
//! in: nginx's auth_http (and the admin SOAP AuthRequest) over HTTP, and gRPC for zmprov,
//! mailbox servers, cache nodes and proxies.
//!
//! # Layout
//! - [`config`]: flags and their validation.
//! - [`store`]: the pool, the migrations and every query.
//! - [`directory`]: the in-memory snapshot of domains, servers and config lookups use.
//! - [`resolve`]: the lookup decision (login → route or a generic failure).
//! - [`purge`]: deleting an account's cached routes on every cache node.
//! - [`password`]: argon2id hashing and verification in reused memory.
//! - [`password_checks`]: the bound on hashing (N at once, a bounded wait).
//! - [`lockout`]: Zimbra's password policy attributes (lockout, length).
//! - [`authenticate`]: one password check with lockouts applied.
//! - [`oauth`]: bearer-token logins (xoauth2, oauthbearer): introspected, matched to the
//!   login's account.
//! - [`throttle`]: requests per second per client address (admin SOAP).
//! - [`http`]: the HTTP listener (nginx-lookup, admin SOAP, /healthz, /metrics).
//! - [`grpc`]: Provisioning, Directory (`Authenticate`) and Registry (leases, watch).
//! - [`metrics`]: lookup counters and latency histogram.
//! - [`register`]: this instance's own lookup URL in the registry (garpu lists it).
//! - [`account_events`]: the account change log, relayed to watchers (proxies).
//! - [`server`]: wiring and the shutdown contract.

pub mod account_events;
pub mod authenticate;
pub mod config;
pub mod directory;
pub mod grpc;
pub mod http;
pub mod lockout;
pub mod metrics;
pub mod oauth;
pub mod password;
pub mod password_checks;
pub mod purge;
pub mod register;
pub mod resolve;
pub mod server;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod throttle;
