//! `GET /sessions` and `POST /sessions/kick` on the admin listener: the proxy in-process in
//! front of a real route-lookup (PostgreSQL) and two in-process mailbox-stubs. Three
//! relayed sessions are listed with their fields (one over IMAPS, with the cipher suite it
//! negotiated); a kick by user ends only that user's
//! session (with `* BYE`), one by backend only those on that server; the endpoints need
//! the bearer token, and are off without one.

use std::time::Duration;

use clap::Parser;
use common::shutdown::Shutdown;
use mailbox_stub::server::{Kind as StubKind, MailboxStub};
use proto::v1::{CreateAccountRequest, CreateRequest};
use proxy::config::Config;
use proxy::server::Kind;
use route_lookup::testing::{set_attrs, Harness};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!("{method} {path} HTTP/1.0\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_string())
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

struct Session {
    s: BufReader<Box<dyn Io>>,
}

impl Session {
    async fn login(addr: std::net::SocketAddr, user: &str) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Self::login_over(Box::new(tcp), user).await
    }

    /// Over IMAPS, trusting the proxy's self-signed `cert_pem`, offering only
    /// TLS_AES_256_GCM_SHA384 (the proxy's own order puts it last).
    async fn login_tls(addr: std::net::SocketAddr, cert_pem: &str, user: &str) -> Self {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384],
            ..rustls::crypto::aws_lc_rs::default_provider()
        };
        let client = rustls::ClientConfig::builder_with_provider(provider.into())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = std::sync::Arc::new(client);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .unwrap();
        Self::login_over(Box::new(tls), user).await
    }

    async fn login_over(io: Box<dyn Io>, user: &str) -> Self {
        let mut c = Self {
            s: BufReader::new(io),
        };
        assert!(c.line().await.starts_with("* OK"));
        assert!(
            c.command("a", &format!("LOGIN {user} pw"))
                .await
                .starts_with("a OK"),
            "{user}"
        );
        c
    }
    async fn line(&mut self) -> String {
        let mut l = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.s.read_line(&mut l))
            .await
            .expect("a line or EOF within 10 s")
            .unwrap_or_default();
        l
    }
    async fn command(&mut self, tag: &str, text: &str) -> String {
        self.s
            .get_mut()
            .write_all(format!("{tag} {text}\r\n").as_bytes())
            .await
            .unwrap();
        loop {
            let l = self.line().await;
            if l.is_empty() || l.starts_with(&format!("{tag} ")) {
                return l;
            }
        }
    }
    /// The next line and then EOF: how a kicked IMAP session ends.
    async fn bye_then_eof(&mut self) -> String {
        let bye = self.line().await;
        assert_eq!(self.line().await, "", "closed after {bye:?}");
        bye
    }
}

/// A running proxy: plain IMAP (no STARTTLS), IMAPS with a self-signed certificate for
/// localhost, the admin listener.
struct Running {
    imap: std::net::SocketAddr,
    imaps: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    cert_pem: String,
    _stop: Shutdown,
}

async fn proxy(h: &Harness, token: Option<&str>) -> Running {
    let (cert_pem, key_pem) = common::tls::self_signed(&["localhost"]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "proxy-sessions-admin-{}-{}",
        std::process::id(),
        token.unwrap_or("none")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    let lookup = format!("http://{}/service/extension/nginx-lookup", h.http);
    let mut args = vec![
        "proxy",
        "--lookup-url",
        &lookup,
        "--imap-listen",
        "127.0.0.1:0",
        "--imaps-listen",
        "127.0.0.1:0",
        "--pop3-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--admin-listen",
        "127.0.0.1:0",
        "--starttls",
        "off",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--grace-period",
        "1",
    ];
    if let Some(t) = token {
        args.extend_from_slice(&["--admin-token", t]);
    }
    let config = Config::try_parse_from(args).unwrap().validate().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let (imap, imaps, admin) = (
        bound.local_addr(Kind::Imap).unwrap(),
        bound.local_addr(Kind::Imaps).unwrap(),
        bound.admin_addr().unwrap(),
    );
    let (stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));
    Running {
        imap,
        imaps,
        admin,
        cert_pem,
        _stop: stop,
    }
}

#[tokio::test]
async fn sessions_are_listed_and_kicked_by_user_and_by_backend() {
    let h = Harness::start(&[]).await;
    let mbx1 = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "pw")
        .user("bob@example.com", "pw")
        .spawn()
        .await
        .unwrap();
    let mbx2 = MailboxStub::builder("mbx2.example.com")
        .user("carl@example.com", "pw")
        .spawn()
        .await
        .unwrap();
    let mut p = h.provisioning().await;
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    for (name, stub) in [("mbx1.example.com", &mbx1), ("mbx2.example.com", &mbx2)] {
        p.create_server(CreateRequest {
            name: name.into(),
            attrs: set_attrs(&[
                ("zimbraServiceEnabled", "mailbox"),
                ("serviceAddress", "127.0.0.1"),
                (
                    "zimbraImapBindPort",
                    &stub.addr(StubKind::Imap).port().to_string(),
                ),
            ]),
        })
        .await
        .unwrap();
    }
    for (name, host) in [("ann", "mbx1"), ("bob", "mbx1"), ("carl", "mbx2")] {
        p.create_account(CreateAccountRequest {
            name: format!("{name}@example.com"),
            password: "pw".into(),
            attrs: set_attrs(&[("zimbraMailHost", &format!("{host}.example.com"))]),
        })
        .await
        .unwrap();
    }
    let running = proxy(&h, Some("s3cret")).await;
    let (imap, admin) = (running.imap, running.admin);
    let mut ann = Session::login(imap, "ann@example.com").await;
    let mut bob = Session::login(imap, "bob@example.com").await;
    let mut carl = Session::login_tls(running.imaps, &running.cert_pem, "carl@example.com").await;
    assert!(ann.command("b", "SELECT INBOX").await.starts_with("b OK"));

    assert_eq!(http(admin, "GET", "/sessions", None).await.0, 401);
    assert_eq!(http(admin, "GET", "/sessions", Some("wrong")).await.0, 401);
    let (status, body) = http(admin, "GET", "/sessions", Some("s3cret")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("\"id\":").count(), 3, "{body}");
    let mbx1_addr = mbx1.addr(StubKind::Imap);
    for user in ["ann", "bob", "carl"] {
        assert!(
            body.contains(&format!("\"user\":\"{user}@example.com\"")),
            "{body}"
        );
    }
    assert!(
        body.contains(&format!("\"backend\":\"{mbx1_addr}\"")),
        "{body}"
    );
    assert!(
        body.contains("\"listener\":\"imap\",") && body.contains("\"tls\":false"),
        "{body}"
    );
    assert!(body.contains("\"client\":\"127.0.0.1:"), "{body}");
    let ann_line = body
        .lines()
        .find(|l| l.contains("ann@example.com"))
        .unwrap();
    assert!(
        ann_line.contains("\"tls\":false,\"tls_cipher\":null,"),
        "{ann_line}"
    );
    // carl came over IMAPS offering only AES-256-GCM: the suite negotiated is listed, not
    // the first the proxy offers.
    let carl_line = body
        .lines()
        .find(|l| l.contains("carl@example.com"))
        .unwrap();
    assert!(
        carl_line.contains(&format!(
            "\"listener\":\"imaps\",\"backend\":\"{}\",\"tls\":true,\"tls_cipher\":\"TLS_AES_256_GCM_SHA384\",",
            mbx2.addr(StubKind::Imap)
        )),
        "{carl_line}"
    );
    assert!(
        !ann_line.contains("\"bytes_up\":0,") && !ann_line.ends_with("\"bytes_down\":0},"),
        "ann's SELECT was relayed and counted live: {ann_line}"
    );

    // By user: only ann's session ends, told why.
    let (status, body) = http(
        admin,
        "POST",
        "/sessions/kick?user=ann@example.com",
        Some("s3cret"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "{\"kicked\":1}\n"));
    assert_eq!(
        ann.bye_then_eof().await,
        "* BYE Session ended by the administrator\r\n"
    );
    assert!(bob.command("c", "NOOP").await.starts_with("c OK"));
    assert!(carl.command("c", "NOOP").await.starts_with("c OK"));

    // By backend: carl's server only.
    let path = format!("/sessions/kick?backend={}", mbx2.addr(StubKind::Imap));
    assert_eq!(
        http(admin, "POST", &path, Some("s3cret")).await.1,
        "{\"kicked\":1}\n"
    );
    assert!(carl.bye_then_eof().await.starts_with("* BYE"));
    assert!(bob.command("d", "NOOP").await.starts_with("d OK"));
    let (_, body) = http(admin, "GET", "/sessions", Some("s3cret")).await;
    assert_eq!(body.matches("\"id\":").count(), 1, "{body}");
    assert_eq!(
        http(admin, "POST", "/sessions/kick?user=", Some("s3cret"))
            .await
            .0,
        400
    );

    // Without --admin-token the endpoints are off, and say how to turn them on.
    let admin_off = proxy(&h, None).await;
    let (status, body) = http(admin_off.admin, "GET", "/sessions", Some("anything")).await;
    assert_eq!(status, 403);
    assert!(body.contains("--admin-token"), "{body}");
    h.stop().await;
}
