//! The client-facing POP3 session before login: CAPA, USER, PASS, AUTH PLAIN, STLS (as a
//! return value; the plaintext buffer is discarded), NOOP, QUIT. A successful login hands
//! the connection to the relay.

use std::io;

use codec::pop3::{self, Command, Limits};
use common::line_session::{self, Dispatch, Ended, Farewell, Line, LineSession, Step};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{checked_user, hand_over, within_deadline, Handoff, Outcome, Peer, Shared};
use crate::login::{Credentials, LoggedIn, Protocol};

/// A command, owned: what the session needs of it.
#[derive(Debug)]
pub enum Cmd {
    /// CAPA.
    Capa,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// STLS.
    Stls,
    /// USER name.
    User(Vec<u8>),
    /// PASS secret.
    Pass(Vec<u8>),
    /// AUTH mechanism [initial response].
    Auth(Option<Vec<u8>>, Option<Vec<u8>>),
    /// Anything else (not allowed before login).
    Other,
}

impl Cmd {
    fn own(command: &Command<'_>) -> Self {
        match command {
            Command::Capa => Cmd::Capa,
            Command::Noop => Cmd::Noop,
            Command::Quit => Cmd::Quit,
            Command::Stls => Cmd::Stls,
            Command::User(u) => Cmd::User(u.to_vec()),
            Command::Pass(x) => Cmd::Pass(x.to_vec()),
            Command::Auth { mechanism, initial } => {
                Cmd::Auth(mechanism.map(<[u8]>::to_vec), initial.map(<[u8]>::to_vec))
            }
            _ => Cmd::Other,
        }
    }
}

type Io = LineSession<line_session::pop3::Pop3<Cmd>>;

/// One client connection.
pub struct Session {
    handler: Handler,
    io: Io,
}

struct Handler {
    front: Shared,
    peer: Peer,
    attempt: u32,
    user: Option<Vec<u8>>,
}

impl Session {
    /// A new session for a connection accepted at `accepted`.
    pub fn new(front: Shared, peer: Peer, accepted: Instant) -> Self {
        let dialect = line_session::pop3::Pop3::new(Limits::default(), Cmd::own);
        let io = LineSession::new(dialect, front.bounds(accepted), front.shutdown.clone());
        Self {
            handler: Handler {
                front,
                peer,
                attempt: 0,
                user: None,
            },
            io,
        }
    }

    /// Marks the client connection as encrypted (after STLS).
    pub fn set_tls(&mut self) {
        self.handler.peer.tls = true;
    }

    /// Refuses the connection if it starts with a PROXY protocol header (the peer is not
    /// one allowed to send it).
    pub fn refuse_proxy_header(&mut self) {
        self.io.refuse_proxy_header();
    }

    /// Serves the pre-auth dialogue, then hands over to the relay.
    pub async fn run<S>(&mut self, stream: &mut S, greet: bool) -> io::Result<Outcome>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if greet {
            let greeting = format!("{} POP3 proxy ready", self.handler.front.name);
            pop3::ok(self.io.out(), greeting);
            self.io.flush(stream).await?;
        }
        match self.io.drive(stream, &mut self.handler).await? {
            Ended::Closed => Ok(Outcome::Close),
            Ended::StartTls => Ok(Outcome::StartTls),
            Ended::Done(handoff) => hand_over(self.io.take_buffered(), *handoff).await,
        }
    }
}

/// Continue, or close when the session has used up its strikes.
fn go_on<D>(strike_left: bool) -> Step<D> {
    if strike_left {
        Step::Continue
    } else {
        Step::Close
    }
}

impl Handler {
    fn capa(&self, out: &mut Vec<u8>) {
        pop3::multiline_start(out, "Capability list follows");
        for line in ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"] {
            pop3::multiline_line(out, line);
        }
        if self.front.login_allowed(&self.peer) {
            pop3::multiline_line(out, "USER");
            pop3::multiline_line(out, "SASL PLAIN");
        }
        if self.front.offers_starttls(&self.peer) {
            pop3::multiline_line(out, "STLS");
        }
        pop3::multiline_end(out);
    }

    async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mechanism: Option<Vec<u8>>,
        initial: Option<Vec<u8>>,
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<Step<Box<Handoff>>> {
        let is_plain = mechanism
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(b"PLAIN"));
        if !is_plain {
            return Ok(go_on(io.bad_command(None, "Unsupported mechanism")));
        }
        let response = match initial {
            Some(i) => i,
            None => {
                pop3::continuation(io.out(), "");
                match io.read_line(stream).await? {
                    Line::Read(r) => r,
                    Line::TooLong => {
                        pop3::err(io.out(), "Authentication answer too long");
                        return Ok(Step::Close);
                    }
                    Line::Closed => return Ok(Step::Close),
                }
            }
        };
        let plain = match codec::sasl::decode_plain(&response) {
            Ok(p) => p,
            Err(e) => return Ok(go_on(io.bad_command(None, &e.to_string()))),
        };
        let authzid = plain.other_authzid().then_some(&plain.authzid[..]);
        self.login(io, "plain", authzid, &plain.authcid, &plain.password)
            .await
    }

    async fn login(
        &mut self,
        io: &mut Io,
        mechanism: &'static str,
        authzid: Option<&[u8]>,
        user: &[u8],
        pass: &[u8],
    ) -> io::Result<Step<Box<Handoff>>> {
        let Some(user) = checked_user(user, pass, authzid) else {
            return Ok(go_on(io.bad_command(None, "Invalid credentials")));
        };
        self.attempt += 1;
        let creds = Credentials {
            user,
            pass,
            authzid,
            mechanism,
        };
        let login = self
            .front
            .login
            .login(&self.peer, creds, self.attempt, Protocol::Pop3);
        let Some(logged_in) = within_deadline(io.bounds().deadline, login).await else {
            io.farewell(Farewell::Deadline);
            return Ok(Step::Close);
        };
        Ok(match logged_in {
            LoggedIn::Ok {
                backend,
                reply,
                route,
            } => {
                io.out().extend_from_slice(&reply.lines);
                Step::Done(Box::new(Handoff { backend, route }))
            }
            LoggedIn::Refused(reply) => {
                io.out().extend_from_slice(&reply.lines);
                go_on(io.failed_login())
            }
            LoggedIn::LookupRefused(status) => {
                let code = if status == codec::auth_http::STATUS_TEMPORARY {
                    "[SYS/TEMP]"
                } else {
                    "[AUTH]"
                };
                pop3::err(io.out(), format!("{code} {status}"));
                go_on(io.failed_login())
            }
            LoggedIn::Unavailable => {
                pop3::err(io.out(), "[SYS/TEMP] Temporary failure, try again later");
                Step::Continue
            }
            LoggedIn::Throttled => {
                pop3::err(io.out(), "[LOGIN-DELAY] Login rejected for this user");
                Step::Close
            }
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Dispatch<line_session::pop3::Pop3<Cmd>, S> for Handler {
    type Done = Box<Handoff>;

    async fn dispatch(
        &mut self,
        cmd: Cmd,
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<Step<Self::Done>> {
        Ok(match cmd {
            Cmd::Capa => {
                self.capa(io.out());
                Step::Continue
            }
            Cmd::Noop => {
                pop3::ok(io.out(), "");
                Step::Continue
            }
            Cmd::Quit => {
                pop3::ok(io.out(), "Bye");
                Step::Close
            }
            Cmd::Stls if self.front.offers_starttls(&self.peer) => {
                pop3::ok(io.out(), "Begin TLS negotiation");
                Step::StartTls
            }
            Cmd::User(_) | Cmd::Pass(_) | Cmd::Auth(..)
                if !self.front.login_allowed(&self.peer) =>
            {
                pop3::err(io.out(), "[AUTH] Use STLS first");
                go_on(io.failed_login())
            }
            Cmd::User(u) => {
                self.user = Some(u);
                pop3::ok(io.out(), "");
                Step::Continue
            }
            Cmd::Pass(p) => match self.user.take() {
                Some(u) => return self.login(io, "user", None, &u, &p).await,
                None => go_on(io.bad_command(None, "USER first")),
            },
            Cmd::Auth(mechanism, initial) => {
                return self.auth(mechanism, initial, io, stream).await;
            }
            Cmd::Stls | Cmd::Other => {
                go_on(io.bad_command(None, "Command not allowed before login"))
            }
        })
    }
}
