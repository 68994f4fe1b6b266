//! The client-facing POP3 session before login: CAPA, USER, PASS, AUTH PLAIN, STLS (as a
//! return value; the plaintext buffer is discarded), NOOP, QUIT. A successful login hands
//! the connection to the relay.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use codec::pop3::{self, parse_command, parse_line, skip_line, Command, Limits, ParseError};
use common::session_io::{self, Filled};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Env, LoggedIn, Outcome, Peer, Replay, StartTls};

/// One client connection.
pub struct Session {
    env: Arc<Env>,
    peer: Peer,
    buf: Vec<u8>,
    out: Vec<u8>,
    bad: u32,
    attempt: u32,
    user: Option<Vec<u8>>,
    discarding: bool,
}

enum Next {
    Continue,
    Close,
    StartTls,
    Relay(Box<(crate::upstream::Upstream, crate::route::Route)>),
}

/// An owned copy of the parts of a command the session needs.
enum Cmd {
    Capa,
    Noop,
    Quit,
    Stls,
    User(Vec<u8>),
    Pass(Vec<u8>),
    Auth(Option<Vec<u8>>, Option<Vec<u8>>),
    Other,
}

impl Session {
    /// A new session.
    pub fn new(env: Arc<Env>, peer: Peer) -> Self {
        Self {
            env,
            peer,
            buf: Vec::new(),
            out: Vec::new(),
            bad: 0,
            attempt: 0,
            user: None,
            discarding: false,
        }
    }

    /// Marks the client connection as encrypted (after STLS).
    pub fn set_tls(&mut self) {
        self.peer.tls = true;
    }

    fn login_allowed(&self) -> bool {
        self.peer.tls || self.env.starttls != StartTls::Only
    }

    /// Serves the pre-auth dialogue, then the relay.
    pub async fn run<S>(&mut self, stream: &mut S, greet: bool) -> io::Result<Outcome>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if greet {
            pop3::ok(&mut self.out, format!("{} POP3 proxy ready", self.env.name));
            self.flush(stream).await?;
        }
        let limits = Limits::default();
        loop {
            if self.discarding {
                match skip_line(&self.buf) {
                    Some(n) => {
                        self.buf.drain(..n);
                        self.discarding = false;
                    }
                    None => {
                        self.buf.clear();
                        if !self.fill(stream).await? {
                            return Ok(Outcome::Close);
                        }
                        continue;
                    }
                }
            }
            let next = match parse_command(&self.buf, &limits) {
                Ok(p) => {
                    let cmd = match p.command {
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
                    };
                    self.buf.drain(..p.consumed);
                    self.dispatch(cmd, stream).await?
                }
                Err(ParseError::Incomplete) => {
                    if !self.fill(stream).await? {
                        return Ok(Outcome::Close);
                    }
                    Next::Continue
                }
                Err(ParseError::LineTooLong) => {
                    self.discarding = true;
                    self.bad_command("line too long")
                }
                Err(ParseError::Invalid { consumed, reason }) => {
                    self.buf.drain(..consumed.min(self.buf.len()));
                    self.bad_command(reason)
                }
            };
            self.flush(stream).await?;
            match next {
                Next::Continue => {}
                Next::Close => return Ok(Outcome::Close),
                Next::StartTls => {
                    self.buf.clear();
                    return Ok(Outcome::StartTls);
                }
                Next::Relay(job) => return super::hand_over(&mut self.buf, job).await,
            }
        }
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> io::Result<()> {
        session_io::flush(
            stream,
            &mut self.out,
            "pop3 write",
            self.env.preauth_timeout,
        )
        .await
    }

    async fn fill<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> io::Result<bool> {
        let timeout = self.env.preauth_timeout;
        let said =
            match session_io::fill(stream, &mut self.buf, timeout, &self.env.shutdown).await? {
                Filled::Data => return Ok(true),
                Filled::Closed => return Ok(false),
                Filled::TimedOut => "Timeout, closing connection",
                Filled::ShuttingDown => "Server shutting down",
            };
        pop3::err(&mut self.out, said);
        self.flush(stream).await?;
        Ok(false)
    }

    fn bad_command(&mut self, reason: &str) -> Next {
        self.bad += 1;
        pop3::err(&mut self.out, reason);
        if self.bad >= self.env.max_bad_commands {
            pop3::err(
                &mut self.out,
                "Too many invalid commands, closing connection",
            );
            return Next::Close;
        }
        Next::Continue
    }

    async fn dispatch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: Cmd,
        stream: &mut S,
    ) -> io::Result<Next> {
        Ok(match cmd {
            Cmd::Capa => {
                pop3::multiline_start(&mut self.out, "Capability list follows");
                for line in ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"] {
                    pop3::multiline_line(&mut self.out, line);
                }
                if self.login_allowed() {
                    pop3::multiline_line(&mut self.out, "USER");
                    pop3::multiline_line(&mut self.out, "SASL PLAIN");
                }
                if self.env.tls.is_some() && !self.peer.tls && self.env.starttls != StartTls::Off {
                    pop3::multiline_line(&mut self.out, "STLS");
                }
                pop3::multiline_end(&mut self.out);
                Next::Continue
            }
            Cmd::Noop => {
                pop3::ok(&mut self.out, "");
                Next::Continue
            }
            Cmd::Quit => {
                pop3::ok(&mut self.out, "Bye");
                Next::Close
            }
            Cmd::Stls
                if self.env.tls.is_some()
                    && !self.peer.tls
                    && self.env.starttls != StartTls::Off =>
            {
                pop3::ok(&mut self.out, "Begin TLS negotiation");
                Next::StartTls
            }
            Cmd::User(_) | Cmd::Pass(_) | Cmd::Auth(..) if !self.login_allowed() => {
                self.bad += 1;
                pop3::err(&mut self.out, "[AUTH] Use STLS first");
                Next::Continue
            }
            Cmd::User(u) => {
                self.user = Some(u);
                pop3::ok(&mut self.out, "");
                Next::Continue
            }
            Cmd::Pass(p) => match self.user.take() {
                Some(u) => self.login(None, &u, &p).await,
                None => self.bad_command("USER first"),
            },
            Cmd::Auth(mechanism, initial) => {
                let is_plain = mechanism
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(b"PLAIN"));
                if !is_plain {
                    return Ok(self.bad_command("Unsupported mechanism"));
                }
                let response = match initial {
                    Some(i) => i,
                    None => {
                        pop3::continuation(&mut self.out, "");
                        self.flush(stream).await?;
                        loop {
                            match parse_line(&self.buf, &Limits { max_line: 8192 }) {
                                Ok(p) => {
                                    let line = p.command.to_vec();
                                    self.buf.drain(..p.consumed);
                                    break line;
                                }
                                Err(ParseError::Incomplete) => {
                                    if !self.fill(stream).await? {
                                        return Ok(Next::Close);
                                    }
                                }
                                Err(_) => return Ok(self.bad_command("Response too long")),
                            }
                        }
                    }
                };
                let plain = match codec::sasl::decode_plain(&response) {
                    Ok(p) => p,
                    Err(e) => return Ok(self.bad_command(&e.to_string())),
                };
                let authzid = plain.other_authzid().then_some(&plain.authzid[..]);
                self.login(authzid, &plain.authcid, &plain.password).await
            }
            Cmd::Stls | Cmd::Other => self.bad_command("Command not allowed before login"),
        })
    }

    async fn login(&mut self, authzid: Option<&[u8]>, user: &[u8], pass: &[u8]) -> Next {
        let Ok(user) = std::str::from_utf8(user) else {
            return self.bad_command("User name is not UTF-8");
        };
        if user.is_empty()
            || user.len() > 256
            || pass.len() > 1024
            || authzid.is_some_and(|a| a.len() > 256)
        {
            return self.bad_command("Invalid credentials");
        }
        self.attempt += 1;
        match self
            .env
            .login(
                &self.peer,
                user,
                pass,
                self.attempt,
                Replay::Pop3 { authzid },
            )
            .await
        {
            LoggedIn::Ok {
                backend,
                reply,
                route,
            } => {
                self.env.stats.logins_ok.fetch_add(1, Ordering::Relaxed);
                self.out.extend_from_slice(&reply.lines);
                Next::Relay(Box::new((backend, route)))
            }
            LoggedIn::Refused(reply) => {
                self.env
                    .stats
                    .logins_refused
                    .fetch_add(1, Ordering::Relaxed);
                self.out.extend_from_slice(&reply.lines);
                self.bad += 1;
                Next::Continue
            }
            LoggedIn::LookupRefused(status) => {
                self.env
                    .stats
                    .logins_refused
                    .fetch_add(1, Ordering::Relaxed);
                let code = if status == codec::auth_http::STATUS_TEMPORARY {
                    "[SYS/TEMP]"
                } else {
                    "[AUTH]"
                };
                pop3::err(&mut self.out, format!("{code} {status}"));
                self.bad += 1;
                if self.bad >= self.env.max_bad_commands {
                    return Next::Close;
                }
                Next::Continue
            }
            LoggedIn::Unavailable => {
                self.env
                    .stats
                    .logins_unavailable
                    .fetch_add(1, Ordering::Relaxed);
                pop3::err(
                    &mut self.out,
                    "[SYS/TEMP] Temporary failure, try again later",
                );
                Next::Continue
            }
            LoggedIn::Throttled => {
                self.env
                    .stats
                    .logins_refused
                    .fetch_add(1, Ordering::Relaxed);
                pop3::err(&mut self.out, "[LOGIN-DELAY] Login rejected for this user");
                Next::Close
            }
        }
    }
}
