//! The POP3 server session (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH PLAIN) as an explicit
//! state machine: Authorization (with the USER name given so far), Transaction (a snapshot
//! of INBOX and the deletion marks), and the Update state at QUIT, which removes the marked
//! messages from the shared store. STLS is a return value, as STARTTLS is for IMAP.

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;

use codec::pop3::{self, Command};
use common::line_session::{self, Bounds, Dispatch, Line, LineSession, Step, Tally};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::AuthResult;
use crate::env::{ClientAddr, Env};
use crate::store::{Account, Message};

enum State {
    Authorization {
        user: Option<String>,
    },
    Transaction {
        account: Arc<Account>,
        name: String,
        messages: Vec<Message>,
        deleted: BTreeSet<usize>,
    },
}

/// The connection's driver: reads, framing, the strike cap, timeouts, last words.
type Io = LineSession<line_session::pop3::Pop3<Owned>>;

/// One POP3 connection.
pub(crate) type Connection =
    crate::connection::Connection<line_session::pop3::Pop3<Owned>, Session>;

/// The POP3 state machine of one connection (commands in, replies out).
pub struct Session {
    env: Arc<Env>,
    state: State,
    /// Replies, handed to the driver after each command.
    out: Vec<u8>,
    /// Malformed commands and failed logins the driver has yet to count.
    tally: Tally,
    tls: bool,
    peer: std::net::IpAddr,
    client: ClientAddr,
}

enum Next {
    Continue,
    Close,
    StartTls,
}

impl Connection {
    /// A new connection; `tls` says whether it is already encrypted.
    pub fn new(env: Arc<Env>, tls: bool, peer: std::net::IpAddr, client: ClientAddr) -> Self {
        let dialect = line_session::pop3::Pop3::new(env.pop3_limits, Owned::from);
        let session = Session {
            env,
            state: State::Authorization { user: None },
            out: Vec::new(),
            tally: Tally::default(),
            tls,
            peer,
            client,
        };
        let bounds = session.bounds();
        Self::with(session, dialect, bounds)
    }
}

impl crate::connection::Session for Session {
    fn env(&self) -> &Arc<Env> {
        &self.env
    }

    fn greet(&self, out: &mut Vec<u8>) {
        pop3::ok(out, format!("{} POP3 ready", self.env.hostname));
    }

    fn set_tls(&mut self) {
        self.tls = true;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Dispatch<line_session::pop3::Pop3<Owned>, S> for Session {
    type Done = std::convert::Infallible;

    async fn dispatch(
        &mut self,
        cmd: Owned,
        io: &mut Io,
        stream: &mut S,
    ) -> io::Result<Step<Self::Done>> {
        tracing::debug!(command = cmd.keyword, "pop3 command");
        let next = self.command(cmd, io, stream).await?;
        io.out().append(&mut self.out);
        let go_on = self.tally.settle(io);
        io.set_bounds(self.bounds());
        Ok(match next {
            Next::Close => Step::Close,
            Next::StartTls => Step::StartTls,
            Next::Continue if go_on => Step::Continue,
            Next::Continue => Step::Close,
        })
    }
}

impl Session {
    /// The driver's bounds for the current state: the pre-auth timeout before login, the
    /// idle timeout after.
    fn bounds(&self) -> Bounds {
        let read_timeout = match self.state {
            State::Authorization { .. } => self.env.timeouts.preauth,
            State::Transaction { .. } => self.env.timeouts.idle,
        };
        Bounds {
            read_timeout,
            write_timeout: self.env.timeouts.idle,
            deadline: None,
            max_bad: self.env.max_bad_commands,
            max_line: self.env.sasl_line,
        }
    }

    /// The SASL mechanisms offered.
    fn mechanisms(&self) -> &'static [&'static str] {
        if self.env.oauth.is_some() {
            &["PLAIN", "XOAUTH2", "OAUTHBEARER"]
        } else {
            &["PLAIN"]
        }
    }

    fn capa(&mut self) {
        pop3::multiline_start(&mut self.out, "Capability list follows");
        for line in [
            "TOP",
            "USER",
            "UIDL",
            "RESP-CODES",
            "PIPELINING",
            "AUTH-RESP-CODE",
        ] {
            pop3::multiline_line(&mut self.out, line);
        }
        let sasl = format!("SASL {}", self.mechanisms().join(" "));
        pop3::multiline_line(&mut self.out, sasl);
        if self.env.tls.is_some() && !self.tls && matches!(self.state, State::Authorization { .. })
        {
            pop3::multiline_line(&mut self.out, "STLS");
        }
        pop3::multiline_line(
            &mut self.out,
            format!("IMPLEMENTATION mailbox-stub {}", env!("CARGO_PKG_VERSION")),
        );
        pop3::multiline_end(&mut self.out);
    }

    /// Answers a malformed command; the driver counts it against the cap.
    fn bad_command(&mut self, reason: &str) -> Next {
        pop3::err(&mut self.out, reason);
        self.tally.bad += 1;
        Next::Continue
    }

    async fn command<S>(&mut self, cmd: Owned, io: &mut Io, stream: &mut S) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let authorized = matches!(self.state, State::Transaction { .. });
        let next = match (cmd.keyword, authorized) {
            ("CAPA", _) => {
                self.capa();
                Next::Continue
            }
            ("NOOP", _) => {
                pop3::ok(&mut self.out, "");
                Next::Continue
            }
            ("QUIT", _) => return Ok(self.quit()),
            ("STLS", false) => {
                if self.tls || self.env.tls.is_none() {
                    self.bad_command("STLS not available")
                } else {
                    pop3::ok(&mut self.out, "Begin TLS negotiation");
                    Next::StartTls
                }
            }
            ("USER", false) => {
                self.state = State::Authorization {
                    user: Some(String::from_utf8_lossy(&cmd.a).into_owned()),
                };
                pop3::ok(&mut self.out, "Send your password");
                Next::Continue
            }
            ("PASS", false) => {
                let State::Authorization { user: Some(user) } = &self.state else {
                    return Ok(self.bad_command("USER first"));
                };
                let user = user.clone();
                let pass = String::from_utf8_lossy(&cmd.a).into_owned();
                self.login(&user, &pass).await
            }
            ("AUTH", false) => self.auth(&cmd, io, stream).await?,
            ("XCLIENT", false) => {
                let mut addr = None;
                for (name, value) in pop3::xclient_params(&cmd.a) {
                    if name.eq_ignore_ascii_case(b"ADDR") {
                        addr = std::str::from_utf8(value)
                            .ok()
                            .and_then(|v| v.trim_start_matches("IPV6:").parse().ok());
                    }
                }
                self.forward(addr, "XCLIENT")
            }
            ("XOIP", false) => {
                let addr = std::str::from_utf8(&cmd.a)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
                self.forward(addr, "XOIP")
            }
            ("STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET", true) => {
                self.transaction(&cmd)
            }
            (_, false) => self.bad_command("Not allowed before login"),
            (_, true) => self.bad_command("Not allowed after login"),
        };
        Ok(next)
    }

    fn forward(&mut self, addr: Option<std::net::IpAddr>, how: &str) -> Next {
        if !self.env.trusted.contains(self.peer) {
            tracing::warn!(peer = %self.peer, how, "client address forwarding refused from an untrusted peer");
            pop3::err(&mut self.out, "[AUTH] Not allowed from this address");
            return Next::Continue;
        }
        match addr {
            Some(ip) => {
                tracing::info!(client = %ip, proxy = %self.peer, how, "client address forwarded");
                self.client = ClientAddr {
                    ip,
                    forwarded: true,
                };
                pop3::ok(&mut self.out, "");
                Next::Continue
            }
            None => self.bad_command("invalid address"),
        }
    }

    /// Answers `-ERR` when the fault switch refuses logins.
    fn refused_by_fault(&mut self) -> bool {
        if !self.env.faults().refuse_logins {
            return false;
        }
        self.state = State::Authorization { user: None };
        pop3::err(&mut self.out, "[SYS/TEMP] Logins are refused right now");
        true
    }

    async fn login(&mut self, user: &str, pass: &str) -> Next {
        if self.refused_by_fault() {
            return Next::Continue;
        }
        let result = self.env.auth.authenticate(user, pass).await;
        self.logged_in(user, result)
    }

    /// Answers a login whose credentials were checked: the session state, the reply.
    fn logged_in(&mut self, user: &str, result: AuthResult) -> Next {
        match result {
            AuthResult::Ok { account, mail_host } => {
                if !self.env.serves(&mail_host) {
                    self.state = State::Authorization { user: None };
                    pop3::err(
                        &mut self.out,
                        format!("[SYS/PERM] Account {account} is not on {} (its mail host is {mail_host})", self.env.hostname),
                    );
                    return Next::Continue;
                }
                let mailbox = self.env.store.open(&account);
                let messages = mailbox
                    .lock()
                    .folders
                    .get("INBOX")
                    .map(|f| f.messages.clone())
                    .unwrap_or_default();
                tracing::info!(%account, client = %self.client.ip, forwarded = self.client.forwarded, "logged in");
                self.env.record_login(crate::env::Login {
                    account: account.clone(),
                    client: self.client,
                    protocol: "pop3",
                });
                pop3::ok(
                    &mut self.out,
                    format!("Logged in, {} messages", messages.len()),
                );
                self.state = State::Transaction {
                    account: mailbox,
                    name: account,
                    messages,
                    deleted: BTreeSet::new(),
                };
                if self.env.faults().drop_after_login {
                    return Next::Close;
                }
                Next::Continue
            }
            AuthResult::Denied => {
                tracing::info!(user, client = %self.client.ip, "login failed");
                self.state = State::Authorization { user: None };
                self.tally.failed += 1;
                pop3::err(&mut self.out, "[AUTH] Authentication failed");
                Next::Continue
            }
            AuthResult::Unavailable => {
                self.state = State::Authorization { user: None };
                pop3::err(
                    &mut self.out,
                    "[SYS/TEMP] Authentication service unavailable, try again later",
                );
                Next::Continue
            }
        }
    }

    async fn auth<S>(&mut self, cmd: &Owned, io: &mut Io, stream: &mut S) -> io::Result<Next>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let oauth = match cmd
            .mechanism
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None => {
                pop3::multiline_start(&mut self.out, "Mechanisms follow");
                for m in self.mechanisms() {
                    pop3::multiline_line(&mut self.out, m);
                }
                pop3::multiline_end(&mut self.out);
                return Ok(Next::Continue);
            }
            Some("PLAIN") => None,
            Some(name) => match crate::oauth::mechanism(&self.env, name) {
                Some(m) => Some(m),
                None => return Ok(self.bad_command("Unsupported mechanism")),
            },
        };
        let response = match &cmd.initial {
            Some(i) => i.clone(),
            None => {
                pop3::continuation(&mut self.out, "");
                io.out().append(&mut self.out);
                match io.read_line(stream).await? {
                    Line::Read(line) => line,
                    Line::TooLong => return Ok(self.bad_command("Response too long")),
                    Line::Closed => return Ok(Next::Close),
                }
            }
        };
        if let Some(mechanism) = oauth {
            return self.auth_oauth(mechanism, &response, io, stream).await;
        }
        let plain = match codec::sasl::decode_plain(&response) {
            Ok(p) => p,
            Err(e) => return Ok(self.bad_command(&e.to_string())),
        };
        if plain.other_authzid() {
            pop3::err(&mut self.out, "[AUTH] Authorization identity not allowed");
            return Ok(Next::Continue);
        }
        let user = String::from_utf8_lossy(&plain.authcid).into_owned();
        let password = String::from_utf8_lossy(&plain.password).into_owned();
        Ok(self.login(&user, &password).await)
    }

    /// AUTH XOAUTH2 / OAUTHBEARER: a refused token gets RFC 7628's error challenge
    /// (`+ <base64>`), whose answer (whatever it is) is read before the `-ERR`.
    async fn auth_oauth<S>(
        &mut self,
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
            Err(e) => return Ok(self.bad_command(&e.to_string())),
        };
        if self.refused_by_fault() {
            return Ok(Next::Continue);
        }
        let user = String::from_utf8_lossy(&oauth.user).into_owned();
        match crate::oauth::check(&self.env, &oauth).await {
            AuthResult::Denied => {
                tracing::info!(%user, mechanism = mechanism.name(), client = %self.client.ip, "login failed");
                pop3::continuation(&mut self.out, codec::sasl::oauth_error_challenge());
                io.out().append(&mut self.out);
                if io.read_line(stream).await? == Line::Closed {
                    return Ok(Next::Close);
                }
                self.state = State::Authorization { user: None };
                self.tally.failed += 1;
                pop3::err(&mut self.out, "[AUTH] Authentication failed");
                Ok(Next::Continue)
            }
            result => Ok(self.logged_in(&user, result)),
        }
    }

    fn transaction(&mut self, cmd: &Owned) -> Next {
        let State::Transaction {
            messages, deleted, ..
        } = &mut self.state
        else {
            return Next::Continue;
        };
        let live = |i: usize, deleted: &BTreeSet<usize>| !deleted.contains(&i);
        let get = |n: Option<u32>, deleted: &BTreeSet<usize>| -> Option<usize> {
            let i = usize::try_from(n?).ok()?.checked_sub(1)?;
            (i < messages.len() && live(i, deleted)).then_some(i)
        };
        match cmd.keyword {
            "STAT" => {
                let (count, size) = messages
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| live(*i, deleted))
                    .fold((0, 0), |(c, s), (_, m)| (c + 1, s + m.data.len()));
                pop3::ok(&mut self.out, format!("{count} {size}"));
            }
            "LIST" | "UIDL" => {
                let render = |i: usize, m: &Message| {
                    if cmd.keyword == "LIST" {
                        format!("{} {}", i + 1, m.data.len())
                    } else {
                        format!("{} {}", i + 1, m.uid)
                    }
                };
                match cmd.n {
                    Some(_) => match get(cmd.n, deleted) {
                        Some(i) => pop3::ok(&mut self.out, render(i, &messages[i])),
                        None => pop3::err(&mut self.out, "No such message"),
                    },
                    None => {
                        pop3::multiline_start(&mut self.out, "");
                        for (i, m) in messages
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| live(*i, deleted))
                        {
                            pop3::multiline_line(&mut self.out, render(i, m));
                        }
                        pop3::multiline_end(&mut self.out);
                    }
                }
            }
            "RETR" | "TOP" => match get(cmd.n, deleted) {
                Some(i) => {
                    let data = Arc::clone(&messages[i].data);
                    pop3::multiline_start(&mut self.out, format!("{} octets", data.len()));
                    if cmd.keyword == "RETR" {
                        pop3::dot_stuff(&mut self.out, &data);
                    } else {
                        pop3::dot_stuff_top(&mut self.out, &data, cmd.lines);
                    }
                    pop3::multiline_end(&mut self.out);
                }
                None => pop3::err(&mut self.out, "No such message"),
            },
            "DELE" => match get(cmd.n, deleted) {
                Some(i) => {
                    deleted.insert(i);
                    pop3::ok(&mut self.out, format!("Message {} deleted", i + 1));
                }
                None => pop3::err(&mut self.out, "No such message"),
            },
            "RSET" => {
                deleted.clear();
                pop3::ok(&mut self.out, "");
            }
            _ => {}
        }
        Next::Continue
    }

    /// QUIT: in the Transaction state, the Update state removes the marked messages.
    fn quit(&mut self) -> Next {
        if let State::Transaction {
            account,
            name,
            messages,
            deleted,
        } = &self.state
        {
            let uids: BTreeSet<u32> = deleted.iter().map(|&i| messages[i].uid).collect();
            if !uids.is_empty() {
                let mut mailbox = account.lock();
                if let Some(inbox) = mailbox.folders.get_mut("INBOX") {
                    inbox.messages.retain(|m| !uids.contains(&m.uid));
                }
                drop(mailbox);
                account.notify();
                tracing::info!(account = %name, removed = uids.len(), "POP3 update state");
            }
        }
        pop3::ok(
            &mut self.out,
            format!("{} POP3 signing off", self.env.hostname),
        );
        Next::Close
    }
}

/// An owned copy of a command, so the handler can read more lines (AUTH).
pub(crate) struct Owned {
    keyword: &'static str,
    a: Vec<u8>,
    n: Option<u32>,
    lines: u32,
    mechanism: Option<String>,
    initial: Option<Vec<u8>>,
}

impl Owned {
    fn from(c: &Command<'_>) -> Self {
        let mut o = Self {
            keyword: c.keyword(),
            a: Vec::new(),
            n: None,
            lines: 0,
            mechanism: None,
            initial: None,
        };
        match *c {
            Command::User(a) | Command::Pass(a) | Command::Xclient(a) | Command::Xoip(a) => {
                o.a = a.to_vec()
            }
            Command::Apop { name, .. } => o.a = name.to_vec(),
            Command::Auth { mechanism, initial } => {
                o.mechanism = mechanism.map(|m| String::from_utf8_lossy(m).into_owned());
                o.initial = initial.map(<[u8]>::to_vec);
            }
            Command::List(n) | Command::Uidl(n) => o.n = n,
            Command::Retr(n) | Command::Dele(n) => o.n = Some(n),
            Command::Top { msg, lines } => {
                o.n = Some(msg);
                o.lines = lines;
            }
            _ => {}
        }
        o
    }
}
