//! The proxy in-process, in front of a real route-lookup (PostgreSQL) and in-process
//! mailbox-stubs: a login goes through lookup, cache and login replay to the right
//! backend, also over TLS to the backend (verified against its CA, by IP address here);
//! STARTTLS injection is never executed; the client address reaches the backend.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::shutdown::Shutdown;
use mailbox_stub::server::{Kind as StubKind, MailboxStub};
use mailbox_stub::trusted::TrustedProxies;
use proto::v1::{CreateAccountRequest, CreateRequest};
use proxy::config::Config;
use proxy::server::Kind;
use proxy::session::{Forward, StartTls};
use route_lookup::testing::{set_attrs, Harness};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Client<S> {
    s: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, t: &str) {
        self.s.get_mut().write_all(t.as_bytes()).await.unwrap();
    }
    async fn line(&mut self) -> String {
        let mut l = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.s.read_line(&mut l))
            .await
            .expect("a line")
            .unwrap();
        l
    }
    async fn until(&mut self, tag: &str) -> Vec<String> {
        let mut v = Vec::new();
        loop {
            let l = self.line().await;
            assert!(!l.is_empty(), "EOF before {tag}: {v:?}");
            let done = l.starts_with(&format!("{tag} "));
            v.push(l);
            if done {
                return v;
            }
        }
    }
}

struct Proxy {
    imap: std::net::SocketAddr,
    _stop: Shutdown,
}

async fn proxy(
    h: &Harness,
    tls: Option<Arc<rustls::ServerConfig>>,
    starttls: StartTls,
    upstream: Option<Arc<rustls::ClientConfig>>,
    forward: Forward,
) -> Proxy {
    let lookup = format!("http://{}/service/extension/nginx-lookup", h.http);
    let mut config = Config::try_parse_from([
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
        "--preauth-timeout",
        "10",
        "--idle-timeout",
        "60",
        "--backend-timeout-ms",
        "5000",
        "--lookup-timeout-ms",
        "5000",
        "--grace-period",
        "1",
    ])
    .unwrap()
    .validate()
    .unwrap();
    // Certificates made in memory by the test stand in for --tls-cert/--upstream-ca files.
    config.tls = tls;
    config.starttls = starttls;
    config.upstream = upstream;
    // The backend certificates here name 127.0.0.1 (upstream_names.rs verifies by name).
    config.upstream_tls_name = proxy::login::TlsName::Ip;
    config.forward = forward;
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let imap = bound.local_addr(Kind::Imap).unwrap();
    let (stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));
    Proxy { imap, _stop: stop }
}

async fn seed(h: &Harness, imap_port: u16, imaps_port: u16) {
    let mut p = h.provisioning().await;
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    let (ip, ips) = (imap_port.to_string(), imaps_port.to_string());
    p.create_server(CreateRequest {
        name: "mbx1.example.com".into(),
        attrs: set_attrs(&[
            ("serviceAddress", "127.0.0.1"),
            ("zimbraServiceEnabled", "mailbox"),
            ("zimbraImapBindPort", &ip),
            ("zimbraImapSSLBindPort", &ips),
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

async fn login_and_fetch<S: AsyncRead + AsyncWrite + Unpin>(c: &mut Client<S>) -> Vec<String> {
    c.send("a LOGIN ann@example.com \"pa ss\"\r\n").await;
    let login = c.until("a").await;
    assert!(login.last().unwrap().starts_with("a OK"), "{login:?}");
    c.send("b SELECT INBOX\r\nc FETCH 1 BODY.PEEK[HEADER.FIELDS (X-MAILBOX-HOST)]\r\n")
        .await;
    c.until("b").await;
    c.until("c").await
}

#[tokio::test]
async fn upstream_tls_verified_against_the_backend_ca() {
    let h = Harness::start(&[]).await;
    let (cert, key) = common::tls::self_signed(&["127.0.0.1"]).unwrap();
    let stub_tls =
        common::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap();
    let stub = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "pa ss")
        .tls(stub_tls)
        .listen(vec![
            (StubKind::Imap, "127.0.0.1:0".parse().unwrap()),
            (StubKind::Imaps, "127.0.0.1:0".parse().unwrap()),
        ])
        .spawn()
        .await
        .unwrap();
    seed(
        &h,
        stub.addr(StubKind::Imap).port(),
        stub.addr(StubKind::Imaps).port(),
    )
    .await;

    // Trusting the backend's certificate: the login reaches it over TLS.
    let trusted = common::tls::client_config_from_pem(cert.as_bytes()).unwrap();
    let p = proxy(&h, None, StartTls::Off, Some(trusted), Forward::Off).await;
    let mut c = Client {
        s: BufReader::new(TcpStream::connect(p.imap).await.unwrap()),
    };
    assert!(c.line().await.starts_with("* OK"));
    let fetched = login_and_fetch(&mut c).await;
    assert!(
        fetched
            .iter()
            .any(|l| l.contains("X-Mailbox-Host: mbx1.example.com")),
        "{fetched:?}"
    );

    // Trusting another CA: the handshake fails, the client gets a clean temporary failure.
    let (other, _) = common::tls::self_signed(&["127.0.0.1"]).unwrap();
    let untrusted = common::tls::client_config_from_pem(other.as_bytes()).unwrap();
    let p = proxy(&h, None, StartTls::Off, Some(untrusted), Forward::Off).await;
    let mut c = Client {
        s: BufReader::new(TcpStream::connect(p.imap).await.unwrap()),
    };
    c.line().await;
    c.send("a LOGIN ann@example.com \"pa ss\"\r\n").await;
    assert_eq!(
        c.line().await,
        "a NO [UNAVAILABLE] Temporary failure, try again later\r\n"
    );
    stub.stop().await;
    h.stop().await;
}

#[tokio::test]
async fn starttls_injection_and_client_address() {
    let h = Harness::start(&[]).await;
    let stub = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "pa ss")
        .trusted(TrustedProxies::parse("127.0.0.1").unwrap())
        .spawn()
        .await
        .unwrap();
    seed(&h, stub.addr(StubKind::Imap).port(), 1).await;
    let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
    let server = common::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap();
    let p = proxy(&h, Some(server), StartTls::Only, None, Forward::Id).await;
    let mut c = Client {
        s: BufReader::new(TcpStream::connect(p.imap).await.unwrap()),
    };
    let greeting = c.line().await;
    assert!(
        greeting.contains("STARTTLS")
            && greeting.contains("LOGINDISABLED")
            && !greeting.contains("AUTH=PLAIN"),
        "{greeting}"
    );
    c.send("a LOGIN ann@example.com \"pa ss\"\r\n").await;
    assert_eq!(
        c.line().await,
        "a NO [PRIVACYREQUIRED] Use STARTTLS first\r\n"
    );
    c.send("b STARTTLS\r\nc LOGIN ann@example.com \"pa ss\"\r\n")
        .await;
    assert_eq!(c.line().await, "b OK Begin TLS negotiation now\r\n");
    let client_tls = common::tls::client_config_from_pem(cert.as_bytes()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_tls)
        .connect("localhost".try_into().unwrap(), c.s.into_inner())
        .await
        .unwrap();
    let mut t = Client {
        s: BufReader::new(tls),
    };
    t.send("d NOOP\r\n").await;
    assert_eq!(
        t.line().await,
        "d OK NOOP completed\r\n",
        "the injected LOGIN was discarded"
    );
    let fetched = login_and_fetch(&mut t).await;
    assert!(
        fetched
            .iter()
            .any(|l| l.contains("X-Mailbox-Host: mbx1.example.com")),
        "{fetched:?}"
    );
    // The backend saw the client's address via ID, as a trusted proxy's.
    let logins = stub.logins();
    assert_eq!(
        (logins[0].client.ip.to_string(), logins[0].client.forwarded),
        ("127.0.0.1".to_string(), true)
    );
    stub.stop().await;
    h.stop().await;
}
