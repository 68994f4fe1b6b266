//! The auth_http client's HTTP behaviour against scripted servers: chunked answers, a
//! non-200 status failing over to the next URL, a missing Auth-Status refused, Auth-Pass
//! returned, https:// with the configured CA, connections the server closes after each
//! answer or loses in a restart never failing a lookup, idle pooled connections not reused
//! past the idle limit, and oversized answers refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proxy::lookup::{
    LookupAnswer, LookupClient, LookupConfig, LookupError, LookupRequest, LookupUrl,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUTE: &str = "Auth-Status: OK\r\nAuth-Server: 10.0.0.5\r\nAuth-Port: 7143\r\n";

/// How a scripted server answers each request on a connection.
#[derive(Clone)]
struct Script {
    /// The whole response.
    response: String,
    /// Close the connection after the first answer (without saying so).
    close_after_one: bool,
}

fn ok(head: &str) -> Script {
    Script {
        response: format!("HTTP/1.1 200 OK\r\n{head}Content-Length: 0\r\n\r\n"),
        close_after_one: false,
    }
}

/// A running scripted server: its address and how many connections it accepted.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, script: Script) -> Server {
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        // Dropping the set (when this task is aborted) ends every connection: a restart.
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            conns.spawn(connection(s, script.clone()));
        }
    });
    Server {
        addr,
        accepted,
        task,
    }
}

async fn connection(mut s: TcpStream, script: Script) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.clear();
        if s.write_all(script.response.as_bytes()).await.is_err() || script.close_after_one {
            return;
        }
    }
}

async fn server(script: Script) -> Server {
    serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), script).await
}

fn url(addr: SocketAddr) -> LookupUrl {
    format!("http://{addr}/service/extension/nginx-lookup")
        .parse()
        .unwrap()
}

fn client(urls: Vec<LookupUrl>, idle: Duration) -> LookupClient {
    LookupClient::new(LookupConfig {
        urls,
        secret: None,
        timeout: Duration::from_secs(3),
        retry_interval: Duration::from_secs(60),
        idle_timeout: idle,
        retry_budget: Duration::ZERO,
        tls: None,
    })
}

fn req() -> LookupRequest<'static> {
    LookupRequest {
        user: b"ann",
        pass: b"secret",
        method: "plain",
        protocol: "imap",
        attempt: 1,
        client_ip: "192.0.2.7".parse().unwrap(),
        proxy_ip: None,
    }
}

fn route() -> LookupAnswer {
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
async fn chunked_answers_and_auth_pass() {
    let chunked = server(Script {
        response: format!(
            "HTTP/1.1 200 OK\r\n{ROUTE}Auth-Pass: other secret\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
        close_after_one: false,
    })
    .await;
    let c = client(vec![url(chunked.addr)], Duration::from_secs(10));
    for _ in 0..3 {
        assert_eq!(
            c.lookup(&req()).await,
            Ok(LookupAnswer::Route {
                server: "10.0.0.5".parse().unwrap(),
                server_name: None,
                port: 7143,
                user: String::new(),
                pass: Some(b"other secret".to_vec()),
                cache_alias: false,
            })
        );
    }
    assert_eq!(
        chunked.accepted.load(Ordering::SeqCst),
        1,
        "the body was drained and the connection kept"
    );
}

#[tokio::test]
async fn a_non_200_status_fails_over_and_no_status_is_refused() {
    let broken = server(Script {
        response: format!("HTTP/1.1 503 Service Unavailable\r\n{ROUTE}Content-Length: 0\r\n\r\n"),
        close_after_one: false,
    })
    .await;
    let good = server(ok(ROUTE)).await;
    let c = client(
        vec![url(broken.addr), url(good.addr)],
        Duration::from_secs(10),
    );
    assert_eq!(c.lookup(&req()).await, Ok(route()));
    assert_eq!(c.lookup(&req()).await, Ok(route()));
    assert_eq!(
        c.stats.failovers.load(Ordering::Relaxed),
        1,
        "the 503 URL is skipped after"
    );
    let silent = server(ok("Auth-Server: 10.0.0.5\r\nAuth-Port: 7143\r\n")).await;
    let c = client(vec![url(silent.addr)], Duration::from_secs(10));
    assert!(
        matches!(c.lookup(&req()).await, Err(LookupError::Invalid(_))),
        "a 200 without Auth-Status is never a route"
    );
}

#[tokio::test]
async fn connections_the_server_closes_never_fail_a_lookup() {
    // Closes every connection after one answer, without a Connection: close header: each
    // next lookup finds its pooled connection dead and retries on a fresh one.
    let closing = server(Script {
        response: format!("HTTP/1.1 200 OK\r\n{ROUTE}Content-Length: 0\r\n\r\n"),
        close_after_one: true,
    })
    .await;
    let c = client(vec![url(closing.addr)], Duration::from_secs(10));
    for i in 0..5 {
        assert_eq!(c.lookup(&req()).await, Ok(route()), "lookup {i}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.stats.failovers.load(Ordering::Relaxed), 0);
    assert_eq!(closing.accepted.load(Ordering::SeqCst), 5);

    // A restart on the same port between two lookups.
    let first = server(ok(ROUTE)).await;
    let addr = first.addr;
    let c = client(vec![url(addr)], Duration::from_secs(10));
    assert_eq!(c.lookup(&req()).await, Ok(route()));
    drop(first);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = serve(TcpListener::bind(addr).await.unwrap(), ok(ROUTE)).await;
    assert_eq!(c.lookup(&req()).await, Ok(route()), "after the restart");
    assert_eq!(again.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(c.stats.failovers.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn idle_pooled_connections_are_not_reused_past_the_limit() {
    let s = server(ok(ROUTE)).await;
    let c = client(vec![url(s.addr)], Duration::from_millis(100));
    assert_eq!(c.lookup(&req()).await, Ok(route()));
    assert_eq!(c.lookup(&req()).await, Ok(route()));
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1, "reused while fresh");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.lookup(&req()).await, Ok(route()));
    assert_eq!(
        s.accepted.load(Ordering::SeqCst),
        2,
        "a new connection after the idle limit"
    );
}

#[tokio::test]
async fn oversized_answers_are_refused() {
    let big_head = server(ok(&format!("{ROUTE}X-Padding: {}\r\n", "x".repeat(20_000)))).await;
    let c = client(vec![url(big_head.addr)], Duration::from_secs(10));
    assert_eq!(c.lookup(&req()).await, Err(LookupError::Unavailable));
    let big_body = server(Script {
        response: format!(
            "HTTP/1.1 200 OK\r\n{ROUTE}Content-Length: 100000\r\n\r\n{}",
            "y".repeat(100_000)
        ),
        close_after_one: false,
    })
    .await;
    let c = client(vec![url(big_body.addr)], Duration::from_secs(10));
    assert_eq!(c.lookup(&req()).await, Err(LookupError::Unavailable));
}

#[tokio::test]
async fn https_lookup_urls_verify_the_server() {
    let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
    let server_tls =
        common::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let reply = format!("HTTP/1.1 200 OK\r\n{ROUTE}Content-Length: 0\r\n\r\n");
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.flush().await;
                }
            });
        }
    });
    let https: LookupUrl = format!("https://localhost:{port}/service/extension/nginx-lookup")
        .parse()
        .unwrap();
    let trusted = LookupClient::new(LookupConfig {
        urls: vec![https.clone()],
        secret: None,
        timeout: Duration::from_secs(3),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: Some(common::tls::client_config_from_pem(cert.as_bytes()).unwrap()),
    });
    assert_eq!(trusted.lookup(&req()).await, Ok(route()));
    let (other, _) = common::tls::self_signed(&["localhost"]).unwrap();
    let untrusted = LookupClient::new(LookupConfig {
        urls: vec![https],
        secret: None,
        timeout: Duration::from_secs(3),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: Some(common::tls::client_config_from_pem(other.as_bytes()).unwrap()),
    });
    assert_eq!(
        untrusted.lookup(&req()).await,
        Err(LookupError::Unavailable)
    );
    task.abort();
}

#[tokio::test]
async fn a_route_lookup_restart_is_waited_out_within_the_retry_budget() {
    // Nothing listens on the port yet; route-lookup comes back 300 ms into the lookup.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let patient = LookupClient::new(LookupConfig {
        urls: vec![url(port)],
        secret: None,
        timeout: Duration::from_secs(3),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::from_secs(2),
        tls: None,
    });
    let impatient = client(vec![url(port)], Duration::from_secs(10));
    assert_eq!(
        impatient.lookup(&req()).await,
        Err(LookupError::Unavailable),
        "without a budget: at once"
    );
    let back = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        serve(TcpListener::bind(port).await.unwrap(), ok(ROUTE)).await
    });
    let started = std::time::Instant::now();
    assert_eq!(patient.lookup(&req()).await, Ok(route()));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    drop(back.await.unwrap());
}
