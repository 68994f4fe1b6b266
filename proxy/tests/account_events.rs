//! Account events end relayed sessions: the proxy in-process with `--directory`, in front
//! of a real route-lookup (PostgreSQL) and an in-process mailbox-stub. A session of an
//! account that moves to another mailbox server, or is locked, is closed within seconds;
//! another account's session goes on; the account logs in again afterwards, to wherever
//! it now lives.

use std::time::Duration;

use clap::Parser;
use common::shutdown::Shutdown;
use mailbox_stub::server::{Kind as StubKind, MailboxStub};
use proto::v1::{CreateAccountRequest, CreateRequest, ModifyRequest};
use proxy::config::Config;
use proxy::server::Kind;
use route_lookup::testing::{set_attrs, Harness, TOKEN};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Client {
    s: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let mut c = Self {
            s: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        };
        assert!(c.line().await.starts_with("* OK"));
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
    /// Whether the proxy closes the connection within `limit` (NOOPs keep asking).
    async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let _ = self.s.get_mut().write_all(b"n NOOP\r\n").await;
            let mut l = String::new();
            match tokio::time::timeout(Duration::from_millis(300), self.s.read_line(&mut l)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                _ => {}
            }
        }
        false
    }
}

#[tokio::test]
async fn a_moved_or_locked_accounts_sessions_are_ended() {
    let h = Harness::start(&[]).await;
    let mbx1 = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "pw")
        .user("bob@example.com", "pw")
        .spawn()
        .await
        .unwrap();
    let mbx2 = MailboxStub::builder("mbx2.example.com")
        .user("ann@example.com", "pw")
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
    for name in ["ann@example.com", "bob@example.com"] {
        p.create_account(CreateAccountRequest {
            name: name.into(),
            password: "pw".into(),
            attrs: set_attrs(&[("zimbraMailHost", "mbx1.example.com")]),
        })
        .await
        .unwrap();
    }

    let lookup = format!("http://{}/service/extension/nginx-lookup", h.http);
    let grpc = h.grpc_url();
    let config = Config::try_parse_from([
        "proxy",
        "--lookup-url",
        &lookup,
        "--directory",
        &grpc,
        "--admin-token",
        TOKEN,
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
        "--grace-period",
        "1",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let imap = bound.local_addr(Kind::Imap).unwrap();
    let (_stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));

    // The proxy learns the mailbox servers from the membership watch first.
    let mut ann = None;
    for _ in 0..50 {
        let mut c = Client::connect(imap).await;
        if c.command("a", "LOGIN ann@example.com pw")
            .await
            .starts_with("a OK")
        {
            ann = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ann = ann.expect("ann logs in through the proxy");
    assert!(ann.command("b", "SELECT INBOX").await.starts_with("b OK"));
    let mut bob = Client::connect(imap).await;
    assert!(bob
        .command("a", "LOGIN bob@example.com pw")
        .await
        .starts_with("a OK"));

    // ann moves to mbx2: her session ends, bob's goes on.
    p.modify_account(ModifyRequest {
        name: "ann@example.com".into(),
        attrs: set_attrs(&[("zimbraMailHost", "mbx2.example.com")]),
    })
    .await
    .unwrap();
    assert!(
        ann.closed_within(Duration::from_secs(5)).await,
        "ann's session was closed after her move"
    );
    assert!(bob.command("c", "NOOP").await.starts_with("c OK"));

    // She logs in again, now on mbx2.
    let mut again = Client::connect(imap).await;
    assert!(again
        .command("a", "LOGIN ann@example.com pw")
        .await
        .starts_with("a OK"));
    assert_eq!(mbx2.logins().len(), 1, "the new session went to mbx2");

    // bob is locked: his session ends too.
    p.modify_account(ModifyRequest {
        name: "bob@example.com".into(),
        attrs: set_attrs(&[("zimbraAccountStatus", "locked")]),
    })
    .await
    .unwrap();
    assert!(
        bob.closed_within(Duration::from_secs(5)).await,
        "bob's session was closed after he was locked"
    );
    assert!(again.command("d", "NOOP").await.starts_with("d OK"));

    // zmprov kickUser ann: her session ends, told why; nothing else changes for her.
    p.kick_user(proto::v1::NameRequest {
        name: "ann@example.com".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        again.line().await,
        "* BYE Session ended by the administrator\r\n"
    );
    assert_eq!(again.line().await, "", "closed after the BYE");
    let mut back = Client::connect(imap).await;
    assert!(back
        .command("a", "LOGIN ann@example.com pw")
        .await
        .starts_with("a OK"));
    h.stop().await;
}
