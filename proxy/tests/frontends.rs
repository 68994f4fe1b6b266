//! Both front ends (IMAP and POP3) through the real [`proxy::Proxy`]
//! (`bind_with_resolver`), between a real client socket on one side and, on the other, a
//! fake [`RouteResolver`] and scripted mailbox servers written here (no PostgreSQL, no
//! route-lookup, no cache).
//!
//! It exercises:
//! - IMAP LOGIN with atoms, quoted strings, synchronizing literals (the client waits for
//!   `+`) and LITERAL+; AUTHENTICATE PLAIN (SASL-IR and continuation), AUTHENTICATE LOGIN,
//!   an authorization identity replayed upstream as AUTHENTICATE PLAIN (with and without
//!   SASL-IR at the backend); XOAUTH2 and OAUTHBEARER (IMAP and POP3, only when
//!   `--sasl-mechanisms` offers them) routed by their user with the token as the lookup's
//!   password, replayed as sent, and refusals preceded by the error challenge; the client's tag used upstream; the exact bytes each mailbox
//!   server receives (ID with x-originating-ip first, then the login as literals, as the
//!   route's account name and, when the route carries one, with its password);
//! - CAPABILITY before and after STARTTLS, `--starttls only` (LOGINDISABLED,
//!   `[PRIVACYREQUIRED]`), plaintext pipelined behind STARTTLS/STLS never executed,
//!   implicit TLS;
//! - refusals: route-lookup's (`[AUTHENTICATIONFAILED]`/`[AUTH]` with its text, the
//!   temporary one as `[UNAVAILABLE]`/`[SYS/TEMP]`), nobody to ask (`[UNAVAILABLE]`), a dead
//!   backend (the cached route forgotten and looked up once more), the backend's own
//!   refusal relayed with the route forgotten, its temporary refusal relayed with the
//!   route kept;
//! - `--max-bad-commands` counting failed logins (backend refusals included) on both
//!   front ends; the login deadline against a client that keeps the connection busy; the
//!   pre-auth timeout against a silent one; LOGOUT/QUIT and shutdown before login;
//! - the relay after login, including a command pipelined in the same write as the login
//!   (or as the SASL answer).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Parser;
use common::shutdown::Shutdown;
use proxy::config::Config;
use proxy::login::{BoxFuture, Decision, Login, Route, RouteResolver};
use proxy::server::Kind;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How long any single wait in these tests may take before it counts as a hang.
const WAIT: Duration = Duration::from_secs(5);

fn b64(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

// ---------------------------------------------------------------------------------------
// Scripted mailbox servers.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Imap,
    Pop3,
}

/// What a scripted mailbox server says: its greeting and its answer to every login.
#[derive(Debug, Clone)]
struct Script {
    proto: Proto,
    greeting: String,
    /// IMAP: the tagged answer after the tag (`OK ...`, `NO ...`); POP3: the whole line.
    login: String,
    /// An error challenge sent after an AUTHENTICATE / AUTH response (as an OAuth server
    /// refusing a token does), whose answer is read before the login answer.
    challenge: Option<String>,
}

impl Script {
    /// An IMAP server with LITERAL+, SASL-IR and ID that accepts every login.
    fn imap() -> Self {
        Self {
            proto: Proto::Imap,
            greeting: "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID] ready".into(),
            login: "OK [CAPABILITY IMAP4rev1 IDLE] Logged in".into(),
            challenge: None,
        }
    }

    /// A POP3 server that accepts every login.
    fn pop3() -> Self {
        Self {
            proto: Proto::Pop3,
            greeting: "+OK ready".into(),
            login: "+OK Logged in".into(),
            challenge: None,
        }
    }

    fn greeting(mut self, greeting: &str) -> Self {
        self.greeting = greeting.into();
        self
    }

    /// The answer to every login.
    fn login(mut self, answer: &str) -> Self {
        self.login = answer.into();
        self
    }

    /// An error challenge before the answer to every SASL login.
    fn challenge(mut self, challenge: &str) -> Self {
        self.challenge = Some(challenge.into());
        self
    }

    async fn spawn(self) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Received = Arc::default();
        let script = Arc::new(self);
        let recorded = conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::new(Mutex::new(Vec::new()));
                recorded.lock().unwrap().push(log.clone());
                let conn = Conn {
                    stream,
                    buf: Vec::new(),
                    log,
                };
                let script = script.clone();
                tokio::spawn(async move {
                    match script.proto {
                        Proto::Imap => serve_imap(conn, &script).await,
                        Proto::Pop3 => serve_pop3(conn, &script).await,
                    }
                });
            }
        });
        Backend { addr, conns, task }
    }
}

/// The bytes received on one connection, as they arrive.
type Log = Arc<Mutex<Vec<u8>>>;

/// Every connection's log, in connection order.
type Received = Arc<Mutex<Vec<Log>>>;

/// A running scripted mailbox server and everything it received, per connection.
struct Backend {
    addr: SocketAddr,
    conns: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    /// What each connection received so far, in connection order.
    fn received(&self) -> Vec<String> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| String::from_utf8_lossy(&c.lock().unwrap()).into_owned())
            .collect()
    }
}

/// One connection to a scripted server: reads are recorded byte for byte.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    log: Log,
}

impl Conn {
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.log.lock().unwrap().extend_from_slice(&chunk[..n]);
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next line, with its line end.
    async fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                return Some(self.buf.drain(..=i).collect());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// A whole IMAP command, literals included (a synchronizing one gets its `+`).
    async fn imap_command(&mut self) -> Option<Vec<u8>> {
        let mut command = Vec::new();
        loop {
            let line = self.line().await?;
            command.extend_from_slice(&line);
            match literal_at_end(&line) {
                None => return Some(command),
                Some((n, synchronizing)) => {
                    if synchronizing {
                        self.write("+ go ahead\r\n").await;
                    }
                    command.extend(self.exact(n).await?);
                }
            }
        }
    }

    async fn write(&mut self, text: &str) {
        let _ = self.stream.write_all(text.as_bytes()).await;
    }
}

/// `{n}` or `{n+}` at the end of a line: the literal's length and whether it is
/// synchronizing.
fn literal_at_end(line: &[u8]) -> Option<(usize, bool)> {
    let line = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\r', '\n']);
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    let spec = &inner[open + 1..];
    let (digits, synchronizing) = match spec.strip_suffix('+') {
        Some(d) => (d, false),
        None => (spec, true),
    };
    digits.parse().ok().map(|n| (n, synchronizing))
}

/// A mailbox server's IMAP: ID, one login answer, then every command echoed.
async fn serve_imap(mut conn: Conn, script: &Script) {
    conn.write(&format!("{}\r\n", script.greeting)).await;
    let mut logged_in = false;
    while let Some(command) = conn.imap_command().await {
        let text = String::from_utf8_lossy(&command).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        let tag = words.first().copied().unwrap_or("*");
        let name = words
            .get(1)
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        let reply = match name.as_str() {
            "ID" => format!("* ID (\"name\" \"scripted\")\r\n{tag} OK ID completed\r\n"),
            "LOGIN" | "AUTHENTICATE" if !logged_in => {
                if name == "AUTHENTICATE" && words.len() == 3 {
                    // No initial response: ask for it.
                    conn.write("+ \r\n").await;
                    if conn.line().await.is_none() {
                        return;
                    }
                }
                if let (Some(challenge), "AUTHENTICATE") = (&script.challenge, name.as_str()) {
                    conn.write(&format!("+ {challenge}\r\n")).await;
                    if conn.line().await.is_none() {
                        return;
                    }
                }
                logged_in = script.login.starts_with("OK");
                format!("{tag} {}\r\n", script.login)
            }
            "LOGOUT" => {
                conn.write(&format!("* BYE scripted\r\n{tag} OK LOGOUT completed\r\n"))
                    .await;
                return;
            }
            _ => format!(
                "* ECHO {}\r\n{tag} OK {name} completed\r\n",
                text.trim_end()
            ),
        };
        conn.write(&reply).await;
    }
}

/// A mailbox server's POP3: XCLIENT and USER taken, one answer to every PASS or AUTH, then
/// every command echoed.
async fn serve_pop3(mut conn: Conn, script: &Script) {
    conn.write(&format!("{}\r\n", script.greeting)).await;
    let mut logged_in = false;
    while let Some(line) = conn.line().await {
        let text = String::from_utf8_lossy(&line).into_owned();
        let name = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply = match name.as_str() {
            "XCLIENT" | "USER" if !logged_in => "+OK\r\n".to_string(),
            "PASS" | "AUTH" if !logged_in => {
                if name == "AUTH" && text.split_whitespace().count() == 2 {
                    // No initial response: ask for it.
                    conn.write("+ \r\n").await;
                    if conn.line().await.is_none() {
                        return;
                    }
                }
                if let (Some(challenge), "AUTH") = (&script.challenge, name.as_str()) {
                    conn.write(&format!("+ {challenge}\r\n")).await;
                    if conn.line().await.is_none() {
                        return;
                    }
                }
                logged_in = script.login.starts_with("+OK");
                format!("{}\r\n", script.login)
            }
            "QUIT" => {
                conn.write("+OK bye\r\n").await;
                return;
            }
            _ => format!("+OK echo {}\r\n", text.trim_end()),
        };
        conn.write(&reply).await;
    }
}

/// An address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------
// The fake resolver.
// ---------------------------------------------------------------------------------------

/// A login the resolver was asked to route.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Asked {
    user: String,
    pass: String,
    protocol: &'static str,
    attempt: u32,
}

fn asked(user: &str, pass: &str, protocol: &'static str, attempt: u32) -> Asked {
    Asked {
        user: user.into(),
        pass: pass.into(),
        protocol,
        attempt,
    }
}

#[derive(Debug, Clone)]
enum Answer {
    Route(Route),
    Refuse(String),
    Unavailable,
}

/// Answers per user as told; records what it was asked and what it was told to forget.
#[derive(Debug, Default)]
struct FakeResolver {
    answers: Mutex<HashMap<String, Answer>>,
    asked: Mutex<Vec<Asked>>,
    /// The Auth-Method of each login asked about.
    methods: Mutex<Vec<&'static str>>,
    forgotten: Mutex<Vec<Route>>,
}

impl FakeResolver {
    fn new() -> Arc<Self> {
        Arc::default()
    }

    fn set(&self, user: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(user.into(), answer);
    }

    /// `user` lives on `backend` as `account`.
    fn route(&self, user: &str, backend: SocketAddr, account: &str) -> Route {
        let route = Route {
            backend,
            server_name: None,
            user: account.into(),
            pass: None,
            cached: false,
            keys: Vec::new(),
        };
        self.set(user, Answer::Route(route.clone()));
        route
    }

    fn refuse(&self, user: &str, status: &str) {
        self.set(user, Answer::Refuse(status.into()));
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    fn methods(&self) -> Vec<&'static str> {
        self.methods.lock().unwrap().clone()
    }

    fn forgotten(&self) -> Vec<Route> {
        self.forgotten.lock().unwrap().clone()
    }
}

impl RouteResolver for FakeResolver {
    fn route<'a>(&'a self, login: &'a Login<'a>) -> BoxFuture<'a, Decision> {
        self.asked.lock().unwrap().push(Asked {
            user: login.user.into(),
            pass: String::from_utf8_lossy(login.pass).into_owned(),
            protocol: login.protocol,
            attempt: login.attempt,
        });
        self.methods.lock().unwrap().push(login.method);
        let answer = self.answers.lock().unwrap().get(login.user).cloned();
        let decision = match answer {
            Some(Answer::Route(r)) => Decision::Route(r),
            Some(Answer::Refuse(status)) => Decision::Refused {
                status,
                wait: None,
                unknown_user: false,
            },
            Some(Answer::Unavailable) | None => Decision::Unavailable,
        };
        Box::pin(std::future::ready(decision))
    }

    fn forget<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, ()> {
        self.forgotten.lock().unwrap().push(route.clone());
        Box::pin(std::future::ready(()))
    }
}

// ---------------------------------------------------------------------------------------
// The proxy.
// ---------------------------------------------------------------------------------------

/// A running proxy; dropping it shuts it down.
struct Running {
    imap: SocketAddr,
    pop3: SocketAddr,
    imaps: Option<SocketAddr>,
    pop3s: Option<SocketAddr>,
    /// The self-signed certificate's PEM, when TLS is on.
    cert: Option<String>,
    _stop: Shutdown,
}

/// Starts a proxy routing with `resolver`; `flags` come after the defaults and override
/// them. With `tls`, a fresh self-signed certificate for `localhost` is configured and
/// the implicit-TLS listeners are on.
async fn start(resolver: Arc<FakeResolver>, tls: bool, flags: &[&str]) -> Running {
    static DIRS: AtomicU32 = AtomicU32::new(0);
    let mut args: Vec<String> = [
        "proxy",
        "--lookup-url",
        "http://127.0.0.1:9/unused",
        "--imap-listen",
        "127.0.0.1:0",
        "--pop3-listen",
        "127.0.0.1:0",
        "--imaps-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--admin-listen",
        "off",
        "--starttls",
        "off",
        "--name",
        "zp-test",
        "--preauth-timeout",
        "10",
        "--backend-timeout-ms",
        "5000",
        "--grace-period",
        "0",
    ]
    .map(String::from)
    .to_vec();
    let mut cert = None;
    let mut dir = None;
    if tls {
        let (cert_pem, key_pem) = common::tls::self_signed(&["localhost"]).unwrap();
        let d = std::env::temp_dir().join(format!(
            "proxy-frontends-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &key_pem).unwrap();
        args.extend([
            "--tls-cert".to_string(),
            d.join("cert.pem").display().to_string(),
            "--tls-key".to_string(),
            d.join("key.pem").display().to_string(),
            "--imaps-listen".to_string(),
            "127.0.0.1:0".to_string(),
            "--pop3s-listen".to_string(),
            "127.0.0.1:0".to_string(),
        ]);
        cert = Some(cert_pem);
        dir = Some(d);
    }
    args.extend(flags.iter().map(|f| f.to_string()));
    let config = Config::try_parse_from(&args).unwrap().validate();
    if let Some(d) = dir {
        // The certificate and key are read by `validate`.
        let _ = std::fs::remove_dir_all(d);
    }
    let config = config.unwrap();
    let bound = proxy::Proxy::bind_with_resolver(config, resolver)
        .await
        .unwrap();
    let running = |kind| bound.local_addr(kind);
    let (imap, pop3) = (running(Kind::Imap).unwrap(), running(Kind::Pop3).unwrap());
    let (imaps, pop3s) = (running(Kind::Imaps), running(Kind::Pop3s));
    let (stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));
    Running {
        imap,
        pop3,
        imaps,
        pop3s,
        cert,
        _stop: stop,
    }
}

// ---------------------------------------------------------------------------------------
// Clients.
// ---------------------------------------------------------------------------------------

struct Client<S> {
    s: BufReader<S>,
}

async fn connect(addr: SocketAddr) -> Client<TcpStream> {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .unwrap();
    Client {
        s: BufReader::new(stream),
    }
}

type TlsClient = Client<tokio_rustls::client::TlsStream<TcpStream>>;

/// A TLS client trusting `cert_pem`, on `tcp` (implicit TLS or after STARTTLS).
async fn tls_handshake(tcp: TcpStream, cert_pem: &str) -> TlsClient {
    let config = common::tls::client_config_from_pem(cert_pem.as_bytes()).unwrap();
    let tls = tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(config).connect("localhost".try_into().unwrap(), tcp),
    )
    .await
    .expect("TLS handshake in time")
    .unwrap();
    Client {
        s: BufReader::new(tls),
    }
}

impl Client<TcpStream> {
    /// Upgrades to TLS (the proxy has said OK to STARTTLS/STLS).
    async fn upgrade(self, cert_pem: &str) -> TlsClient {
        assert!(
            self.s.buffer().is_empty(),
            "the proxy sent something between its go-ahead and the handshake"
        );
        tls_handshake(self.s.into_inner(), cert_pem).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        let s = self.s.get_mut();
        tokio::time::timeout(WAIT, async {
            s.write_all(bytes).await.unwrap();
            s.flush().await.unwrap();
        })
        .await
        .expect("write in time");
    }

    /// The next line with its line end; empty at EOF.
    async fn line(&mut self) -> String {
        let mut l = String::new();
        tokio::time::timeout(WAIT, self.s.read_line(&mut l))
            .await
            .expect("a line in time")
            .unwrap();
        l
    }

    /// The next `n` lines.
    async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.line().await);
        }
        v
    }

    /// Whether anything arrives within `d` (without consuming it).
    async fn readable_within(&mut self, d: Duration) -> bool {
        matches!(tokio::time::timeout(d, self.s.fill_buf()).await, Ok(Ok(_)))
    }

    /// Asserts that the proxy closes the connection with nothing more to say.
    async fn closed(&mut self) {
        let l = self.line().await;
        assert_eq!(l, "", "expected the connection to be closed");
    }
}

/// What a scripted IMAP server receives first with `--forward-client-ip id`.
fn id_exchange(tag: &str) -> String {
    format!(
        "{tag}.id ID (\"x-originating-ip\" \"127.0.0.1\" \"X-ORIGINATING-IP\" \"127.0.0.1\")\r\n"
    )
}

/// The LOGIN the proxy replays to a LITERAL+ server.
fn login_plus(tag: &str, user: &str, pass: &str) -> String {
    format!(
        "{tag} LOGIN {{{}+}}\r\n{user} {{{}+}}\r\n{pass}\r\n",
        user.len(),
        pass.len()
    )
}

const IMAP_GREETING: &str =
    "* OK [CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR AUTH=PLAIN AUTH=LOGIN] zp-test IMAP4rev1 proxy ready\r\n";
const LOGGED_IN: &str = "OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n";

/// An IMAP client past the greeting.
async fn imap_client(p: &Running) -> Client<TcpStream> {
    let mut c = connect(p.imap).await;
    assert_eq!(c.line().await, IMAP_GREETING);
    c
}

/// A POP3 client past the greeting.
async fn pop3_client(p: &Running) -> Client<TcpStream> {
    let mut c = connect(p.pop3).await;
    assert_eq!(c.line().await, "+OK zp-test POP3 proxy ready\r\n");
    c
}

// ---------------------------------------------------------------------------------------
// IMAP.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn imap_login_string_forms_replay_as_literals_under_the_clients_tag() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    r.route("ann smith", backend.addr, "smith@example.com");
    let p = start(r.clone(), false, &[]).await;

    // Atoms; the client's odd tag is used upstream, for the ID exchange too.
    let mut c = imap_client(&p).await;
    c.send("A0042 LOGIN ann secret\r\n").await;
    assert_eq!(c.line().await, format!("A0042 {LOGGED_IN}"));

    // Quoted strings with escapes.
    let mut c = imap_client(&p).await;
    c.send("b LOGIN \"ann smith\" \"pa ss\\\"\\\\x\"\r\n").await;
    assert_eq!(c.line().await, format!("b {LOGGED_IN}"));

    // Synchronizing literals: the client waits for each go-ahead.
    let mut c = imap_client(&p).await;
    c.send("c LOGIN {3}\r\n").await;
    assert_eq!(c.line().await, "+ OK\r\n");
    c.send("ann {6}\r\n").await;
    assert_eq!(c.line().await, "+ OK\r\n");
    c.send("se cr\"\r\n").await;
    assert_eq!(c.line().await, format!("c {LOGGED_IN}"));

    // LITERAL+: all in one write, no go-ahead asked for (the next line is the answer).
    let mut c = imap_client(&p).await;
    c.send("d LOGIN {3+}\r\nann {4+}\r\n{}()\r\n").await;
    assert_eq!(c.line().await, format!("d {LOGGED_IN}"));

    assert_eq!(
        backend.received(),
        [
            id_exchange("A0042") + &login_plus("A0042", "ann@example.com", "secret"),
            id_exchange("b") + &login_plus("b", "smith@example.com", "pa ss\"\\x"),
            id_exchange("c") + &login_plus("c", "ann@example.com", "se cr\""),
            id_exchange("d") + &login_plus("d", "ann@example.com", "{}()"),
        ]
    );
    assert_eq!(
        r.asked(),
        [
            asked("ann", "secret", "imap", 1),
            asked("ann smith", "pa ss\"\\x", "imap", 1),
            asked("ann", "se cr\"", "imap", 1),
            asked("ann", "{}()", "imap", 1),
        ]
    );
    assert!(r.forgotten().is_empty());
}

#[tokio::test]
async fn imap_login_to_a_backend_without_literal_plus_waits_for_its_go_aheads() {
    let backend = Script::imap()
        .greeting("* OK [CAPABILITY IMAP4rev1 ID] old server ready")
        .spawn()
        .await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), false, &[]).await;
    let mut c = imap_client(&p).await;
    c.send("a1 LOGIN ann pw\r\n").await;
    assert_eq!(c.line().await, format!("a1 {LOGGED_IN}"));
    assert_eq!(
        backend.received(),
        [id_exchange("a1") + "a1 LOGIN {15}\r\nann@example.com {2}\r\npw\r\n"]
    );
}

#[tokio::test]
async fn imap_authenticate_plain_and_login() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), false, &[]).await;

    // PLAIN with SASL-IR.
    let mut c = imap_client(&p).await;
    c.send(&format!("a AUTHENTICATE PLAIN {}\r\n", b64(b"\0ann\0pw1")))
        .await;
    assert_eq!(c.line().await, format!("a {LOGGED_IN}"));

    // PLAIN with the continuation; an authzid equal to the authcid is no authzid; a
    // command pipelined behind the answer is relayed.
    let mut c = imap_client(&p).await;
    c.send("b AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send(&format!("{}\r\nb2 NOOP\r\n", b64(b"ann\0ann\0pw2")))
        .await;
    assert_eq!(
        c.lines(3).await,
        [
            format!("b {LOGGED_IN}"),
            "* ECHO b2 NOOP\r\n".to_string(),
            "b2 OK NOOP completed\r\n".to_string(),
        ]
    );

    // LOGIN, both answers asked for.
    let mut c = imap_client(&p).await;
    c.send("c AUTHENTICATE LOGIN\r\n").await;
    assert_eq!(c.line().await, format!("+ {}\r\n", b64(b"Username:")));
    c.send(&format!("{}\r\n", b64(b"ann"))).await;
    assert_eq!(c.line().await, format!("+ {}\r\n", b64(b"Password:")));
    c.send(&format!("{}\r\n", b64(b"pw3"))).await;
    assert_eq!(c.line().await, format!("c {LOGGED_IN}"));

    // LOGIN with the user name as initial response.
    let mut c = imap_client(&p).await;
    c.send(&format!("d AUTHENTICATE LOGIN {}\r\n", b64(b"ann")))
        .await;
    assert_eq!(c.line().await, format!("+ {}\r\n", b64(b"Password:")));
    c.send(&format!("{}\r\n", b64(b"pw4"))).await;
    assert_eq!(c.line().await, format!("d {LOGGED_IN}"));

    // Without an authzid the backend always gets a plain LOGIN.
    assert_eq!(
        backend.received(),
        [
            id_exchange("a") + &login_plus("a", "ann@example.com", "pw1"),
            id_exchange("b") + &login_plus("b", "ann@example.com", "pw2") + "b2 NOOP\r\n",
            id_exchange("c") + &login_plus("c", "ann@example.com", "pw3"),
            id_exchange("d") + &login_plus("d", "ann@example.com", "pw4"),
        ]
    );
    assert_eq!(
        r.asked(),
        [
            asked("ann", "pw1", "imap", 1),
            asked("ann", "pw2", "imap", 1),
            asked("ann", "pw3", "imap", 1),
            asked("ann", "pw4", "imap", 1),
        ]
    );
}

const OAUTH_FLAGS: &[&str] = &["--sasl-mechanisms", "PLAIN,login,xoauth2,OAuthBearer"];

fn xoauth2(user: &str, token: &str) -> String {
    b64(format!("user={user}\x01auth=Bearer {token}\x01\x01").as_bytes())
}

fn oauthbearer(user: &str, token: &str) -> String {
    b64(
        format!("n,a={user},\x01host=localhost\x01port=143\x01auth=Bearer {token}\x01\x01")
            .as_bytes(),
    )
}

#[tokio::test]
async fn imap_xoauth2_and_oauthbearer_are_routed_by_their_user_and_replayed_as_sent() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann@example.com", backend.addr, "ann@example.com");
    r.route("annie@example.com", backend.addr, "ann@example.com");
    let p = start(r.clone(), false, OAUTH_FLAGS).await;

    let mut c = connect(p.imap).await;
    assert_eq!(
        c.line().await,
        "* OK [CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR AUTH=PLAIN AUTH=LOGIN AUTH=XOAUTH2 AUTH=OAUTHBEARER] zp-test IMAP4rev1 proxy ready\r\n"
    );
    // XOAUTH2 with SASL-IR.
    c.send(&format!(
        "a AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", "tok1")
    ))
    .await;
    assert_eq!(c.line().await, format!("a {LOGGED_IN}"));

    // XOAUTH2 after the continuation, with a command pipelined behind the answer.
    let mut c = connect(p.imap).await;
    c.line().await;
    c.send("b AUTHENTICATE xoauth2\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send(&format!(
        "{}\r\nb2 NOOP\r\n",
        xoauth2("ann@example.com", "tok2")
    ))
    .await;
    assert_eq!(c.lines(2).await[0], format!("b {LOGGED_IN}"));

    // OAUTHBEARER.
    let mut c = connect(p.imap).await;
    c.line().await;
    let bearer = oauthbearer("ann@example.com", "tok3");
    c.send(&format!("c AUTHENTICATE OAUTHBEARER {bearer}\r\n"))
        .await;
    assert_eq!(c.line().await, format!("c {LOGGED_IN}"));

    // An alias: routed by it, replayed as the account the route names.
    let mut c = connect(p.imap).await;
    c.line().await;
    let alias = oauthbearer("annie@example.com", "tok4");
    c.send(&format!("d AUTHENTICATE OAUTHBEARER {alias}\r\n"))
        .await;
    assert_eq!(c.line().await, format!("d {LOGGED_IN}"));
    let as_account =
        b64(b"n,a=ann@example.com,\x01host=localhost\x01port=143\x01auth=Bearer tok4\x01\x01");
    assert_eq!(
        backend.received()[3],
        id_exchange("d") + &format!("d AUTHENTICATE OAUTHBEARER {as_account}\r\n")
    );
    assert_eq!(
        r.methods(),
        ["xoauth2", "xoauth2", "oauthbearer", "oauthbearer"]
    );
    // The token is what route-lookup sees as the password, with the method named; the
    // mailbox server gets the client's own message under the client's tag.
    assert_eq!(
        r.asked(),
        [
            asked("ann@example.com", "tok1", "imap", 1),
            asked("ann@example.com", "tok2", "imap", 1),
            asked("ann@example.com", "tok3", "imap", 1),
            asked("annie@example.com", "tok4", "imap", 1),
        ]
    );
    assert_eq!(
        backend.received()[..3],
        [
            id_exchange("a")
                + &format!(
                    "a AUTHENTICATE XOAUTH2 {}\r\n",
                    xoauth2("ann@example.com", "tok1")
                ),
            id_exchange("b")
                + &format!(
                    "b AUTHENTICATE XOAUTH2 {}\r\n",
                    xoauth2("ann@example.com", "tok2")
                )
                + "b2 NOOP\r\n",
            id_exchange("c") + &format!("c AUTHENTICATE OAUTHBEARER {bearer}\r\n"),
        ]
    );
}

#[tokio::test]
async fn imap_oauth_refusals_get_the_error_challenge_first() {
    let challenge = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=";
    let refusing = Script::imap()
        .login("NO [AUTHENTICATIONFAILED] Authentication failed.")
        .challenge(challenge)
        .spawn()
        .await;
    let r = FakeResolver::new();
    r.route("ann@example.com", refusing.addr, "ann@example.com");
    r.refuse("bob@example.com", "Authentication failed");
    r.refuse("carol@example.com", codec::auth_http::STATUS_TEMPORARY);
    let flags = [OAUTH_FLAGS, &["--max-bad-commands", "20"]].concat();
    let p = start(r.clone(), false, &flags).await;
    let mut c = imap_client_with(&p).await;

    // The mailbox server's challenge reaches the client, its ^A goes back, and the
    // server's NO follows.
    let bearer = oauthbearer("ann@example.com", "revoked");
    c.send(&format!("a AUTHENTICATE OAUTHBEARER {bearer}\r\n"))
        .await;
    assert_eq!(c.line().await, format!("+ {challenge}\r\n"));
    c.send("AQ==\r\n").await;
    assert_eq!(
        c.line().await,
        "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    );
    assert_eq!(
        refusing.received(),
        [id_exchange("a") + &format!("a AUTHENTICATE OAUTHBEARER {bearer}\r\n") + "AQ==\r\n"]
    );

    // route-lookup's refusal gets our own challenge; an empty answer completes it.
    c.send(&format!(
        "b AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("bob@example.com", "t")
    ))
    .await;
    let line = c.line().await;
    let json = base64::engine::general_purpose::STANDARD
        .decode(line.trim_end().strip_prefix("+ ").expect("a challenge"))
        .unwrap();
    assert!(String::from_utf8(json).unwrap().contains("invalid_token"));
    c.send("\r\n").await;
    assert_eq!(
        c.line().await,
        "b NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    );

    // A temporary failure judged no token: no challenge.
    c.send(&format!(
        "c AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("carol@example.com", "t")
    ))
    .await;
    assert_eq!(
        c.line().await,
        "c NO [UNAVAILABLE] Temporary authentication failure\r\n"
    );

    // Malformed messages are BAD and reach nobody; the session goes on.
    c.send(&format!(
        "d AUTHENTICATE XOAUTH2 {}\r\n",
        b64(b"user=ann\x01\x01")
    ))
    .await;
    assert_eq!(c.line().await, "d BAD Invalid OAuth response\r\n");
    c.send(&format!(
        "e AUTHENTICATE OAUTHBEARER {}\r\n",
        b64(b"n,,\x01auth=Bearer t\x01\x01")
    ))
    .await;
    assert_eq!(
        c.line().await,
        "e BAD OAUTHBEARER needs the user name (a=) in its GS2 header\r\n"
    );
    let huge = "x".repeat(codec::sasl::MAX_TOKEN + 1);
    c.send(&format!(
        "f AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", &huge)
    ))
    .await;
    assert_eq!(c.line().await, "f BAD OAuth token too long\r\n");
    c.send("g NOOP\r\n").await;
    assert_eq!(c.line().await, "g OK NOOP completed\r\n");
    assert_eq!(r.asked().len(), 3, "{:?}", r.asked());
}

/// An IMAP client of a proxy offering the OAuth mechanisms, past the greeting.
async fn imap_client_with(p: &Running) -> Client<TcpStream> {
    let mut c = connect(p.imap).await;
    assert!(c.line().await.contains("AUTH=XOAUTH2 AUTH=OAUTHBEARER"));
    c
}

#[tokio::test]
async fn oauth_mechanisms_are_off_unless_configured() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann@example.com", backend.addr, "ann@example.com");
    let p = start(r.clone(), false, &[]).await;
    let mut c = imap_client(&p).await;
    c.send(&format!(
        "a AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", "t")
    ))
    .await;
    assert_eq!(
        c.line().await,
        "a NO Unsupported authentication mechanism\r\n"
    );
    let mut c = pop3_client(&p).await;
    c.send("CAPA\r\n").await;
    let mut capa = Vec::new();
    loop {
        let l = c.line().await;
        if l == ".\r\n" || l.is_empty() {
            break;
        }
        capa.push(l);
    }
    assert!(capa.contains(&"SASL PLAIN\r\n".to_string()), "{capa:?}");
    c.send(&format!(
        "AUTH XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", "t")
    ))
    .await;
    assert_eq!(c.line().await, "-ERR Unsupported mechanism\r\n");

    // Only OAuth: PLAIN and LOGIN are refused, the LOGIN command still works.
    let p = start(r.clone(), false, &["--sasl-mechanisms", "xoauth2"]).await;
    let mut c = connect(p.imap).await;
    assert!(c.line().await.contains("SASL-IR AUTH=XOAUTH2] "));
    c.send(&format!(
        "a AUTHENTICATE PLAIN {}\r\n",
        b64(b"\0ann@example.com\0pw")
    ))
    .await;
    assert_eq!(
        c.line().await,
        "a NO Unsupported authentication mechanism\r\n"
    );
    assert!(r.asked().is_empty());
}

#[tokio::test]
async fn sessions_per_user_and_address_are_capped() {
    let imap = Script::imap().spawn().await;
    let pop3 = Script::pop3().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", imap.addr, "ann@example.com");
    r.route("Ann@Example.com", imap.addr, "ann@example.com");
    r.route("bob", pop3.addr, "bob@example.com");
    let p = start(r.clone(), false, &["--max-sessions-per-user", "2"]).await;
    let mut first = imap_client(&p).await;
    first.send("a LOGIN ann pw\r\n").await;
    assert_eq!(first.line().await, format!("a {LOGGED_IN}"));
    // The account counts, whatever name the client typed.
    let mut second = imap_client(&p).await;
    second.send("a LOGIN Ann@Example.com pw\r\n").await;
    assert_eq!(second.line().await, format!("a {LOGGED_IN}"));
    let mut third = imap_client(&p).await;
    third.send("a LOGIN ann pw\r\n").await;
    assert_eq!(
        third.line().await,
        "a NO [LIMIT] Maximum number of connections from user+IP exceeded\r\n"
    );
    assert_eq!(imap.received().len(), 2, "the mailbox server was not asked");
    // Closing one lets the next in.
    drop(first);
    let deadline = Instant::now() + WAIT;
    loop {
        third.send("b LOGIN ann pw\r\n").await;
        let answer = third.line().await;
        if answer == format!("b {LOGGED_IN}") {
            break;
        }
        assert!(Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // POP3 words it as Dovecot does.
    let p = start(r.clone(), false, &["--max-sessions-per-user", "1"]).await;
    let mut c = pop3_client(&p).await;
    c.send("USER bob\r\nPASS pw\r\n").await;
    assert_eq!(c.lines(2).await[1], "+OK Logged in\r\n");
    let mut c = pop3_client(&p).await;
    c.send("USER bob\r\nPASS pw\r\n").await;
    assert_eq!(
        c.lines(2).await[1],
        "-ERR [IN-USE] Maximum number of connections from user+IP exceeded\r\n"
    );
}

#[tokio::test]
async fn imap_authzid_is_replayed_as_authenticate_plain() {
    let modern = Script::imap().spawn().await;
    let old = Script::imap()
        .greeting("* OK [CAPABILITY IMAP4rev1 ID] old server ready")
        .spawn()
        .await;
    let r = FakeResolver::new();
    r.route("ann", modern.addr, "ann@example.com");
    r.route("bob", old.addr, "bob@example.com");
    let p = start(r.clone(), false, &[]).await;

    let mut c = imap_client(&p).await;
    c.send(&format!(
        "a AUTHENTICATE PLAIN {}\r\n",
        b64(b"boss@example.com\0ann\0pw")
    ))
    .await;
    assert_eq!(c.line().await, format!("a {LOGGED_IN}"));

    let mut c = imap_client(&p).await;
    c.send("b AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send(&format!("{}\r\n", b64(b"boss@example.com\0bob\0pw")))
        .await;
    assert_eq!(c.line().await, format!("b {LOGGED_IN}"));

    // The route's account name is the authcid upstream; the authzid travels as given.
    let ann = b64(b"boss@example.com\0ann@example.com\0pw");
    assert_eq!(
        modern.received(),
        [id_exchange("a") + &format!("a AUTHENTICATE PLAIN {ann}\r\n")]
    );
    let bob = b64(b"boss@example.com\0bob@example.com\0pw");
    assert_eq!(
        old.received(),
        [id_exchange("b") + &format!("b AUTHENTICATE PLAIN\r\n{bob}\r\n")]
    );
}

#[tokio::test]
async fn imap_route_password_replaces_the_clients_upstream() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    let mut route = r.route("ann", backend.addr, "ann@example.com");
    route.pass = Some(b"master-token".to_vec());
    r.set("ann", Answer::Route(route));
    let p = start(r.clone(), false, &[]).await;
    let mut c = imap_client(&p).await;
    c.send("a LOGIN ann typed\r\n").await;
    assert_eq!(c.line().await, format!("a {LOGGED_IN}"));
    assert_eq!(
        backend.received(),
        [id_exchange("a") + &login_plus("a", "ann@example.com", "master-token")]
    );
    assert_eq!(r.asked(), [asked("ann", "typed", "imap", 1)]);
}

#[tokio::test]
async fn imap_relays_a_command_pipelined_with_the_login() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), false, &[]).await;
    let mut c = imap_client(&p).await;
    c.send("a LOGIN ann pw\r\nb SELECT INBOX\r\n").await;
    assert_eq!(
        c.lines(3).await,
        [
            format!("a {LOGGED_IN}"),
            "* ECHO b SELECT INBOX\r\n".to_string(),
            "b OK SELECT completed\r\n".to_string(),
        ]
    );
    // And the relay goes on.
    c.send("c NOOP\r\n").await;
    assert_eq!(
        c.lines(2).await,
        ["* ECHO c NOOP\r\n", "c OK NOOP completed\r\n"]
    );
    c.send("d LOGOUT\r\n").await;
    assert_eq!(
        c.lines(2).await,
        ["* BYE scripted\r\n", "d OK LOGOUT completed\r\n"]
    );
    c.closed().await;
    assert_eq!(
        backend.received(),
        [id_exchange("a")
            + &login_plus("a", "ann@example.com", "pw")
            + "b SELECT INBOX\r\nc NOOP\r\nd LOGOUT\r\n"]
    );
}

#[tokio::test]
async fn imap_capability_and_starttls_on() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), true, &["--starttls", "on"]).await;
    let cert = p.cert.clone().unwrap();

    let mut c = connect(p.imap).await;
    assert_eq!(
        c.line().await,
        "* OK [CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR STARTTLS AUTH=PLAIN AUTH=LOGIN] zp-test IMAP4rev1 proxy ready\r\n"
    );
    c.send("a CAPABILITY\r\n").await;
    assert_eq!(
        c.lines(2).await,
        [
            "* CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR STARTTLS AUTH=PLAIN AUTH=LOGIN\r\n",
            "a OK CAPABILITY completed\r\n",
        ]
    );
    c.send("b STARTTLS\r\n").await;
    assert_eq!(c.line().await, "b OK Begin TLS negotiation now\r\n");
    let mut t = c.upgrade(&cert).await;
    t.send("c CAPABILITY\r\n").await;
    assert_eq!(
        t.lines(2).await,
        [
            "* CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR AUTH=PLAIN AUTH=LOGIN\r\n",
            "c OK CAPABILITY completed\r\n",
        ]
    );
    // STARTTLS is not offered twice.
    t.send("d STARTTLS\r\n").await;
    assert_eq!(t.line().await, "d BAD Command not allowed before login\r\n");
    t.send("e LOGIN ann pw\r\nf NOOP\r\n").await;
    assert_eq!(
        t.lines(3).await,
        [
            format!("e {LOGGED_IN}"),
            "* ECHO f NOOP\r\n".to_string(),
            "f OK NOOP completed\r\n".to_string(),
        ]
    );

    // With `on`, a plaintext login is allowed.
    let mut c = connect(p.imap).await;
    c.line().await;
    c.send("g LOGIN ann pw\r\n").await;
    assert_eq!(c.line().await, format!("g {LOGGED_IN}"));

    // Implicit TLS: no STARTTLS on offer.
    let tcp = TcpStream::connect(p.imaps.unwrap()).await.unwrap();
    let mut t = tls_handshake(tcp, &cert).await;
    assert_eq!(
        t.line().await,
        "* OK [CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR AUTH=PLAIN AUTH=LOGIN] zp-test IMAP4rev1 proxy ready\r\n"
    );
    t.send("h LOGIN ann pw\r\n").await;
    assert_eq!(t.line().await, format!("h {LOGGED_IN}"));

    assert_eq!(
        backend.received(),
        [
            id_exchange("e") + &login_plus("e", "ann@example.com", "pw") + "f NOOP\r\n",
            id_exchange("g") + &login_plus("g", "ann@example.com", "pw"),
            id_exchange("h") + &login_plus("h", "ann@example.com", "pw"),
        ]
    );
}

#[tokio::test]
async fn imap_starttls_only_refuses_plaintext_logins_and_drops_injected_commands() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), true, &["--starttls", "only"]).await;
    let cert = p.cert.clone().unwrap();

    let mut c = connect(p.imap).await;
    assert_eq!(
        c.line().await,
        "* OK [CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR STARTTLS LOGINDISABLED] zp-test IMAP4rev1 proxy ready\r\n"
    );
    c.send("a CAPABILITY\r\n").await;
    assert_eq!(
        c.lines(2).await,
        [
            "* CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR STARTTLS LOGINDISABLED\r\n",
            "a OK CAPABILITY completed\r\n",
        ]
    );
    c.send("b LOGIN ann pw\r\n").await;
    assert_eq!(
        c.line().await,
        "b NO [PRIVACYREQUIRED] Use STARTTLS first\r\n"
    );
    c.send(&format!("c AUTHENTICATE PLAIN {}\r\n", b64(b"\0ann\0pw")))
        .await;
    assert_eq!(
        c.line().await,
        "c NO [PRIVACYREQUIRED] Use STARTTLS first\r\n"
    );
    // A man in the middle appends a login to the client's STARTTLS.
    c.send("d STARTTLS\r\ne LOGIN ann pw\r\n").await;
    assert_eq!(c.line().await, "d OK Begin TLS negotiation now\r\n");
    let mut t = c.upgrade(&cert).await;
    t.send("f NOOP\r\n").await;
    assert_eq!(
        t.line().await,
        "f OK NOOP completed\r\n",
        "the injected LOGIN was executed"
    );
    assert!(r.asked().is_empty(), "{:?}", r.asked());
    assert!(backend.received().is_empty());
    t.send("g CAPABILITY\r\n").await;
    assert_eq!(
        t.lines(2).await,
        [
            "* CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR AUTH=PLAIN AUTH=LOGIN\r\n",
            "g OK CAPABILITY completed\r\n",
        ]
    );
    t.send("h LOGIN ann pw\r\n").await;
    assert_eq!(t.line().await, format!("h {LOGGED_IN}"));
    assert_eq!(r.asked(), [asked("ann", "pw", "imap", 1)]);
    assert_eq!(
        backend.received(),
        [id_exchange("h") + &login_plus("h", "ann@example.com", "pw")]
    );
}

#[tokio::test]
async fn imap_refusals_and_unavailability() {
    let refusing = Script::imap()
        .login("NO [AUTHENTICATIONFAILED] Invalid credentials (backend)")
        .spawn()
        .await;
    let busy = Script::imap()
        .login("NO [UNAVAILABLE] Mailbox in maintenance")
        .spawn()
        .await;
    let r = FakeResolver::new();
    r.refuse("mallory", "Invalid login or password");
    r.refuse("moving", codec::auth_http::STATUS_TEMPORARY);
    r.set("nobody", Answer::Unavailable);
    let refused_route = r.route("ann", refusing.addr, "ann@example.com");
    r.route("bob", busy.addr, "bob@example.com");
    let p = start(r.clone(), false, &["--max-bad-commands", "10"]).await;

    let mut c = imap_client(&p).await;
    c.send("a LOGIN mallory x\r\n").await;
    assert_eq!(
        c.line().await,
        "a NO [AUTHENTICATIONFAILED] Invalid login or password\r\n"
    );
    c.send("b LOGIN moving x\r\n").await;
    assert_eq!(
        c.line().await,
        "b NO [UNAVAILABLE] Temporary authentication failure\r\n"
    );
    c.send("c LOGIN nobody x\r\n").await;
    assert_eq!(
        c.line().await,
        "c NO [UNAVAILABLE] Temporary failure, try again later\r\n"
    );
    assert!(r.forgotten().is_empty(), "{:?}", r.forgotten());

    // The backend's refusal is relayed, and the route forgotten (the account may have
    // moved).
    c.send("d LOGIN ann wrong\r\n").await;
    assert_eq!(
        c.line().await,
        "d NO [AUTHENTICATIONFAILED] Invalid credentials (backend)\r\n"
    );
    assert_eq!(r.forgotten(), [refused_route]);

    // Its temporary refusal is relayed, and the route kept.
    c.send("e LOGIN bob pw\r\n").await;
    assert_eq!(
        c.line().await,
        "e NO [UNAVAILABLE] Mailbox in maintenance\r\n"
    );
    assert_eq!(r.forgotten().len(), 1, "{:?}", r.forgotten());

    // The connection is still usable.
    c.send("f NOOP\r\n").await;
    assert_eq!(c.line().await, "f OK NOOP completed\r\n");
    assert_eq!(
        r.asked(),
        [
            asked("mallory", "x", "imap", 1),
            asked("moving", "x", "imap", 2),
            asked("nobody", "x", "imap", 3),
            asked("ann", "wrong", "imap", 4),
            asked("bob", "pw", "imap", 5),
        ]
    );
    assert_eq!(
        refusing.received(),
        [id_exchange("d") + &login_plus("d", "ann@example.com", "wrong")]
    );
    assert_eq!(
        busy.received(),
        [id_exchange("e") + &login_plus("e", "bob@example.com", "pw")]
    );
}

#[tokio::test]
async fn imap_dead_backend_forgets_a_cached_route_and_looks_again_once() {
    let dead = dead_addr().await;
    let r = FakeResolver::new();
    let mut route = r.route("ann", dead, "ann@example.com");
    route.cached = true;
    r.set("ann", Answer::Route(route.clone()));
    let p = start(r.clone(), false, &[]).await;
    let mut c = imap_client(&p).await;
    c.send("a LOGIN ann pw\r\n").await;
    assert_eq!(
        c.line().await,
        "a NO [UNAVAILABLE] Temporary failure, try again later\r\n"
    );
    assert_eq!(
        r.asked(),
        [asked("ann", "pw", "imap", 1), asked("ann", "pw", "imap", 1)]
    );
    assert_eq!(r.forgotten(), [route.clone(), route]);
}

#[tokio::test]
async fn imap_failed_logins_end_the_connection_at_max_bad_commands() {
    let refusing = Script::imap()
        .login("NO [AUTHENTICATIONFAILED] Invalid credentials")
        .spawn()
        .await;
    let r = FakeResolver::new();
    r.refuse("mallory", "Invalid login or password");
    r.route("ann", refusing.addr, "ann@example.com");
    let p = start(r.clone(), false, &["--max-bad-commands", "3"]).await;
    let mut c = imap_client(&p).await;
    c.send("a LOGIN mallory x\r\n").await;
    assert_eq!(
        c.line().await,
        "a NO [AUTHENTICATIONFAILED] Invalid login or password\r\n"
    );
    c.send("b LOGIN ann x\r\n").await;
    assert_eq!(
        c.line().await,
        "b NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"
    );
    c.send("c LOGIN mallory y\r\n").await;
    assert_eq!(
        c.lines(2).await,
        [
            "c NO [AUTHENTICATIONFAILED] Invalid login or password\r\n",
            "* BYE Too many failed logins\r\n",
        ]
    );
    c.closed().await;
    assert_eq!(r.asked().len(), 3);
}

// ---------------------------------------------------------------------------------------
// POP3.
// ---------------------------------------------------------------------------------------

/// What a scripted POP3 server receives first with `--forward-client-ip id`.
const XCLIENT: &str = "XCLIENT ADDR=127.0.0.1\r\n";

#[tokio::test]
async fn pop3_user_pass_and_relay() {
    let backend = Script::pop3().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), false, &[]).await;

    let mut c = pop3_client(&p).await;
    c.send("CAPA\r\n").await;
    assert_eq!(
        c.lines(9).await,
        [
            "+OK Capability list follows\r\n",
            "TOP\r\n",
            "UIDL\r\n",
            "RESP-CODES\r\n",
            "PIPELINING\r\n",
            "AUTH-RESP-CODE\r\n",
            "USER\r\n",
            "SASL PLAIN\r\n",
            ".\r\n",
        ]
    );
    c.send("USER ann\r\n").await;
    assert_eq!(c.line().await, "+OK\r\n");
    c.send("PASS pw\r\n").await;
    assert_eq!(c.line().await, "+OK Logged in\r\n");
    c.send("STAT\r\n").await;
    assert_eq!(c.line().await, "+OK echo STAT\r\n");
    c.send("QUIT\r\n").await;
    assert_eq!(c.line().await, "+OK bye\r\n");
    c.closed().await;

    // Pipelined: the command after PASS reaches the backend after the login.
    let mut c = pop3_client(&p).await;
    c.send("USER ann\r\nPASS pw2\r\nLIST\r\n").await;
    assert_eq!(
        c.lines(3).await,
        ["+OK\r\n", "+OK Logged in\r\n", "+OK echo LIST\r\n"]
    );

    assert_eq!(
        backend.received(),
        [
            format!("{XCLIENT}USER ann@example.com\r\nPASS pw\r\nSTAT\r\nQUIT\r\n"),
            format!("{XCLIENT}USER ann@example.com\r\nPASS pw2\r\nLIST\r\n"),
        ]
    );
    assert_eq!(
        r.asked(),
        [
            asked("ann", "pw", "pop3", 1),
            asked("ann", "pw2", "pop3", 1)
        ]
    );
}

#[tokio::test]
async fn pop3_auth_plain() {
    let backend = Script::pop3().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), false, &[]).await;

    // Initial response.
    let mut c = pop3_client(&p).await;
    c.send(&format!("AUTH PLAIN {}\r\n", b64(b"\0ann\0pw1")))
        .await;
    assert_eq!(c.line().await, "+OK Logged in\r\n");

    // Continuation, with a command pipelined behind the answer.
    let mut c = pop3_client(&p).await;
    c.send("AUTH PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send(&format!("{}\r\nSTAT\r\n", b64(b"\0ann\0pw2"))).await;
    assert_eq!(c.lines(2).await, ["+OK Logged in\r\n", "+OK echo STAT\r\n"]);

    // An authorization identity: replayed as AUTH PLAIN.
    let mut c = pop3_client(&p).await;
    c.send(&format!("AUTH PLAIN {}\r\n", b64(b"boss\0ann\0pw3")))
        .await;
    assert_eq!(c.line().await, "+OK Logged in\r\n");

    assert_eq!(
        backend.received(),
        [
            format!("{XCLIENT}USER ann@example.com\r\nPASS pw1\r\n"),
            format!("{XCLIENT}USER ann@example.com\r\nPASS pw2\r\nSTAT\r\n"),
            format!(
                "{XCLIENT}AUTH PLAIN {}\r\n",
                b64(b"boss\0ann@example.com\0pw3")
            ),
        ]
    );
    assert_eq!(
        r.asked(),
        [
            asked("ann", "pw1", "pop3", 1),
            asked("ann", "pw2", "pop3", 1),
            asked("ann", "pw3", "pop3", 1),
        ]
    );
}

#[tokio::test]
async fn pop3_xoauth2_and_its_error_challenge() {
    let backend = Script::pop3().spawn().await;
    let challenge = "eyJzdGF0dXMiOiI0MDEifQ==";
    let refusing = Script::pop3()
        .login("-ERR [AUTH] Authentication failed.")
        .challenge(challenge)
        .spawn()
        .await;
    let r = FakeResolver::new();
    r.route("ann@example.com", backend.addr, "ann@example.com");
    r.route("bob@example.com", refusing.addr, "bob@example.com");
    let p = start(r.clone(), false, OAUTH_FLAGS).await;

    let mut c = pop3_client(&p).await;
    c.send("CAPA\r\n").await;
    let capa = c.lines(9).await;
    assert!(
        capa.contains(&"SASL PLAIN XOAUTH2 OAUTHBEARER\r\n".to_string()),
        "{capa:?}"
    );
    let ann = xoauth2("ann@example.com", "tok1");
    c.send(&format!("AUTH XOAUTH2 {ann}\r\n")).await;
    assert_eq!(c.line().await, "+OK Logged in\r\n");
    // A real token is kilobytes long, and clients send it in the AUTH line all the same.
    let long = xoauth2("ann@example.com", &"t".repeat(6000));
    let mut c = pop3_client(&p).await;
    c.send(&format!("AUTH XOAUTH2 {long}\r\n")).await;
    assert_eq!(c.line().await, "+OK Logged in\r\n");

    // Without an initial response, and refused by the mailbox server with a challenge.
    let mut c = pop3_client(&p).await;
    c.send("AUTH XOAUTH2\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    let bob = xoauth2("bob@example.com", "revoked");
    c.send(&format!("{bob}\r\n")).await;
    assert_eq!(c.line().await, format!("+ {challenge}\r\n"));
    c.send("\r\n").await;
    assert_eq!(c.line().await, "-ERR [AUTH] Authentication failed.\r\n");
    assert_eq!(r.methods(), ["xoauth2", "xoauth2", "xoauth2"]);
    // Upstream the long one goes after the `+`, as RFC 5034 asks.
    assert_eq!(
        backend.received(),
        [
            format!("{XCLIENT}AUTH XOAUTH2 {ann}\r\n"),
            format!("{XCLIENT}AUTH XOAUTH2\r\n{long}\r\n"),
        ]
    );
    assert_eq!(
        refusing.received(),
        [format!("{XCLIENT}AUTH XOAUTH2 {bob}\r\n\r\n")]
    );
}

#[tokio::test]
async fn pop3_stls_only_refuses_plaintext_logins_and_drops_injected_commands() {
    let backend = Script::pop3().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), true, &["--starttls", "only"]).await;
    let cert = p.cert.clone().unwrap();

    let mut c = pop3_client(&p).await;
    c.send("CAPA\r\n").await;
    assert_eq!(
        c.lines(8).await,
        [
            "+OK Capability list follows\r\n",
            "TOP\r\n",
            "UIDL\r\n",
            "RESP-CODES\r\n",
            "PIPELINING\r\n",
            "AUTH-RESP-CODE\r\n",
            "STLS\r\n",
            ".\r\n",
        ]
    );
    c.send("USER ann\r\n").await;
    assert_eq!(c.line().await, "-ERR [AUTH] Use STLS first\r\n");
    c.send("STLS\r\nUSER ann\r\n").await;
    assert_eq!(c.line().await, "+OK Begin TLS negotiation\r\n");
    let mut t = c.upgrade(&cert).await;
    // The injected USER was dropped: PASS has no user to go with.
    t.send("PASS pw\r\n").await;
    assert_eq!(t.line().await, "-ERR USER first\r\n");
    t.send("CAPA\r\n").await;
    assert_eq!(
        t.lines(9).await,
        [
            "+OK Capability list follows\r\n",
            "TOP\r\n",
            "UIDL\r\n",
            "RESP-CODES\r\n",
            "PIPELINING\r\n",
            "AUTH-RESP-CODE\r\n",
            "USER\r\n",
            "SASL PLAIN\r\n",
            ".\r\n",
        ]
    );
    assert!(r.asked().is_empty(), "{:?}", r.asked());
    t.send("USER ann\r\nPASS pw\r\nUIDL\r\n").await;
    assert_eq!(
        t.lines(3).await,
        ["+OK\r\n", "+OK Logged in\r\n", "+OK echo UIDL\r\n"]
    );

    // Implicit TLS: logins allowed at once, no STLS offered.
    let tcp = TcpStream::connect(p.pop3s.unwrap()).await.unwrap();
    let mut t = tls_handshake(tcp, &cert).await;
    assert_eq!(t.line().await, "+OK zp-test POP3 proxy ready\r\n");
    t.send("STLS\r\n").await;
    assert_eq!(t.line().await, "-ERR Command not allowed before login\r\n");
    t.send("USER ann\r\nPASS pw2\r\n").await;
    assert_eq!(t.lines(2).await, ["+OK\r\n", "+OK Logged in\r\n"]);

    assert_eq!(
        backend.received(),
        [
            format!("{XCLIENT}USER ann@example.com\r\nPASS pw\r\nUIDL\r\n"),
            format!("{XCLIENT}USER ann@example.com\r\nPASS pw2\r\n"),
        ]
    );
}

#[tokio::test]
async fn pop3_refusals_and_unavailability() {
    let busy = Script::pop3()
        .login("-ERR [SYS/TEMP] Mailbox in maintenance")
        .spawn()
        .await;
    let r = FakeResolver::new();
    r.refuse("mallory", "Invalid login or password");
    r.refuse("moving", codec::auth_http::STATUS_TEMPORARY);
    r.set("nobody", Answer::Unavailable);
    r.route("bob", busy.addr, "bob@example.com");
    let p = start(r.clone(), false, &["--max-bad-commands", "10"]).await;
    let mut c = pop3_client(&p).await;
    c.send("USER mallory\r\nPASS x\r\n").await;
    assert_eq!(
        c.lines(2).await,
        ["+OK\r\n", "-ERR [AUTH] Invalid login or password\r\n"]
    );
    c.send("USER moving\r\nPASS x\r\n").await;
    assert_eq!(
        c.lines(2).await,
        [
            "+OK\r\n",
            "-ERR [SYS/TEMP] Temporary authentication failure\r\n"
        ]
    );
    c.send(&format!("AUTH PLAIN {}\r\n", b64(b"\0nobody\0x")))
        .await;
    assert_eq!(
        c.line().await,
        "-ERR [SYS/TEMP] Temporary failure, try again later\r\n"
    );
    // The backend's temporary refusal is relayed; the route is kept.
    c.send("USER bob\r\nPASS pw\r\n").await;
    assert_eq!(
        c.lines(2).await,
        ["+OK\r\n", "-ERR [SYS/TEMP] Mailbox in maintenance\r\n"]
    );
    c.send("NOOP\r\n").await;
    assert_eq!(c.line().await, "+OK\r\n");
    assert!(r.forgotten().is_empty(), "{:?}", r.forgotten());
    assert_eq!(
        r.asked(),
        [
            asked("mallory", "x", "pop3", 1),
            asked("moving", "x", "pop3", 2),
            asked("nobody", "x", "pop3", 3),
            asked("bob", "pw", "pop3", 4),
        ]
    );
    assert_eq!(
        busy.received(),
        [format!("{XCLIENT}USER bob@example.com\r\nPASS pw\r\n")]
    );
}

#[tokio::test]
async fn pop3_backend_refusals_count_against_max_bad_commands() {
    let refusing = Script::pop3()
        .login("-ERR [AUTH] Invalid credentials")
        .spawn()
        .await;
    let r = FakeResolver::new();
    let route = r.route("ann", refusing.addr, "ann@example.com");
    let p = start(r.clone(), false, &["--max-bad-commands", "2"]).await;
    let mut c = pop3_client(&p).await;
    c.send("USER ann\r\n").await;
    assert_eq!(c.line().await, "+OK\r\n");
    c.send("PASS one\r\n").await;
    assert_eq!(c.line().await, "-ERR [AUTH] Invalid credentials\r\n");
    c.send("USER ann\r\n").await;
    assert_eq!(c.line().await, "+OK\r\n");
    c.send("PASS two\r\n").await;
    assert_eq!(
        c.lines(2).await,
        [
            "-ERR [AUTH] Invalid credentials\r\n",
            "-ERR Too many failed logins, closing connection\r\n",
        ]
    );
    c.closed().await;
    assert_eq!(
        r.asked(),
        [
            asked("ann", "one", "pop3", 1),
            asked("ann", "two", "pop3", 2)
        ]
    );
    assert_eq!(r.forgotten(), [route.clone(), route]);
    assert_eq!(
        refusing.received(),
        [
            format!("{XCLIENT}USER ann@example.com\r\nPASS one\r\n"),
            format!("{XCLIENT}USER ann@example.com\r\nPASS two\r\n"),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// The login deadline.
// ---------------------------------------------------------------------------------------

/// Keeps the connection busy with `command` every 300 ms until the proxy says something
/// unprompted; returns that line and when the connection was closed, from `started`.
async fn busy_until_closed<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Client<S>,
    command: &str,
    answer: &str,
    started: Instant,
) -> (String, Duration) {
    loop {
        // Waiting without consuming: the farewell may arrive while we are idle, and
        // writing into a closed connection could reset it before we read it.
        if c.readable_within(Duration::from_millis(300)).await {
            let farewell = c.line().await;
            c.closed().await;
            return (farewell, started.elapsed());
        }
        assert!(started.elapsed() < WAIT, "the login deadline never came");
        c.send(command).await;
        let l = c.line().await;
        if l != answer {
            // The deadline passed just as the command went out.
            c.closed().await;
            return (l, started.elapsed());
        }
    }
}

#[tokio::test]
async fn the_login_deadline_closes_a_busy_client() {
    let r = FakeResolver::new();
    let p = start(
        r.clone(),
        false,
        &["--login-deadline", "1", "--preauth-timeout", "30"],
    )
    .await;
    let imap = async {
        let started = Instant::now();
        let mut c = imap_client(&p).await;
        busy_until_closed(&mut c, "n NOOP\r\n", "n OK NOOP completed\r\n", started).await
    };
    let pop3 = async {
        let started = Instant::now();
        let mut c = pop3_client(&p).await;
        busy_until_closed(&mut c, "NOOP\r\n", "+OK\r\n", started).await
    };
    let ((imap_bye, imap_after), (pop3_bye, pop3_after)) = tokio::join!(imap, pop3);
    assert_eq!(imap_bye, "* BYE Autologout; login took too long\r\n");
    assert_eq!(pop3_bye, "-ERR Login took too long, closing connection\r\n");
    for after in [imap_after, pop3_after] {
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_millis(1500),
            "closed after {after:?}"
        );
    }
    assert!(r.asked().is_empty());
}

#[tokio::test]
async fn the_preauth_timeout_closes_a_silent_client() {
    let r = FakeResolver::new();
    let p = start(r.clone(), false, &["--preauth-timeout", "1"]).await;
    let imap = async {
        let started = Instant::now();
        let mut c = imap_client(&p).await;
        let bye = c.line().await;
        c.closed().await;
        (bye, started.elapsed())
    };
    let pop3 = async {
        let started = Instant::now();
        let mut c = pop3_client(&p).await;
        let bye = c.line().await;
        c.closed().await;
        (bye, started.elapsed())
    };
    let ((imap_bye, imap_after), (pop3_bye, pop3_after)) = tokio::join!(imap, pop3);
    assert_eq!(imap_bye, "* BYE Autologout; idle for too long\r\n");
    assert_eq!(pop3_bye, "-ERR Timeout, closing connection\r\n");
    for after in [imap_after, pop3_after] {
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_millis(1500),
            "closed after {after:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Leaving.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_quit_and_shutdown_before_login() {
    let r = FakeResolver::new();
    let p = start(r.clone(), false, &[]).await;
    let mut c = imap_client(&p).await;
    c.send("a LOGOUT\r\n").await;
    assert_eq!(
        c.lines(2).await,
        ["* BYE Logging out\r\n", "a OK LOGOUT completed\r\n"]
    );
    c.closed().await;
    let mut c = pop3_client(&p).await;
    c.send("QUIT\r\n").await;
    assert_eq!(c.line().await, "+OK Bye\r\n");
    c.closed().await;

    // Shutting down: clients still before login are told so and closed.
    let mut imap = imap_client(&p).await;
    let mut pop3 = pop3_client(&p).await;
    drop(p);
    assert_eq!(imap.line().await, "* BYE Server shutting down\r\n");
    imap.closed().await;
    assert_eq!(pop3.line().await, "-ERR Server shutting down\r\n");
    pop3.closed().await;
    assert!(r.asked().is_empty());
}

// ---------------------------------------------------------------------------------------
// Bounds on the login itself and on pre-auth connections per address.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_login_deadline_also_bounds_the_login_upstream() {
    // A mailbox server that accepts and never says a word: the backend timeout (10 s) is
    // far away, the login deadline is not.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let r = FakeResolver::new();
    r.route("ann", addr, "ann@example.com");
    let p = start(
        r.clone(),
        false,
        &["--login-deadline", "1", "--backend-timeout-ms", "10000"],
    )
    .await;
    let started = Instant::now();
    let mut c = imap_client(&p).await;
    c.send("a LOGIN ann secret\r\n").await;
    assert_eq!(c.line().await, "* BYE Autologout; login took too long\r\n");
    c.closed().await;
    let after = started.elapsed();
    assert!(
        after < Duration::from_millis(1500),
        "closed after {after:?}"
    );
    held.abort();
}

#[tokio::test]
async fn connections_not_logged_in_are_capped_per_address() {
    let r = FakeResolver::new();
    let p = start(r.clone(), false, &["--max-preauth-per-ip", "2"]).await;
    let first = imap_client(&p).await;
    let _second = pop3_client(&p).await;
    // The cap counts the address across listeners.
    let mut third = connect(p.imap).await;
    assert_eq!(
        third.line().await,
        "* BYE Too many connections from your address\r\n"
    );
    third.closed().await;
    let mut fourth = connect(p.pop3).await;
    assert_eq!(
        fourth.line().await,
        "-ERR [SYS/TEMP] Too many connections from your address\r\n"
    );
    fourth.closed().await;
    // A place comes back when a connection ends.
    let mut first = first;
    first.send("z LOGOUT\r\n").await;
    assert_eq!(first.line().await, "* BYE Logging out\r\n");
    assert_eq!(first.line().await, "z OK LOGOUT completed\r\n");
    first.closed().await;
    let mut again = None;
    for _ in 0..50 {
        let mut c = connect(p.imap).await;
        let l = c.line().await;
        if l == IMAP_GREETING {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "no place came back after LOGOUT");
}

#[tokio::test]
async fn logged_in_sessions_do_not_count_against_the_preauth_cap() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(r.clone(), false, &["--max-preauth-per-ip", "1"]).await;
    let mut relayed = Vec::new();
    for i in 0..3 {
        let mut c = imap_client(&p).await;
        c.send(&format!("a{i} LOGIN ann secret\r\n")).await;
        assert_eq!(c.line().await, format!("a{i} {LOGGED_IN}"));
        relayed.push(c);
    }
}

#[tokio::test]
async fn the_id_answer_carries_the_configured_name() {
    let p = start(FakeResolver::new(), false, &[]).await;
    let mut c = imap_client(&p).await;
    c.send("i ID NIL\r\n").await;
    assert_eq!(c.line().await, "* ID (\"name\" \"zp-test\")\r\n");
    assert_eq!(c.line().await, "i OK ID completed\r\n");
}

// ---------------------------------------------------------------------------------------
// Behind a load balancer: the PROXY protocol.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn behind_a_balancer_the_proxy_header_names_the_client_everywhere() {
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let p = start(
        r.clone(),
        false,
        &[
            "--proxy-protocol-from",
            "127.0.0.0/8",
            "--max-preauth-per-ip",
            "1",
        ],
    )
    .await;
    // v1, then v2 (binary): each connection's own client reaches the mailbox server.
    let mut v1 = connect(p.imap).await;
    v1.send("PROXY TCP4 192.0.2.9 127.0.0.1 40000 143\r\n")
        .await;
    assert_eq!(v1.line().await, IMAP_GREETING);
    v1.send("a LOGIN ann secret\r\n").await;
    assert_eq!(v1.line().await, format!("a {LOGGED_IN}"));
    let mut v2 = connect(p.imap).await;
    let mut header = Vec::new();
    codec::proxy_protocol::encode_v2(
        &mut header,
        "[2001:db8::7]:40001".parse().unwrap(),
        "[2001:db8::1]:143".parse().unwrap(),
    );
    v2.send_bytes(&header).await;
    assert_eq!(v2.line().await, IMAP_GREETING);
    // The pre-auth cap counts the real clients: two distinct ones, not one balancer.
    v2.send("b LOGIN ann secret\r\n").await;
    assert_eq!(v2.line().await, format!("b {LOGGED_IN}"));
    let received = backend.received();
    assert!(
        received[0].starts_with("a.id ID (\"x-originating-ip\" \"192.0.2.9\""),
        "{received:?}"
    );
    assert!(
        received[1].starts_with("b.id ID (\"x-originating-ip\" \"2001:db8::7\""),
        "{received:?}"
    );
}

#[tokio::test]
async fn a_balancer_without_a_good_header_is_closed() {
    let r = FakeResolver::new();
    let p = start(
        r.clone(),
        false,
        &[
            "--proxy-protocol-from",
            "127.0.0.1",
            "--preauth-timeout",
            "1",
        ],
    )
    .await;
    // Malformed: closed at once, no greeting (a reset, as the junk is left unread).
    for junk in ["GET / HTTP/1.1\r\n\r\n", "PROXY TCP9 x y z w\r\n"] {
        let mut c = connect(p.imap).await;
        c.send(junk).await;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, c.s.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))) && rest.is_empty(),
            "{junk:?}: {read:?} {rest:?}"
        );
    }
    // Silent: closed after the pre-auth timeout, no greeting.
    let started = Instant::now();
    let mut c = connect(p.pop3).await;
    c.closed().await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "{after:?}"
    );
    assert!(r.asked().is_empty());
}

#[tokio::test]
async fn a_proxy_header_from_anyone_else_is_refused() {
    let r = FakeResolver::new();
    let p = start(r.clone(), false, &[]).await;
    let mut c = imap_client(&p).await;
    c.send("PROXY TCP4 203.0.113.5 127.0.0.1 1 143\r\na LOGIN ann secret\r\n")
        .await;
    assert_eq!(
        c.line().await,
        "* BYE PROXY protocol header not accepted from this address\r\n"
    );
    c.closed().await;
    let mut c = pop3_client(&p).await;
    c.send_bytes(&codec::proxy_protocol::V2_SIGNATURE).await;
    assert_eq!(
        c.line().await,
        "-ERR PROXY protocol header not accepted from this address\r\n"
    );
    c.closed().await;
    assert!(r.asked().is_empty());
}

// ---------------------------------------------------------------------------------------
// Several certificates, chosen by SNI, reloaded without touching open sessions.
// ---------------------------------------------------------------------------------------

/// The certificate the proxy presents on `addr` for `sni` (trusting `roots`), and the
/// TLS connection.
async fn presented(addr: SocketAddr, sni: &str, roots: &str) -> (Vec<u8>, TlsClient) {
    let config = common::tls::client_config_from_pem(roots.as_bytes()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(sni.to_string().try_into().unwrap(), tcp)
        .await
        .unwrap();
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (
        der,
        Client {
            s: BufReader::new(tls),
        },
    )
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn certificates_by_sni_and_reloaded_under_open_sessions() {
    let dir = std::env::temp_dir().join(format!("proxy-sni-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, host: &str| {
        let (cert, key) = common::tls::self_signed(&[host]).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), &cert).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), &key).unwrap();
        cert
    };
    let path = |f: &str| dir.join(f).display().to_string();
    let first = write("first", "localhost");
    let second = write("second", "mail.example.net");
    let backend = Script::imap().spawn().await;
    let r = FakeResolver::new();
    r.route("ann", backend.addr, "ann@example.com");
    let (c1, k1, c2, k2) = (
        path("first.crt"),
        path("first.key"),
        path("second.crt"),
        path("second.key"),
    );
    let p = start(
        r.clone(),
        false,
        &[
            "--tls-cert",
            &c1,
            "--tls-key",
            &k1,
            "--tls-cert",
            &c2,
            "--tls-key",
            &k2,
            "--imaps-listen",
            "127.0.0.1:0",
        ],
    )
    .await;
    let imaps = p.imaps.unwrap();
    let roots = format!("{first}{second}");
    let (der, _) = presented(imaps, "mail.example.net", &roots).await;
    assert_eq!(der, der_of(&second), "the certificate naming the SNI");
    let (der, mut open) = presented(imaps, "localhost", &roots).await;
    assert_eq!(der, der_of(&first));
    // A name no certificate has gets the first pair (the client then refuses it).
    let config = common::tls::client_config_from_pem(roots.as_bytes()).unwrap();
    let tcp = TcpStream::connect(imaps).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(config)
        .connect("other.example.org".try_into().unwrap(), tcp)
        .await;
    assert!(
        refused.is_err(),
        "the first certificate does not name other.example.org"
    );

    // A session relayed over the first certificate...
    assert_eq!(open.line().await, IMAP_GREETING);
    open.send("a LOGIN ann secret\r\n").await;
    assert_eq!(open.line().await, format!("a {LOGGED_IN}"));
    // ...then the second pair is renewed and a reload announced (what SIGHUP does).
    let renewed = write("second", "mail.example.net");
    common::reload::announce();
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = presented(imaps, "mail.example.net", &format!("{roots}{renewed}"))
            .await
            .0;
        if seen == der_of(&renewed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen,
        der_of(&renewed),
        "new handshakes get the renewed certificate"
    );
    open.send("b NOOP\r\n").await;
    assert_eq!(
        open.line().await,
        "* ECHO b NOOP\r\n",
        "the open session still relays"
    );
    // A truncated key: the reload is refused, the renewed certificate stays.
    std::fs::write(
        dir.join("second.key"),
        "-----BEGIN PRIVATE KEY-----\nMIIE\n",
    )
    .unwrap();
    common::reload::announce();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (der, _) = presented(imaps, "mail.example.net", &format!("{roots}{renewed}")).await;
    assert_eq!(der, der_of(&renewed));
    let _ = std::fs::remove_dir_all(&dir);
}
