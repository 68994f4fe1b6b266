//! The client-facing POP3 session before login: CAPA, USER, PASS, AUTH PLAIN, STLS (as a
//! return value; the plaintext buffer is discarded), NOOP, QUIT. A successful login hands
//! the connection to the relay.

use std::io;

use codec::pop3::{self, Command, Limits};
use common::line_session::{self, Dispatch, Line, LineSession, Step};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{go_on, log_in, FrontEnd, Given, Handoff, Peer, Refusal, Shared};
use crate::login::Protocol;

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
pub type Session = super::Session<line_session::pop3::Pop3<Cmd>, Handler>;

/// The POP3 front end: what each command does before login.
pub struct Handler {
    front: Shared,
    peer: Peer,
    attempt: u32,
    user: Option<Vec<u8>>,
}

/// A new session for a connection accepted at `accepted`.
pub fn session(front: Shared, peer: Peer, accepted: Instant) -> Session {
    let dialect = line_session::pop3::Pop3::new(Limits::default(), Cmd::own);
    let handler = Handler {
        front: front.clone(),
        peer,
        attempt: 0,
        user: None,
    };
    Session::new(handler, dialect, &front, accepted)
}

impl FrontEnd for Handler {
    fn greet(&self, out: &mut Vec<u8>) {
        pop3::ok(out, format!("{} POP3 proxy ready", self.front.name));
    }

    fn peer_mut(&mut self) -> &mut Peer {
        &mut self.peer
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
        let given = Given {
            user,
            pass,
            authzid,
            mechanism,
        };
        let front = &*self.front;
        let step = log_in(
            front,
            &self.peer,
            io,
            &mut self.attempt,
            given,
            Protocol::Pop3,
            |out, r| {
                let text = match r {
                    Refusal::Invalid => "Invalid credentials".into(),
                    Refusal::Lookup(status) if status == codec::auth_http::STATUS_TEMPORARY => {
                        format!("[SYS/TEMP] {status}")
                    }
                    Refusal::Lookup(status) => format!("[AUTH] {status}"),
                    Refusal::Unavailable => "[SYS/TEMP] Temporary failure, try again later".into(),
                    Refusal::Throttled => "[LOGIN-DELAY] Login rejected for this user".into(),
                };
                pop3::err(out, text);
            },
        );
        Ok(step.await)
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
