//! Process-level checks of the `cache-node` binary: command line and exit codes, memory
//! staying bounded under an overfill (resident set measured from /proc), SIGTERM drain.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cache-node");

/// A running cache-node process, killed when dropped.
struct Proc {
    child: Child,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
}

/// Kills a child that never became a [`Proc`] (start-up failed), so it cannot outlive
/// the test and hold the test runner's output pipe open.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on port 0 and learns the bound addresses from its log.
fn start(extra: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cache-node");
    let stderr = child.stderr.take().unwrap();
    let mut guard = Guard(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut addr, mut admin) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while addr.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("cache-node did not log its listen addresses in time");
        let line = strip_ansi(&line).replace('"', "");
        if let Some(a) = line.split("addr=").nth(1) {
            let a: SocketAddr = a.split_whitespace().next().unwrap().parse().unwrap();
            if line.contains("listener=memcached") {
                addr = Some(a);
            } else if line.contains("listener=admin") {
                admin = Some(a);
            }
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Proc {
        child: guard.0.take().unwrap(),
        addr: addr.unwrap(),
        admin,
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `req` and reads until the reply ends with `end`.
fn roundtrip(s: &mut TcpStream, req: &[u8], end: &[u8]) -> Vec<u8> {
    s.write_all(req).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    while !got.ends_with(end) {
        let n = s.read(&mut chunk).expect("read reply");
        assert!(
            n > 0,
            "server closed; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&chunk[..n]);
    }
    got
}

fn stat(s: &mut TcpStream, name: &str) -> u64 {
    let reply = roundtrip(s, b"stats\r\n", b"END\r\n");
    let text = String::from_utf8(reply).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
        .unwrap_or_else(|| panic!("no stat {name}"))
        .parse()
        .unwrap()
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn help_names_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--memory-limit-mb",
        "--max-item-size",
        "--max-connections",
        "--threads",
        "--admin-listen",
        "CACHE_LISTEN",
        "CACHE_MEMORY_LIMIT_MB",
        "--auth-file",
        "CACHE_AUTH_FILE",
        "--disable-flush-all",
        "CACHE_DISABLE_FLUSH_ALL",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn bad_configuration_exits_64_with_one_line() {
    for args in [
        &["--memory-limit-mb", "lots"][..],
        &["--memory-limit-mb", "1", "--max-item-size", "1048576"],
        &["--listen", "off"],
        &["--no-such-flag"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("cache-node: configuration error: "),
            "{err}"
        );
    }
}

/// An auth file that cannot work stops the start, naming the file and never its content;
/// the environment twin is read too.
#[test]
fn an_unusable_auth_file_stops_the_start() {
    let dir = std::env::temp_dir();
    let malformed = dir.join(format!("cache-node-bin-auth-{}", std::process::id()));
    std::fs::write(&malformed, "proxy hunter2\n").unwrap();
    let empty = dir.join(format!("cache-node-bin-auth-empty-{}", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    for (path, why) in [
        (malformed.clone(), "line 1: not user:password (no ':')"),
        (empty.clone(), "no user:password line"),
        (
            dir.join("cache-node-no-such-auth-file"),
            "cannot read it: No such file or directory (os error 2)",
        ),
    ] {
        for via_env in [false, true] {
            let mut cmd = Command::new(BIN);
            cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "off"]);
            if via_env {
                cmd.env("CACHE_AUTH_FILE", &path);
            } else {
                cmd.arg("--auth-file").arg(&path);
            }
            let out = cmd.output().unwrap();
            let err = String::from_utf8(out.stderr).unwrap();
            assert_eq!(out.status.code(), Some(64), "{err}");
            assert_eq!(
                err.trim_end(),
                format!(
                    "cache-node: configuration error: --auth-file {}: {why}",
                    path.display()
                )
            );
            assert!(!err.contains("hunter2"));
        }
    }
    let _ = std::fs::remove_file(&malformed);
    let _ = std::fs::remove_file(&empty);
}

#[test]
fn memory_stays_bounded_when_overfilled() {
    const LIMIT_MB: u64 = 32;
    let p = start(&["--memory-limit-mb", "32", "--threads", "2"]);
    let mut s = connect(p.addr);
    let baseline = rss_bytes(p.child.id());
    // Store 3x the limit: 96 MiB of 1000-byte values under distinct keys.
    let value = vec![b'x'; 1000];
    let total = (3 * LIMIT_MB * 1024 * 1024 / 1000) as usize;
    let mut batch = Vec::with_capacity(1 << 20);
    for i in 0..total {
        batch.extend_from_slice(format!("set key:{i:08} 0 0 1000 noreply\r\n").as_bytes());
        batch.extend_from_slice(&value);
        batch.extend_from_slice(b"\r\n");
        if batch.len() > 1 << 20 || i + 1 == total {
            s.write_all(&batch).unwrap();
            batch.clear();
        }
    }
    roundtrip(&mut s, b"version\r\n", b"\r\n");
    let rss = rss_bytes(p.child.id());
    let bytes = stat(&mut s, "bytes");
    let evictions = stat(&mut s, "evictions");
    let limit = LIMIT_MB << 20;
    eprintln!(
        "overfill: {total} items of 1000 B into {limit} B: charged {bytes} B, evictions {evictions}, \
         resident {rss} B (baseline {baseline} B)"
    );
    assert!(
        bytes <= limit,
        "charged bytes {bytes} over the limit {limit}"
    );
    assert!(
        bytes > limit * 9 / 10,
        "store should be nearly full, has {bytes}"
    );
    assert!(evictions > (total as u64) / 2, "evictions {evictions}");
    // The stated bound: resident memory at most 1.25x the limit above the idle baseline.
    let growth = rss.saturating_sub(baseline);
    assert!(
        growth <= limit * 5 / 4,
        "resident memory grew by {growth} bytes for a {limit}-byte limit (baseline {baseline})"
    );
    // The newest items are all still there.
    for i in total - 100..total {
        let key = format!("key:{i:08}");
        let reply = roundtrip(&mut s, format!("get {key}\r\n").as_bytes(), b"END\r\n");
        assert!(
            reply.starts_with(format!("VALUE {key} 0 1000\r\n").as_bytes()),
            "{key} missing"
        );
    }
    // And the oldest are gone.
    let reply = roundtrip(&mut s, b"get key:00000000\r\n", b"END\r\n");
    assert_eq!(reply, b"END\r\n");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut p = start(&["--grace-period", "5"]);
    let mut s = connect(p.addr);
    assert_eq!(
        roundtrip(&mut s, b"set a 0 0 1\r\nx\r\n", b"\r\n"),
        b"STORED\r\n"
    );
    let admin = p.admin.unwrap();
    let mut h = connect(admin);
    let health = roundtrip(&mut h, b"GET /healthz HTTP/1.0\r\n\r\n", b"ok\n");
    assert!(
        health.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&health)
    );
    let mut m = connect(admin);
    m.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut metrics = String::new();
    m.read_to_string(&mut metrics).unwrap();
    assert!(metrics.contains("cache_node_items 1"), "{metrics}");
    assert!(metrics.contains("cache_node_sets_total 1"), "{metrics}");

    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "did not exit within the grace period"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    // The open connection was closed by the server, not left hanging.
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    assert!(
        TcpStream::connect(p.addr).is_err(),
        "still accepting after exit"
    );
}
