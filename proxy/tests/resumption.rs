//! TLS session resumption on the client side of the proxy: a client that reuses one
//! session ticket on several connections (as mail clients opening parallel connections
//! do) resumes on every one, with TLS 1.3 and with TLS 1.2, and /metrics counts full and
//! resumed handshakes. rustls' default single-use tickets made every reuse after the
//! first a full handshake.
//!
//! The ticket keys are derived from one secret (common::tls_tickets), so with the real
//! binary: a ticket resumes on every worker of `--workers 3` (per-process keys resumed
//! only on the worker that issued it), on another proxy given the same
//! `--tls-ticket-key-file` (not on one with another file), and across one key rotation but
//! not two.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use common::shutdown::Shutdown;
use proxy::config::Config;
use proxy::server::Kind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One `openssl s_client` handshake that keeps its stdin open a moment (so the tickets
/// sent after the handshake arrive), saving the session to `out` or resuming from `from`.
/// Returns s_client's "New, …" / "Reused, …" line.
fn s_client(
    addr: std::net::SocketAddr,
    version: &str,
    session: (&str, &std::path::Path),
) -> String {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "sleep 0.5 | openssl s_client -connect {addr} -servername localhost {version} {} {} 2>&1",
            session.0,
            session.1.display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed (.ci/run installs it)");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
        .unwrap_or_else(|| panic!("no session line from s_client: {text}"))
        .to_string()
}

async fn metric(admin: std::net::SocketAddr, line: &str) -> u64 {
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn one_ticket_resumes_on_every_connection() {
    let (cert_pem, key_pem) = common::tls::self_signed(&["localhost"]).unwrap();
    let dir = std::env::temp_dir().join(format!("proxy-resumption-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &key_pem).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let config = Config::try_parse_from([
        "proxy",
        "--lookup-url",
        "http://127.0.0.1:1/service/extension/nginx-lookup",
        "--imap-listen",
        "off",
        "--pop3-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--imaps-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .unwrap()
    .validate()
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let (imaps, admin) = (
        bound.local_addr(Kind::Imaps).unwrap(),
        bound.admin_addr().unwrap(),
    );
    let (_stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));

    for version in ["-tls1_3", "-tls1_2"] {
        let session = std::env::temp_dir().join(format!(
            "proxy-resumption-{}{version}.pem",
            std::process::id()
        ));
        let s = session.clone();
        let first =
            tokio::task::spawn_blocking(move || s_client(imaps, version, ("-sess_out", &s)))
                .await
                .unwrap();
        assert!(first.starts_with("New, "), "{version}: {first}");
        // The same saved session, three times: each resumes.
        for _ in 0..3 {
            let s = session.clone();
            let again =
                tokio::task::spawn_blocking(move || s_client(imaps, version, ("-sess_in", &s)))
                    .await
                    .unwrap();
            assert!(again.starts_with("Reused, "), "{version}: {again}");
        }
        std::fs::remove_file(&session).ok();
    }
    assert_eq!(
        metric(admin, "proxy_tls_handshakes_total{kind=\"full\"} ").await,
        2
    );
    assert_eq!(
        metric(admin, "proxy_tls_handshakes_total{kind=\"resumed\"} ").await,
        6
    );
}

/// A scratch directory with a self-signed certificate, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("proxy-resumption-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A ticket key file with a new random secret.
    fn key_file(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        let secret = common::tls_tickets::TicketSecret::random().unwrap();
        std::fs::write(&path, format!("{}\n", secret.to_hex())).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port P with P+1 … P+n-1 free too (worker i serves its metrics on the admin port + i).
fn free_ports(n: u16) -> u16 {
    loop {
        let p = free_port();
        let free = (1..n).all(|i| {
            p.checked_add(i)
                .is_some_and(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok())
        });
        if free {
            return p;
        }
    }
}

/// The real proxy binary serving IMAPS only; SIGTERM (then SIGKILL) on drop.
struct Running {
    child: Child,
    imaps: SocketAddr,
    admin: u16,
    log: PathBuf,
}

impl Running {
    /// Starts `proxy` with `workers` processes and `extra` flags; returns once every
    /// worker serves /metrics (its listener is bound by then).
    async fn start(dir: &Scratch, name: &str, workers: u16, extra: &[&str]) -> Self {
        let imaps: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin = free_ports(workers);
        let log = dir.path(&format!("{name}.log"));
        let cert = dir.path("cert.pem");
        let key = dir.path("key.pem");
        let child = Command::new(env!("CARGO_BIN_EXE_proxy"))
            .args([
                "--lookup-url",
                "http://127.0.0.1:1/service/extension/nginx-lookup",
            ])
            .args([
                "--imap-listen",
                "off",
                "--pop3-listen",
                "off",
                "--pop3s-listen",
                "off",
            ])
            .args(["--imaps-listen", &imaps.to_string()])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--tls-cert", cert.to_str().unwrap()])
            .args(["--tls-key", key.to_str().unwrap()])
            .args(["--workers", &workers.to_string(), "--grace-period", "1"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut running = Self {
            child,
            imaps,
            admin,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut up = 0;
            for i in 0..workers {
                if TcpStream::connect(("127.0.0.1", admin + i)).await.is_ok() {
                    up += 1;
                }
            }
            if up == workers {
                return running;
            }
            let exited = running.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{name}: {up} of {workers} workers up ({exited:?}); its log:\n{}",
                running.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Handshakes resumed by each worker, from their /metrics.
    async fn resumed_per_worker(&self, workers: u16) -> Vec<u64> {
        let mut counts = Vec::new();
        for i in 0..workers {
            let admin = SocketAddr::from(([127, 0, 0, 1], self.admin + i));
            counts.push(metric(admin, "proxy_tls_handshakes_total{kind=\"resumed\"} ").await);
        }
        counts
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM to worker 0 stops the other workers too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Several `s_client` runs at once: (address, version, -sess_out|-sess_in, session file).
async fn s_clients(runs: Vec<(SocketAddr, &'static str, &'static str, PathBuf)>) -> Vec<String> {
    let tasks: Vec<_> = runs
        .into_iter()
        .map(|(addr, version, mode, file)| {
            tokio::task::spawn_blocking(move || s_client(addr, version, (mode, &file)))
        })
        .collect();
    let mut lines = Vec::new();
    for t in tasks {
        lines.push(t.await.unwrap());
    }
    lines
}

const VERSIONS: [&str; 2] = ["-tls1_3", "-tls1_2"];

fn session_file(dir: &Scratch, name: &str, version: &str) -> PathBuf {
    dir.path(&format!("{name}{version}.pem"))
}

/// Also checks, since it starts several workers anyway, that only the first logs the
/// cipher suites in effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_resumes_on_every_worker() {
    let dir = Scratch::new("workers");
    let proxy = Running::start(&dir, "workers", 3, &[]).await;
    // The first worker says which cipher suites this machine's CPU got, once.
    let log = proxy.log_text();
    let policy = common::tls_ciphers::CipherPolicy::recommended().to_string();
    assert_eq!(log.matches("TLS cipher suites").count(), 1, "{log}");
    assert!(log.contains(&format!("ciphers={policy}")), "{log}");
    for version in VERSIONS {
        let session = session_file(&dir, "workers", version);
        let first = s_client(proxy.imaps, version, ("-sess_out", &session));
        assert!(first.starts_with("New, "), "{version}: {first}");
        // Twelve connections: the kernel spreads them over the three workers, and the
        // ticket from whichever worker issued it resumes on each.
        let again = s_clients(
            (0..12)
                .map(|_| (proxy.imaps, version, "-sess_in", session.clone()))
                .collect(),
        )
        .await;
        for (i, line) in again.iter().enumerate() {
            assert!(
                line.starts_with("Reused, "),
                "{version}, connection {i}: {line}"
            );
        }
    }
    let resumed = proxy.resumed_per_worker(3).await;
    assert_eq!(resumed.iter().sum::<u64>(), 24, "{resumed:?}");
    assert!(
        resumed.iter().filter(|&&n| n > 0).count() >= 2,
        "resumed on several workers: {resumed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_with_one_key_file_resume_each_others_tickets() {
    let dir = Scratch::new("key-file");
    let (shared, other) = (dir.key_file("shared.key"), dir.key_file("other.key"));
    let flag = |f: &Path| ["--tls-ticket-key-file".to_string(), f.display().to_string()];
    let (a, b, c) = (flag(&shared), flag(&shared), flag(&other));
    let a = Running::start(&dir, "a", 1, &[&a[0], &a[1]]).await;
    let b = Running::start(&dir, "b", 1, &[&b[0], &b[1]]).await;
    let c = Running::start(&dir, "c", 1, &[&c[0], &c[1]]).await;
    for version in VERSIONS {
        let session = session_file(&dir, "key-file", version);
        let first = s_client(a.imaps, version, ("-sess_out", &session));
        assert!(first.starts_with("New, "), "{version} on A: {first}");
        let on_b = s_client(b.imaps, version, ("-sess_in", &session));
        assert!(
            on_b.starts_with("Reused, "),
            "{version}, A's ticket on B: {on_b}"
        );
        let on_c = s_client(c.imaps, version, ("-sess_in", &session));
        assert!(
            on_c.starts_with("New, "),
            "{version}, A's ticket on C: {on_c}"
        );
    }
    assert_eq!(b.resumed_per_worker(1).await, [2]);
    assert_eq!(c.resumed_per_worker(1).await, [0]);
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn sleep_until_unix(t: f64) {
    let wait = t - unix_now();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_resumes_across_one_rotation_not_two() {
    const PERIOD: f64 = 4.0;
    let dir = Scratch::new("rotation");
    let proxy = Running::start(&dir, "rotation", 1, &["--tls-ticket-rotation", "4"]).await;
    let runs = |mode: &'static str| {
        VERSIONS
            .iter()
            .map(|&v| (proxy.imaps, v, mode, session_file(&dir, "rotation", v)))
            .collect::<Vec<_>>()
    };
    let admin = SocketAddr::from(([127, 0, 0, 1], proxy.admin));
    let resumed_metric = "proxy_tls_handshakes_total{kind=\"resumed\"} ";
    // A busy machine (the whole suite on two cores) can miss a window below; that attempt
    // proves nothing either way and the next period is tried, up to three.
    for attempt in 1..=3 {
        let resumed_before = metric(admin, resumed_metric).await;
        // Periods are Unix time / rotation, so the next boundary is known here.
        let now = unix_now();
        let mut boundary = (now / PERIOD).ceil() * PERIOD;
        if boundary - now < 2.5 {
            boundary += PERIOD;
        }
        // Tickets issued 2 s before a rotation...
        sleep_until_unix(boundary - 2.0).await;
        for line in s_clients(runs("-sess_out")).await {
            assert!(line.starts_with("New, "), "{line}");
        }
        if unix_now() >= boundary {
            eprintln!("attempt {attempt}: the first handshakes ended after the rotation");
            continue;
        }
        // ...resume after it, under the previous period's key...
        sleep_until_unix(boundary + 0.5).await;
        let after_one = s_clients(runs("-sess_in")).await;
        if unix_now() >= boundary + PERIOD {
            eprintln!("attempt {attempt}: the resumptions ended after the next rotation");
            continue;
        }
        for (line, v) in after_one.iter().zip(VERSIONS) {
            assert!(
                line.starts_with("Reused, "),
                "{v}, after one rotation: {line}"
            );
        }
        // ...and not after the next one. (For TLS 1.3, OpenSSL itself no longer offers a
        // ticket past its one-period lifetime; for TLS 1.2 it does, and the proxy refuses
        // it.)
        sleep_until_unix(boundary + PERIOD + 0.5).await;
        for (line, v) in s_clients(runs("-sess_in")).await.iter().zip(VERSIONS) {
            assert!(
                line.starts_with("New, "),
                "{v}, after two rotations: {line}"
            );
        }
        assert_eq!(metric(admin, resumed_metric).await - resumed_before, 2);
        return;
    }
    panic!("the machine was too slow for this test's windows in three attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_key_file_in_every_worker() {
    let dir = Scratch::new("reload");
    let (key, next) = (dir.key_file("proxy.key"), dir.key_file("next.key"));
    let w = Running::start(
        &dir,
        "w",
        2,
        &["--tls-ticket-key-file", key.to_str().unwrap()],
    )
    .await;
    // Another proxy that already has the next secret.
    let d = Running::start(
        &dir,
        "d",
        1,
        &["--tls-ticket-key-file", next.to_str().unwrap()],
    )
    .await;
    let old = session_file(&dir, "reload-old", "-tls1_3");
    let first = s_client(w.imaps, "-tls1_3", ("-sess_out", &old));
    assert!(first.starts_with("New, "), "{first}");

    // The new key file, and SIGHUP to worker 0 alone (as systemctl reload sends it).
    std::fs::copy(&next, &key).unwrap();
    Command::new("kill")
        .args(["-HUP", &w.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.log_text().matches("TLS ticket key file reloaded").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "both workers should reload; the log:\n{}",
            w.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Tickets from both workers now open on the other proxy.
    let full = |p: &Running| {
        let admin = p.admin;
        async move {
            let mut counts = Vec::new();
            for i in 0..2 {
                let addr = SocketAddr::from(([127, 0, 0, 1], admin + i));
                counts.push(metric(addr, "proxy_tls_handshakes_total{kind=\"full\"} ").await);
            }
            counts
        }
    };
    let start = full(&w).await;
    for batch in 0.. {
        let sessions: Vec<_> = (0..6)
            .map(|i| {
                let v = VERSIONS[i % 2];
                (
                    w.imaps,
                    v,
                    "-sess_out",
                    dir.path(&format!("new-{batch}-{i}{v}.pem")),
                )
            })
            .collect();
        for line in s_clients(sessions.clone()).await {
            assert!(line.starts_with("New, "), "{line}");
        }
        let on_d = s_clients(
            sessions
                .into_iter()
                .map(|(_, v, _, f)| (d.imaps, v, "-sess_in", f))
                .collect(),
        )
        .await;
        for line in on_d {
            assert!(
                line.starts_with("Reused, "),
                "a ticket after the reload, on D: {line}"
            );
        }
        let now = full(&w).await;
        if now.iter().zip(&start).all(|(n, s)| n > s) {
            break;
        }
        assert!(
            batch < 5,
            "the kernel sent nothing to one worker: {start:?} -> {now:?}"
        );
    }
    // A ticket from before the reload still resumes (on either worker).
    let again = s_clients(
        (0..6)
            .map(|_| (w.imaps, "-tls1_3", "-sess_in", old.clone()))
            .collect(),
    )
    .await;
    for line in again {
        assert!(
            line.starts_with("Reused, "),
            "a ticket from before the reload: {line}"
        );
    }
}

#[test]
fn ticket_flags_are_checked_and_errors_never_show_the_key() {
    let dir = Scratch::new("flags");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let parse = |extra: &[&str]| {
        let mut argv = vec![
            "proxy",
            "--lookup-url",
            "http://127.0.0.1:1/service/extension/nginx-lookup",
            "--imap-listen",
            "off",
            "--pop3-listen",
            "off",
            "--pop3s-listen",
            "off",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        argv.extend_from_slice(extra);
        Config::try_parse_from(argv).unwrap().validate()
    };
    let rt = parse(&["--tls-ticket-rotation", "60"]).unwrap();
    let tickets = rt.tickets.expect("ticket keys with a certificate");
    assert_eq!(rustls::server::ProducesTickets::lifetime(&*tickets), 60);
    for bad in ["0", "604801"] {
        let e = parse(&["--tls-ticket-rotation", bad]).unwrap_err();
        assert_eq!(
            e.0,
            "--tls-ticket-rotation must be in 1..=604800 seconds (a TLS ticket lives at most 7 days)"
        );
    }
    let file = dir.path("ticket.key");
    std::fs::write(&file, "s3cret-passphrase\n").unwrap();
    let shown = file.to_str().unwrap();
    let e = parse(&["--tls-ticket-key-file", shown]).unwrap_err();
    assert_eq!(
        e.0,
        format!("--tls-ticket-key-file {shown}: not 64 hex digits (make one with `openssl rand -hex 32`)")
    );
    let e = Config::try_parse_from([
        "proxy",
        "--lookup-url",
        "http://127.0.0.1:1/service/extension/nginx-lookup",
        "--starttls",
        "off",
        "--imaps-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--tls-ticket-key-file",
        shown,
    ])
    .unwrap()
    .validate()
    .unwrap_err();
    assert_eq!(e.0, "--tls-ticket-key-file needs --tls-cert and --tls-key");
    let file = dir.key_file("good.key");
    let rt = parse(&["--tls-ticket-key-file", file.to_str().unwrap()]).unwrap();
    let debug = format!("{rt:?}");
    let hex = std::fs::read_to_string(&file).unwrap();
    assert!(!debug.contains(hex.trim()), "never in a debug print");
}
