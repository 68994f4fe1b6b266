//! `imap-loadgen`: a closed-loop IMAP load client for bench/proxy-vs-nginx.
//!
//! Modes (each prints one JSON line):
//! - `sessions`: every connection loops connect → greeting → LOGIN → SELECT INBOX →
//!   FETCH 1 BODY.PEEK[] → LOGOUT; login latency is connect to the LOGIN's tagged OK.
//! - `fetch`: logs in once per connection and FETCHes one message over and over; reports
//!   bytes per second.
//! - `hold`: opens `--conns` logged-in sessions with INBOX selected, prints when all are up,
//!   holds them for `--hold-seconds`, then logs them out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use loadgen::latency::Latencies;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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
}

struct Conn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    line: String,
    tag: u64,
}

impl Conn {
    async fn open(server: &str) -> Result<Self> {
        let s = TcpStream::connect(server).await.context("connect")?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        let mut c = Self {
            r: BufReader::new(r),
            w,
            line: String::new(),
            tag: 0,
        };
        c.read_line().await?;
        if !c.line.starts_with("* OK") {
            bail!("greeting: {}", c.line.trim_end());
        }
        Ok(c)
    }

    async fn read_line(&mut self) -> Result<()> {
        self.line.clear();
        if self.r.read_line(&mut self.line).await? == 0 {
            bail!("connection closed");
        }
        Ok(())
    }

    /// Sends a command and reads to its tagged reply, skipping literals; returns the
    /// bytes read.
    async fn command(&mut self, text: &str) -> Result<u64> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.w
            .write_all(format!("{tag} {text}\r\n").as_bytes())
            .await?;
        let mut bytes = 0u64;
        loop {
            self.read_line().await?;
            bytes += self.line.len() as u64;
            if let Some(size) = literal_size(&self.line) {
                let mut left = size;
                let mut buf = [0u8; 64 * 1024];
                while left > 0 {
                    let n = self.r.read(&mut buf[..left.min(64 * 1024)]).await?;
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
                bail!("{text}: {}", self.line.trim_end());
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    match args.mode {
        Mode::Sessions => sessions(args).await,
        Mode::Fetch => fetch(args).await,
        Mode::Hold => hold(args).await,
    }
}

async fn sessions(args: Arc<Args>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.conns {
        let args = args.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut logins = Latencies::with_capacity(4096);
            let mut whole = Latencies::with_capacity(4096);
            let mut n = worker as u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let result: Result<()> = async {
                    let mut c = Conn::open(&args.server).await?;
                    c.command(&format!(
                        "LOGIN {} {}",
                        quoted(&user(&args, n)),
                        quoted(&args.password)
                    ))
                    .await?;
                    logins.record(t0.elapsed());
                    c.command("SELECT INBOX").await?;
                    c.command("FETCH 1 BODY.PEEK[]").await?;
                    c.command("LOGOUT").await?;
                    Ok(())
                }
                .await;
                match result {
                    Ok(()) => whole.record(t0.elapsed()),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
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
        "{{\"mode\":\"sessions\",\"conns\":{},\"sessions\":{},\"errors\":{},\"per_sec\":{:.1},\"login_p50_us\":{:.0},\"login_p99_us\":{:.0},\"session_p50_us\":{:.0},\"session_p99_us\":{:.0}}}",
        args.conns,
        w.ops,
        errors.load(Ordering::Relaxed),
        w.ops_per_sec,
        l.p50_us,
        l.p99_us,
        w.p50_us,
        w.p99_us
    );
    Ok(())
}

async fn fetch(args: Arc<Args>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.conns {
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(&args.server).await?;
            c.command(&format!(
                "LOGIN {} {}",
                quoted(&user(&args, worker as u64)),
                quoted(&args.password)
            ))
            .await?;
            c.command("EXAMINE INBOX").await?;
            let (mut bytes, mut fetches) = (0u64, 0u64);
            while Instant::now() < deadline {
                bytes += c
                    .command(&format!("FETCH {} BODY.PEEK[]", args.message))
                    .await?;
                fetches += 1;
            }
            c.command("LOGOUT").await?;
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
            Err(_) => errors += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"fetch\",\"conns\":{},\"fetches\":{fetches},\"bytes\":{bytes},\"bytes_per_sec\":{:.0},\"errors\":{errors}}}",
        args.conns,
        bytes as f64 / secs
    );
    Ok(())
}

async fn hold(args: Arc<Args>) -> Result<()> {
    let mut conns = Vec::with_capacity(args.conns);
    let mut errors = 0u64;
    // Open in small batches so the listen backlog never overflows.
    for batch in (0..args.conns).collect::<Vec<_>>().chunks(64) {
        let mut opening = Vec::new();
        for &i in batch {
            let args = args.clone();
            opening.push(tokio::spawn(async move {
                let mut c = Conn::open(&args.server).await?;
                c.command(&format!(
                    "LOGIN {} {}",
                    quoted(&user(&args, i as u64)),
                    quoted(&args.password)
                ))
                .await?;
                c.command("SELECT INBOX").await?;
                anyhow::Ok(c)
            }));
        }
        for o in opening {
            match o.await? {
                Ok(c) => conns.push(c),
                Err(e) => {
                    if errors < 5 {
                        eprintln!("session failed: {e:#}");
                    }
                    errors += 1;
                }
            }
        }
    }
    println!(
        "{{\"mode\":\"hold\",\"established\":{},\"errors\":{errors}}}",
        conns.len()
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
    for mut c in conns {
        let _ = c.command("LOGOUT").await;
    }
    Ok(())
}
