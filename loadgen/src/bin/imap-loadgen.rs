//! `imap-loadgen`: a closed-loop IMAP load client for bench/proxy-vs-nginx.
//!
//! Modes (each prints one JSON line):
//! - `sessions`: every connection loops connect → greeting → LOGIN → SELECT INBOX →
//!   FETCH 1 BODY.PEEK[] → LOGOUT; login latency is connect to the LOGIN's tagged OK
//!   (the TLS handshake, and STARTTLS, included).
//! - `fetch`: logs in once per connection and FETCHes one message over and over; reports
//!   bytes per second.
//! - `hold`: opens `--conns` logged-in sessions with INBOX selected, prints when all are up,
//!   holds them for `--hold-seconds`, then logs them out.
//!
//! Connections are plaintext, IMAPS (`--tls`: TLS from the first byte) or STARTTLS
//! (`--starttls`: greeting, STARTTLS, then TLS before LOGIN). TLS runs verify the server
//! against `--ca`; with `--resume` each connection loop is one mail client with its own
//! session cache, offering what its previous connection was handed. The JSON line counts
//! full and resumed handshakes as the server granted them.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use loadgen::latency::Latencies;
use loadgen::tls::{ClientTls, Handshakes};
use rustls::pki_types::ServerName;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Sessions,
    Fetch,
    Hold,
}

/// A closed-loop IMAP load client.
#[derive(Debug, Parser)]
#[command(name = "imap-loadgen", version, about)]
struct Args {
    /// IMAP server (HOST:PORT).
    #[arg(long)]
    server: String,
    /// What to do.
    #[arg(long, value_enum, default_value = "sessions")]
    mode: Mode,
    /// User name pattern; `{}` is replaced by a number below --user-count.
    #[arg(long, default_value = "user{}@example.com")]
    users: String,
    /// How many users the pattern names.
    #[arg(long, default_value_t = 1)]
    user_count: u64,
    /// Everyone's password.
    #[arg(long)]
    password: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Seconds to run (sessions, fetch).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Message number to fetch (fetch mode).
    #[arg(long, default_value_t = 1)]
    message: u32,
    /// Seconds to hold the sessions (hold mode).
    #[arg(long, default_value_t = 10)]
    hold_seconds: u64,
    /// Seconds a connection may take to open (TLS and STARTTLS included) and each command
    /// to complete; past it the session counts as an error, so a stuck server cannot hang
    /// a benchmark.
    #[arg(long, default_value_t = 30)]
    io_timeout: u64,
    /// IMAPS: TLS from the first byte (needs --ca).
    #[arg(long, group = "tls_mode")]
    tls: bool,
    /// Connect in plaintext, read the greeting, STARTTLS, then TLS before LOGIN (needs
    /// --ca).
    #[arg(long, group = "tls_mode")]
    starttls: bool,
    /// Resume TLS sessions as mail clients do: each connection loop is one client with a
    /// session cache of its own (as each Thunderbird has), and offers the session or ticket
    /// its previous connection was handed. Without it every handshake is a full one.
    #[arg(long, requires = "tls_mode")]
    resume: bool,
    /// PEM CA certificates the server's certificate must chain to. There is no
    /// unverified mode: a benchmark that skipped verification would flatter the client.
    #[arg(long, value_name = "PEM", requires = "tls_mode")]
    ca: Option<PathBuf>,
    /// The name the server's certificate must carry, also sent as SNI (default: the host
    /// of --server; an IP address sends no SNI).
    #[arg(long, requires = "tls_mode")]
    tls_name: Option<String>,
}

/// How each connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    /// IMAPS.
    Implicit,
    StartTls,
}

impl Security {
    fn label(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::Implicit => "imaps",
            Security::StartTls => "starttls",
        }
    }
}

/// What every connection of a run needs to reach the server, and the run's handshake tally.
struct Target {
    server: String,
    security: Security,
    /// What the clients trust and whether they resume, and the name to verify; `None`
    /// for plaintext runs.
    tls: Option<(ClientTls, ServerName<'static>)>,
    handshakes: Handshakes,
    /// --io-timeout.
    timeout: Duration,
}

impl Target {
    fn new(args: &Args) -> Result<Self> {
        let security = match (args.tls, args.starttls) {
            (true, _) => Security::Implicit,
            (_, true) => Security::StartTls,
            _ => Security::Plain,
        };
        let tls = if security == Security::Plain {
            None
        } else {
            let ca = args
                .ca
                .as_ref()
                .context("--tls and --starttls need --ca (the server's certificate is verified)")?;
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let config = ClientTls::new(&pem, args.resume)?;
            let name = match &args.tls_name {
                Some(n) => n.clone(),
                None => host_of(&args.server).to_string(),
            };
            let name =
                ServerName::try_from(name.clone()).with_context(|| format!("TLS name {name:?}"))?;
            Some((config, name))
        };
        Ok(Self {
            server: args.server.clone(),
            security,
            tls,
            handshakes: Handshakes::default(),
            timeout: Duration::from_secs(args.io_timeout),
        })
    }

    /// One simulated mail client's connector (its own session cache with --resume); `None`
    /// in plaintext runs.
    fn client(&self) -> Option<TlsConnector> {
        self.tls
            .as_ref()
            .map(|(config, _)| TlsConnector::from(config.client()))
    }

    async fn handshake(
        &self,
        client: Option<&TlsConnector>,
        tcp: TcpStream,
    ) -> Result<Box<TlsStream<TcpStream>>> {
        let (Some(connector), Some((_, name))) = (client, self.tls.as_ref()) else {
            bail!("no TLS configuration");
        };
        let s = connector
            .connect(name.clone(), tcp)
            .await
            .context("TLS handshake")?;
        self.handshakes.record(s.get_ref().1);
        Ok(Box::new(s))
    }

    /// The TLS fields of the JSON line (the same keys in plaintext runs, zero).
    fn json(&self) -> String {
        let c = self.handshakes.counts();
        format!(
            ",\"security\":\"{}\",\"resume\":{},\"handshakes_full\":{},\"handshakes_resumed\":{},\"tls13\":{},\"tls12\":{},\"cipher_suite\":\"{}\"",
            self.security.label(),
            self.tls.as_ref().is_some_and(|(t, _)| t.resumes()),
            c.full,
            c.resumed,
            c.tls13,
            c.tls12,
            self.handshakes.suite()
        )
    }
}

/// The host part of HOST:PORT or [V6]:PORT.
fn host_of(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A plaintext or TLS connection, so one session loop serves both.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

struct Conn {
    io: BufReader<Stream>,
    line: String,
    tag: u64,
    /// --io-timeout, for each command.
    timeout: Duration,
}

impl Conn {
    /// Connects as `client` (a simulated mail client's TLS connector), secures the
    /// connection as the run says and reads the greeting; a STARTTLS connection comes back
    /// encrypted, ready for LOGIN.
    async fn open(target: &Target, client: Option<&TlsConnector>) -> Result<Self> {
        tokio::time::timeout(target.timeout, Self::open_untimed(target, client))
            .await
            .context("opening timed out")?
    }

    async fn open_untimed(target: &Target, client: Option<&TlsConnector>) -> Result<Self> {
        let tcp = TcpStream::connect(&target.server)
            .await
            .context("connect")?;
        tcp.set_nodelay(true)?;
        let stream = match target.security {
            Security::Implicit => Stream::Tls(target.handshake(client, tcp).await?),
            Security::Plain | Security::StartTls => Stream::Plain(tcp),
        };
        let mut c = Self {
            io: BufReader::new(stream),
            line: String::new(),
            tag: 0,
            timeout: target.timeout,
        };
        c.read_line().await?;
        if !c.line.starts_with("* OK") {
            bail!("greeting: {}", c.line.trim_end());
        }
        if target.security == Security::StartTls {
            c.command("STARTTLS").await?;
            // Bytes after the OK and before the handshake would be plaintext anyone on the
            // path could have injected (CVE-2011-0411's class); a client must not read them
            // as part of the protected session.
            if !c.io.buffer().is_empty() {
                bail!("plaintext after the STARTTLS reply");
            }
            let Stream::Plain(tcp) = c.io.into_inner() else {
                bail!("STARTTLS on a TLS connection");
            };
            c.io = BufReader::new(Stream::Tls(target.handshake(client, tcp).await?));
        }
        Ok(c)
    }

    /// Closes the way a polite client does: TLS sends its close_notify first.
    async fn close(mut self) {
        if matches!(self.io.get_ref(), Stream::Tls(_)) {
            let _ = tokio::time::timeout(self.timeout, self.io.get_mut().shutdown()).await;
        }
    }

    async fn read_line(&mut self) -> Result<()> {
        self.line.clear();
        if self.io.read_line(&mut self.line).await? == 0 {
            bail!("connection closed");
        }
        Ok(())
    }

    /// Sends a command and reads to its tagged reply, skipping literals; returns the
    /// bytes read.
    async fn command(&mut self, text: &str) -> Result<u64> {
        let limit = self.timeout;
        let verb = text.split(' ').next().unwrap_or_default().to_string();
        tokio::time::timeout(limit, self.command_untimed(text))
            .await
            .with_context(|| format!("{verb} timed out"))?
    }

    async fn command_untimed(&mut self, text: &str) -> Result<u64> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let w = self.io.get_mut();
        w.write_all(format!("{tag} {text}\r\n").as_bytes()).await?;
        // TLS holds records until flushed; plaintext sockets ignore it.
        w.flush().await?;
        let mut bytes = 0u64;
        loop {
            self.read_line().await?;
            bytes += self.line.len() as u64;
            if let Some(size) = literal_size(&self.line) {
                let mut left = size;
                let mut buf = [0u8; 64 * 1024];
                while left > 0 {
                    let n = self.io.read(&mut buf[..left.min(64 * 1024)]).await?;
                    if n == 0 {
                        bail!("closed in a literal");
                    }
                    left -= n;
                }
                bytes += size as u64;
                continue;
            }
            if let Some(rest) = self.line.strip_prefix(&tag) {
                if rest.starts_with(" OK") {
                    return Ok(bytes);
                }
                // The verb only: a LOGIN's text carries the password.
                let verb = text.split(' ').next().unwrap_or_default();
                bail!("{verb}: {}", self.line.trim_end());
            }
        }
    }
}

fn literal_size(line: &str) -> Option<usize> {
    let l = line.trim_end().strip_suffix('}')?;
    let open = l.rfind('{')?;
    l[open + 1..].parse().ok()
}

fn user(args: &Args, i: u64) -> String {
    args.users
        .replace("{}", &(i % args.user_count.max(1)).to_string())
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Errors printed to stderr per run: enough to say why, not a flood.
const ERRORS_SHOWN: u64 = 3;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    let target = Arc::new(Target::new(&args)?);
    match args.mode {
        Mode::Sessions => sessions(args, target).await,
        Mode::Fetch => fetch(args, target).await,
        Mode::Hold => hold(args, target).await,
    }
}

async fn login(c: &mut Conn, args: &Args, n: u64) -> Result<u64> {
    c.command(&format!(
        "LOGIN {} {}",
        quoted(&user(args, n)),
        quoted(&args.password)
    ))
    .await
}

async fn sessions(args: Arc<Args>, target: Arc<Target>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.conns {
        let args = args.clone();
        let target = target.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            // Each loop is one mail client, reconnecting with its own session cache.
            let client = target.client();
            let mut logins = Latencies::with_capacity(4096);
            let mut whole = Latencies::with_capacity(4096);
            let mut n = worker as u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let result: Result<()> = async {
                    let mut c = Conn::open(&target, client.as_ref()).await?;
                    login(&mut c, &args, n).await?;
                    logins.record(t0.elapsed());
                    c.command("SELECT INBOX").await?;
                    c.command("FETCH 1 BODY.PEEK[]").await?;
                    c.command("LOGOUT").await?;
                    c.close().await;
                    Ok(())
                }
                .await;
                match result {
                    Ok(()) => whole.record(t0.elapsed()),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < ERRORS_SHOWN {
                            eprintln!("session failed: {e:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                n += args.conns as u64;
            }
            (logins, whole)
        }));
    }
    let mut logins = Latencies::default();
    let mut whole = Latencies::default();
    for t in tasks {
        let (l, w) = t.await?;
        logins.merge(l);
        whole.merge(w);
    }
    let elapsed = started.elapsed();
    let l = logins.summary(elapsed);
    let w = whole.summary(elapsed);
    println!(
        "{{\"mode\":\"sessions\",\"conns\":{},\"sessions\":{},\"errors\":{},\"per_sec\":{:.1},\"login_p50_us\":{:.0},\"login_p99_us\":{:.0},\"session_p50_us\":{:.0},\"session_p99_us\":{:.0}{}}}",
        args.conns,
        w.ops,
        errors.load(Ordering::Relaxed),
        w.ops_per_sec,
        l.p50_us,
        l.p99_us,
        w.p50_us,
        w.p99_us,
        target.json()
    );
    Ok(())
}

async fn fetch(args: Arc<Args>, target: Arc<Target>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.conns {
        let args = args.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(&target, target.client().as_ref()).await?;
            login(&mut c, &args, worker as u64).await?;
            c.command("EXAMINE INBOX").await?;
            let (mut bytes, mut fetches) = (0u64, 0u64);
            while Instant::now() < deadline {
                bytes += c
                    .command(&format!("FETCH {} BODY.PEEK[]", args.message))
                    .await?;
                fetches += 1;
            }
            c.command("LOGOUT").await?;
            c.close().await;
            anyhow::Ok((bytes, fetches))
        }));
    }
    let (mut bytes, mut fetches, mut errors) = (0u64, 0u64, 0u64);
    for t in tasks {
        match t.await? {
            Ok((b, f)) => {
                bytes += b;
                fetches += f;
            }
            Err(e) => {
                if errors < ERRORS_SHOWN {
                    eprintln!("fetch failed: {e:#}");
                }
                errors += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"fetch\",\"conns\":{},\"fetches\":{fetches},\"bytes\":{bytes},\"bytes_per_sec\":{:.0},\"errors\":{errors}{}}}",
        args.conns,
        bytes as f64 / secs,
        target.json()
    );
    Ok(())
}

async fn hold(args: Arc<Args>, target: Arc<Target>) -> Result<()> {
    let mut conns = Vec::with_capacity(args.conns);
    let mut errors = 0u64;
    // Open in small batches so the listen backlog never overflows.
    for batch in (0..args.conns).collect::<Vec<_>>().chunks(64) {
        let mut opening = Vec::new();
        for &i in batch {
            let args = args.clone();
            let target = target.clone();
            opening.push(tokio::spawn(async move {
                let mut c = Conn::open(&target, target.client().as_ref()).await?;
                login(&mut c, &args, i as u64).await?;
                c.command("SELECT INBOX").await?;
                anyhow::Ok(c)
            }));
        }
        for o in opening {
            match o.await? {
                Ok(c) => conns.push(c),
                Err(e) => {
                    if errors < ERRORS_SHOWN {
                        eprintln!("session failed: {e:#}");
                    }
                    errors += 1;
                }
            }
        }
    }
    println!(
        "{{\"mode\":\"hold\",\"established\":{},\"errors\":{errors}{}}}",
        conns.len(),
        target.json()
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
    for mut c in conns {
        let _ = c.command("LOGOUT").await;
        c.close().await;
    }
    Ok(())
}
