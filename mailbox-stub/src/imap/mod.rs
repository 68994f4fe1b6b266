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

use codec::imap::{continuation, tagged, untagged, Status};
use common::line_session::{self, Bounds, Dispatch, Line, LineSession, Step, Tally};
use tokio::io::{AsyncRead, AsyncWrite};

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

/// The connection's driver: reads, framing, the strike cap, timeouts, last words.
type Io = LineSession<line_session::imap::Imap<Cmd>>;

/// One IMAP connection.
pub(crate) type Connection = crate::connection::Connection<line_session::imap::Imap<Cmd>, Session>;

/// The IMAP state machine of one connection (commands in, replies out).
pub struct Session {
    env: Arc<Env>,
    state: State,
    /// Replies, handed to the driver after each command.
    out: Vec<u8>,
    /// Malformed commands and failed logins the driver has yet to count.
    tally: Tally,
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

impl Connection {
    /// A new connection; `tls` says whether it is already encrypted.
    pub fn new(env: Arc<Env>, tls: bool, peer: std::net::IpAddr, client: ClientAddr) -> Self {
        let dialect =
            line_session::imap::Imap::new(env.imap_limits, "Ready for literal data", |c| {
                Cmd::from(c)
            });
        let session = Session {
            env,
            state: State::NotAuthenticated,
            out: Vec::new(),
            tally: Tally::default(),
            tls,
            peer,
            client,
        };
        let bounds = session.bounds();
        Self::with(session, dialect, bounds)
    }

    /// The address logged for this session.
    pub fn client(&self) -> ClientAddr {
        self.session.client
    }
}

impl crate::connection::Session for Session {
    fn env(&self) -> &Arc<Env> {
        &self.env
    }

    fn greet(&self, out: &mut Vec<u8>) {
        let caps = self.capabilities();
        let host = &self.env.hostname;
        untagged(
            out,
            &format!("OK [CAPABILITY {caps}] {host} IMAP4rev1 ready"),
        );
    }

    fn set_tls(&mut self) {
        self.tls = true;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Dispatch<line_session::imap::Imap<Cmd>, S> for Session {
    type Done = std::convert::Infallible;

    async fn dispatch(
        &mut self,
        cmd: Cmd,
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<Step<Self::Done>> {
        tracing::debug!(command = %cmd.name, "imap command");
        let next = self.command(cmd, io, stream).await?;
        Ok(self.settle(io, next))
    }
}

impl Session {
    /// The driver's bounds for the current state: the pre-auth timeout before login, the
    /// idle timeout after.
    fn bounds(&self) -> Bounds {
        let read_timeout = match self.state {
            State::NotAuthenticated => self.env.timeouts.preauth,
            _ => self.env.timeouts.idle,
        };
        Bounds {
            read_timeout,
            write_timeout: self.env.timeouts.idle,
            deadline: None,
            max_bad: self.env.max_bad_commands,
            max_line: self.env.sasl_line,
        }
    }

    /// Hands the replies to the driver, has it count what went wrong, and says what next.
    fn settle(&mut self, io: &mut Io, next: Next) -> Step<std::convert::Infallible> {
        io.out().append(&mut self.out);
        let go_on = self.tally.settle(io);
        io.set_bounds(self.bounds());
        match next {
            Next::Close => Step::Close,
            Next::StartTls => Step::StartTls,
            Next::Continue if go_on => Step::Continue,
            Next::Continue => Step::Close,
        }
    }

    /// Sends what is pending now (before waiting for the client, as AUTHENTICATE does).
    async fn flush<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<()> {
        io.out().append(&mut self.out);
        io.flush(stream).await
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 LITERAL+ SASL-IR ID IDLE UIDPLUS UNSELECT");
        if matches!(self.state, State::NotAuthenticated) {
            if self.env.tls.is_some() && !self.tls {
                caps.push_str(" STARTTLS");
            }
            caps.push_str(" AUTH=PLAIN");
            if self.env.oauth.is_some() {
                caps.push_str(" AUTH=XOAUTH2 AUTH=OAUTHBEARER");
            }
        }
        caps
    }

    /// Answers a malformed command; the driver counts it against the cap.
    fn bad_command(&mut self, tag: Option<&[u8]>, message: &str) -> Next {
        match tag {
            Some(t) => tagged(&mut self.out, t, Status::Bad, None, message),
            None => untagged(&mut self.out, &format!("BAD {message}")),
        }
        self.tally.bad += 1;
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

    async fn command<S>(&mut self, cmd: Cmd, io: &mut Io, stream: &mut S) -> io::Result<Next>
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
            "AUTHENTICATE" if !authenticated => self.authenticate(&cmd, io, stream).await?,
            "SELECT" | "EXAMINE" if authenticated => self.select(&cmd),
            "CREATE" | "DELETE" | "RENAME" | "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST" | "LSUB"
            | "STATUS" | "APPEND"
                if authenticated =>
            {
                self.folder_command(&cmd)
            }
            "IDLE" if authenticated => self.idle(&tag, io, stream).await?,
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
                        // Proxies send the field under both of Zimbra's spellings
                        // (X-ORIGINATING-IP and x-originating-ip): one line per address.
                        if self.client.forwarded && self.client.ip == ip {
                            continue;
                        }
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
        let result = self.env.auth.authenticate(user, pass).await;
        self.logged_in(tag, user, result)
    }

    /// Answers a login whose credentials were checked: the session state, the tagged reply.
    fn logged_in(&mut self, tag: &[u8], user: &str, result: AuthResult) -> Next {
        match result {
            AuthResult::Ok { account, mail_host } => {
                if !self.env.serves(&mail_host) {
                    tracing::warn!(%account, %mail_host, "login for an account of another mail host");
                    self.tally.failed += 1;
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
                // The driver closes with "BYE Too many failed logins" at the cap.
                self.tally.failed += 1;
                self.no(tag, Some("AUTHENTICATIONFAILED"), "Authentication failed")
            }
            AuthResult::Unavailable => self.no(
                tag,
                Some("UNAVAILABLE"),
                "Authentication service unavailable, try again later",
            ),
        }
    }

    async fn authenticate<S>(&mut self, cmd: &Cmd, io: &mut Io, stream: &mut S) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tag = cmd.tag.clone();
        let oauth = match cmd.args.first().and_then(A::upper).as_deref() {
            Some("PLAIN") => None,
            Some(name) => match crate::oauth::mechanism(&self.env, name) {
                Some(m) => Some(m),
                None => return Ok(self.no(&tag, None, "Unsupported authentication mechanism")),
            },
            None => return Ok(self.bad_command(Some(&tag), "AUTHENTICATE needs a mechanism")),
        };
        let response: Vec<u8> = match cmd.args.get(1) {
            Some(initial) => initial.bytes().unwrap_or_default().to_vec(),
            None => {
                continuation(&mut self.out, "");
                self.flush(io, stream).await?;
                match io.read_line(stream).await? {
                    Line::Read(line) => line,
                    Line::TooLong => return Ok(self.bad_command(Some(&tag), "Response too long")),
                    Line::Closed => return Ok(Next::Close),
                }
            }
        };
        if let Some(mechanism) = oauth {
            return self
                .authenticate_oauth(&tag, mechanism, &response, io, stream)
                .await;
        }
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

    /// XOAUTH2 / OAUTHBEARER: a refused token gets RFC 7628's error challenge, whose
    /// answer (whatever it is) is read before the tagged NO.
    async fn authenticate_oauth<S>(
        &mut self,
        tag: &[u8],
        mechanism: codec::sasl::OAuthMechanism,
        response: &[u8],
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let oauth = match codec::sasl::decode_oauth(mechanism, response) {
            Ok(o) => o,
            Err(e) => return Ok(self.bad_command(Some(tag), &e.to_string())),
        };
        if self.env.faults().refuse_logins {
            return Ok(self.no(tag, Some("UNAVAILABLE"), "Logins are refused right now"));
        }
        let user = String::from_utf8_lossy(&oauth.user).into_owned();
        match crate::oauth::check(&self.env, &oauth).await {
            AuthResult::Denied => {
                tracing::info!(%user, mechanism = mechanism.name(), client = %self.client.ip, "login failed");
                continuation(&mut self.out, &codec::sasl::oauth_error_challenge());
                self.flush(io, stream).await?;
                if io.read_line(stream).await? == Line::Closed {
                    return Ok(Next::Close);
                }
                self.tally.failed += 1;
                Ok(self.no(tag, Some("AUTHENTICATIONFAILED"), "Authentication failed"))
            }
            result => Ok(self.logged_in(tag, &user, result)),
        }
    }

    async fn idle<S>(&mut self, tag: &[u8], io: &mut Io, stream: &mut S) -> io::Result<Next>
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
        // The driver bounds the wait: the idle timeout ("BYE Autologout") and shutdown
        // ("BYE Server shutting down") end it as they end any read.
        loop {
            io.out().append(&mut self.out);
            match io.read_line_until(stream, changes.changed()).await? {
                Ok(Line::Read(line)) if line.eq_ignore_ascii_case(b"DONE") => {
                    return Ok(self.ok(tag, None, "IDLE terminated"))
                }
                Ok(Line::Read(_) | Line::TooLong) => {
                    return Ok(self.bad_command(Some(tag), "Expected DONE"))
                }
                Ok(Line::Closed) | Err(Err(_)) => return Ok(Next::Close),
                Err(Ok(())) => self.sync(true),
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
