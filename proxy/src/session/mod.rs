//! The client-facing sessions before login: what IMAP and POP3 share (the front end's
//! settings, the peer, the STARTTLS outcome, the hand-over to the relay). Both run on
//! [`common::line_session`] and log in through [`crate::login::LoginService`].

pub mod imap;
pub mod pop3;

use std::sync::Arc;
use std::time::Duration;

use common::line_session::Bounds;
use common::shutdown::ShutdownWatch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::login::{LoginService, Route};
use crate::upstream::Upstream;

pub use crate::login::{Forward, Peer};

/// When STARTTLS/STLS is offered and whether login needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// Never offered.
    Off,
    /// Offered; login allowed without it.
    On,
    /// Offered; no login before it (LOGINDISABLED).
    Only,
}

/// Why a session's `run` returned.
#[derive(Debug)]
pub enum Outcome {
    /// Done.
    Close,
    /// Wrap the stream in TLS and run again.
    StartTls,
    /// Logged in: relay the client to this backend (the backend's login answer has been
    /// passed on, and any bytes the client pipelined after its login forwarded).
    Relay(Box<(Upstream, Route)>),
}

/// What every session of a proxy shares.
pub struct Frontend {
    /// Logs clients in.
    pub login: LoginService,
    /// TLS, if configured.
    pub tls: Option<TlsAcceptor>,
    /// STARTTLS mode.
    pub starttls: StartTls,
    /// Silence allowed between reads before login.
    pub preauth_timeout: Duration,
    /// From accept to logged in, in total.
    pub login_deadline: Duration,
    /// Malformed commands and failed logins before the connection is closed.
    pub max_bad_commands: u32,
    /// Longest SASL answer (OAuth tokens run to kilobytes).
    pub max_sasl_line: usize,
    /// Peers that must start with a PROXY protocol header.
    pub proxy_protocol_from: common::cidr::CidrList,
    /// Connections from them closed for a missing or bad header.
    pub proxy_header_errors: std::sync::atomic::AtomicU64,
    /// Pre-auth connections per client address.
    pub preauth: Arc<crate::preauth::PreauthLimit>,
    /// Shutdown.
    pub shutdown: ShutdownWatch,
    /// The name in greetings.
    pub name: String,
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Frontend {
    /// The driver's bounds for a connection accepted at `accepted`.
    fn bounds(&self, accepted: Instant) -> Bounds {
        Bounds {
            read_timeout: self.preauth_timeout,
            write_timeout: self.preauth_timeout,
            deadline: Some(accepted + self.login_deadline),
            max_bad: self.max_bad_commands,
            max_line: self.max_sasl_line,
        }
    }

    /// Whether STARTTLS/STLS is on offer to a client on `peer`.
    fn offers_starttls(&self, peer: &Peer) -> bool {
        self.tls.is_some() && !peer.tls && self.starttls != StartTls::Off
    }

    /// Whether a client on `peer` may log in now.
    fn login_allowed(&self, peer: &Peer) -> bool {
        peer.tls || self.starttls != StartTls::Only
    }
}

/// A logged-in session on its way to the relay, with what the client pipelined after its
/// login.
#[derive(Debug)]
pub struct Handoff {
    backend: Upstream,
    route: Route,
}

/// Hands a logged-in client over to the relay: anything it pipelined after its login goes
/// to the backend first.
async fn hand_over(pipelined: Vec<u8>, handoff: Handoff) -> std::io::Result<Outcome> {
    use tokio::io::AsyncWriteExt;
    let Handoff { mut backend, route } = handoff;
    if !pipelined.is_empty() {
        backend.write_all(&pipelined).await?;
    }
    Ok(Outcome::Relay(Box::new((backend, route))))
}

/// Runs a login, but not past the session's deadline: `None` when the deadline came first
/// (the lookup's Auth-Wait and every backend step are inside the deadline too).
async fn within_deadline<F: std::future::Future>(
    deadline: Option<Instant>,
    login: F,
) -> Option<F::Output> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, login).await.ok(),
        None => Some(login.await),
    }
}

/// Validates credentials before they leave the session: bounded, non-empty, UTF-8 name.
fn checked_user<'a>(user: &'a [u8], pass: &[u8], authzid: Option<&[u8]>) -> Option<&'a str> {
    let user = std::str::from_utf8(user).ok()?;
    let fits = !user.is_empty()
        && user.len() <= 256
        && pass.len() <= 1024
        && authzid.is_none_or(|a| a.len() <= 256);
    fits.then_some(user)
}

/// Shared by both front ends: the frontend handle.
type Shared = Arc<Frontend>;
