//! The client-facing POP3 session before login: CAPA, USER, PASS, AUTH with the
//! mechanisms on offer (PLAIN, XOAUTH2, OAUTHBEARER), STLS (as a return value; the
//! plaintext buffer is discarded), NOOP, QUIT. A successful login hands
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
    // A long AUTH initial response should come after the `+` (RFC 5034's 255 octets), but
    // clients send OAuth tokens of kilobytes in the AUTH line; they are let in.
    let limits = Limits {
        max_line: front.sasl.max_line(Limits::default().max_line),
    };
    let dialect = line_session::pop3::Pop3::new(limits, Cmd::own);
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
            let names: Vec<&str> = self.front.sasl.names(false).collect();
            if !names.is_empty() {
                pop3::multiline_line(out, format!("SASL {}", names.join(" ")));
            }
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
        let sasl = self.front.sasl;
        let plain = sasl.plain
            && mechanism
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(b"PLAIN"));
        let oauth = mechanism
            .as_deref()
            .and_then(codec::sasl::OAuthMechanism::from_name)
            .filter(|m| sasl.offers(*m));
        if !plain && oauth.is_none() {
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
        if let Some(m) = oauth {
            let message = match codec::sasl::decode_oauth(m, &response) {
                Ok(m) => m,
                Err(e) => return Ok(go_on(io.bad_command(None, &e.to_string()))),
            };
            return self.login(io, stream, Given::oauth(&message)).await;
        }
        let plain = match codec::sasl::decode_plain(&response) {
            Ok(p) => p,
            Err(e) => return Ok(go_on(io.bad_command(None, &e.to_string()))),
        };
        let given = Given {
            user: &plain.authcid,
            pass: &plain.password,
            authzid: plain.other_authzid().then_some(&plain.authzid[..]),
            mechanism: "plain",
            oauth: None,
        };
        self.login(io, stream, given).await
    }

    async fn login<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io,
        stream: &mut S,
        given: Given<'_>,
    ) -> io::Result<Step<Box<Handoff>>> {
        let front = &*self.front;
        log_in(
            front,
            &self.peer,
            io,
            stream,
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
                    Refusal::SessionLimit => {
                        "[IN-USE] Maximum number of connections from user+IP exceeded".into()
                    }
                };
                pop3::err(out, text);
            },
        )
        .await
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
                Some(u) => {
                    let given = Given {
                        user: &u,
                        pass: &p,
                        authzid: None,
                        mechanism: "user",
                        oauth: None,
                    };
                    return self.login(io, stream, given).await;
                }
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
