//! The IMAP4rev1 server session: an explicit state machine driven by the codec's parser,
//! generic over the stream so the same code runs on TCP and TLS. STARTTLS is a return
//! value: the caller wraps the stream and calls [`Session::run`] again, with the read
//! buffer already emptied so no plaintext sent before the handshake is ever executed.

mod args;
mod fetch;
mod folders;
mod search;
mod view;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use codec::imap::{continuation, parse_line, tagged, untagged, ParseError, Parser, Status};
use common::session_io::{self, Filled};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::auth::AuthResult;
use crate::env::{ClientAddr, Env};
use crate::store::Account;
use args::{Cmd, A};
use view::View;

/// Why a session's `run` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The connection is done.
    Close,
    /// STARTTLS was accepted: wrap the stream in TLS and run again.
    StartTls,
}

/// Where the session is.
pub(crate) enum State {
    NotAuthenticated,
    Authenticated {
        account: Arc<Account>,
        name: String,
    },
    Selected {
        account: Arc<Account>,
        name: String,
        view: View,
    },
}

/// One IMAP connection.
pub struct Session {
    env: Arc<Env>,
    state: State,
    parser: Parser,
    buf: Vec<u8>,
    out: Vec<u8>,
    bad: u32,
    tls: bool,
    /// The TCP peer (a proxy, when one forwards the client's address).
    peer: std::net::IpAddr,
    client: ClientAddr,
}

/// What a handler asks the loop to do next.
pub(crate) enum Next {
    Continue,
    Close,
    StartTls,
}

impl Session {
    /// A new session; `tls` says whether the connection is already encrypted.
    pub fn new(env: Arc<Env>, tls: bool, peer: std::net::IpAddr, client: ClientAddr) -> Self {
        let parser = Parser::new(env.imap_limits);
        Self {
            env,
            state: State::NotAuthenticated,
            parser,
            buf: Vec::new(),
            out: Vec::new(),
            bad: 0,
            tls,
            peer,
            client,
        }
    }

    /// Bytes that arrived before the session started (after a PROXY header).
    pub fn prefill(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Marks the stream as encrypted (after STARTTLS).
    pub fn set_tls(&mut self) {
        self.tls = true;
    }

    /// The address logged for this session.
    pub fn client(&self) -> ClientAddr {
        self.client
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 LITERAL+ SASL-IR ID IDLE UIDPLUS UNSELECT");
        if matches!(self.state, State::NotAuthenticated) {
            if self.env.tls.is_some() && !self.tls {
                caps.push_str(" STARTTLS");
            }
            caps.push_str(" AUTH=PLAIN");
        }
        caps
    }

    /// Serves the connection until it closes or asks for TLS. `greet` is false when
    /// resuming after STARTTLS.
    pub async fn run<S>(&mut self, stream: &mut S, greet: bool) -> io::Result<Outcome>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if greet {
            let faults = self.env.faults();
            if faults.stall {
                self.env.shutdown.triggered().await;
                return Ok(Outcome::Close);
            }
            if let Some(d) = faults.greeting_delay {
                tokio::time::sleep(d).await;
            }
            let text = format!(
                "[CAPABILITY {}] {} IMAP4rev1 ready",
                self.capabilities(),
                self.env.hostname
            );
            untagged(&mut self.out, &format!("OK {text}"));
            self.flush(stream).await?;
        }
        loop {
            let next = match self.parser.parse(&self.buf) {
                Ok((command, used)) => {
                    let cmd = Cmd::from(&command);
                    self.buf.drain(..used);
                    tracing::debug!(command = %cmd.name, "imap command");
                    self.dispatch(cmd, stream).await?
                }
                Err(ParseError::Incomplete) => {
                    if !self.fill(stream).await? {
                        return Ok(Outcome::Close);
                    }
                    Next::Continue
                }
                Err(ParseError::NeedsLiteral { .. }) => {
                    continuation(&mut self.out, "Ready for literal data");
                    self.flush(stream).await?;
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
                    // Whatever the client sent after STARTTLS was sent in the clear:
                    // never execute it (CVE-2011-0411 class).
                    self.buf.clear();
                    self.parser = Parser::new(self.env.imap_limits);
                    return Ok(Outcome::StartTls);
                }
            }
        }
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> io::Result<()> {
        session_io::flush(stream, &mut self.out, "imap write", self.env.timeouts.idle).await
    }

    fn read_timeout(&self) -> Duration {
        match self.state {
            State::NotAuthenticated => self.env.timeouts.preauth,
            _ => self.env.timeouts.idle,
        }
    }

    /// Reads more bytes into the buffer; false at end of stream, on timeout (after BYE)
    /// or at shutdown (after BYE).
    async fn fill<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> io::Result<bool> {
        let timeout = self.read_timeout();
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

    fn ok(&mut self, tag: &[u8], code: Option<&str>, text: &str) -> Next {
        tagged(&mut self.out, tag, Status::Ok, code, text);
        Next::Continue
    }

    fn no(&mut self, tag: &[u8], code: Option<&str>, text: &str) -> Next {
        tagged(&mut self.out, tag, Status::No, code, text);
        Next::Continue
    }

    async fn dispatch<S>(&mut self, cmd: Cmd, stream: &mut S) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tag = cmd.tag.clone();
        let authenticated = !matches!(self.state, State::NotAuthenticated);
        let selected = matches!(self.state, State::Selected { .. });
        let next = match cmd.name.as_str() {
            "CAPABILITY" => {
                let caps = self.capabilities();
                untagged(&mut self.out, &format!("CAPABILITY {caps}"));
                self.ok(&tag, None, "CAPABILITY completed")
            }
            "NOOP" | "CHECK" if cmd.name == "NOOP" || selected => {
                self.sync(true);
                self.ok(&tag, None, &format!("{} completed", cmd.name))
            }
            "LOGOUT" => {
                untagged(&mut self.out, "BYE Logging out");
                tagged(&mut self.out, &tag, Status::Ok, None, "LOGOUT completed");
                Next::Close
            }
            "ID" => self.id(&cmd),
            "STARTTLS" if !authenticated => {
                if self.tls || self.env.tls.is_none() {
                    self.bad_command(Some(&tag), "STARTTLS not available")
                } else {
                    self.ok(&tag, None, "Begin TLS negotiation now");
                    Next::StartTls
                }
            }
            "LOGIN" if !authenticated => {
                let (Some(user), Some(pass)) = (
                    cmd.args.first().and_then(A::text),
                    cmd.args.get(1).and_then(A::text),
                ) else {
                    return Ok(
                        self.bad_command(Some(&tag), "LOGIN needs a user name and a password")
                    );
                };
                if cmd.args.len() != 2 {
                    return Ok(self.bad_command(Some(&tag), "LOGIN takes two arguments"));
                }
                self.login(&tag, &user, &pass).await
            }
            "AUTHENTICATE" if !authenticated => self.authenticate(&cmd, stream).await?,
            "SELECT" | "EXAMINE" if authenticated => self.select(&cmd),
            "CREATE" | "DELETE" | "RENAME" | "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST" | "LSUB"
            | "STATUS" | "APPEND"
                if authenticated =>
            {
                self.folder_command(&cmd)
            }
            "IDLE" if authenticated => self.idle(&tag, stream).await?,
            "CLOSE" | "UNSELECT" if selected => self.close(&cmd),
            "EXPUNGE" if selected => self.expunge(&tag, None),
            "SEARCH" | "FETCH" | "STORE" | "COPY" if selected => self.message_command(&cmd, false),
            "UID" if selected => {
                let Some(sub) = cmd.args.first().and_then(A::upper) else {
                    return Ok(self.bad_command(Some(&tag), "UID needs a command"));
                };
                let inner = Cmd {
                    tag: cmd.tag.clone(),
                    name: sub.clone(),
                    args: cmd.args[1..].to_vec(),
                };
                match sub.as_str() {
                    "SEARCH" | "FETCH" | "STORE" | "COPY" => self.message_command(&inner, true),
                    "EXPUNGE" => {
                        let set = inner
                            .args
                            .first()
                            .and_then(A::bytes)
                            .and_then(codec::imap::SequenceSet::parse);
                        match set {
                            Some(set) => self.expunge(&tag, Some(set)),
                            None => self.bad_command(Some(&tag), "UID EXPUNGE needs a UID set"),
                        }
                    }
                    _ => self.bad_command(Some(&tag), "unknown UID command"),
                }
            }
            _ => {
                let message = if authenticated || !is_known(&cmd.name) {
                    "Unknown command or wrong state"
                } else {
                    "Log in first"
                };
                self.bad_command(Some(&tag), message)
            }
        };
        Ok(next)
    }

    fn id(&mut self, cmd: &Cmd) -> Next {
        // Zimbra's and Dovecot's client-address forwarding: honoured only from a trusted
        // proxy, and only before login.
        if let Some(A::List(fields)) = cmd.args.first() {
            let mut pairs = fields.chunks(2);
            while let Some([k, v]) = pairs.next() {
                let key = k.text().unwrap_or_default().to_ascii_lowercase();
                if key != "x-originating-ip" {
                    continue;
                }
                let value = v.text().unwrap_or_default();
                let peer_trusted = self.env.trusted.contains(self.peer);
                match value.trim().trim_matches(['[', ']']).parse() {
                    Ok(ip) if peer_trusted && matches!(self.state, State::NotAuthenticated) => {
                        tracing::info!(client = %ip, proxy = %self.client.ip, "client address forwarded (IMAP ID)");
                        self.client = ClientAddr {
                            ip,
                            forwarded: true,
                        };
                    }
                    _ => {
                        tracing::warn!(value = %value, "ignored x-originating-ip from an untrusted peer or after login")
                    }
                }
            }
        }
        untagged(
            &mut self.out,
            &format!(
                "ID (\"name\" \"mailbox-stub\" \"version\" \"{}\" \"host\" \"{}\")",
                env!("CARGO_PKG_VERSION"),
                self.env.hostname
            ),
        );
        self.ok(&cmd.tag, None, "ID completed")
    }

    async fn login(&mut self, tag: &[u8], user: &str, pass: &str) -> Next {
        if self.env.faults().refuse_logins {
            return self.no(tag, Some("UNAVAILABLE"), "Logins are refused right now");
        }
        match self.env.auth.authenticate(user, pass).await {
            AuthResult::Ok { account, mail_host } => {
                if !self.env.serves(&mail_host) {
                    tracing::warn!(%account, %mail_host, "login for an account of another mail host");
                    self.bad += 1;
                    // Not "try again later": the route that sent the client here is
                    // wrong, and a proxy should forget it.
                    return self.no(
                        tag,
                        Some("AUTHENTICATIONFAILED"),
                        &format!(
                            "Account {account} is not on {} (its mail host is {mail_host})",
                            self.env.hostname
                        ),
                    );
                }
                tracing::info!(%account, client = %self.client.ip, forwarded = self.client.forwarded, "logged in");
                self.env.record_login(crate::env::Login {
                    account: account.clone(),
                    client: self.client,
                    protocol: "imap",
                });
                let mailbox = self.env.store.open(&account);
                self.state = State::Authenticated {
                    account: mailbox,
                    name: account,
                };
                let caps = self.capabilities();
                tagged(
                    &mut self.out,
                    tag,
                    Status::Ok,
                    Some(&format!("CAPABILITY {caps}")),
                    "Logged in",
                );
                if self.env.faults().drop_after_login {
                    return Next::Close;
                }
                Next::Continue
            }
            AuthResult::Denied => {
                tracing::info!(user, client = %self.client.ip, "login failed");
                self.bad += 1;
                if self.bad >= self.env.max_bad_commands {
                    tagged(
                        &mut self.out,
                        tag,
                        Status::No,
                        Some("AUTHENTICATIONFAILED"),
                        "Authentication failed",
                    );
                    untagged(&mut self.out, "BYE Too many failed logins");
                    return Next::Close;
                }
                self.no(tag, Some("AUTHENTICATIONFAILED"), "Authentication failed")
            }
            AuthResult::Unavailable => self.no(
                tag,
                Some("UNAVAILABLE"),
                "Authentication service unavailable, try again later",
            ),
        }
    }

    async fn authenticate<S>(&mut self, cmd: &Cmd, stream: &mut S) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tag = cmd.tag.clone();
        match cmd.args.first().and_then(A::upper).as_deref() {
            Some("PLAIN") => {}
            Some(_) => return Ok(self.no(&tag, None, "Unsupported authentication mechanism")),
            None => return Ok(self.bad_command(Some(&tag), "AUTHENTICATE needs a mechanism")),
        }
        let response: Vec<u8> = match cmd.args.get(1) {
            Some(initial) => initial.bytes().unwrap_or_default().to_vec(),
            None => {
                continuation(&mut self.out, "");
                self.flush(stream).await?;
                loop {
                    match parse_line(&self.buf, 8192) {
                        Ok((line, used)) => {
                            let line = line.to_vec();
                            self.buf.drain(..used);
                            break line;
                        }
                        Err(ParseError::Incomplete) => {
                            if !self.fill(stream).await? {
                                return Ok(Next::Close);
                            }
                        }
                        Err(_) => {
                            self.buf.clear();
                            return Ok(self.bad_command(Some(&tag), "Response too long"));
                        }
                    }
                }
            }
        };
        let plain = match codec::sasl::decode_plain(&response) {
            Ok(p) => p,
            Err(e) => return Ok(self.bad_command(Some(&tag), &e.to_string())),
        };
        if plain.other_authzid() {
            return Ok(self.no(
                &tag,
                Some("AUTHORIZATIONFAILED"),
                "Authorization identity not allowed",
            ));
        }
        let user = String::from_utf8_lossy(&plain.authcid).into_owned();
        let password = String::from_utf8_lossy(&plain.password).into_owned();
        Ok(self.login(&tag, &user, &password).await)
    }

    async fn idle<S>(&mut self, tag: &[u8], stream: &mut S) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let account = match &self.state {
            State::Authenticated { account, .. } | State::Selected { account, .. } => {
                account.clone()
            }
            State::NotAuthenticated => return Ok(self.bad_command(Some(tag), "Log in first")),
        };
        let mut changes = account.subscribe();
        continuation(&mut self.out, "idling");
        self.sync(true);
        self.flush(stream).await?;
        let deadline = tokio::time::Instant::now() + self.env.timeouts.idle;
        loop {
            match parse_line(&self.buf, 1024) {
                Ok((line, used)) => {
                    let done = line.eq_ignore_ascii_case(b"DONE");
                    self.buf.drain(..used);
                    if done {
                        return Ok(self.ok(tag, None, "IDLE terminated"));
                    }
                    return Ok(self.bad_command(Some(tag), "Expected DONE"));
                }
                Err(ParseError::Incomplete) => {}
                // Over a kilobyte without a line end is not DONE: bound the buffer.
                Err(_) => {
                    self.buf.clear();
                    return Ok(self.bad_command(Some(tag), "Expected DONE"));
                }
            }
            self.buf.reserve(1024);
            let shutdown = self.env.shutdown.clone();
            tokio::select! {
                r = stream.read_buf(&mut self.buf) => {
                    if r? == 0 {
                        return Ok(Next::Close);
                    }
                }
                r = changes.changed() => {
                    if r.is_err() {
                        return Ok(Next::Close);
                    }
                    self.sync(true);
                    self.flush(stream).await?;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    untagged(&mut self.out, "BYE Autologout; idle for too long");
                    return Ok(Next::Close);
                }
                _ = shutdown.triggered() => {
                    untagged(&mut self.out, "BYE Server shutting down");
                    return Ok(Next::Close);
                }
            }
        }
    }
}

fn is_known(name: &str) -> bool {
    matches!(
        name,
        "SELECT"
            | "EXAMINE"
            | "CREATE"
            | "DELETE"
            | "RENAME"
            | "SUBSCRIBE"
            | "UNSUBSCRIBE"
            | "LIST"
            | "LSUB"
            | "STATUS"
            | "APPEND"
            | "IDLE"
            | "CHECK"
            | "CLOSE"
            | "UNSELECT"
            | "EXPUNGE"
            | "SEARCH"
            | "FETCH"
            | "STORE"
            | "COPY"
            | "UID"
    )
}
