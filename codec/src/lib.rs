//! Sans-io wire formats for the mail-proxy workspace.
//!
//! Every parser here works on a byte slice and never touches a socket: it either returns a
//! complete value together with how many bytes it used, or says that more bytes are needed.
//! Callers keep the unconsumed bytes and call again once more have arrived, so the same input
//! gives the same values whatever the read sizes were (each parser has a chunk-sweep test).
//!
//! # Layout
//! - [`auth_http`]: nginx's `auth_http` value escaping and the route-lookup header names
//!   and status texts.
//! - [`route_key`]: the route cache's key shapes, escaped so no login can inject a command.
//! - [`memcache`]: the memcached 1.6 text protocol (classic and meta commands), both sides:
//!   the server parses [`memcache::Request`]s and encodes [`memcache::Response`]s, a client
//!   encodes requests and parses responses.

pub mod auth_http;
pub mod memcache;
pub mod route_key;
