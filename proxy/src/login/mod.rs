//! Everything from "credentials parsed" to "logged in upstream", behind one call:
//! [`LoginService::login`]. It checks the user's throttle, asks the [`RouteResolver`] where
//! the account lives, has the [`Connector`] reach that mailbox server and replay the login
//! there, forgets a cached route only when it may be wrong, and counts the outcome. The
//! IMAP and POP3 front ends see nothing else.
//!
//! # Layout
//! - [`resolver`]: the [`RouteResolver`] seam and its types.
//! - [`connector`]: connect, PROXY v2 header, upstream TLS, replay.

pub mod connector;
pub mod resolver;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use connector::{ConnectError, Connector, TlsName};
pub use resolver::{BoxFuture, Decision, Login, Route, RouteResolver};

use crate::backend::LoginReply;
use crate::throttle::Throttle;
use crate::upstream::Upstream;

/// How the client's address reaches the mailbox server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// IMAP `ID` with x-originating-ip, POP3 `XCLIENT ADDR=`.
    Id,
    /// A PROXY protocol v2 header at connection start.
    ProxyV2,
    /// Not forwarded.
    Off,
}

/// Where a session is.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client.
    pub client: SocketAddr,
    /// Our address on the client connection.
    pub local: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The listener's name (`imap`, `imaps`, `pop3`, `pop3s`), for log lines.
    pub listener: &'static str,
}

/// What the client logs in with.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The login name as typed (routing follows it).
    pub user: &'a str,
    /// The password, or an OAuth login's bearer token.
    pub pass: &'a [u8],
    /// The SASL authorization identity, when the client asked for one other than itself
    /// (replayed as SASL PLAIN, as Zimbra does).
    pub authzid: Option<&'a [u8]>,
    /// How the client gave them (`login`, `plain`, `sasl-login`, `user`, `xoauth2`,
    /// `oauthbearer`), for log lines and the lookup's Auth-Method.
    pub mechanism: &'static str,
    /// An OAuth login's SASL message, replayed upstream as the client sent it.
    pub oauth: Option<&'a codec::sasl::OAuth>,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("pass", &format_args!("<{} bytes>", self.pass.len()))
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Credentials<'_> {
    /// The lookup's Auth-Method: the OAuth mechanism's name, else `plain` (nginx sends
    /// `plain` for LOGIN, USER/PASS and SASL PLAIN and LOGIN alike).
    fn method(&self) -> &'static str {
        self.oauth.map_or("plain", |o| o.mechanism.method())
    }
}

/// The protocol the login is replayed in.
#[derive(Debug, Clone, Copy)]
pub enum Protocol<'a> {
    /// IMAP, under the client's tag.
    Imap {
        /// The client's tag.
        tag: &'a [u8],
    },
    /// POP3.
    Pop3,
}

/// What logging in produced.
#[derive(Debug)]
pub enum LoggedIn {
    /// The backend accepted: pass `reply` on, then relay.
    Ok {
        /// The backend connection.
        backend: Upstream,
        /// Its answer to the login.
        reply: LoginReply,
        /// Where.
        route: Route,
        /// The session's place under `--max-sessions-per-user`, held while it lasts.
        permit: Option<Box<crate::session_limit::Permit>>,
    },
    /// The backend refused: pass its answer on; the session may retry.
    Refused(LoginReply),
    /// route-lookup refused (after its Auth-Wait): its generic text.
    LookupRefused(String),
    /// route-lookup refused: it knows no such user (the client sees the same text).
    UnknownUser(String),
    /// The user is over its login limit.
    Throttled,
    /// The account has `--max-sessions-per-user` sessions from this address already.
    SessionLimit,
    /// Nobody could serve the login.
    Unavailable,
}

/// Login counters for /metrics.
#[derive(Debug, Default)]
pub struct LoginStats {
    /// Logins relayed.
    pub ok: AtomicU64,
    /// Logins refused by route-lookup or the backend, or throttled.
    pub refused: AtomicU64,
    /// Logins that failed for lack of a lookup service or backend.
    pub unavailable: AtomicU64,
    /// Routes served from the cache.
    pub cache_hits: AtomicU64,
    /// Routes looked up.
    pub cache_misses: AtomicU64,
    /// Failed logins by reason, in [`FailReason::ALL`] order.
    pub failures: [AtomicU64; FailReason::ALL.len()],
}

/// Why a login failed, as the `login failed` log line and /metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// route-lookup refused the credentials.
    BadCredentials,
    /// route-lookup knows no such user.
    UnknownUser,
    /// The user is over its login limit.
    Throttled,
    /// The mailbox server refused the login.
    BackendRefused,
    /// Nobody could serve it now (the client may try again).
    Temporary,
    /// The account has `--max-sessions-per-user` sessions from this address already.
    SessionLimit,
}

impl FailReason {
    /// Every reason.
    pub const ALL: [FailReason; 6] = [
        FailReason::BadCredentials,
        FailReason::UnknownUser,
        FailReason::Throttled,
        FailReason::BackendRefused,
        FailReason::Temporary,
        FailReason::SessionLimit,
    ];

    /// Its word in logs and metrics.
    pub fn word(self) -> &'static str {
        match self {
            FailReason::BadCredentials => "bad_credentials",
            FailReason::UnknownUser => "unknown_user",
            FailReason::Throttled => "throttled",
            FailReason::BackendRefused => "backend_refused",
            FailReason::Temporary => "temporary",
            FailReason::SessionLimit => "session_limit",
        }
    }

    fn of(outcome: &LoggedIn) -> Option<Self> {
        Some(match outcome {
            LoggedIn::Ok { .. } => return None,
            LoggedIn::Refused(reply) if reply.temporary => FailReason::Temporary,
            LoggedIn::Refused(_) => FailReason::BackendRefused,
            LoggedIn::LookupRefused(status) if status == codec::auth_http::STATUS_TEMPORARY => {
                FailReason::Temporary
            }
            LoggedIn::LookupRefused(_) => FailReason::BadCredentials,
            LoggedIn::UnknownUser(_) => FailReason::UnknownUser,
            LoggedIn::Throttled => FailReason::Throttled,
            LoggedIn::SessionLimit => FailReason::SessionLimit,
            LoggedIn::Unavailable => FailReason::Temporary,
        })
    }
}

/// Routes, connects and replays logins.
pub struct LoginService {
    resolver: Arc<dyn RouteResolver>,
    connector: Connector,
    throttle: Throttle,
    limit: crate::session_limit::SessionLimit,
    stats: LoginStats,
}

impl std::fmt::Debug for LoginService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginService")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl LoginService {
    /// A service routing with `resolver`, reaching backends through `connector`, limiting
    /// users with `throttle`.
    pub fn new(resolver: Arc<dyn RouteResolver>, connector: Connector, throttle: Throttle) -> Self {
        Self {
            resolver,
            connector,
            throttle,
            limit: crate::session_limit::SessionLimit::off(),
            stats: LoginStats::default(),
        }
    }

    /// Caps sessions per account and client address with `limit`.
    pub fn session_limit(mut self, limit: crate::session_limit::SessionLimit) -> Self {
        self.limit = limit;
        self
    }

    /// The session cap (worker 0's serves the other workers on a socket).
    pub fn limit(&self) -> &crate::session_limit::SessionLimit {
        &self.limit
    }

    /// The counters.
    pub fn stats(&self) -> &LoginStats {
        &self.stats
    }

    /// The connector (its connect-time histogram is in /metrics).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// The throttle (the per-IP check happens at connect).
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Logs `creds` in for the client at `peer`: its `attempt`th try on this connection.
    pub async fn login(
        &self,
        peer: &Peer,
        creds: Credentials<'_>,
        attempt: u32,
        protocol: Protocol<'_>,
    ) -> LoggedIn {
        let result = if self.throttle.allow_user(creds.user).await {
            let result = self.login_unthrottled(peer, creds, attempt, protocol).await;
            match &result {
                LoggedIn::Ok { .. } => self.throttle.record(creds.user, true).await,
                LoggedIn::Refused(_) | LoggedIn::LookupRefused(_) | LoggedIn::UnknownUser(_) => {
                    self.throttle.record(creds.user, false).await
                }
                LoggedIn::Throttled | LoggedIn::SessionLimit | LoggedIn::Unavailable => {}
            }
            result
        } else {
            LoggedIn::Throttled
        };
        let counter = match &result {
            LoggedIn::Ok { .. } => &self.stats.ok,
            LoggedIn::Refused(_)
            | LoggedIn::LookupRefused(_)
            | LoggedIn::UnknownUser(_)
            | LoggedIn::Throttled
            | LoggedIn::SessionLimit => &self.stats.refused,
            LoggedIn::Unavailable => &self.stats.unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = FailReason::of(&result) {
            let i = FailReason::ALL
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0);
            self.stats.failures[i].fetch_add(1, Ordering::Relaxed);
            // One line per failed login for fail2ban and people alike. The name is printed
            // quoted and escaped ({:?}), so no login name can forge a log line.
            tracing::warn!(
                user = ?creds.user,
                client = %peer.client.ip(),
                listener = peer.listener,
                mechanism = creds.mechanism,
                reason = reason.word(),
                "login failed"
            );
        }
        result
    }

    async fn login_unthrottled(
        &self,
        peer: &Peer,
        creds: Credentials<'_>,
        attempt: u32,
        protocol: Protocol<'_>,
    ) -> LoggedIn {
        // The backend port depends on how we reach the backend, not on how the client
        // reached us.
        let service = match (protocol, self.connector.uses_tls()) {
            (Protocol::Imap { .. }, false) => "imap",
            (Protocol::Imap { .. }, true) => "imapssl",
            (Protocol::Pop3, false) => "pop3",
            (Protocol::Pop3, true) => "pop3ssl",
        };
        let login = Login {
            user: creds.user,
            pass: creds.pass,
            method: creds.method(),
            protocol: service,
            attempt,
            client_ip: peer.client.ip(),
            proxy_ip: peer.local.ip(),
        };
        // A cached route whose backend cannot be reached is forgotten and looked up once
        // more: the account may have moved while its old server went away.
        for round in 0..2 {
            let route = match self.resolver.route(&login).await {
                Decision::Route(r) => r,
                Decision::Refused {
                    status,
                    wait,
                    unknown_user,
                } => {
                    if let Some(w) = wait.filter(|&w| w > 0) {
                        tokio::time::sleep(Duration::from_secs(u64::from(w.min(60)))).await;
                    }
                    return if unknown_user && status != codec::auth_http::STATUS_TEMPORARY {
                        LoggedIn::UnknownUser(status)
                    } else {
                        LoggedIn::LookupRefused(status)
                    };
                }
                Decision::Unavailable => return LoggedIn::Unavailable,
            };
            let counter = if route.cached {
                &self.stats.cache_hits
            } else {
                &self.stats.cache_misses
            };
            counter.fetch_add(1, Ordering::Relaxed);
            // A password route-lookup hands back replaces the client's (nginx's Auth-Pass);
            // a bearer token is the client's own and goes up as it came.
            let pass = match creds.oauth {
                Some(_) => creds.pass,
                None => route.pass.as_deref().unwrap_or(creds.pass),
            };
            let upstream = Credentials {
                user: &route.user,
                pass,
                ..creds
            };
            // The place is taken before the mailbox server is asked, so that logins racing
            // each other cannot all get in; a failed login gives it back.
            let Some(permit) = self.limit.acquire(&route.user, peer.client.ip()).await else {
                return LoggedIn::SessionLimit;
            };
            let error = match self
                .connector
                .login(
                    route.backend,
                    route.server_name.as_deref(),
                    peer,
                    &upstream,
                    protocol,
                )
                .await
            {
                Ok((backend, reply)) if reply.ok => {
                    return LoggedIn::Ok {
                        backend,
                        reply,
                        route,
                        permit: permit.map(Box::new),
                    }
                }
                Ok((_, reply)) => {
                    // A temporary refusal says nothing about the route; any other may mean
                    // the account moved (a mailbox refuses accounts it does not host).
                    if !reply.temporary {
                        self.resolver.forget(&route).await;
                    }
                    return LoggedIn::Refused(reply);
                }
                Err(e) => e,
            };
            tracing::warn!(backend = %route.backend, error = %error, cached = route.cached, "backend login failed");
            self.resolver.forget(&route).await;
            if !(matches!(error, ConnectError::Unreachable(_)) && route.cached && round == 0) {
                return LoggedIn::Unavailable;
            }
        }
        LoggedIn::Unavailable
    }
}
