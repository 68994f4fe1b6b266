//! The client-facing sessions before login: what IMAP and POP3 share (the front end's
//! settings, the peer, the STARTTLS outcome, the hand-over to the relay). Both run on
//! [`common::line_session`] and log in through [`crate::login::LoginService`].

pub mod imap;
pub mod pop3;

use std::sync::Arc;
use std::time::Duration;

use common::line_session::{Bounds, Dialect, Dispatch, Ended, Farewell, LineSession, Step};
use common::shutdown::ShutdownWatch;
use tokio::time::Instant;

use crate::login::{Credentials, LoggedIn, LoginService, Protocol, Route};
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

/// The SASL mechanisms offered (`--sasl-mechanisms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mechanisms {
    /// PLAIN.
    pub plain: bool,
    /// LOGIN (IMAP).
    pub login: bool,
    /// XOAUTH2.
    pub xoauth2: bool,
    /// OAUTHBEARER.
    pub oauthbearer: bool,
}

impl Default for Mechanisms {
    /// PLAIN and LOGIN, as before OAuth was offered.
    fn default() -> Self {
        Self {
            plain: true,
            login: true,
            xoauth2: false,
            oauthbearer: false,
        }
    }
}

impl Mechanisms {
    /// Whether `m` is on offer.
    pub fn offers(&self, m: codec::sasl::OAuthMechanism) -> bool {
        match m {
            codec::sasl::OAuthMechanism::XOAuth2 => self.xoauth2,
            codec::sasl::OAuthMechanism::OAuthBearer => self.oauthbearer,
        }
    }

    /// Whether an OAuth mechanism is offered.
    pub fn oauth(&self) -> bool {
        self.xoauth2 || self.oauthbearer
    }

    /// The longest command line to accept before login: with OAuth on offer, room for a
    /// SASL-IR of the longest token, base64 (4/3) with its name and framing; else `usual`.
    fn max_line(&self, usual: usize) -> usize {
        if self.oauth() {
            usual.max(codec::sasl::MAX_TOKEN * 4 / 3 + 2048)
        } else {
            usual
        }
    }

    /// The mechanisms' names in offer order; LOGIN only where the protocol has it.
    fn names(&self, with_login: bool) -> impl Iterator<Item = &'static str> {
        [
            (self.plain, "PLAIN"),
            (self.login && with_login, "LOGIN"),
            (self.xoauth2, "XOAUTH2"),
            (self.oauthbearer, "OAUTHBEARER"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }
}

/// Why a session's `run` returned.
#[derive(Debug)]
pub enum Outcome {
    /// Done.
    Close,
    /// Wrap the stream in TLS and run again.
    StartTls,
    /// Logged in: relay the client to this backend (the backend's login answer has been
    /// passed on, and any bytes the client pipelined after its login forwarded), holding
    /// the session's place under `--max-sessions-per-user`.
    Relay(Box<(Upstream, Route, Option<Box<crate::session_limit::Permit>>)>),
}

/// What every session of a proxy shares.
pub struct Frontend {
    /// Logs clients in.
    pub login: LoginService,
    /// TLS, if configured.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// STARTTLS mode.
    pub starttls: StartTls,
    /// SASL mechanisms offered.
    pub sasl: Mechanisms,
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

/// What a protocol's front end gives the shared [`Session`]: its greeting and its peer.
pub trait FrontEnd {
    /// Writes the greeting.
    fn greet(&self, out: &mut Vec<u8>);
    /// Where the client is (marked TLS after STARTTLS).
    fn peer_mut(&mut self) -> &mut Peer;
}

/// One client connection before login: a protocol's front end on the line-session driver.
pub struct Session<L, H> {
    handler: H,
    io: LineSession<L>,
}

impl<L: Dialect, H: FrontEnd> Session<L, H> {
    /// `handler` speaking `dialect`, for a connection accepted at `accepted`.
    fn new(handler: H, dialect: L, front: &Frontend, accepted: Instant) -> Self {
        let io = LineSession::new(dialect, front.bounds(accepted), front.shutdown.clone());
        Self { handler, io }
    }

    /// Marks the client connection as encrypted (after STARTTLS/STLS).
    pub fn set_tls(&mut self) {
        self.handler.peer_mut().tls = true;
    }

    /// Refuses the connection if it starts with a PROXY protocol header (the peer is not
    /// one allowed to send it).
    pub fn refuse_proxy_header(&mut self) {
        self.io.refuse_proxy_header();
    }

    /// Serves the pre-auth dialogue (greeting first unless resuming after STARTTLS), then
    /// hands over to the relay.
    pub async fn run<S>(&mut self, stream: &mut S, greet: bool) -> std::io::Result<Outcome>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        H: Dispatch<L, S, Done = Box<Handoff>>,
    {
        if greet {
            self.handler.greet(self.io.out());
            self.io.flush(stream).await?;
        }
        match self.io.drive(stream, &mut self.handler).await? {
            Ended::Closed => Ok(Outcome::Close),
            Ended::StartTls => Ok(Outcome::StartTls),
            Ended::Done(handoff) => hand_over(self.io.take_buffered(), *handoff).await,
        }
    }
}

/// A logged-in session on its way to the relay, with what the client pipelined after its
/// login.
#[derive(Debug)]
pub struct Handoff {
    backend: Upstream,
    route: Route,
    permit: Option<Box<crate::session_limit::Permit>>,
}

/// Hands a logged-in client over to the relay: anything it pipelined after its login goes
/// to the backend first.
async fn hand_over(pipelined: Vec<u8>, handoff: Handoff) -> std::io::Result<Outcome> {
    use tokio::io::AsyncWriteExt;
    let Handoff {
        mut backend,
        route,
        permit,
    } = handoff;
    if !pipelined.is_empty() {
        backend.write_all(&pipelined).await?;
    }
    Ok(Outcome::Relay(Box::new((backend, route, permit))))
}

/// Continue, or close when the session has used up its strikes.
fn go_on<D>(strike_left: bool) -> Step<D> {
    if strike_left {
        Step::Continue
    } else {
        Step::Close
    }
}

/// The refusals each protocol words itself; the backend's own answers are relayed as they
/// came.
enum Refusal<'a> {
    /// The credentials are out of bounds (empty or overlong name, not UTF-8…).
    Invalid,
    /// route-lookup refused, with its generic text.
    Lookup(&'a str),
    /// Nobody could serve the login now.
    Unavailable,
    /// The user is over its login limit.
    Throttled,
    /// The account has its most sessions from this address.
    SessionLimit,
}

/// Credentials as a client gave them, before any check.
struct Given<'a> {
    user: &'a [u8],
    /// The password, or the bearer token of an OAuth login.
    pass: &'a [u8],
    authzid: Option<&'a [u8]>,
    /// How they came (`login`, `plain`, `sasl-login`, `user`, `xoauth2`, `oauthbearer`),
    /// for the logs.
    mechanism: &'static str,
    /// The OAuth message, replayed upstream as the client sent it.
    oauth: Option<&'a codec::sasl::OAuth>,
}

impl<'a> Given<'a> {
    /// An OAuth login: the token goes where a password would.
    fn oauth(oauth: &'a codec::sasl::OAuth) -> Self {
        Self {
            user: &oauth.user,
            pass: &oauth.token,
            authzid: None,
            mechanism: oauth.mechanism.method(),
            oauth: Some(oauth),
        }
    }
}

/// One login attempt through the service, within the session's deadline, and what it
/// leads to: the relay, or a refusal counted against the strike cap (worded by `say`).
/// `attempts` counts this connection's attempts. A refused OAuth login first gets the
/// error challenge (RFC 7628 3.2.2), the mailbox server's or our own, and the client's
/// answer to it, before the refusal.
#[allow(clippy::too_many_arguments)]
async fn log_in<L: Dialect, S>(
    front: &Frontend,
    peer: &Peer,
    io: &mut LineSession<L>,
    stream: &mut S,
    attempts: &mut u32,
    given: Given<'_>,
    protocol: Protocol<'_>,
    say: impl FnOnce(&mut Vec<u8>, Refusal<'_>),
) -> std::io::Result<Step<Box<Handoff>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some(user) = checked_user(given.user, given.pass, given.authzid, given.oauth.is_some())
    else {
        say(io.out(), Refusal::Invalid);
        return Ok(go_on(io.count_bad()));
    };
    *attempts += 1;
    let creds = Credentials {
        user,
        pass: given.pass,
        authzid: given.authzid,
        mechanism: given.mechanism,
        oauth: given.oauth,
    };
    let login = front.login.login(peer, creds, *attempts, protocol);
    let Some(logged_in) = within_deadline(io.bounds().deadline, login).await else {
        io.farewell(Farewell::Deadline);
        return Ok(Step::Close);
    };
    if given.oauth.is_some() {
        if let Some(challenge) = error_challenge(&logged_in) {
            io.out().extend_from_slice(b"+ ");
            io.out().extend_from_slice(&challenge);
            io.out().extend_from_slice(b"\r\n");
            io.flush(stream).await?;
            // Whatever the client answers (an empty line, OAUTHBEARER's ^A, a cancel),
            // the exchange ends in the refusal.
            if let common::line_session::Line::Closed = io.read_line(stream).await? {
                return Ok(Step::Close);
            }
        }
    }
    Ok(match logged_in {
        LoggedIn::Ok {
            backend,
            reply,
            route,
            permit,
        } => {
            io.out().extend_from_slice(&reply.lines);
            Step::Done(Box::new(Handoff {
                backend,
                route,
                permit,
            }))
        }
        LoggedIn::Refused(reply) => {
            io.out().extend_from_slice(&reply.lines);
            go_on(io.failed_login())
        }
        LoggedIn::LookupRefused(status) | LoggedIn::UnknownUser(status) => {
            say(io.out(), Refusal::Lookup(&status));
            go_on(io.failed_login())
        }
        LoggedIn::Unavailable => {
            say(io.out(), Refusal::Unavailable);
            Step::Continue
        }
        LoggedIn::Throttled => {
            say(io.out(), Refusal::Throttled);
            Step::Close
        }
        LoggedIn::SessionLimit => {
            say(io.out(), Refusal::SessionLimit);
            go_on(io.failed_login())
        }
    })
}

/// The error challenge a refused OAuth login gets before its refusal: the mailbox
/// server's own, or ours when route-lookup refused the token. Temporary failures and
/// throttling are answered at once: the token was never judged.
fn error_challenge(outcome: &LoggedIn) -> Option<Vec<u8>> {
    match outcome {
        LoggedIn::Refused(reply) => reply.challenge.clone(),
        LoggedIn::LookupRefused(status) | LoggedIn::UnknownUser(status)
            if status != codec::auth_http::STATUS_TEMPORARY =>
        {
            Some(codec::sasl::oauth_error_challenge().into_bytes())
        }
        _ => None,
    }
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

/// Validates credentials before they leave the session: bounded, non-empty, UTF-8 name;
/// a password of at most 1 KiB, a bearer token (`oauth`) of at most
/// [`codec::sasl::MAX_TOKEN`].
fn checked_user<'a>(
    user: &'a [u8],
    pass: &[u8],
    authzid: Option<&[u8]>,
    oauth: bool,
) -> Option<&'a str> {
    let user = std::str::from_utf8(user).ok()?;
    let max_pass = if oauth { codec::sasl::MAX_TOKEN } else { 1024 };
    let fits = !user.is_empty()
        && user.len() <= 256
        && pass.len() <= max_pass
        && authzid.is_none_or(|a| a.len() <= 256);
    fits.then_some(user)
}

/// Shared by both front ends: the frontend handle.
type Shared = Arc<Frontend>;
