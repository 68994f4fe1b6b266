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
//! - [`sasl`]: SASL PLAIN, XOAUTH2 and OAUTHBEARER responses (AUTHENTICATE / AUTH).
//! - [`route_key`]: the route cache's key shapes, escaped so no login can inject a command.
//! - [`imap`]: IMAP4rev1 commands (resumable parser with literals and limits) and
//!   response encoding.
//! - [`proxy_protocol`]: the HAProxy PROXY header, v1 and v2 (parse) and v2 (encode).
//! - [`memcache`]: the memcached 1.6 text protocol (classic and meta commands), both sides:
//!   the server parses [`memcache::Request`]s and encodes [`memcache::Response`]s, a client
//!   encodes requests and parses responses.
//! - [`pop3`]: POP3 with CAPA, STLS, AUTH, XCLIENT and XOIP, both sides: the server parses
//!   [`pop3::Command`]s and writes dot-stuffed responses, a client encodes commands and
//!   parses status lines and multi-line blocks.

pub mod auth_http;
pub mod imap;
pub mod memcache;
pub mod pop3;
pub mod proxy_protocol;
pub mod route_key;
pub mod sasl;
