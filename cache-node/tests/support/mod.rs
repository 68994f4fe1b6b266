//! Shared helpers of the cache-node integration tests: an in-process server on its own
//! runtime, a real memcached process, a blocking client whose every read is bounded in
//! time, and the masking of volatile reply fields (cas, version, stats, `me`).
//!
//! Each test file uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cache_node::config::Config;
use cache_node::server::CacheNode;
use clap::Parser;
use common::shutdown::Shutdown;

/// Longest wait for any one reply.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Appended to a request so the end of its replies is recognisable without sleeping: a
/// meta get of a key no case uses, which both servers answer with this exact line.
pub(crate) const SYNC: &[u8] = b"mg __sync__ k O7777\r\n";
/// The reply to [`SYNC`].
pub(crate) const SYNC_REPLY: &[u8] = b"EN k__sync__ O7777\r\n";

/// Path of the reference server.
pub(crate) const MEMCACHED: &str = "/usr/bin/memcached";

/// An in-process cache-node on its own multi-thread runtime; shut down when dropped.
pub(crate) struct Server {
    /// The memcached listener.
    pub(crate) addr: SocketAddr,
    shutdown: Shutdown,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a cache-node on `127.0.0.1:0` with the admin endpoint off, 64 MiB, and `extra`
/// flags after the defaults (so they override them).
pub(crate) fn start(extra: &[&str]) -> Server {
    let mut argv = vec![
        "cache-node",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
        "--memory-limit-mb",
        "64",
        "--grace-period",
        "1",
    ];
    argv.extend_from_slice(extra);
    let config = Config::try_parse_from(argv)
        .expect("test flags parse")
        .validate()
        .expect("test flags are consistent");
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let node = CacheNode::bind(config).await.expect("bind 127.0.0.1:0");
            let (shutdown, watch) = Shutdown::new();
            ready_tx
                .send((node.local_addr(), shutdown))
                .expect("test is waiting");
            node.run(watch).await;
        });
        let _ = done_tx.send(());
    });
    let (addr, shutdown) = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("in-process cache-node did not start within 10 s");
    Server {
        addr,
        shutdown,
        done,
        thread: Some(thread),
    }
}

impl Server {
    /// A new client connection.
    pub(crate) fn connect(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
        // Bounded: a server that does not stop in time is left to the process exit rather
        // than hanging the test.
        if self.done.recv_timeout(Duration::from_secs(5)).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// A real memcached (`-U 0 -l 127.0.0.1 -t 2 -m 64`) on a free port, killed when dropped.
pub(crate) struct Memcached {
    child: Child,
    /// Its TCP listener.
    pub(crate) addr: SocketAddr,
}

/// A port that was free a moment ago (bind port 0, read it, release it).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("bound address").port()
}

impl Memcached {
    /// Starts memcached and waits until it accepts connections. Panics (never skips) when
    /// the binary is missing: the differential tests are meaningless without it.
    pub(crate) fn start() -> Self {
        Self::start_with(&[], None)
    }

    /// Starts memcached with `extra` flags after the defaults. With `-Y`, `auth` is the
    /// authenticating `set` (its request bytes) that its file accepts: the start-up check
    /// needs it to read the process id from `stats`.
    pub(crate) fn start_with(extra: &[&str], auth: Option<&[u8]>) -> Self {
        assert!(
            Path::new(MEMCACHED).exists(),
            "{MEMCACHED} is missing: the differential tests compare cache-node with the real \
             memcached 1.6.18 (Debian 12: `apt-get install memcached`)"
        );
        let mut last_error = String::new();
        // The port may be taken between picking and binding it; retry with another.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(MEMCACHED)
                .args(["-p", &port.to_string(), "-U", "0", "-l", "127.0.0.1"])
                .args(["-t", "2", "-m", "64"])
                .args(extra)
                // memcached refuses to run as root without -u; as any other user the flag
                // is ignored.
                .args(["-u", "root"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {MEMCACHED}: {e}"));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = stderr.read_to_string(&mut err);
                    }
                    last_error = format!("memcached exited with {status}: {err}");
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    // Something listens, but it may be another test's server that got
                    // the same port from the kernel while this memcached failed to bind
                    // it: only our own child's pid counts.
                    if stats_pid(addr, auth) == Some(child.id()) {
                        return Memcached { child, addr };
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("port {port} was taken by another server");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = "memcached did not accept connections within 5 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        panic!("could not start memcached: {last_error}");
    }
}

/// The `pid` that the server at `addr` reports in `stats` (after sending `auth` first).
fn stats_pid(addr: SocketAddr, auth: Option<&[u8]>) -> Option<u32> {
    let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT).ok()?;
    stream.set_write_timeout(Some(READ_TIMEOUT)).ok()?;
    let mut client = Client { stream };
    client.try_send(auth.unwrap_or_default()).ok()?;
    client.try_send(b"stats\r\n").ok()?;
    let reply = client.read_until_suffix(b"\r\nEND\r\n");
    let text = String::from_utf8_lossy(&reply.bytes);
    text.lines()
        .find_map(|line| line.strip_prefix("STAT pid "))
        .and_then(|pid| pid.trim().parse().ok())
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a bounded read collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// Every byte received.
    pub(crate) bytes: Vec<u8>,
    /// The server closed the connection (EOF or reset).
    pub(crate) closed: bool,
    /// The read stopped at its deadline rather than at its goal.
    pub(crate) timed_out: bool,
}

/// A blocking client; reads never wait longer than [`READ_TIMEOUT`] for their goal.
pub(crate) struct Client {
    stream: TcpStream,
}

impl Client {
    /// Connects with bounded connect, read and write times.
    pub(crate) fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        let _ = stream.set_nodelay(true);
        Client { stream }
    }

    /// Writes all of `bytes`.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// Writes all of `bytes`, reporting failure instead of panicking (the server may have
    /// closed the connection already).
    pub(crate) fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads until `done` holds for the bytes so far, the server closes, or `limit` passes.
    pub(crate) fn read_until(&mut self, limit: Duration, done: impl Fn(&[u8]) -> bool) -> Reply {
        let deadline = Instant::now() + limit;
        let mut bytes = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if done(&bytes) {
                return Reply {
                    bytes,
                    closed: false,
                    timed_out: false,
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Reply {
                    bytes,
                    closed: false,
                    timed_out: true,
                };
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Reply {
                        bytes,
                        closed: true,
                        timed_out: false,
                    }
                }
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    return Reply {
                        bytes,
                        closed: true,
                        timed_out: false,
                    }
                }
            }
        }
    }

    /// Reads until the server closes the connection (or [`READ_TIMEOUT`]).
    pub(crate) fn read_to_close(&mut self) -> Reply {
        self.read_until(READ_TIMEOUT, |_| false)
    }

    /// Reads until the bytes end with `suffix` (or close, or [`READ_TIMEOUT`]).
    pub(crate) fn read_until_suffix(&mut self, suffix: &[u8]) -> Reply {
        self.read_until(READ_TIMEOUT, |b| b.ends_with(suffix))
    }

    /// Reads exactly `n` bytes if they come within [`READ_TIMEOUT`].
    pub(crate) fn read_len(&mut self, n: usize) -> Reply {
        self.read_until(READ_TIMEOUT, |b| b.len() >= n)
    }

    /// Sends `request` followed by [`SYNC`] and returns the replies to `request` alone;
    /// panics if the sync reply does not arrive.
    pub(crate) fn roundtrip(&mut self, request: &[u8]) -> Vec<u8> {
        self.send(request);
        self.send(SYNC);
        let reply = self.read_until_suffix(SYNC_REPLY);
        assert!(
            reply.bytes.ends_with(SYNC_REPLY),
            "no sync reply after {}: got {} (closed: {})",
            show(request),
            show(&reply.bytes),
            reply.closed
        );
        reply.bytes[..reply.bytes.len() - SYNC_REPLY.len()].to_vec()
    }

    /// Half-closes the writing side.
    pub(crate) fn shutdown_write(&self) {
        let _ = self.stream.shutdown(NetShutdown::Write);
    }
}

/// Bytes as readable text, cut after `MAX_SHOWN` characters.
pub(crate) fn show(bytes: &[u8]) -> String {
    const MAX_SHOWN: usize = 1500;
    let text = bytes.escape_ascii().to_string();
    if text.len() > MAX_SHOWN {
        let mut cut = MAX_SHOWN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}… ({} bytes)", &text[..cut], bytes.len())
    } else {
        text
    }
}

fn is_cas_token(token: &[u8]) -> bool {
    token.len() > 1 && token[0] == b'c' && token[1..].iter().all(u8::is_ascii_digit)
}

fn parse_len(token: Option<&&[u8]>) -> Option<usize> {
    let token = token?;
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// Rewrites the reply stream `stream` so that values which legitimately differ between
/// runs or servers compare equal: cas uniques (`VALUE k f n <cas>` and meta `c<cas>`)
/// always become `<cas>`; with `volatile`, also the `VERSION` text, every `STAT` value and
/// whole `ME` debug lines. Data blocks are copied verbatim, located by their announced
/// length, so a value that looks like a reply line is never rewritten.
pub(crate) fn mask(stream: &[u8], volatile: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len());
    let mut i = 0;
    while i < stream.len() {
        let rest = &stream[i..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            out.extend_from_slice(rest);
            break;
        };
        let line = &rest[..=nl];
        i += nl + 1;
        let Some(body) = line.strip_suffix(b"\r\n") else {
            out.extend_from_slice(line);
            continue;
        };
        let tokens: Vec<&[u8]> = body.split(|&b| b == b' ').collect();
        let mut data_len = None;
        let masked: Vec<u8> = match tokens[0] {
            b"VALUE" if tokens.len() >= 4 => {
                data_len = parse_len(tokens.get(3));
                let mut parts: Vec<&[u8]> = tokens[..4].to_vec();
                if tokens.len() > 4 {
                    parts.push(b"<cas>");
                    parts.extend_from_slice(&tokens[5..]);
                }
                parts.join(&b' ')
            }
            b"VA" | b"HD" | b"EN" | b"NF" | b"NS" | b"EX" | b"MN" => {
                if tokens[0] == b"VA" {
                    data_len = parse_len(tokens.get(1));
                }
                tokens
                    .iter()
                    .enumerate()
                    .map(|(n, t)| {
                        if n > 0 && is_cas_token(t) {
                            &b"c<cas>"[..]
                        } else {
                            t
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(&b' ')
            }
            b"VERSION" if volatile => b"VERSION <version>".to_vec(),
            b"STAT" if volatile && tokens.len() >= 3 => [b"STAT ", tokens[1], b" <value>"].concat(),
            b"ME" if volatile => b"ME <debug>".to_vec(),
            _ => body.to_vec(),
        };
        out.extend_from_slice(&masked);
        out.extend_from_slice(b"\r\n");
        if let Some(len) = data_len {
            let take = (len + 2).min(stream.len() - i);
            out.extend_from_slice(&stream[i..i + take]);
            i += take;
        }
    }
    out
}
