//! What every session of a server shares: the mail store, the password checker, the
//! token introspection client, the hostname, TLS, limits, timeouts, trusted proxies and the
//! fault switches tests flip.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::shutdown::ShutdownWatch;
use tokio_rustls::TlsAcceptor;

use crate::auth::Authenticator;
use crate::store::Store;
use crate::trusted::TrustedProxies;

/// Behaviour tests can switch on to play a misbehaving mailbox server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Wait this long before the greeting.
    pub greeting_delay: Option<Duration>,
    /// Refuse every login as if the directory were down.
    pub refuse_logins: bool,
    /// Close the connection right after a successful login's OK.
    pub drop_after_login: bool,
    /// Accept connections but never say anything (and never read).
    pub stall: bool,
}

/// Timeouts of the session phases.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Before login.
    pub preauth: Duration,
    /// After login, between commands (IDLE included).
    pub idle: Duration,
    /// The TLS handshake.
    pub handshake: Duration,
}

/// The shared state.
pub struct Env {
    /// The server's name, as zimbraMailHost names it.
    pub hostname: String,
    /// The mail.
    pub store: Arc<Store>,
    /// Password checks.
    pub auth: Arc<dyn Authenticator>,
    /// For STARTTLS/STLS and the implicit-TLS listeners.
    pub tls: Option<TlsAcceptor>,
    /// Peers allowed to forward a client address.
    pub trusted: TrustedProxies,
    /// Whether connections from trusted peers start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Phase timeouts.
    pub timeouts: Timeouts,
    /// Invalid commands tolerated before the connection is closed.
    pub max_bad_commands: u32,
    /// Bound on a command line / literal.
    pub imap_limits: codec::imap::Limits,
    /// Bound on a POP3 command line.
    pub pop3_limits: codec::pop3::Limits,
    /// Bound on a SASL continuation answer (AUTHENTICATE, AUTH).
    pub sasl_line: usize,
    /// Bearer-token checks for XOAUTH2 / OAUTHBEARER, offered only when set.
    pub oauth: Option<Arc<common::oauth_introspection::Introspector>>,
    /// Fault switches.
    pub faults: Arc<Mutex<Faults>>,
    /// Shutdown.
    pub shutdown: ShutdownWatch,
    /// The most recent logins, for tests and the demo: who, from where.
    pub logins: Mutex<std::collections::VecDeque<Login>>,
}

/// One successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The canonical account.
    pub account: String,
    /// The client address logged for the session.
    pub client: ClientAddr,
    /// `imap` or `pop3`.
    pub protocol: &'static str,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("hostname", &self.hostname)
            .finish()
    }
}

impl Env {
    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records a login (the last 1000 are kept).
    pub fn record_login(&self, login: Login) {
        let mut logins = self
            .logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if logins.len() >= 1000 {
            logins.pop_front();
        }
        logins.push_back(login);
    }

    /// Whether an account whose mail host is `mail_host` lives here.
    pub fn serves(&self, mail_host: &str) -> bool {
        mail_host.eq_ignore_ascii_case(&self.hostname)
    }
}

/// Where a session's client really is: the peer, or the address a trusted proxy forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The address logged for the session.
    pub ip: IpAddr,
    /// Whether it was forwarded by a trusted proxy.
    pub forwarded: bool,
}
