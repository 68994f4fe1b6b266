//! Upstream TLS verified by host name (`--upstream-tls-name host`, the default), against a
//! real route-lookup (PostgreSQL) and an in-process mailbox-stub whose certificate names
//! only its DNS name: the login gets through by the name route-lookup's Auth-Server-Name
//! carries, and `--upstream-tls-name ip` refuses the same certificate. Then the route cache:
//! a cached route (Zimbra's `ip:port`, no name) is used once its name is known, and is
//! looked up again while it is not.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::shutdown::Shutdown;
use mailbox_stub::server::{Kind as StubKind, MailboxStub};
use proto::v1::{CreateAccountRequest, CreateRequest};
use proxy::cache::{CacheCluster, CacheConfig};
use proxy::login::{Decision, Login};
use proxy::lookup::{LookupClient, LookupConfig};
use proxy::route::Router;
use proxy::server::Kind;
use route_lookup::testing::{set_attrs, Harness};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// example.com; mbx1.example.com at 127.0.0.1 with `imaps_port`; ann on mbx1.
async fn seed(h: &Harness, imaps_port: u16) {
    let mut p = h.provisioning().await;
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    p.create_server(CreateRequest {
        name: "mbx1.example.com".into(),
        attrs: set_attrs(&[
            ("serviceAddress", "127.0.0.1"),
            ("zimbraServiceEnabled", "mailbox"),
            ("zimbraImapSSLBindPort", &imaps_port.to_string()),
        ]),
    })
    .await
    .unwrap();
    p.create_account(CreateAccountRequest {
        name: "ann@example.com".into(),
        password: "x".into(),
        attrs: set_attrs(&[("zimbraMailHost", "mbx1.example.com")]),
    })
    .await
    .unwrap();
}

/// The CA file given to --upstream-ca, removed on drop.
struct CaFile(PathBuf);

impl CaFile {
    fn new(pem: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("proxy-upstream-ca-{}.pem", std::process::id()));
        std::fs::write(&path, pem).unwrap();
        Self(path)
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A proxy with upstream TLS trusting `ca`, plus `extra` flags; its IMAP address.
async fn proxy(h: &Harness, ca: &CaFile, extra: &[&str]) -> (SocketAddr, Shutdown) {
    let lookup = format!("http://{}/service/extension/nginx-lookup", h.http);
    let mut args = vec![
        "proxy",
        "--lookup-url",
        &lookup,
        "--imap-listen",
        "127.0.0.1:0",
        "--imaps-listen",
        "off",
        "--pop3-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--admin-listen",
        "off",
        "--starttls",
        "off",
        "--backend-timeout-ms",
        "5000",
        "--lookup-timeout-ms",
        "5000",
        "--grace-period",
        "1",
        "--upstream-tls",
        "--upstream-ca",
        ca.0.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let config = proxy::config::Config::try_parse_from(args)
        .unwrap()
        .validate()
        .unwrap();
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let imap = bound.local_addr(Kind::Imap).unwrap();
    let (stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));
    (imap, stop)
}

/// Logs in as ann through the proxy at `imap`; the tagged answer.
async fn login(imap: SocketAddr) -> String {
    let mut s = BufReader::new(TcpStream::connect(imap).await.unwrap());
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("* OK"), "{line}");
    s.get_mut()
        .write_all(b"a LOGIN ann@example.com \"pa ss\"\r\n")
        .await
        .unwrap();
    loop {
        line.clear();
        tokio::time::timeout(Duration::from_secs(10), s.read_line(&mut line))
            .await
            .expect("an answer")
            .unwrap();
        if line.starts_with("a ") || line.is_empty() {
            return line;
        }
    }
}

#[tokio::test]
async fn a_certificate_naming_only_the_host_is_verified_by_name() {
    let h = Harness::start(&[]).await;
    let (cert, key) = common::tls::self_signed(&["mbx1.example.com"]).unwrap();
    let stub = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "pa ss")
        .tls(common::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap())
        .listen(vec![(StubKind::Imaps, "127.0.0.1:0".parse().unwrap())])
        .spawn()
        .await
        .unwrap();
    seed(&h, stub.addr(StubKind::Imaps).port()).await;
    let ca = CaFile::new(&cert);

    // By host name (the default): route-lookup's Auth-Server-Name is what is verified.
    let (imap, _by_host) = proxy(&h, &ca, &[]).await;
    let answer = login(imap).await;
    assert!(answer.starts_with("a OK"), "{answer}");
    assert_eq!(
        stub.logins().len(),
        1,
        "the login reached the stub over TLS"
    );

    // By IP: the certificate does not name 127.0.0.1, so the handshake is refused.
    let (imap, _by_ip) = proxy(&h, &ca, &["--upstream-tls-name", "ip"]).await;
    assert_eq!(
        login(imap).await,
        "a NO [UNAVAILABLE] Temporary failure, try again later\r\n"
    );
    assert_eq!(stub.logins().len(), 1, "nothing reached the stub");
    stub.stop().await;
    h.stop().await;
}

#[tokio::test]
async fn a_cached_route_is_used_once_its_name_is_known() {
    let h = Harness::start(&[]).await;
    seed(&h, 17993).await;
    let config = cache_node::config::Config::try_parse_from([
        "cache-node",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let node = cache_node::server::CacheNode::bind(config).await.unwrap();
    let node_addr = node.local_addr().to_string();
    let (_node_stop, node_watch) = Shutdown::new();
    tokio::spawn(node.run(node_watch));
    let cache = Arc::new(CacheCluster::new(&[node_addr], CacheConfig::default()));
    let lookup = || {
        Arc::new(LookupClient::new(LookupConfig {
            urls: vec![format!("http://{}/service/extension/nginx-lookup", h.http)
                .parse()
                .unwrap()],
            secret: None,
            timeout: Duration::from_secs(5),
            retry_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(10),
            retry_budget: Duration::ZERO,
            tls: None,
        }))
    };
    // A fresh router is what a proxy has after a restart: the cache remembers routes, the
    // router no names.
    let router = |names| Router::new(Some(cache.clone()), lookup(), 3600).with_names(names);
    let login = Login {
        user: "ann@example.com",
        pass: b"x",
        method: "plain",
        protocol: "imapssl",
        attempt: 1,
        client_ip: "192.0.2.7".parse().unwrap(),
        proxy_ip: "127.0.0.1".parse().unwrap(),
    };
    let route = |d: Decision| match d {
        Decision::Route(r) => (r.cached, r.server_name),
        other => panic!("{other:?}"),
    };
    let name = Some("mbx1.example.com".to_string());

    let first = router(true);
    assert_eq!(route(first.route(&login).await), (false, name.clone()));
    assert_eq!(route(first.route(&login).await), (true, name.clone()));

    let restarted = router(true);
    assert_eq!(
        route(restarted.route(&login).await),
        (false, name.clone()),
        "a cached route without a known name is looked up"
    );
    assert_eq!(
        route(restarted.route(&login).await),
        (true, name.clone()),
        "and then served from the cache, named"
    );

    let by_ip = router(false);
    assert_eq!(
        route(by_ip.route(&login).await),
        (true, None),
        "without names needed the cached route serves as it is"
    );
    h.stop().await;
}
