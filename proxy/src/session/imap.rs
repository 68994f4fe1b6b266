//! The client-facing IMAP session before login: an honest CAPABILITY, NOOP, LOGOUT, ID,
//! STARTTLS (as a return value; the plaintext buffer is discarded), LOGIN in every string
//! form and AUTHENTICATE with the mechanisms on offer (PLAIN, LOGIN, XOAUTH2,
//! OAUTHBEARER; with or without SASL-IR); anything else gets a tagged BAD. A successful
//! login hands the connection to the relay.

use std::io;

use base64::Engine;
use codec::imap::{tagged, untagged, Arg, Command, Limits, Status};
use common::line_session::{self, Dispatch, Line, LineSession, Step};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{go_on, log_in, FrontEnd, Given, Handoff, Peer, Refusal, Shared};
use crate::login::Protocol;

/// A command, owned: what the session needs of it.
#[derive(Debug)]
pub struct Cmd {
    tag: Vec<u8>,
    name: String,
    /// Each argument as a string, `None` for a list or NIL.
    args: Vec<Option<Vec<u8>>>,
    lists: bool,
}

impl Cmd {
    fn own(command: &Command<'_>) -> Self {
        Self {
            tag: command.tag.to_vec(),
            name: String::from_utf8_lossy(command.name).to_ascii_uppercase(),
            args: command
                .args
                .iter()
                .map(|a| a.as_astring().map(<[u8]>::to_vec))
                .collect(),
            lists: command.args.iter().any(|a| matches!(a, Arg::List(_))),
        }
    }

    fn arg(&self, i: usize) -> Option<Vec<u8>> {
        self.args.get(i).cloned().flatten()
    }
}

type Io = LineSession<line_session::imap::Imap<Cmd>>;

/// One client connection.
pub type Session = super::Session<line_session::imap::Imap<Cmd>, Handler>;

/// The IMAP front end: what each command does before login.
pub struct Handler {
    front: Shared,
    peer: Peer,
    attempt: u32,
}

/// Literals before login: enough for any credentials, far from what a client could make us
/// hold.
const PREAUTH_LITERAL: usize = 64 * 1024;

/// A new session for a connection accepted at `accepted`.
pub fn session(front: Shared, peer: Peer, accepted: Instant) -> Session {
    let usual = Limits::default();
    let limits = Limits {
        max_literal: PREAUTH_LITERAL,
        max_line: front.sasl.max_line(usual.max_line),
        ..usual
    };
    let dialect = line_session::imap::Imap::new(limits, "OK", Cmd::own);
    let handler = Handler {
        front: front.clone(),
        peer,
        attempt: 0,
    };
    Session::new(handler, dialect, &front, accepted)
}

impl FrontEnd for Handler {
    fn greet(&self, out: &mut Vec<u8>) {
        let caps = self.capabilities();
        let name = &self.front.name;
        untagged(
            out,
            &format!("OK [CAPABILITY {caps}] {name} IMAP4rev1 proxy ready"),
        );
    }

    fn peer_mut(&mut self) -> &mut Peer {
        &mut self.peer
    }
}

impl Handler {
    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 ID LITERAL+ SASL-IR");
        if self.front.offers_starttls(&self.peer) {
            caps.push_str(" STARTTLS");
        }
        if self.front.login_allowed(&self.peer) {
            for name in self.front.sasl.names(true) {
                caps.push_str(" AUTH=");
                caps.push_str(name);
            }
        } else {
            caps.push_str(" LOGINDISABLED");
        }
        caps
    }

    /// The client's answer to a SASL challenge; `None` when the session is over (too long:
    /// answered with BAD and closed; or the client left).
    async fn sasl_answer<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io,
        stream: &mut S,
        tag: &[u8],
        challenge: &str,
    ) -> io::Result<Option<Vec<u8>>> {
        codec::imap::continuation(io.out(), challenge);
        Ok(match io.read_line(stream).await? {
            Line::Read(answer) => Some(answer),
            Line::TooLong => {
                tagged(
                    io.out(),
                    tag,
                    Status::Bad,
                    None,
                    "Authentication answer too long",
                );
                untagged(io.out(), "BYE Authentication answer too long");
                None
            }
            Line::Closed => None,
        })
    }

    async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: &Cmd,
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<Step<Box<Handoff>>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let tag = &cmd.tag[..];
        let mechanism = cmd.arg(0);
        let sasl = self.front.sasl;
        let oauth = mechanism
            .as_deref()
            .and_then(codec::sasl::OAuthMechanism::from_name)
            .filter(|m| sasl.offers(*m));
        let mechanism = mechanism.map(|m| String::from_utf8_lossy(&m).to_ascii_uppercase());
        let (user, pass) = match mechanism.as_deref() {
            Some("PLAIN") if sasl.plain => {
                let Some(response) = self.initial_response(cmd, io, stream).await? else {
                    return Ok(Step::Close);
                };
                let plain = match codec::sasl::decode_plain(&response) {
                    Ok(p) => p,
                    Err(e) => return Ok(go_on(io.bad_command(Some(tag), &e.to_string()))),
                };
                let authzid = plain.other_authzid().then_some(&plain.authzid[..]);
                let given = Given {
                    user: &plain.authcid,
                    pass: &plain.password,
                    authzid,
                    mechanism: "plain",
                    oauth: None,
                };
                return self.login(io, stream, tag, given).await;
            }
            Some("LOGIN") if sasl.login => {
                let user = match cmd.arg(1) {
                    Some(u) => u,
                    None => match self
                        .sasl_answer(io, stream, tag, &b64.encode("Username:"))
                        .await?
                    {
                        Some(r) => r,
                        None => return Ok(Step::Close),
                    },
                };
                let Some(pass) = self
                    .sasl_answer(io, stream, tag, &b64.encode("Password:"))
                    .await?
                else {
                    return Ok(Step::Close);
                };
                match (b64.decode(&user), b64.decode(&pass)) {
                    (Ok(u), Ok(p)) => (u, p),
                    _ => return Ok(go_on(io.bad_command(Some(tag), "Invalid base64"))),
                }
            }
            Some(_) if oauth.is_some() => {
                let Some(response) = self.initial_response(cmd, io, stream).await? else {
                    return Ok(Step::Close);
                };
                let decoded = oauth.map(|m| codec::sasl::decode_oauth(m, &response));
                let message = match decoded {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Ok(go_on(io.bad_command(Some(tag), &e.to_string()))),
                    None => return Ok(Step::Continue),
                };
                return self.login(io, stream, tag, Given::oauth(&message)).await;
            }
            Some(_) => {
                let text = "Unsupported authentication mechanism";
                tagged(io.out(), tag, Status::No, None, text);
                return Ok(Step::Continue);
            }
            None => {
                let text = "AUTHENTICATE needs a mechanism";
                return Ok(go_on(io.bad_command(Some(tag), text)));
            }
        };
        let given = Given {
            user: &user,
            pass: &pass,
            authzid: None,
            mechanism: "sasl-login",
            oauth: None,
        };
        self.login(io, stream, tag, given).await
    }

    /// A one-message mechanism's response: the SASL-IR argument, else the answer to an
    /// empty challenge; `None` when the session is over.
    async fn initial_response<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: &Cmd,
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<Option<Vec<u8>>> {
        match cmd.arg(1) {
            Some(r) => Ok(Some(r)),
            None => self.sasl_answer(io, stream, &cmd.tag, "").await,
        }
    }

    async fn login<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io,
        stream: &mut S,
        tag: &[u8],
        given: Given<'_>,
    ) -> io::Result<Step<Box<Handoff>>> {
        let protocol = Protocol::Imap { tag };
        let front = &*self.front;
        log_in(
            front,
            &self.peer,
            io,
            stream,
            &mut self.attempt,
            given,
            protocol,
            |out, r| match r {
                Refusal::Invalid => tagged(out, tag, Status::Bad, None, "Invalid credentials"),
                Refusal::Lookup(status) => {
                    let code = if status == codec::auth_http::STATUS_TEMPORARY {
                        "UNAVAILABLE"
                    } else {
                        "AUTHENTICATIONFAILED"
                    };
                    tagged(out, tag, Status::No, Some(code), status);
                }
                Refusal::Unavailable => {
                    let text = "Temporary failure, try again later";
                    tagged(out, tag, Status::No, Some("UNAVAILABLE"), text);
                }
                Refusal::Throttled => {
                    untagged(out, "BYE Login rejected for this user");
                    tagged(out, tag, Status::No, None, "LOGIN failed");
                }
                Refusal::SessionLimit => {
                    let text = "Maximum number of connections from user+IP exceeded";
                    tagged(out, tag, Status::No, Some("LIMIT"), text);
                }
            },
        )
        .await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Dispatch<line_session::imap::Imap<Cmd>, S> for Handler {
    type Done = Box<Handoff>;

    async fn dispatch(
        &mut self,
        cmd: Cmd,
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<Step<Self::Done>> {
        let tag = &cmd.tag[..];
        Ok(match cmd.name.as_str() {
            "CAPABILITY" => {
                let caps = self.capabilities();
                untagged(io.out(), &format!("CAPABILITY {caps}"));
                tagged(io.out(), tag, Status::Ok, None, "CAPABILITY completed");
                Step::Continue
            }
            "NOOP" => {
                tagged(io.out(), tag, Status::Ok, None, "NOOP completed");
                Step::Continue
            }
            "LOGOUT" => {
                untagged(io.out(), "BYE Logging out");
                tagged(io.out(), tag, Status::Ok, None, "LOGOUT completed");
                Step::Close
            }
            "ID" if cmd.lists || !cmd.args.is_empty() => {
                let mut id = b"* ID (\"name\" ".to_vec();
                codec::imap::quoted(&mut id, self.front.name.as_bytes());
                id.extend_from_slice(b")\r\n");
                io.out().extend_from_slice(&id);
                tagged(io.out(), tag, Status::Ok, None, "ID completed");
                Step::Continue
            }
            "STARTTLS" if self.front.offers_starttls(&self.peer) => {
                tagged(io.out(), tag, Status::Ok, None, "Begin TLS negotiation now");
                Step::StartTls
            }
            "LOGIN" | "AUTHENTICATE" if !self.front.login_allowed(&self.peer) => {
                let text = "Use STARTTLS first";
                tagged(io.out(), tag, Status::No, Some("PRIVACYREQUIRED"), text);
                go_on(io.failed_login())
            }
            "LOGIN" => match (cmd.arg(0), cmd.arg(1), cmd.args.len()) {
                (Some(user), Some(pass), 2) => {
                    let given = Given {
                        user: &user,
                        pass: &pass,
                        authzid: None,
                        mechanism: "login",
                        oauth: None,
                    };
                    return self.login(io, stream, tag, given).await;
                }
                _ => go_on(io.bad_command(Some(tag), "LOGIN needs a user name and a password")),
            },
            "AUTHENTICATE" => return self.authenticate(&cmd, io, stream).await,
            _ => go_on(io.bad_command(Some(tag), "Command not allowed before login")),
        })
    }
}
