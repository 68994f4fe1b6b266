//! The client-facing IMAP session before login: an honest CAPABILITY, NOOP, LOGOUT, ID,
//! STARTTLS (as a return value; the plaintext buffer is discarded), LOGIN in every string
//! form and AUTHENTICATE PLAIN/LOGIN (with or without SASL-IR); anything else gets a
//! tagged BAD. A successful login hands the connection to the relay.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use codec::imap::{continuation, parse_line, tagged, untagged, Arg, ParseError, Parser, Status};
use common::session_io::{self, Filled};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Env, LoggedIn, Outcome, Peer, Replay, StartTls};

/// One client connection.
pub struct Session {
    env: Arc<Env>,
    peer: Peer,
    parser: Parser,
    buf: Vec<u8>,
    out: Vec<u8>,
    bad: u32,
    attempt: u32,
}

enum Next {
    Continue,
    Close,
    StartTls,
    /// Logged in; relay this backend after writing the pending output.
    Relay(Box<(crate::upstream::Upstream, crate::route::Route)>),
}

impl Session {
    /// A new session.
    pub fn new(env: Arc<Env>, peer: Peer) -> Self {
        Self {
            env,
            peer,
            parser: Parser::default(),
            buf: Vec::new(),
            out: Vec::new(),
            bad: 0,
            attempt: 0,
        }
    }

    /// Marks the client connection as encrypted (after STARTTLS).
    pub fn set_tls(&mut self) {
        self.peer.tls = true;
    }

    fn login_allowed(&self) -> bool {
        self.peer.tls || self.env.starttls != StartTls::Only
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 ID LITERAL+ SASL-IR");
        if self.env.tls.is_some() && !self.peer.tls && self.env.starttls != StartTls::Off {
            caps.push_str(" STARTTLS");
        }
        if self.login_allowed() {
            caps.push_str(" AUTH=PLAIN AUTH=LOGIN");
        } else {
            caps.push_str(" LOGINDISABLED");
        }
        caps
    }

    /// Serves the pre-auth dialogue, then the relay.
    pub async fn run<S>(&mut self, stream: &mut S, greet: bool) -> io::Result<Outcome>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if greet {
            let caps = self.capabilities();
            untagged(
                &mut self.out,
                &format!(
                    "OK [CAPABILITY {caps}] {} IMAP4rev1 proxy ready",
                    self.env.name
                ),
            );
            self.flush(stream).await?;
        }
        loop {
            let next = match self.parser.parse(&self.buf) {
                Ok((command, used)) => {
                    let tag = command.tag.to_vec();
                    let name = String::from_utf8_lossy(command.name).to_ascii_uppercase();
                    let args: Vec<Option<Vec<u8>>> = command
                        .args
                        .iter()
                        .map(|a| a.as_astring().map(<[u8]>::to_vec))
                        .collect();
                    let lists = command.args.iter().any(|a| matches!(a, Arg::List(_)));
                    self.buf.drain(..used);
                    self.dispatch(&tag, &name, &args, lists, stream).await?
                }
                Err(ParseError::Incomplete) => {
                    if !self.fill(stream).await? {
                        return Ok(Outcome::Close);
                    }
                    Next::Continue
                }
                Err(ParseError::NeedsLiteral { .. }) => {
                    continuation(&mut self.out, "OK");
                    Next::Continue
                }
                Err(ParseError::Bad {
                    tag,
                    message,
                    consumed,
                }) => {
                    self.buf.drain(..consumed.min(self.buf.len()));
                    self.bad_command(tag.as_deref(), message)
                }
                Err(ParseError::Discard { consumed }) => {
                    self.buf.drain(..consumed.min(self.buf.len()));
                    Next::Continue
                }
                Err(ParseError::Fatal { message, .. }) => {
                    untagged(&mut self.out, &format!("BYE {message}"));
                    Next::Close
                }
            };
            self.flush(stream).await?;
            match next {
                Next::Continue => {}
                Next::Close => return Ok(Outcome::Close),
                Next::StartTls => {
                    // Bytes sent before the handshake are never executed (CVE-2011-0411).
                    self.buf.clear();
                    self.parser = Parser::default();
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
            "imap write",
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
                Filled::TimedOut => "BYE Autologout; idle for too long",
                Filled::ShuttingDown => "BYE Server shutting down",
            };
        untagged(&mut self.out, said);
        self.flush(stream).await?;
        Ok(false)
    }

    fn bad_command(&mut self, tag: Option<&[u8]>, message: &str) -> Next {
        self.bad += 1;
        match tag {
            Some(t) => tagged(&mut self.out, t, Status::Bad, None, message),
            None => untagged(&mut self.out, &format!("BAD {message}")),
        }
        if self.bad >= self.env.max_bad_commands {
            untagged(&mut self.out, "BYE Too many invalid commands");
            return Next::Close;
        }
        Next::Continue
    }

    async fn dispatch<S>(
        &mut self,
        tag: &[u8],
        name: &str,
        args: &[Option<Vec<u8>>],
        lists: bool,
        stream: &mut S,
    ) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        Ok(match name {
            "CAPABILITY" => {
                let caps = self.capabilities();
                untagged(&mut self.out, &format!("CAPABILITY {caps}"));
                tagged(&mut self.out, tag, Status::Ok, None, "CAPABILITY completed");
                Next::Continue
            }
            "NOOP" => {
                tagged(&mut self.out, tag, Status::Ok, None, "NOOP completed");
                Next::Continue
            }
            "LOGOUT" => {
                untagged(&mut self.out, "BYE Logging out");
                tagged(&mut self.out, tag, Status::Ok, None, "LOGOUT completed");
                Next::Close
            }
            "ID" if lists || !args.is_empty() => {
                untagged(&mut self.out, "ID (\"name\" \"zproxy\")");
                tagged(&mut self.out, tag, Status::Ok, None, "ID completed");
                Next::Continue
            }
            "STARTTLS"
                if self.env.tls.is_some()
                    && !self.peer.tls
                    && self.env.starttls != StartTls::Off =>
            {
                tagged(
                    &mut self.out,
                    tag,
                    Status::Ok,
                    None,
                    "Begin TLS negotiation now",
                );
                Next::StartTls
            }
            "LOGIN" | "AUTHENTICATE" if !self.login_allowed() => {
                tagged(
                    &mut self.out,
                    tag,
                    Status::No,
                    Some("PRIVACYREQUIRED"),
                    "Use STARTTLS first",
                );
                self.bad += 1;
                Next::Continue
            }
            "LOGIN" => match (
                args.first().cloned().flatten(),
                args.get(1).cloned().flatten(),
                args.len(),
            ) {
                (Some(user), Some(pass), 2) => self.login(tag, None, &user, &pass).await,
                _ => self.bad_command(Some(tag), "LOGIN needs a user name and a password"),
            },
            "AUTHENTICATE" => self.authenticate(tag, args, stream).await?,
            _ => self.bad_command(Some(tag), "Command not allowed before login"),
        })
    }

    async fn read_response<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> io::Result<Option<Vec<u8>>> {
        self.flush(stream).await?;
        loop {
            match parse_line(&self.buf, 8192) {
                Ok((line, used)) => {
                    let line = line.to_vec();
                    self.buf.drain(..used);
                    return Ok(Some(line));
                }
                Err(ParseError::Incomplete) => {
                    if !self.fill(stream).await? {
                        return Ok(None);
                    }
                }
                Err(_) => return Ok(None),
            }
        }
    }

    async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        tag: &[u8],
        args: &[Option<Vec<u8>>],
        stream: &mut S,
    ) -> io::Result<Next> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mechanism = args
            .first()
            .cloned()
            .flatten()
            .map(|m| String::from_utf8_lossy(&m).to_ascii_uppercase());
        let (user, pass) = match mechanism.as_deref() {
            Some("PLAIN") => {
                let response = match args.get(1).cloned().flatten() {
                    Some(r) => r,
                    None => {
                        continuation(&mut self.out, "");
                        match self.read_response(stream).await? {
                            Some(r) => r,
                            None => return Ok(Next::Close),
                        }
                    }
                };
                let plain = match codec::sasl::decode_plain(&response) {
                    Ok(p) => p,
                    Err(e) => return Ok(self.bad_command(Some(tag), &e.to_string())),
                };
                if plain.other_authzid() {
                    return Ok(self
                        .login(tag, Some(&plain.authzid), &plain.authcid, &plain.password)
                        .await);
                }
                (plain.authcid, plain.password)
            }
            Some("LOGIN") => {
                let user = match args.get(1).cloned().flatten() {
                    Some(u) => u,
                    None => {
                        continuation(&mut self.out, &b64.encode("Username:"));
                        match self.read_response(stream).await? {
                            Some(r) => r,
                            None => return Ok(Next::Close),
                        }
                    }
                };
                continuation(&mut self.out, &b64.encode("Password:"));
                let Some(pass) = self.read_response(stream).await? else {
                    return Ok(Next::Close);
                };
                match (b64.decode(&user), b64.decode(&pass)) {
                    (Ok(u), Ok(p)) => (u, p),
                    _ => return Ok(self.bad_command(Some(tag), "Invalid base64")),
                }
            }
            Some(_) => {
                tagged(
                    &mut self.out,
                    tag,
                    Status::No,
                    None,
                    "Unsupported authentication mechanism",
                );
                return Ok(Next::Continue);
            }
            None => return Ok(self.bad_command(Some(tag), "AUTHENTICATE needs a mechanism")),
        };
        Ok(self.login(tag, None, &user, &pass).await)
    }

    async fn login(
        &mut self,
        tag: &[u8],
        authzid: Option<&[u8]>,
        user: &[u8],
        pass: &[u8],
    ) -> Next {
        let Ok(user) = std::str::from_utf8(user) else {
            return self.bad_command(Some(tag), "User name is not UTF-8");
        };
        if user.is_empty()
            || user.len() > 256
            || pass.len() > 1024
            || authzid.is_some_and(|a| a.len() > 256)
        {
            return self.bad_command(Some(tag), "Invalid credentials");
        }
        self.attempt += 1;
        match self
            .env
            .login(
                &self.peer,
                user,
                pass,
                self.attempt,
                Replay::Imap { tag, authzid },
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
                self.after_failure()
            }
            LoggedIn::LookupRefused(status) => {
                self.env
                    .stats
                    .logins_refused
                    .fetch_add(1, Ordering::Relaxed);
                let temporary = status == codec::auth_http::STATUS_TEMPORARY;
                let code = if temporary {
                    "UNAVAILABLE"
                } else {
                    "AUTHENTICATIONFAILED"
                };
                tagged(&mut self.out, tag, Status::No, Some(code), &status);
                self.after_failure()
            }
            LoggedIn::Unavailable => {
                self.env
                    .stats
                    .logins_unavailable
                    .fetch_add(1, Ordering::Relaxed);
                tagged(
                    &mut self.out,
                    tag,
                    Status::No,
                    Some("UNAVAILABLE"),
                    "Temporary failure, try again later",
                );
                Next::Continue
            }
            LoggedIn::Throttled => {
                self.env
                    .stats
                    .logins_refused
                    .fetch_add(1, Ordering::Relaxed);
                untagged(&mut self.out, "BYE Login rejected for this user");
                tagged(&mut self.out, tag, Status::No, None, "LOGIN failed");
                Next::Close
            }
        }
    }

    fn after_failure(&mut self) -> Next {
        self.bad += 1;
        if self.bad >= self.env.max_bad_commands {
            untagged(&mut self.out, "BYE Too many failed logins");
            return Next::Close;
        }
        Next::Continue
    }
}
