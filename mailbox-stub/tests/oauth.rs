//! XOAUTH2 and OAUTHBEARER (RFC 7628) at the byte level against a token endpoint on a
//! local port: offered only with an introspection endpoint; IMAP AUTHENTICATE with and
//! without SASL-IR and POP3 AUTH log in with an active token of the SASL user; a token of
//! another user, an inactive one or an unknown account get the error challenge, whose
//! answer is read before NO / -ERR; malformed responses get BAD / -ERR; an endpoint that
//! is down is "try again later"; tokens of several KiB fit on the command line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::oauth_introspection::testing::{Reply, TokenEndpoint};
use common::oauth_introspection::{IntrospectionConfig, Introspector};
use mailbox_stub::server::{Handle, Kind, MailboxStub};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ANN_TOKEN: &str = "ya29.ann-token";
const BOB_TOKEN: &str = "ya29.bob-token";

struct Client {
    s: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let mut c = Self {
            s: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        };
        c.line().await; // the greeting
        c
    }

    async fn send(&mut self, text: &str) {
        self.s.get_mut().write_all(text.as_bytes()).await.unwrap();
    }

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

    /// The last line of `tag`'s answer.
    async fn result(&mut self, tag: &str) -> String {
        self.until(tag).await.pop().unwrap()
    }
}

/// Standard base64 with padding (the tests' only use of it).
fn b64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn xoauth2(user: &str, token: &str) -> String {
    b64(format!("user={user}\x01auth=Bearer {token}\x01\x01").as_bytes())
}

fn oauthbearer(user: &str, token: &str) -> String {
    b64(format!("n,a={user},\x01host=mbx1\x01auth=Bearer {token}\x01\x01").as_bytes())
}

fn challenge_line() -> String {
    format!("+ {}\r\n", codec::sasl::oauth_error_challenge())
}

async fn endpoint() -> TokenEndpoint {
    let e = TokenEndpoint::start().await;
    e.token(ANN_TOKEN, Reply::active("ann@example.com"));
    e.token(BOB_TOKEN, Reply::active("bob@example.com"));
    e
}

fn introspector(url: &str) -> Arc<Introspector> {
    let mut config = IntrospectionConfig::new(url.parse().unwrap());
    config.timeout = Duration::from_millis(500);
    Arc::new(Introspector::new(config).unwrap())
}

async fn stub(oauth: Option<Arc<Introspector>>) -> Handle {
    let mut b = MailboxStub::builder("mbx1.example.com")
        .user("ann@example.com", "secret")
        .user("cid@example.com", "secret")
        .foreign_user("bob@example.com", "secret", "mbx2.example.com");
    if let Some(i) = oauth {
        b = b.oauth(i);
    }
    b.spawn().await.unwrap()
}

#[tokio::test]
async fn the_mechanisms_are_offered_only_with_an_endpoint() {
    let plain = stub(None).await;
    let e = endpoint().await;
    let oauth = stub(Some(introspector(&e.url()))).await;
    for (h, offered) in [(&plain, false), (&oauth, true)] {
        let mut c = Client {
            s: BufReader::new(TcpStream::connect(h.addr(Kind::Imap)).await.unwrap()),
        };
        let greeting = c.line().await;
        c.send("a CAPABILITY\r\n").await;
        let caps = c.until("a").await.remove(0);
        for line in [&greeting, &caps] {
            assert!(line.contains("AUTH=PLAIN"), "{line}");
            assert_eq!(
                line.contains(" AUTH=XOAUTH2 AUTH=OAUTHBEARER"),
                offered,
                "{line}"
            );
        }
        c.send(&format!(
            "b AUTHENTICATE XOAUTH2 {}\r\n",
            xoauth2("ann@example.com", ANN_TOKEN)
        ))
        .await;
        let r = c.result("b").await;
        assert_eq!(r.starts_with("b OK"), offered, "{r}");
        if !offered {
            assert_eq!(r, "b NO Unsupported authentication mechanism\r\n");
        }

        let mut p = Client::connect(h.addr(Kind::Pop3)).await;
        p.send("CAPA\r\n").await;
        let mut capa = Vec::new();
        loop {
            let l = p.line().await;
            if l == ".\r\n" {
                break;
            }
            capa.push(l);
        }
        let sasl = if offered {
            "SASL PLAIN XOAUTH2 OAUTHBEARER\r\n"
        } else {
            "SASL PLAIN\r\n"
        };
        assert!(capa.iter().any(|l| l == sasl), "{capa:?}");
        p.send("AUTH\r\n").await;
        let mut listed = Vec::new();
        loop {
            let l = p.line().await;
            if l == ".\r\n" {
                break;
            }
            listed.push(l);
        }
        assert_eq!(
            listed.iter().any(|l| l == "XOAUTH2\r\n"),
            offered,
            "{listed:?}"
        );
        if !offered {
            p.send(&format!(
                "AUTH XOAUTH2 {}\r\n",
                xoauth2("ann@example.com", ANN_TOKEN)
            ))
            .await;
            assert_eq!(p.line().await, "-ERR Unsupported mechanism\r\n");
        }
    }
    assert_eq!(e.calls(), 1, "only the stub that offers OAuth asked");
    plain.stop().await;
    oauth.stop().await;
}

#[tokio::test]
async fn imap_logs_in_with_the_users_active_token() {
    let e = endpoint().await;
    let h = stub(Some(introspector(&e.url()))).await;
    let mut c = Client::connect(h.addr(Kind::Imap)).await;

    // SASL-IR.
    c.send(&format!(
        "a AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", ANN_TOKEN)
    ))
    .await;
    let r = c.result("a").await;
    assert!(r.starts_with("a OK [CAPABILITY "), "{r}");
    c.send("b SELECT INBOX\r\nc LOGOUT\r\n").await;
    assert!(c.result("b").await.starts_with("b OK"));

    // Without SASL-IR: an empty continuation, then the response.
    let mut c = Client::connect(h.addr(Kind::Imap)).await;
    c.send("a AUTHENTICATE XOAUTH2\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send(&format!("{}\r\n", xoauth2("ann@example.com", ANN_TOKEN)))
        .await;
    assert!(c.result("a").await.starts_with("a OK"));

    // OAUTHBEARER, the user in another case than the token names it.
    let mut c = Client::connect(h.addr(Kind::Imap)).await;
    c.send(&format!(
        "a AUTHENTICATE OAUTHBEARER {}\r\n",
        oauthbearer("Ann@Example.com", ANN_TOKEN)
    ))
    .await;
    assert!(c.result("a").await.starts_with("a OK"));

    let logins = h.logins();
    assert_eq!(logins.len(), 3, "{logins:?}");
    assert!(logins
        .iter()
        .all(|l| l.account == "ann@example.com" && l.protocol == "imap"));
    assert_eq!(e.calls(), 1, "the active answer was reused");

    // A token of several KiB fits on the command line.
    let long = format!("ya29.{}", "L".repeat(6000));
    e.token(&long, Reply::active("ann@example.com"));
    let mut c = Client::connect(h.addr(Kind::Imap)).await;
    c.send(&format!(
        "a AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", &long)
    ))
    .await;
    assert!(c.result("a").await.starts_with("a OK"));
    h.stop().await;
}

#[tokio::test]
async fn imap_refusals_send_the_error_challenge_then_no() {
    let e = endpoint().await;
    e.token("ya29.revoked", Reply::inactive());
    e.token("ya29.nobody", Reply::active("nobody@example.com"));
    let h = stub(Some(introspector(&e.url()))).await;
    let mut c = Client::connect(h.addr(Kind::Imap)).await;
    let cases = [
        (
            "bob's token for ann",
            xoauth2("ann@example.com", BOB_TOKEN),
            "",
        ),
        (
            "inactive",
            xoauth2("ann@example.com", "ya29.revoked"),
            "AQ==",
        ),
        (
            "never issued",
            oauthbearer("ann@example.com", "ya29.unknown"),
            "AQ==",
        ),
        (
            "unknown account",
            xoauth2("nobody@example.com", "ya29.nobody"),
            "anything",
        ),
    ];
    for (i, (what, response, ack)) in cases.iter().enumerate() {
        let tag = format!("r{i}");
        let mech = if response == &oauthbearer("ann@example.com", "ya29.unknown") {
            "OAUTHBEARER"
        } else {
            "XOAUTH2"
        };
        c.send(&format!("{tag} AUTHENTICATE {mech} {response}\r\n"))
            .await;
        assert_eq!(c.line().await, challenge_line(), "{what}");
        c.send(&format!("{ack}\r\n")).await;
        assert_eq!(
            c.line().await,
            format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed\r\n"),
            "{what}"
        );
    }
    // Still usable after refusals (and the challenge's answer was not taken as a command).
    c.send(&format!(
        "z AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", ANN_TOKEN)
    ))
    .await;
    assert!(c.result("z").await.starts_with("z OK"));

    // The account of another mail host, with its own active token: refused as a password
    // login would be, without a challenge (the token was fine).
    let mut c = Client::connect(h.addr(Kind::Imap)).await;
    c.send(&format!(
        "a AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("bob@example.com", BOB_TOKEN)
    ))
    .await;
    let r = c.line().await;
    assert!(
        r.starts_with("a NO [AUTHENTICATIONFAILED] Account bob@example.com is not on"),
        "{r}"
    );
    assert!(h.logins().iter().all(|l| l.account == "ann@example.com"));
    h.stop().await;
}

#[tokio::test]
async fn malformed_responses_get_bad_and_outages_no_unavailable() {
    let e = endpoint().await;
    let url = e.url();
    let h = stub(Some(introspector(&url))).await;
    let mut c = Client::connect(h.addr(Kind::Imap)).await;
    for (what, line) in [
        (
            "bad base64",
            "a AUTHENTICATE XOAUTH2 %%%not-base64\r\n".to_string(),
        ),
        (
            "no auth=",
            format!(
                "a AUTHENTICATE XOAUTH2 {}\r\n",
                b64(b"user=ann@example.com\x01\x01")
            ),
        ),
        (
            "PLAIN inside",
            format!(
                "a AUTHENTICATE XOAUTH2 {}\r\n",
                b64(b"\0ann@example.com\0secret")
            ),
        ),
        (
            "no a= in OAUTHBEARER",
            format!(
                "a AUTHENTICATE OAUTHBEARER {}\r\n",
                b64(b"n,,\x01auth=Bearer x\x01\x01")
            ),
        ),
    ] {
        c.send(&line).await;
        let r = c.line().await;
        assert!(r.starts_with("a BAD "), "{what}: {r}");
    }
    // Bad base64 as the continuation answer, too.
    c.send("b AUTHENTICATE OAUTHBEARER\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send("!!!\r\n").await;
    assert_eq!(c.line().await, "b BAD Invalid base64\r\n");
    assert_eq!(e.calls(), 0, "nothing malformed reached the endpoint");

    // The endpoint down: try again later, no challenge.
    drop(e);
    c.send(&format!(
        "c AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", ANN_TOKEN)
    ))
    .await;
    assert_eq!(
        c.line().await,
        "c NO [UNAVAILABLE] Authentication service unavailable, try again later\r\n"
    );
    let mut p = Client::connect(h.addr(Kind::Pop3)).await;
    p.send(&format!(
        "AUTH XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", ANN_TOKEN)
    ))
    .await;
    assert_eq!(
        p.line().await,
        "-ERR [SYS/TEMP] Authentication service unavailable, try again later\r\n"
    );
    p.send("AUTH XOAUTH2 ***\r\n").await;
    assert!(p.line().await.starts_with("-ERR "), "bad base64");
    h.stop().await;
}

#[tokio::test]
async fn pop3_auth_xoauth2_and_oauthbearer() {
    let e = endpoint().await;
    let h = stub(Some(introspector(&e.url()))).await;
    let mut p = Client::connect(h.addr(Kind::Pop3)).await;
    p.send(&format!(
        "AUTH XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", ANN_TOKEN)
    ))
    .await;
    assert_eq!(p.line().await, "+OK Logged in, 3 messages\r\n");
    p.send("STAT\r\n").await;
    assert!(p.line().await.starts_with("+OK 3 "));

    // Without an initial response; a 6 KiB token.
    let long = format!("ya29.{}", "L".repeat(6000));
    e.token(&long, Reply::active("ann@example.com"));
    let mut p = Client::connect(h.addr(Kind::Pop3)).await;
    p.send("AUTH OAUTHBEARER\r\n").await;
    assert_eq!(p.line().await, "+ \r\n");
    p.send(&format!("{}\r\n", oauthbearer("ann@example.com", &long)))
        .await;
    assert_eq!(p.line().await, "+OK Logged in, 3 messages\r\n");

    // Refused: the challenge, its answer, -ERR; the session may try again.
    let mut p = Client::connect(h.addr(Kind::Pop3)).await;
    p.send(&format!(
        "AUTH XOAUTH2 {}\r\n",
        xoauth2("cid@example.com", ANN_TOKEN)
    ))
    .await;
    assert_eq!(p.line().await, challenge_line());
    p.send("\r\n").await;
    assert_eq!(p.line().await, "-ERR [AUTH] Authentication failed\r\n");
    p.send(&format!(
        "AUTH XOAUTH2 {}\r\n",
        xoauth2("ann@example.com", ANN_TOKEN)
    ))
    .await;
    assert_eq!(p.line().await, "+OK Logged in, 3 messages\r\n");
    let logins = h.logins();
    assert_eq!(logins.len(), 3, "{logins:?}");
    assert!(logins
        .iter()
        .all(|l| l.account == "ann@example.com" && l.protocol == "pop3"));
    h.stop().await;
}
