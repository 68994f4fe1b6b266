//! mailbox-stub: a small but real IMAP4rev1 and POP3 mailbox server whose mail lives in
//! memory. It plays the mailbox server in the demo and in every end-to-end test; real
//! clients (curl, imaplib, poplib, mbsync, fetchmail) work against it, directly or
//! through the proxy. The protocols come from the `codec` crate's IMAP and POP3 codecs.
//!
//! # Layout
//! - [`config`]: flags and their validation.
//! - [`server`]: listeners, TLS, PROXY headers, the connection path, and the
//!   [`server::MailboxStub::builder`] tests use (in-memory users, fault injection).
//! - [`connection`]: a session on the shared line-session driver (greeting faults,
//!   PROXY-header prefill, STARTTLS), for both protocols.
//! - [`imap`]: the IMAP session (state machine, one file per command family).
//! - [`pop3`]: the POP3 session.
//! - [`auth`]: password checks (route-lookup's `Authenticate` with a positive cache, or a
//!   fixed table).
//! - [`oauth`]: XOAUTH2 / OAUTHBEARER bearer tokens, introspected (RFC 7662).
//! - [`store`]: the in-memory folders and messages, shared by an account's sessions.
//! - [`mail`]: the generated messages and date formats.
//! - [`mime`]: header fields, ENVELOPE, BODYSTRUCTURE and body sections.
//! - [`env`], [`trusted`]: what sessions share; the trusted-proxy networks.

pub mod auth;
pub mod config;
pub mod connection;
pub mod env;
pub mod imap;
pub mod mail;
pub mod mime;
pub mod oauth;
pub mod pop3;
pub mod server;
pub mod store;
pub mod trusted;
