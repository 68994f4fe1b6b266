//! The auth_http client against a real route-lookup (in-process, real PostgreSQL): routes
//! and refusals, nginx's escaping of odd logins and passwords, one keep-alive connection
//! for many lookups, failover past a dead lookup URL (skipped for the retry interval), the
//! shared secret, and "unavailable" when no URL answers. Then against scripted servers
//! (lookup_http.rs has the others): the exact request, a kept-alive connection the server
//! drops under a request (retried once on a new one) or drops mid-answer (never sent
//! again), an ejected URL that answers being back at once, host-name verification for
//! https:// URLs, the setup errors, the body bound with chunked answers, and credentials
//! too long to send refused without asking (the largest sent ones route-lookup answers).
use std::net::IpAddr;
use std::time::Duration;

use proto::v1::{CreateAccountRequest, CreateRequest, ModifyRequest};
use proxy::lookup::{
    LookupAnswer, LookupClient, LookupConfig, LookupError, LookupRequest, LookupUrl,
    MAX_CREDENTIALS,
};
use route_lookup::testing::{set_attrs, Harness};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

async fn seed(h: &Harness) {
    let mut p = h.provisioning().await;
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    p.modify_config(ModifyRequest {
        name: String::new(),
        attrs: set_attrs(&[("zimbraDefaultDomainName", "example.com")]),
    })
    .await
    .unwrap();
    p.create_server(CreateRequest {
        name: "mbx1.example.com".into(),
        attrs: set_attrs(&[
            ("serviceAddress", "127.0.0.1"),
            ("zimbraServiceEnabled", "mailbox"),
            ("zimbraImapBindPort", "17143"),
        ]),
    })
    .await
    .unwrap();
    p.create_account(CreateAccountRequest {
        name: "ann@example.com".into(),
        password: "pa ss+%ü".into(),
        attrs: set_attrs(&[("zimbraMailHost", "mbx1.example.com")]),
    })
    .await
    .unwrap();
}

fn url(h: &Harness) -> LookupUrl {
    format!("http://{}/service/extension/nginx-lookup", h.http)
        .parse()
        .unwrap()
}

fn req<'a>(user: &'a str, pass: &'a str) -> LookupRequest<'a> {
    LookupRequest {
        user: user.as_bytes(),
        pass: pass.as_bytes(),
        method: "plain",
        protocol: "imap",
        attempt: 1,
        client_ip: "192.0.2.7".parse::<IpAddr>().unwrap(),
        proxy_ip: None,
    }
}

#[tokio::test]
async fn routes_refusals_and_keep_alive() {
    let h = Harness::start(&["--verify-passwords"]).await;
    seed(&h).await;
    let client = LookupClient::new(LookupConfig {
        urls: vec![url(&h)],
        secret: None,
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    });
    let route = LookupAnswer::Route {
        server: "127.0.0.1".parse().unwrap(),
        server_name: Some("mbx1.example.com".into()),
        port: 17143,
        user: "ann@example.com".into(),
        pass: None,
        cache_alias: true,
    };
    for _ in 0..5 {
        assert_eq!(
            client.lookup(&req("ann", "pa ss+%ü")).await,
            Ok(route.clone())
        );
    }
    assert_eq!(
        client.lookup(&req("ann@example.com", "pa ss %ü")).await,
        Ok(LookupAnswer::Failed {
            status: "Authentication failed".into(),
            wait: Some(10),
            reason: Some("bad_password".into()),
        })
    );
    assert_eq!(
        client.lookup(&req("x\r\nAuth-Status: OK", "y")).await,
        Ok(LookupAnswer::Failed {
            status: "Authentication failed".into(),
            wait: Some(10),
            reason: Some("unknown_user".into()),
        })
    );
    // The longest credentials sent are within what route-lookup reads: an ordinary answer
    // (a request head it refuses would be a non-200, and "unavailable").
    let longest = "x".repeat(MAX_CREDENTIALS - 3);
    assert_eq!(
        client.lookup(&req("ann", &longest)).await,
        Ok(LookupAnswer::Failed {
            status: "Authentication failed".into(),
            wait: Some(10),
            reason: Some("bad_request".into()),
        })
    );
    // One byte more is refused without asking.
    let longer = "x".repeat(MAX_CREDENTIALS - 2);
    assert_eq!(
        client.lookup(&req("ann", &longer)).await,
        Ok(LookupAnswer::Failed {
            status: "Authentication failed".into(),
            wait: None,
            reason: None,
        })
    );
    assert_eq!(client.stats.requests.load(Ordering::Relaxed), 8);
    assert_eq!(client.stats.too_long.load(Ordering::Relaxed), 1);
    assert_eq!(client.stats.failovers.load(Ordering::Relaxed), 0);
    assert_eq!(
        client.stats.connections.load(Ordering::Relaxed),
        1,
        "one keep-alive connection"
    );
    h.stop().await;
}

#[tokio::test]
async fn failover_secret_and_outage() {
    let h = Harness::start(&["--lookup-secret", "s3"]).await;
    seed(&h).await;
    let dead: LookupUrl = "http://127.0.0.1:1/service/extension/nginx-lookup"
        .parse()
        .unwrap();
    let client = LookupClient::new(LookupConfig {
        urls: vec![dead.clone(), url(&h)],
        secret: Some("s3".into()),
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    });
    for _ in 0..6 {
        assert!(matches!(
            client.lookup(&req("ann", "x")).await,
            Ok(LookupAnswer::Route { port: 17143, .. })
        ));
    }
    assert_eq!(
        client.stats.failovers.load(Ordering::Relaxed),
        1,
        "the dead URL is skipped after one failure"
    );
    let no_secret = LookupClient::new(LookupConfig {
        urls: vec![url(&h)],
        secret: None,
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    });
    assert!(matches!(
        no_secret.lookup(&req("ann", "x")).await,
        Ok(LookupAnswer::Failed { .. })
    ));
    h.stop().await;
    let none = LookupClient::new(LookupConfig {
        urls: vec![dead],
        secret: None,
        timeout: Duration::from_secs(2),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    });
    assert_eq!(
        none.lookup(&req("ann", "x")).await,
        Err(LookupError::Unavailable)
    );
}

const ROUTE: &str = "HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.5\r\nAuth-Port: 7143\r\nContent-Length: 0\r\n\r\n";
const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";

/// What a scripted server does with a request.
enum Reply {
    /// Writes this and waits for the next request.
    Answer(String),
    /// Closes the connection without a byte.
    Close,
    /// Writes this and closes the connection.
    CutShort(&'static str),
}

type Script = dyn Fn(usize) -> Reply + Send + Sync;

/// A scripted HTTP server: its address, the connections it accepted, the requests it read
/// (their heads, in order).
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    fn requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// Serves `script(n)` for the n-th request (from 0) on each connection, over TLS when an
/// acceptor is given.
async fn scripted(
    tls: Option<tokio_rustls::TlsAcceptor>,
    script: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let (count, seen) = (accepted.clone(), requests.clone());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (script, seen, tls) = (script.clone(), seen.clone(), tls.clone());
            conns.spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(s).await {
                            serve_connection(s, script, seen).await;
                        }
                    }
                    None => serve_connection(s, script, seen).await,
                }
            });
        }
    });
    Scripted {
        addr,
        accepted,
        requests,
        task,
    }
}

async fn serve_connection(
    mut s: impl AsyncRead + AsyncWrite + Unpin,
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for n in 0.. {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        let head: Vec<u8> = buf.drain(..end).collect();
        seen.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&head).into_owned());
        match script(n) {
            Reply::Answer(a) => {
                if s.write_all(a.as_bytes()).await.is_err() || s.flush().await.is_err() {
                    return;
                }
            }
            Reply::Close => return,
            Reply::CutShort(a) => {
                let _ = s.write_all(a.as_bytes()).await;
                let _ = s.flush().await;
                return;
            }
        }
    }
}

fn config(urls: Vec<LookupUrl>) -> LookupConfig {
    LookupConfig {
        urls,
        secret: None,
        timeout: Duration::from_secs(3),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    }
}

fn scripted_url(addr: SocketAddr) -> LookupUrl {
    format!("http://{addr}/service/extension/nginx-lookup")
        .parse()
        .unwrap()
}

fn scripted_route() -> LookupAnswer {
    LookupAnswer::Route {
        server: "10.0.0.5".parse().unwrap(),
        server_name: None,
        port: 7143,
        user: String::new(),
        pass: None,
        cache_alias: false,
    }
}

#[tokio::test]
async fn the_request_is_what_nginx_sends() {
    let s = scripted(None, |_| Reply::Answer(ROUTE.into())).await;
    let client = LookupClient::new(LookupConfig {
        secret: Some("s3 cret".into()),
        ..config(vec![scripted_url(s.addr)])
    });
    let req = LookupRequest {
        user: b"ann x\r\nAuth-Status: OK",
        pass: "p%ss+\u{fc}\x7f".as_bytes(),
        method: "plain",
        protocol: "pop3ssl",
        attempt: 2,
        client_ip: "2001:db8::7".parse().unwrap(),
        proxy_ip: Some("192.0.2.1".parse().unwrap()),
    };
    assert_eq!(client.lookup(&req).await, Ok(scripted_route()));
    let head = s.requests.lock().unwrap()[0].clone();
    let mut lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "GET /service/extension/nginx-lookup HTTP/1.1");
    lines.retain(|l| !l.is_empty());
    lines[1..].sort_unstable();
    assert_eq!(
        lines[1..],
        [
            "Auth-Login-Attempt: 2",
            "Auth-Method: plain",
            "Auth-Pass: p%25ss+\u{fc}%7F",
            "Auth-Protocol: pop3ssl",
            "Auth-User: ann%20x%0D%0AAuth-Status:%20OK",
            "Client-Ip: 2001:db8::7",
            "Host: 127.0.0.1",
            "X-Lookup-Secret: s3 cret",
            "X-Proxy-Ip: 192.0.2.1",
        ]
    );
}

#[tokio::test]
async fn a_kept_alive_connection_dropped_under_a_request_is_retried_once_on_a_new_one() {
    // Each connection answers its first request and closes when the second arrives, as a
    // server whose idle timeout fires just as the request is on its way: the client cannot
    // have seen the close before sending.
    let s = scripted(None, |n| {
        if n == 0 {
            Reply::Answer(ROUTE.into())
        } else {
            Reply::Close
        }
    })
    .await;
    let client = LookupClient::new(config(vec![scripted_url(s.addr)]));
    for i in 0..4 {
        assert_eq!(
            client.lookup(&LOOKUP).await,
            Ok(scripted_route()),
            "lookup {i}"
        );
    }
    assert_eq!(s.accepted.load(Ordering::SeqCst), 4);
    assert_eq!(s.requests(), 7, "three requests went out twice");
    assert_eq!(client.stats.connections.load(Ordering::Relaxed), 4);
    assert_eq!(client.stats.failovers.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_answer_cut_short_on_a_kept_alive_connection_is_not_sent_again() {
    // Once part of an answer came back the server has seen the login (it may have counted
    // a failed password): the request fails over instead of being sent again.
    let s = scripted(None, |n| {
        if n == 0 {
            Reply::Answer(ROUTE.into())
        } else {
            Reply::CutShort("HTTP/1.1 200 OK\r\nAuth-Sta")
        }
    })
    .await;
    let client = LookupClient::new(config(vec![scripted_url(s.addr)]));
    assert_eq!(client.lookup(&LOOKUP).await, Ok(scripted_route()));
    assert_eq!(client.lookup(&LOOKUP).await, Err(LookupError::Unavailable));
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(s.requests(), 2);
    assert_eq!(client.stats.failovers.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_ejected_url_that_answers_is_back_at_once() {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let a = scripted(None, move |_| {
        Reply::Answer(
            if flag.load(Ordering::SeqCst) {
                ROUTE
            } else {
                UNAVAILABLE
            }
            .into(),
        )
    })
    .await;
    let b = scripted(None, |_| Reply::Answer(UNAVAILABLE.into())).await;
    let client = LookupClient::new(config(vec![scripted_url(a.addr), scripted_url(b.addr)]));
    assert_eq!(client.lookup(&LOOKUP).await, Err(LookupError::Unavailable));
    assert_eq!((a.requests(), b.requests()), (1, 1));
    healthy.store(true, Ordering::SeqCst);
    // Both are out for a minute: both are asked anyway, and A answers.
    assert_eq!(client.lookup(&LOOKUP).await, Ok(scripted_route()));
    let b_asked = b.requests();
    for _ in 0..6 {
        assert_eq!(client.lookup(&LOOKUP).await, Ok(scripted_route()));
    }
    assert_eq!(b.requests(), b_asked, "B stays out; A is back in");
    assert_eq!(a.requests(), 8);
}

#[tokio::test]
async fn https_urls_verify_the_host_name() {
    let tls_server = |names: &[&str]| {
        let (cert, key) = common::tls::self_signed(names).unwrap();
        let config =
            common::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap();
        let client = common::tls::client_config_from_pem(cert.as_bytes()).unwrap();
        (tokio_rustls::TlsAcceptor::from(config), client)
    };
    let https = |host: &str, addr: SocketAddr| -> LookupUrl {
        format!(
            "https://{host}:{}/service/extension/nginx-lookup",
            addr.port()
        )
        .parse()
        .unwrap()
    };
    // A trusted certificate, but for another name.
    let (acceptor, trusted) = tls_server(&["lookup.test"]);
    let other = scripted(Some(acceptor), |_| Reply::Answer(ROUTE.into())).await;
    let client = LookupClient::new(LookupConfig {
        tls: Some(trusted),
        ..config(vec![https("localhost", other.addr)])
    });
    assert_eq!(client.lookup(&LOOKUP).await, Err(LookupError::Unavailable));
    assert_eq!(other.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(other.requests(), 0, "nothing sent to the wrong server");

    // An IP address URL and a certificate for it; the connection is kept alive over TLS.
    let (acceptor, trusted) = tls_server(&["127.0.0.1"]);
    let s = scripted(Some(acceptor), |_| Reply::Answer(ROUTE.into())).await;
    let client = LookupClient::try_new(LookupConfig {
        tls: Some(trusted),
        ..config(vec![https("127.0.0.1", s.addr)])
    })
    .unwrap();
    for _ in 0..3 {
        assert_eq!(client.lookup(&LOOKUP).await, Ok(scripted_route()));
    }
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(s.requests(), 3);

    // Without a configuration: the system's CAs, which do not know the test certificate.
    let system = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    match LookupClient::try_new(config(vec![https("127.0.0.1", s.addr)])) {
        Ok(client) => {
            assert!(system.exists());
            assert_eq!(client.lookup(&LOOKUP).await, Err(LookupError::Unavailable));
            assert_eq!(s.requests(), 3);
        }
        Err(e) => {
            assert!(!system.exists(), "{e}");
            assert!(matches!(e, proxy::lookup::SetupError::SystemCas(_)));
        }
    }
}

#[tokio::test]
async fn setup_errors() {
    let url = scripted_url("127.0.0.1:1".parse().unwrap());
    assert!(matches!(
        LookupClient::try_new(LookupConfig {
            secret: Some("a\nb".into()),
            ..config(vec![url.clone()])
        }),
        Err(proxy::lookup::SetupError::Secret)
    ));
    assert!(
        LookupClient::try_new(config(vec![url])).is_ok(),
        "http:// needs no CAs"
    );
}

#[tokio::test]
async fn chunked_bodies_are_bounded() {
    let chunked = |len: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.5\r\nAuth-Port: 7143\r\nTransfer-Encoding: chunked\r\n\r\n{len:x}\r\n{}\r\n0\r\n\r\n",
            "z".repeat(len)
        )
    };
    let (small, big) = (chunked(60 * 1024), chunked(70 * 1024));
    let s = scripted(None, move |_| Reply::Answer(small.clone())).await;
    let client = LookupClient::new(config(vec![scripted_url(s.addr)]));
    for _ in 0..2 {
        assert_eq!(client.lookup(&LOOKUP).await, Ok(scripted_route()));
    }
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1, "drained and kept");
    let s = scripted(None, move |_| Reply::Answer(big.clone())).await;
    let client = LookupClient::new(config(vec![scripted_url(s.addr)]));
    assert_eq!(client.lookup(&LOOKUP).await, Err(LookupError::Unavailable));
}

#[tokio::test]
async fn credentials_too_long_to_send_are_refused_unasked() {
    let (a, b) = (
        scripted(None, |_| Reply::Answer(ROUTE.into())).await,
        scripted(None, |_| Reply::Answer(ROUTE.into())).await,
    );
    let client = LookupClient::new(LookupConfig {
        // Were it sent and refused, the budget would spin on it.
        retry_budget: Duration::from_secs(2),
        ..config(vec![scripted_url(a.addr), scripted_url(b.addr)])
    });
    let refused = Ok(LookupAnswer::Failed {
        status: "Authentication failed".into(),
        wait: None,
        reason: None,
    });
    let with = |user: &'static [u8], pass: &'static [u8]| LookupRequest {
        user,
        pass,
        ..LOOKUP
    };
    // The bound is on the escaped values: a space is sent as three bytes.
    let fits: &'static [u8] = "x".repeat(MAX_CREDENTIALS - 3).leak().as_bytes();
    let over: &'static [u8] = "x".repeat(MAX_CREDENTIALS - 2).leak().as_bytes();
    let spaces: &'static [u8] = " ".repeat(MAX_CREDENTIALS / 3).leak().as_bytes();
    assert_eq!(
        client.lookup(&with(b"ann", fits)).await,
        Ok(scripted_route())
    );
    assert_eq!(client.lookup(&with(b"ann", over)).await, refused);
    assert_eq!(client.lookup(&with(over, b"abc")).await, refused);
    assert_eq!(client.lookup(&with(b"ann", spaces)).await, refused);
    assert_eq!(
        a.requests() + b.requests(),
        1,
        "nothing over the bound sent"
    );
    assert_eq!(client.stats.too_long.load(Ordering::Relaxed), 3);
    // No URL was blamed: both still take their turn.
    for _ in 0..4 {
        assert_eq!(client.lookup(&LOOKUP).await, Ok(scripted_route()));
    }
    assert_eq!((a.requests(), b.requests()), (3, 2));
    assert_eq!(client.stats.failovers.load(Ordering::Relaxed), 0);
    let head = a.requests.lock().unwrap()[0].clone();
    assert!(head.contains(&format!(
        "Auth-Pass: {}\r\n",
        "x".repeat(MAX_CREDENTIALS - 3)
    )));
}

const LOOKUP: LookupRequest<'static> = LookupRequest {
    user: b"ann",
    pass: b"secret",
    method: "plain",
    protocol: "imap",
    attempt: 1,
    client_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
    proxy_ip: None,
};
