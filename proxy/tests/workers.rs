//! `--workers`: the real proxy binary with three worker processes sharing its listeners
//! (SO_REUSEPORT), in front of route-lookup (PostgreSQL) and an in-process mailbox-stub.
//! Logins are spread over the workers (each counts its own in its /metrics, on the admin
//! port + its index); a worker that dies is restarted while the others serve; SIGTERM to
//! the first process stops them all. `--max-sessions-per-user` counts one user's sessions
//! across the workers.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailbox_stub::server::{Kind as StubKind, MailboxStub};
use proto::v1::attr_change::Op;
use proto::v1::provisioning_client::ProvisioningClient;
use proto::v1::{AttrChange, CreateAccountRequest, CreateRequest};
use route_lookup::testing::{Harness, TOKEN};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port P with P+1 and P+2 free too (worker i serves its metrics on the admin port + i).
fn free_port_block() -> u16 {
    loop {
        let p = free_port();
        let free = (1..3).all(|i| {
            p.checked_add(i)
                .is_some_and(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok())
        });
        if free {
            return p;
        }
    }
}

fn attr(n: &str, v: &str) -> AttrChange {
    AttrChange {
        name: n.into(),
        value: v.into(),
        op: Op::Replace.into(),
    }
}

async fn seed(h: &Harness, imap_port: u16) {
    let channel = tonic::transport::Channel::from_shared(h.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut p = ProvisioningClient::with_interceptor(
        channel,
        proto::BearerToken::new(Some(TOKEN)).unwrap(),
    );
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    p.create_server(CreateRequest {
        name: "mbx1.example.com".into(),
        attrs: vec![
            attr("serviceAddress", "127.0.0.1"),
            attr("zimbraServiceEnabled", "mailbox"),
            attr("zimbraImapBindPort", &imap_port.to_string()),
        ],
    })
    .await
    .unwrap();
    p.create_account(CreateAccountRequest {
        name: "ann@example.com".into(),
        password: "x".into(),
        attrs: vec![attr("zimbraMailHost", "mbx1.example.com")],
    })
    .await
    .unwrap();
}

/// One whole session: greeting, LOGIN, LOGOUT. Returns the LOGIN answer.
async fn login(port: u16) -> Result<String, String> {
    let s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let mut s = BufReader::new(s);
    let mut line = String::new();
    s.read_line(&mut line).await.map_err(|e| e.to_string())?;
    s.get_mut()
        .write_all(b"a LOGIN ann@example.com \"pa ss\"\r\n")
        .await
        .map_err(|e| e.to_string())?;
    loop {
        line.clear();
        if s.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed".into());
        }
        if line.starts_with("a ") {
            break;
        }
    }
    let answer = line.clone();
    s.get_mut().write_all(b"z LOGOUT\r\n").await.ok();
    Ok(answer)
}

/// A logged-in session left open.
async fn open_session(port: u16) -> BufReader<TcpStream> {
    let mut s = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    s.get_mut()
        .write_all(b"a LOGIN ann@example.com \"pa ss\"\r\n")
        .await
        .unwrap();
    loop {
        line.clear();
        assert!(
            s.read_line(&mut line).await.unwrap() > 0,
            "closed before login"
        );
        if line.starts_with("a ") {
            assert!(line.starts_with("a OK"), "{line}");
            return s;
        }
    }
}

/// A request to worker 0's admin listener with the test's token: status and body.
async fn admin_request(admin: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", admin)).await.unwrap();
    s.write_all(
        format!(
            "{method} {path} HTTP/1.0\r\nAuthorization: Bearer s3cret\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out)
        .await
        .unwrap();
    let status = out[9..12].parse().unwrap();
    (
        status,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

async fn logins_ok(admin: u16) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", admin)).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.ok()?;
    let mut body = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut body)
        .await
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("proxy_logins_total{outcome=\"ok\"} "))
        .and_then(|v| v.trim().parse().ok())
}

/// The live child processes of `pid` (of any of its threads: a restarted worker is the
/// child of the thread that restarted it). Zombies (exited, not yet reaped) do not count.
fn children(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return all;
    };
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        all.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    all.retain(|&c| alive(c));
    all.sort_unstable();
    all
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        for c in children(self.0.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &c.to_string()])
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The proxy binary with three workers in front of `h`, IMAP on `imap`, admin ports from
/// `admin`, `extra` flags last, its log to `stderr`.
fn start_proxy(h: &Harness, imap: u16, admin: u16, extra: &[&str], stderr: std::fs::File) -> Child {
    Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(["--imap-listen", &format!("127.0.0.1:{imap}")])
        .args([
            "--imaps-listen",
            "off",
            "--pop3-listen",
            "off",
            "--pop3s-listen",
            "off",
        ])
        .args(["--starttls", "off", "--workers", "3", "--grace-period", "5"])
        .args(["--admin-token", "s3cret"])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args([
            "--lookup-url",
            &format!("http://{}/service/extension/nginx-lookup", h.http),
        ])
        .args(extra)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// A login from the local address `from`: the tagged answer, the session left open.
async fn login_from(from: &str, port: u16) -> (String, BufReader<TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let s = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let mut s = BufReader::new(s);
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    s.get_mut()
        .write_all(b"a LOGIN ann@example.com \"pa ss\"\r\n")
        .await
        .unwrap();
    loop {
        line.clear();
        assert!(s.read_line(&mut line).await.unwrap() > 0, "closed");
        if line.starts_with("a ") {
            return (line, s);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cap_counts_across_workers() {
    let h = Harness::start(&["--auth-wait", "0"]).await;
    let stub = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "pa ss")
        .spawn()
        .await
        .unwrap();
    seed(&h, stub.addr(StubKind::Imap).port()).await;
    let imap = free_port();
    let admin = free_port_block();
    let log = std::env::temp_dir().join(format!("proxy-cap-test-{}.log", std::process::id()));
    let stderr = std::fs::File::create(&log).unwrap();
    let child = start_proxy(&h, imap, admin, &["--max-sessions-per-user", "2"], stderr);
    let master = child.id();
    let mut proxy = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while {
        let mut up = 0;
        for i in 0..3 {
            if logins_ok(admin + i).await.is_some() {
                up += 1;
            }
        }
        up < 3
    } {
        assert!(Instant::now() < deadline, "three workers did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (first, one) = login_from("127.0.0.1", imap).await;
    let (second, _two) = login_from("127.0.0.1", imap).await;
    assert!(
        first.starts_with("a OK") && second.starts_with("a OK"),
        "{first}{second}"
    );
    // Wherever the kernel puts them, the next ones from that address are over the cap.
    for _ in 0..6 {
        let (answer, _) = login_from("127.0.0.1", imap).await;
        assert_eq!(
            answer,
            "a NO [LIMIT] Maximum number of connections from user+IP exceeded\r\n"
        );
    }
    // Another address has its own count.
    let (other, _three) = login_from("127.0.0.2", imap).await;
    assert!(other.starts_with("a OK"), "{other}");
    // Closing one lets a new one in (once its worker has given the place back).
    drop(one);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (answer, _s) = login_from("127.0.0.1", imap).await;
        if answer.starts_with("a OK") {
            break;
        }
        assert!(Instant::now() < deadline, "no place came back: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let refused = text
        .lines()
        .filter(|l| l.contains("login failed") && l.contains("reason=\"session_limit\""))
        .count();
    assert!(
        refused >= 6,
        "a failed-login line for each refusal:\n{text}"
    );

    // Worker 0's socket directory goes with it.
    let dir = std::env::temp_dir().join(format!("zproxy-{master}-0"));
    assert!(dir.join("sessions.sock").exists());
    Command::new("kill")
        .args(["-TERM", &master.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while proxy.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the proxy did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_listeners_restart_and_stop_together() {
    let h = Harness::start(&["--auth-wait", "0"]).await;
    let stub = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "pa ss")
        .spawn()
        .await
        .unwrap();
    seed(&h, stub.addr(StubKind::Imap).port()).await;
    let imap = free_port();
    let admin = free_port_block();
    let log = std::env::temp_dir().join(format!("proxy-workers-test-{}.log", std::process::id()));
    let stderr = std::fs::File::create(&log).unwrap();
    let tail = |log: &std::path::Path| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    let child = start_proxy(&h, imap, admin, &[], stderr);
    let master = child.id();
    let mut proxy = Guard(child);

    // Three processes: the first and two workers it started, each with its admin port.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut up = 0;
        for i in 0..3 {
            if logins_ok(admin + i).await.is_some() {
                up += 1;
            }
        }
        if up == 3 && children(master).len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "three workers did not come up ({up} admin listeners, children {:?}); the log:\n{}",
            children(master),
            tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Logins spread over the workers.
    for _ in 0..40 {
        let answer = login(imap).await.unwrap();
        assert!(answer.starts_with("a OK"), "{answer}");
    }
    let mut per_worker = Vec::new();
    for i in 0..3 {
        per_worker.push(logins_ok(admin + i).await.unwrap());
    }
    assert_eq!(per_worker.iter().sum::<u64>(), 40, "{per_worker:?}");
    assert!(
        per_worker.iter().filter(|&&n| n > 0).count() >= 2,
        "the kernel should spread 40 connections over the workers: {per_worker:?}"
    );

    // Open sessions, wherever the kernel put them, are listed and kicked through worker 0.
    let mut open = Vec::new();
    for _ in 0..6 {
        open.push(open_session(imap).await);
    }
    let (status, list) = admin_request(admin, "GET", "/sessions").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list.matches("\"user\":\"ann@example.com\"").count(),
        6,
        "{list}"
    );
    let workers_seen = (0..3)
        .filter(|w| list.contains(&format!("\"worker\":{w},")))
        .count();
    assert!(workers_seen >= 2, "sessions on several workers: {list}");
    let (status, kicked) =
        admin_request(admin, "POST", "/sessions/kick?user=ann@example.com").await;
    assert_eq!((status, kicked.as_str()), (200, "{\"kicked\":6}\n"));
    for mut s in open {
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        assert_eq!(line, "* BYE Session ended by the administrator\r\n");
    }

    // A worker killed outright is restarted, and logins go on meanwhile.
    let victim = children(master)[0];
    Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    // Connections the dead worker had accepted, or that the kernel had already queued on
    // its socket, are lost (with SO_REUSEPORT, as with nginx's workers); the others go on.
    let (mut during, mut lost) = (0, 0);
    loop {
        match login(imap).await {
            Ok(answer) => {
                assert!(answer.starts_with("a OK"), "{answer}");
                during += 1;
            }
            Err(_) => lost += 1,
        }
        let now = children(master);
        if now.len() == 2 && !now.contains(&victim) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead worker was not replaced; the log:\n{}",
            tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        during > 0,
        "no login succeeded while the worker was replaced ({lost} lost)"
    );
    // Once it is replaced, every login works again.
    for _ in 0..20 {
        let answer = login(imap).await.unwrap();
        assert!(answer.starts_with("a OK"), "{answer}");
    }

    // SIGTERM to the first process stops every worker.
    let workers = children(master);
    Command::new("kill")
        .args(["-TERM", &master.to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = proxy.0.wait();
        (status, proxy)
    })
    .await
    .unwrap();
    assert!(status.0.unwrap().success(), "the first process exits 0");
    for w in workers {
        assert!(
            !alive(w),
            "worker {w} still running after the first process exited"
        );
    }
    assert!(
        TcpStream::connect(("127.0.0.1", imap)).await.is_err(),
        "nobody listens any more"
    );
    let _ = std::fs::remove_file(&log);
    stub.stop().await;
    h.stop().await;
}
