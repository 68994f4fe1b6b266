//! The seam between a login and where it goes: a [`RouteResolver`] turns a login into a
//! [`Decision`] and forgets a route that turned out wrong. The real one is
//! [`crate::route::Router`] (the route cache, then route-lookup, trusting only registered
//! mailbox servers); tests plug in their own.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use codec::route_key::CacheKey;

/// A boxed future, as a resolver returns them (one allocation per login).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A login to route.
#[derive(Clone)]
pub struct Login<'a> {
    /// As the client typed it.
    pub user: &'a str,
    /// The password, or an OAuth login's bearer token.
    pub pass: &'a [u8],
    /// The lookup's Auth-Method: `plain`, `xoauth2` or `oauthbearer`.
    pub method: &'static str,
    /// `imap`, `imapssl`, `pop3` or `pop3ssl`: how the mailbox server will be reached.
    pub protocol: &'static str,
    /// 1 for the session's first attempt.
    pub attempt: u32,
    /// The client.
    pub client_ip: IpAddr,
    /// The proxy's address on the client connection.
    pub proxy_ip: IpAddr,
}

impl std::fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("pass", &format_args!("<{} bytes>", self.pass.len()))
            .field("method", &self.method)
            .field("protocol", &self.protocol)
            .field("attempt", &self.attempt)
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

/// Where a login goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The backend.
    pub backend: SocketAddr,
    /// The backend's host name (route-lookup's `Auth-Server-Name`), which upstream TLS
    /// verifies its certificate against with `--upstream-tls-name host`.
    pub server_name: Option<String>,
    /// The account name to log in as upstream.
    pub user: String,
    /// The password to log in with upstream, when route-lookup gave one (`Auth-Pass`, as
    /// nginx uses it); else the client's.
    pub pass: Option<Vec<u8>>,
    /// Whether it came from the cache.
    pub cached: bool,
    /// The cache keys that produced or now hold it (deleted if the route proves wrong).
    pub keys: Vec<CacheKey>,
}

/// The routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go there.
    Route(Route),
    /// route-lookup refused: its text and wait.
    Refused {
        /// Auth-Status text (generic).
        status: String,
        /// Seconds to wait before answering.
        wait: Option<u32>,
        /// route-lookup said it knows no such user (for the failed-login line only).
        unknown_user: bool,
    },
    /// Nobody could answer.
    Unavailable,
}

/// Finds where a login goes.
pub trait RouteResolver: Send + Sync {
    /// Routes `login`.
    fn route<'a>(&'a self, login: &'a Login<'a>) -> BoxFuture<'a, Decision>;
    /// Forgets `route` (it led to a refusal or a dead backend), so the next login asks
    /// the source again.
    fn forget<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, ()>;
}
