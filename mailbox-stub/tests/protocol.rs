//! mailbox-stub at the byte level, in-process through the builder: greetings, STARTTLS /
//! STLS with the plaintext buffer discarded, client-address forwarding (IMAP ID, POP3
//! XCLIENT/XOIP, PROXY v1/v2 headers) honoured only from trusted peers, limits (line,
//! literal, bad-command cap, pre-auth timeout), and the fault switches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailbox_stub::env::{Faults, Timeouts};
use mailbox_stub::server::{Handle, Kind, MailboxStub};
use mailbox_stub::trusted::TrustedProxies;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A scripted client over any stream.
struct Client<S> {
    s: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, text: &str) {
        self.s.get_mut().write_all(text.as_bytes()).await.unwrap();
    }

    /// One line, or "" at EOF.
    async fn line(&mut self) -> String {
        let mut l = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.s.read_line(&mut l))
            .await
            .expect("a line within 5 s")
            .unwrap();
        l
    }

    /// Lines up to and including the one starting with `tag `.
    async fn until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            assert!(!l.is_empty(), "EOF before {tag}: {lines:?}");
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    async fn eof(&mut self) -> bool {
        self.line().await.is_empty()
    }
}

async fn connect(addr: SocketAddr) -> Client<TcpStream> {
    Client {
        s: BufReader::new(TcpStream::connect(addr).await.unwrap()),
    }
}

fn tls() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
    let server = common::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap();
    let client = common::tls::client_config_from_pem(cert.as_bytes()).unwrap();
    (server, client)
}

async fn stub(
    f: impl FnOnce(mailbox_stub::server::Builder) -> mailbox_stub::server::Builder,
) -> Handle {
    let b = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "secret")
        .foreign_user("bob@example.com", "secret", "mbx2.example.com");
    f(b).spawn().await.unwrap()
}

#[tokio::test]
async fn greetings_name_the_host() {
    let h = stub(|b| b).await;
    let mut c = connect(h.addr(Kind::Imap)).await;
    let g = c.line().await;
    assert!(g.starts_with("* OK [CAPABILITY IMAP4rev1 "), "{g}");
    assert!(g.ends_with("] mbx1.example.com IMAP4rev1 ready\r\n"), "{g}");
    assert!(!g.contains("STARTTLS"), "no certificate, no STARTTLS: {g}");
    let mut p = connect(h.addr(Kind::Pop3)).await;
    assert_eq!(p.line().await, "+OK mbx1.example.com POP3 ready\r\n");
    h.stop().await;
}

#[tokio::test]
async fn starttls_discards_plaintext_sent_before_the_handshake() {
    let (server, client) = tls();
    let h = stub(|b| b.tls(server)).await;
    let mut c = connect(h.addr(Kind::Imap)).await;
    assert!(c.line().await.contains("STARTTLS"));
    // The injection: a command pipelined behind STARTTLS in the same plaintext write.
    c.send("a STARTTLS\r\nb LOGIN ann@example.com secret\r\n")
        .await;
    assert_eq!(c.line().await, "a OK Begin TLS negotiation now\r\n");
    let tcp = c.s.into_inner();
    let connector = tokio_rustls::TlsConnector::from(client.clone());
    let tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut t = Client {
        s: BufReader::new(tls),
    };
    t.send("c CAPABILITY\r\n").await;
    let lines = t.until("c").await;
    assert_eq!(
        lines.len(),
        2,
        "the injected LOGIN was never executed: {lines:?}"
    );
    assert!(!lines[0].contains("STARTTLS") && lines[0].contains("AUTH=PLAIN"));
    t.send("d LOGIN ann@example.com secret\r\n").await;
    assert!(t.until("d").await.last().unwrap().starts_with("d OK"));

    // POP3: the same for STLS.
    let mut p = connect(h.addr(Kind::Pop3)).await;
    p.line().await;
    p.send("STLS\r\nUSER ann@example.com\r\n").await;
    assert_eq!(p.line().await, "+OK Begin TLS negotiation\r\n");
    let connector = tokio_rustls::TlsConnector::from(client);
    let tls = connector
        .connect("localhost".try_into().unwrap(), p.s.into_inner())
        .await
        .unwrap();
    let mut t = Client {
        s: BufReader::new(tls),
    };
    t.send("PASS secret\r\n").await;
    assert_eq!(
        t.line().await,
        "-ERR USER first\r\n",
        "the plaintext USER was discarded"
    );
    h.stop().await;
}

#[tokio::test]
async fn logins_and_refusals() {
    let h = stub(|b| b).await;
    let mut c = connect(h.addr(Kind::Imap)).await;
    c.line().await;
    for (cmd, expect) in [
        ("a LOGIN ann@example.com wrong\r\n", "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"),
        ("b LOGIN nobody@example.com secret\r\n", "b NO [AUTHENTICATIONFAILED] Authentication failed\r\n"),
        (
            "c LOGIN bob@example.com secret\r\n",
            "c NO [AUTHENTICATIONFAILED] Account bob@example.com is not on mbx1.example.com (its mail host is mbx2.example.com)\r\n",
        ),
        ("d SELECT INBOX\r\n", "d BAD Log in first\r\n"),
        ("e AUTHENTICATE PLAIN AGFubkBleGFtcGxlLmNvbQBzZWNyZXQ=\r\n", "e OK "),
    ] {
        c.send(cmd).await;
        let last = c.until(&cmd[..1]).await.pop().unwrap();
        assert!(last.starts_with(expect), "{cmd:?} → {last:?}");
    }
    // A synchronizing literal gets its continuation; LITERAL+ does not wait.
    let mut c = connect(h.addr(Kind::Imap)).await;
    c.line().await;
    c.send("a LOGIN {15}\r\n").await;
    assert!(c.line().await.starts_with("+ "));
    c.send("ann@example.com {6+}\r\nsecret\r\n").await;
    assert!(c
        .until("a")
        .await
        .last()
        .unwrap()
        .starts_with("a OK [CAPABILITY"));
    h.stop().await;
}

#[tokio::test]
async fn client_address_forwarding_only_from_trusted_peers() {
    // 127.0.0.1 is trusted: ID x-originating-ip is accepted (logged), the session goes on.
    let trusted = stub(|b| b.trusted(TrustedProxies::parse("127.0.0.0/8").unwrap())).await;
    let mut c = connect(trusted.addr(Kind::Imap)).await;
    c.line().await;
    c.send("a ID (\"x-originating-ip\" \"192.0.2.7\" \"name\" \"proxy\")\r\n")
        .await;
    let lines = c.until("a").await;
    assert!(
        lines[0].starts_with("* ID (\"name\" \"mailbox-stub\""),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("a OK"));
    let mut p = connect(trusted.addr(Kind::Pop3)).await;
    p.line().await;
    c.send("b LOGIN ann@example.com secret\r\n").await;
    c.until("b").await;
    p.send("XCLIENT ADDR=192.0.2.8 PORT=51000\r\nUSER ann@example.com\r\nPASS secret\r\n")
        .await;
    assert_eq!(p.line().await, "+OK\r\n");
    p.line().await;
    assert!(p.line().await.starts_with("+OK Logged in"));
    let mut x = connect(trusted.addr(Kind::Pop3)).await;
    x.line().await;
    x.send("XOIP 192.0.2.9\r\nUSER ann@example.com\r\nPASS secret\r\n")
        .await;
    for _ in 0..3 {
        assert!(x.line().await.starts_with("+OK"));
    }
    let clients: Vec<String> = trusted
        .logins()
        .iter()
        .map(|l| format!("{} {} {}", l.protocol, l.client.ip, l.client.forwarded))
        .collect();
    assert_eq!(
        clients,
        [
            "imap 192.0.2.7 true",
            "pop3 192.0.2.8 true",
            "pop3 192.0.2.9 true"
        ]
    );
    trusted.stop().await;

    // Untrusted: POP3 forwarding is refused outright.
    let untrusted = stub(|b| b.trusted(TrustedProxies::parse("10.0.0.0/8").unwrap())).await;
    let mut p = connect(untrusted.addr(Kind::Pop3)).await;
    p.line().await;
    p.send("XCLIENT ADDR=192.0.2.7\r\n").await;
    assert_eq!(
        p.line().await,
        "-ERR [AUTH] Not allowed from this address\r\n"
    );
    // IMAP ID from an untrusted peer is answered but its address ignored.
    let mut c = connect(untrusted.addr(Kind::Imap)).await;
    c.line().await;
    c.send("a ID (\"x-originating-ip\" \"192.0.2.7\")\r\nb LOGIN ann@example.com secret\r\n")
        .await;
    c.until("b").await;
    let logins = untrusted.logins();
    assert_eq!(
        (logins[0].client.ip.to_string(), logins[0].client.forwarded),
        ("127.0.0.1".to_string(), false)
    );
    untrusted.stop().await;
}

#[tokio::test]
async fn proxy_headers_are_required_from_trusted_peers() {
    let h = stub(|b| {
        b.trusted(TrustedProxies::parse("127.0.0.1").unwrap())
            .proxy_protocol(true)
    })
    .await;
    // v1, with a command pipelined right behind the header.
    let mut c = connect(h.addr(Kind::Imap)).await;
    c.send(
        "PROXY TCP4 192.0.2.7 127.0.0.1 51000 143\r\na NOOP\r\nb LOGIN ann@example.com secret\r\n",
    )
    .await;
    assert!(c.line().await.starts_with("* OK"));
    assert_eq!(c.line().await, "a OK NOOP completed\r\n");
    assert!(c.until("b").await.last().unwrap().starts_with("b OK"));
    assert_eq!(h.logins()[0].client.ip.to_string(), "192.0.2.7");
    // v2.
    let mut header = Vec::new();
    codec::proxy_protocol::encode_v2(
        &mut header,
        "192.0.2.7:51000".parse().unwrap(),
        "127.0.0.1:110".parse().unwrap(),
    );
    let mut p = connect(h.addr(Kind::Pop3)).await;
    p.s.get_mut().write_all(&header).await.unwrap();
    assert!(p.line().await.starts_with("+OK"));
    // A trusted peer that sends no header is dropped rather than trusted blindly.
    let mut bare = connect(h.addr(Kind::Imap)).await;
    bare.send("a LOGIN ann@example.com secret\r\n").await;
    assert!(bare.eof().await);
    h.stop().await;
}

#[tokio::test]
async fn limits_and_bad_commands() {
    let h = stub(|b| {
        b.max_bad_commands(3).timeouts(Timeouts {
            preauth: Duration::from_secs(1),
            idle: Duration::from_secs(60),
            handshake: Duration::from_secs(5),
        })
    })
    .await;
    let mut c = connect(h.addr(Kind::Imap)).await;
    c.line().await;
    c.send("a FROBNICATE\r\n").await;
    assert_eq!(c.line().await, "a BAD Unknown command or wrong state\r\n");
    c.send(&format!("b NOOP {}\r\n", "x".repeat(9000))).await;
    assert_eq!(c.line().await, "b BAD line too long\r\n");
    c.send("c LOGIN {99999999999}\r\n").await;
    assert_eq!(c.line().await, "c BAD literal too big\r\n");
    assert_eq!(c.line().await, "* BYE Too many invalid commands\r\n");
    assert!(c.eof().await);
    // The pre-auth timeout closes a silent connection with BYE.
    let mut c = connect(h.addr(Kind::Imap)).await;
    c.line().await;
    let started = std::time::Instant::now();
    assert_eq!(c.line().await, "* BYE Autologout; idle for too long\r\n");
    assert!(started.elapsed() < Duration::from_secs(4));
    let mut p = connect(h.addr(Kind::Pop3)).await;
    p.line().await;
    p.send("FOO\r\nBAR\r\nBAZ\r\n").await;
    for _ in 0..3 {
        assert!(p.line().await.starts_with("-ERR"));
    }
    assert_eq!(
        p.line().await,
        "-ERR Too many invalid commands, closing connection\r\n"
    );
    assert!(p.eof().await);
    h.stop().await;
}

#[tokio::test]
async fn fault_switches() {
    let h = stub(|b| b).await;
    h.set_faults(Faults {
        refuse_logins: true,
        ..Faults::default()
    });
    let mut c = connect(h.addr(Kind::Imap)).await;
    c.line().await;
    c.send("a LOGIN ann@example.com secret\r\n").await;
    assert_eq!(
        c.line().await,
        "a NO [UNAVAILABLE] Logins are refused right now\r\n"
    );

    h.set_faults(Faults {
        drop_after_login: true,
        ..Faults::default()
    });
    let mut c = connect(h.addr(Kind::Imap)).await;
    c.line().await;
    c.send("a LOGIN ann@example.com secret\r\n").await;
    assert!(c.line().await.starts_with("a OK"));
    assert!(c.eof().await);

    h.set_faults(Faults {
        greeting_delay: Some(Duration::from_millis(600)),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let mut p = connect(h.addr(Kind::Pop3)).await;
    assert!(p.line().await.starts_with("+OK"));
    assert!(started.elapsed() >= Duration::from_millis(600));

    h.set_faults(Faults {
        stall: true,
        ..Faults::default()
    });
    let mut s = connect(h.addr(Kind::Imap)).await;
    let silent = tokio::time::timeout(
        Duration::from_millis(500),
        s.s.read_line(&mut String::new()),
    )
    .await;
    assert!(silent.is_err(), "a stalled server says nothing");
    h.stop().await;
}

#[tokio::test]
async fn shutdown_says_bye() {
    let h = stub(|b| b).await;
    let mut c = connect(h.addr(Kind::Imap)).await;
    c.line().await;
    let mut p = connect(h.addr(Kind::Pop3)).await;
    p.line().await;
    h.stop().await;
    assert_eq!(c.line().await, "* BYE Server shutting down\r\n");
    assert_eq!(p.line().await, "-ERR Server shutting down\r\n");
}
