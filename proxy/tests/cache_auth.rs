//! A closed route cache: cache-node with `--auth-file` (in-process), the proxy with
//! `--memcached-auth-file` in front of a real route-lookup (PostgreSQL, also with
//! `--memcached-auth-file` for its purges) and an in-process mailbox-stub.
//!
//! With the right credentials logins are served from the cache after the first, the
//! route is on the node, and an account change purges it there. With wrong ones the proxy
//! treats the node as down (ejected at once, counted), logins still succeed through
//! route-lookup, and nothing is cached. A node that never answers the authenticating set
//! is ejected within the fetch timeout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use codec::memcache::Credentials;
use codec::route_key::route_key;
use common::shutdown::Shutdown;
use mailbox_stub::server::{Kind as StubKind, MailboxStub};
use proto::v1::{CreateAccountRequest, CreateRequest, ModifyRequest, RegisterRequest, ServiceKind};
use proxy::cache::{CacheCluster, CacheConfig};
use proxy::server::Kind;
use route_lookup::testing::{set_attrs, Harness};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The cache nodes' auth file, and the credentials that match it.
const NODE_ENTRIES: &str = "proxy:s3cret\nlookup:l00kup\n";

/// A file in the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(content: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "proxy-cache-auth-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// example.com, mbx1 on the stub's IMAP port, mbx2 nowhere, ann on mbx1; `cache` is
/// registered as a cache node, so route-lookup purges it.
async fn seed(h: &Harness, imap_port: u16, cache: SocketAddr) {
    let mut p = h.provisioning().await;
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    for (name, port) in [("mbx1.example.com", imap_port), ("mbx2.example.com", 1)] {
        p.create_server(CreateRequest {
            name: name.into(),
            attrs: set_attrs(&[
                ("serviceAddress", "127.0.0.1"),
                ("zimbraServiceEnabled", "mailbox"),
                ("zimbraImapBindPort", &port.to_string()),
            ]),
        })
        .await
        .unwrap();
    }
    p.create_account(CreateAccountRequest {
        name: "ann@example.com".into(),
        password: "x".into(),
        attrs: set_attrs(&[("zimbraMailHost", "mbx1.example.com")]),
    })
    .await
    .unwrap();
    h.registry()
        .await
        .register(RegisterRequest {
            kind: ServiceKind::CacheNode.into(),
            address: cache.to_string(),
            ttl_seconds: 600,
        })
        .await
        .unwrap();
}

async fn cache_node(auth_file: &Scratch) -> (SocketAddr, Shutdown) {
    let config = cache_node::config::Config::try_parse_from([
        "cache-node",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
        "--auth-file",
        auth_file.arg(),
        "--disable-flush-all",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let node = cache_node::server::CacheNode::bind(config).await.unwrap();
    let addr = node.local_addr();
    let (shutdown, watch) = Shutdown::new();
    tokio::spawn(node.run(watch));
    (addr, shutdown)
}

struct Proxy {
    imap: SocketAddr,
    admin: SocketAddr,
    _stop: Shutdown,
}

async fn proxy(h: &Harness, cache: SocketAddr, auth_file: &Scratch) -> Proxy {
    let lookup = format!("http://{}/service/extension/nginx-lookup", h.http);
    let cache = cache.to_string();
    let config = proxy::config::Config::try_parse_from([
        "proxy",
        "--lookup-url",
        &lookup,
        "--memcached",
        &cache,
        "--memcached-auth-file",
        auth_file.arg(),
        "--imap-listen",
        "127.0.0.1:0",
        "--imaps-listen",
        "off",
        "--pop3-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--admin-listen",
        "127.0.0.1:0",
        "--starttls",
        "off",
        "--grace-period",
        "1",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let imap = bound.local_addr(Kind::Imap).unwrap();
    let admin = bound.admin_addr().unwrap();
    let (stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));
    Proxy {
        imap,
        admin,
        _stop: stop,
    }
}

/// Logs ann in through the proxy and out again; panics unless the login succeeds.
async fn log_in(proxy: SocketAddr) {
    let mut s = BufReader::new(TcpStream::connect(proxy).await.unwrap());
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("* OK"), "{line}");
    s.get_mut()
        .write_all(b"a LOGIN ann@example.com secret\r\n")
        .await
        .unwrap();
    loop {
        line.clear();
        tokio::time::timeout(Duration::from_secs(10), s.read_line(&mut line))
            .await
            .expect("an answer to LOGIN")
            .unwrap();
        if line.starts_with("a ") {
            break;
        }
    }
    assert!(line.starts_with("a OK"), "login: {line}");
    s.get_mut().write_all(b"b LOGOUT\r\n").await.unwrap();
}

/// One sample of the proxy's /metrics, e.g. `proxy_routes_total{source="cache"}`.
async fn metric(admin: SocketAddr, sample: &str) -> u64 {
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).await.unwrap();
    page.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics"))
}

/// Sends `set`-authenticated `command` straight to the node; the first line after
/// `STORED`.
async fn on_node(node: SocketAddr, command: &str) -> String {
    let mut s = BufReader::new(TcpStream::connect(node).await.unwrap());
    s.get_mut()
        .write_all(format!("set k 0 0 13\r\nlookup l00kup\r\n{command}").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    assert_eq!(line, "STORED\r\n");
    line.clear();
    s.read_line(&mut line).await.unwrap();
    line
}

#[tokio::test]
async fn the_right_credentials_cache_routes_and_purges_reach_them() {
    let node_file = Scratch::new(NODE_ENTRIES);
    let proxy_file = Scratch::new("proxy:s3cret\n");
    let lookup_file = Scratch::new("lookup:l00kup\n");
    let h = Harness::start(&["--memcached-auth-file", lookup_file.arg()]).await;
    let stub = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "secret")
        .spawn()
        .await
        .unwrap();
    let (node, _node) = cache_node(&node_file).await;
    seed(&h, stub.addr(StubKind::Imap).port(), node).await;
    let p = proxy(&h, node, &proxy_file).await;
    let from = |source: &str| format!("proxy_routes_total{{source=\"{source}\"}}");

    log_in(p.imap).await;
    let key = route_key("imap", "ann@example.com");
    let route = on_node(node, &format!("get {}\r\n", key.wire())).await;
    assert!(
        route.starts_with("VALUE "),
        "the route is on the node: {route}"
    );
    log_in(p.imap).await;
    assert_eq!(metric(p.admin, &from("lookup")).await, 1);
    assert_eq!(
        metric(p.admin, &from("cache")).await,
        1,
        "the second login's route came from the cache"
    );
    let unauthenticated = {
        let mut s = BufReader::new(TcpStream::connect(node).await.unwrap());
        s.get_mut()
            .write_all(format!("get {}\r\n", key.wire()).as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        line
    };
    assert_eq!(unauthenticated, "CLIENT_ERROR unauthenticated\r\n");

    // route-lookup's purge authenticates too: moving ann deletes her route there.
    h.provisioning()
        .await
        .modify_account(ModifyRequest {
            name: "ann@example.com".into(),
            attrs: set_attrs(&[("zimbraMailHost", "mbx2.example.com")]),
        })
        .await
        .unwrap();
    assert_eq!(
        on_node(node, &format!("get {}\r\n", key.wire())).await,
        "END\r\n",
        "purged on the closed node"
    );
    stub.stop().await;
    h.stop().await;
}

#[tokio::test]
async fn wrong_credentials_make_the_cache_down_and_logins_go_to_route_lookup() {
    let node_file = Scratch::new(NODE_ENTRIES);
    let proxy_file = Scratch::new("proxy:guess\n");
    let h = Harness::start(&[]).await;
    let stub = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "secret")
        .spawn()
        .await
        .unwrap();
    let (node, _node) = cache_node(&node_file).await;
    seed(&h, stub.addr(StubKind::Imap).port(), node).await;
    let p = proxy(&h, node, &proxy_file).await;
    let started = Instant::now();
    for _ in 0..3 {
        log_in(p.imap).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a refusing node is ejected at once, not waited for: {:?}",
        started.elapsed()
    );
    assert_eq!(
        metric(p.admin, "proxy_routes_total{source=\"lookup\"}").await,
        3
    );
    assert_eq!(
        metric(p.admin, "proxy_routes_total{source=\"cache\"}").await,
        0
    );
    let refused = metric(
        p.admin,
        &format!("proxy_cache_auth_failures_total{{node=\"{node}\"}}"),
    )
    .await;
    assert!(refused >= 1, "the refusal is counted: {refused}");
    assert_eq!(
        on_node(
            node,
            &format!("get {}\r\n", route_key("imap", "ann@example.com").wire())
        )
        .await,
        "END\r\n",
        "nothing was cached"
    );
    stub.stop().await;
    h.stop().await;
}

#[tokio::test]
async fn a_node_silent_after_connecting_is_ejected_within_the_fetch_timeout() {
    // Accepts connections and reads them, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = silent.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    let cluster = CacheCluster::with_credentials(
        &[addr.to_string()],
        CacheConfig {
            fetch_timeout: Duration::from_millis(300),
            probe_interval: Duration::from_secs(60),
            retry_interval: Duration::from_secs(60),
            connections_per_node: 1,
        },
        Some(Credentials::new(b"proxy", b"s3cret").unwrap()),
    );
    let key = route_key("imap", "ann@example.com");
    let started = Instant::now();
    assert_eq!(cluster.get(&key).await, None);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let n = &cluster.nodes()[0];
    assert!(n.is_ejected());
    assert_eq!(
        n.stats
            .auth_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "silence is not a refusal"
    );
    assert!(
        cluster.node_for(&key).is_none(),
        "its keys have nowhere to go"
    );
}
