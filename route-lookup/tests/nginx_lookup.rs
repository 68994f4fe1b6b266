//! The nginx-lookup endpoint against a real PostgreSQL, through the bytes a stock nginx
//! sends: every resolution path, every account status, encodings, malformed and oversize
//! requests, the Auth-Wait cap, the shared secret, password verification, HTTP/1.0 and
//! HTTP/1.1 keep-alive, and injection attempts that must stay plain data. A route names the
//! mail host beside its address (Auth-Server-Name), for upstream TLS verified by name.

mod support;

use route_lookup::testing::Harness;
use support::{seed, send_raw, NginxRequest, Reply, PASSWORD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FAILED: &str = "Authentication failed";
const TEMPORARY: &str = "Temporary authentication failure";

/// Every answer must be something a stock nginx accepts: a header block within its 1 KiB
/// buffer, header names of letters, digits and `-` only.
fn assert_nginx_safe(r: &Reply) {
    assert!(r.head_len < 1024, "header block of {} bytes", r.head_len);
    for (name, _) in &r.headers {
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "header name {name:?}"
        );
    }
    assert_eq!(r.count("Auth-Status"), 1);
}

fn assert_ok(r: &Reply, server: &str, port: u16, user: &str, what: &str) {
    assert_nginx_safe(r);
    assert_eq!(r.status(), "OK", "{what}: {r:?}");
    assert_eq!(r.get("Auth-Server").as_deref(), Some(server), "{what}");
    assert_eq!(r.get("Auth-Port"), Some(port.to_string()), "{what}");
    assert_eq!(r.get("Auth-User").as_deref(), Some(user), "{what}");
    assert_eq!(r.get("Auth-Wait"), None, "{what}");
    assert_eq!(r.get("Auth-Pass"), None, "{what}: never echo a password");
    let name = r.get("Auth-Server-Name");
    assert!(
        matches!(
            name.as_deref(),
            Some("mbx1.example.com" | "mbx2.example.com" | "localhost")
        ),
        "{what}: the mail host's name beside its address, {name:?}"
    );
}

fn assert_failed(r: &Reply, text: &str, wait: Option<&str>, what: &str) {
    assert_nginx_safe(r);
    assert_eq!(r.status(), text, "{what}: {r:?}");
    assert_eq!(r.get("Auth-Wait").as_deref(), wait, "{what}");
    assert_eq!(r.get("Auth-Server"), None, "{what}");
    assert_eq!(r.get("Auth-Port"), None, "{what}");
}

/// (login, protocol, X-Proxy-IP, server, port, Auth-User)
type OkRow = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    u16,
    &'static str,
);

#[tokio::test]
async fn resolution_table() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let ok: &[OkRow] = &[
        // (login, protocol, X-Proxy-IP, server, port, Auth-User)
        (
            "ann@example.com",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
        (
            "ann@example.com",
            "imapssl",
            None,
            "127.0.0.1",
            7993,
            "ann@example.com",
        ),
        (
            "ann@example.com",
            "pop3",
            None,
            "127.0.0.1",
            7110,
            "ann@example.com",
        ),
        (
            "ann@example.com",
            "pop3ssl",
            None,
            "127.0.0.1",
            7995,
            "ann@example.com",
        ),
        (
            "ann@example.com",
            "IMAP",
            None,
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
        (
            "ANN@Example.COM",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
        (
            "annie@example.com",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
        ("ann", "imap", None, "127.0.0.1", 7143, "ann@example.com"),
        ("annie", "pop3", None, "127.0.0.1", 7110, "ann@example.com"),
        (
            "ann@alias.example.org",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
        (
            "annie@alias.example.org",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
        (
            "ann@example.com/tb",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
        (
            "bob@example.net",
            "imap",
            None,
            "127.0.0.2",
            8143,
            "bob@example.net",
        ),
        (
            "bob@example.net",
            "pop3ssl",
            None,
            "127.0.0.2",
            8995,
            "bob@example.net",
        ),
        (
            "vic",
            "imap",
            Some("10.9.9.9"),
            "127.0.0.2",
            8143,
            "vic@vip.example",
        ),
        (
            "ann",
            "imap",
            Some("10.1.1.1"),
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
        (
            "fay@example.com",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "fay@example.com",
        ),
        (
            "o'hara@example.com",
            "imap",
            None,
            "127.0.0.2",
            8143,
            "o'hara@example.com",
        ),
        (
            "zoë@example.com",
            "imap",
            None,
            "127.0.0.2",
            8143,
            "zoë@example.com",
        ),
        (
            "nopass@example.com",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "nopass@example.com",
        ),
        (
            " ann@example.com ",
            "imap",
            None,
            "127.0.0.1",
            7143,
            "ann@example.com",
        ),
    ];
    for &(login, protocol, proxy_ip, server, port, user) in ok {
        let mut req = NginxRequest::new(login, protocol);
        if let Some(ip) = proxy_ip {
            req.extra.push(("X-Proxy-IP", ip.as_bytes()));
        }
        let r = req.send(h.http).await;
        assert_ok(&r, server, port, user, login);
    }
    // Auth-Server-Name is the account's zimbraMailHost, whatever its address.
    for (login, name) in [
        ("ann@example.com", "mbx1.example.com"),
        ("bob@example.net", "mbx2.example.com"),
        ("fay@example.com", "localhost"),
    ] {
        let r = NginxRequest::new(login, "imapssl").send(h.http).await;
        assert_eq!(r.get("Auth-Server-Name").as_deref(), Some(name), "{login}");
    }

    let failed: &[(&str, &str, &str)] = &[
        // (login, protocol, status text)
        ("nobody@example.com", "imap", FAILED),
        ("bob", "imap", FAILED), // bob is not in the default domain
        ("vic", "imap", FAILED), // only the virtual IP qualifies vic
        ("carl@example.com", "imap", FAILED),
        ("dan@example.com", "imap", FAILED),
        ("lou@example.com", "imap", FAILED),
        ("eve@example.com", "imap", TEMPORARY),
        ("gus@example.com", "imap", TEMPORARY),
        ("hal@example.com", "imap", TEMPORARY),
        ("", "imap", FAILED),
        ("a@b@example.com", "imap", FAILED),
        ("ann@example.com", "smtp", FAILED),
        ("ann@example.com", "http", FAILED),
        ("ann@example.com", "", FAILED),
        ("ann@example.com/xx", "imap", FAILED),
        ("' OR '1'='1", "imap", FAILED),
        ("ann@example.com' --", "imap", FAILED),
        ("x'; DROP TABLE accounts; --", "imap", FAILED),
        ("%", "imap", FAILED),
        ("*", "imap", FAILED),
        ("ann@example.com\r\nAuth-Status: OK", "imap", FAILED),
        ("ann@example.com\0", "imap", FAILED),
    ];
    for &(login, protocol, text) in failed {
        let r = NginxRequest::new(login, protocol).send(h.http).await;
        assert_failed(&r, text, Some("10"), &format!("{login:?}/{protocol}"));
    }
    // Injection attempts left the data alone.
    let r = NginxRequest::new("ann@example.com", "imap")
        .send(h.http)
        .await;
    assert_ok(
        &r,
        "127.0.0.1",
        7143,
        "ann@example.com",
        "after injection attempts",
    );

    for method in [
        "cram-md5", "apop", "external", "gssapi", "certauth", "zimbraId", "",
    ] {
        let mut req = NginxRequest::new("ann@example.com", "imap");
        req.method = method;
        assert_failed(&req.send(h.http).await, FAILED, Some("10"), method);
    }
    for method in ["plain", "PLAIN", "passwd", "username", "other"] {
        let mut req = NginxRequest::new("ann@example.com", "imap");
        req.method = method;
        assert_ok(
            &req.send(h.http).await,
            "127.0.0.1",
            7143,
            "ann@example.com",
            method,
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_a_clean_auth_status() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let base = "GET /service/extension/nginx-lookup HTTP/1.0\r\nHost: localhost\r\n";
    let cases: &[(&str, &[u8])] = &[
        ("no headers at all", b""),
        ("no Auth-Method", b"Auth-User: ann@example.com\r\nAuth-Pass: x\r\nAuth-Protocol: imap\r\n"),
        ("no Auth-User", b"Auth-Method: plain\r\nAuth-Pass: x\r\nAuth-Protocol: imap\r\n"),
        ("no Auth-Protocol", b"Auth-Method: plain\r\nAuth-User: ann@example.com\r\nAuth-Pass: x\r\n"),
        ("bad %-escape in the user", b"Auth-Method: plain\r\nAuth-User: ann%2@example.com\r\nAuth-Protocol: imap\r\n"),
        ("bad %-escape in the password", b"Auth-Method: plain\r\nAuth-User: ann@example.com\r\nAuth-Pass: 50%\r\nAuth-Protocol: imap\r\n"),
        ("user not UTF-8", b"Auth-Method: plain\r\nAuth-User: \xff\xfe@example.com\r\nAuth-Protocol: imap\r\n"),
        ("garbage X-Proxy-IP", b"Auth-Method: plain\r\nAuth-User: ann\r\nAuth-Protocol: imap\r\nX-Proxy-IP: not-an-ip\r\n"),
    ];
    for (what, headers) in cases {
        let mut req = base.as_bytes().to_vec();
        req.extend_from_slice(headers);
        req.extend_from_slice(b"\r\n");
        let r = send_raw(h.http, &req).await;
        assert_failed(&r, FAILED, Some("10"), what);
    }

    // Oversize values: a clean failure, not an error page.
    let long_user = "a".repeat(400) + "@example.com";
    let r = NginxRequest::new(&long_user, "imap").send(h.http).await;
    assert_failed(&r, FAILED, Some("10"), "400-byte login");
    let mut req = NginxRequest::new("ann@example.com", "imap");
    let long_pass = vec![b'p'; 5000];
    req.pass = &long_pass;
    assert_failed(
        &req.send(h.http).await,
        FAILED,
        Some("10"),
        "5000-byte password",
    );
    // A password at the limit, escaped to three times its size, still works.
    let mut req = NginxRequest::new("ann@example.com", "imap");
    let spaces = vec![b' '; 1024];
    req.pass = &spaces;
    assert_eq!(req.send(h.http).await.status(), "OK");

    // A request head beyond hyper's buffer is refused by HTTP, not buffered without bound.
    let mut req = base.as_bytes().to_vec();
    for i in 0..400 {
        req.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "f".repeat(60)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let mut s = tokio::net::TcpStream::connect(h.http).await.unwrap();
    let _ = s.write_all(&req).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server answers or closes");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431") || text.starts_with("HTTP/1.0 431"),
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn auth_wait_stops_after_the_attempt_cap() {
    let h = Harness::start(&["--auth-wait", "3", "--auth-wait-max-attempts", "4"]).await;
    seed(&h.grpc_url()).await;
    for (attempt, wait) in [
        ("1", Some("3")),
        ("4", Some("3")),
        ("5", None),
        ("1000", None),
        ("x", None),
        ("-1", None),
    ] {
        let mut req = NginxRequest::new("nobody@example.com", "imap");
        req.attempt = attempt;
        assert_failed(
            &req.send(h.http).await,
            FAILED,
            wait,
            &format!("attempt {attempt}"),
        );
    }
    // No Auth-Login-Attempt at all counts as the first attempt.
    let r = send_raw(
        h.http,
        b"GET /service/extension/nginx-lookup HTTP/1.0\r\nAuth-Method: plain\r\nAuth-User: nobody\r\nAuth-Protocol: imap\r\n\r\n",
    )
    .await;
    assert_failed(&r, FAILED, Some("3"), "no attempt header");
    h.stop().await;

    let h = Harness::start(&["--auth-wait", "0"]).await;
    seed(&h.grpc_url()).await;
    let r = NginxRequest::new("nobody@example.com", "imap")
        .send(h.http)
        .await;
    assert_failed(&r, FAILED, None, "--auth-wait 0");
    h.stop().await;
}

#[tokio::test]
async fn verify_passwords_checks_the_argon2_hash() {
    let h = Harness::start(&["--verify-passwords"]).await;
    seed(&h.grpc_url()).await;
    let cases: &[(&str, &[u8], Option<&str>)] = &[
        ("ann@example.com", PASSWORD.as_bytes(), None),
        ("annie", PASSWORD.as_bytes(), None),
        ("ann@example.com", b"pa ss ?%", Some(FAILED)),
        ("ann@example.com", "pa ss ü%".as_bytes(), Some(FAILED)), // `+` decoded as space
        ("ann@example.com", b"", Some(FAILED)),
        ("ann@example.com", b"wrong", Some(FAILED)),
        ("nopass@example.com", b"", Some(FAILED)),
        ("nopass@example.com", b"anything", Some(FAILED)),
        ("carl@example.com", PASSWORD.as_bytes(), Some(FAILED)),
    ];
    for &(login, pass, expect) in cases {
        let mut req = NginxRequest::new(login, "imap");
        req.pass = pass;
        let r = req.send(h.http).await;
        match expect {
            None => assert_ok(&r, "127.0.0.1", 7143, "ann@example.com", login),
            Some(text) => assert_failed(
                &r,
                text,
                Some("10"),
                &format!("{login} / {:?}", String::from_utf8_lossy(pass)),
            ),
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn the_shared_secret_is_required_when_set() {
    let h = Harness::start(&["--lookup-secret", "s3cr3t"]).await;
    seed(&h.grpc_url()).await;
    let r = NginxRequest::new("ann@example.com", "imap")
        .send(h.http)
        .await;
    assert_failed(&r, FAILED, Some("10"), "no secret");
    for wrong in [&b"s3cr3"[..], b"s3cr3tt", b"S3CR3T", b""] {
        let mut req = NginxRequest::new("ann@example.com", "imap");
        req.extra.push(("X-Lookup-Secret", wrong));
        assert_failed(&req.send(h.http).await, FAILED, Some("10"), "wrong secret");
    }
    let mut req = NginxRequest::new("ann@example.com", "imap");
    req.extra.push(("X-Lookup-Secret", b"s3cr3t"));
    assert_ok(
        &req.send(h.http).await,
        "127.0.0.1",
        7143,
        "ann@example.com",
        "right secret",
    );
    h.stop().await;
}

#[tokio::test]
async fn http11_keep_alive_serves_many_lookups_on_one_connection() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let mut s = tokio::net::TcpStream::connect(h.http).await.unwrap();
    // Pipelined: three requests written at once, three answers in order.
    let mut batch = Vec::new();
    for login in ["ann@example.com", "nobody@example.com", "bob@example.net"] {
        let mut req = NginxRequest::new(login, "imap");
        req.version = "HTTP/1.1";
        batch.extend_from_slice(&req.bytes());
    }
    s.write_all(&batch).await.unwrap();
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    while replies.len() < 3 {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("answers arrive")
            .unwrap();
        assert!(n > 0, "connection stays open between requests");
        buf.extend_from_slice(&chunk[..n]);
        while let Some(r) = support::parse_head(&buf) {
            assert!(
                r.status_line.starts_with("HTTP/1.1 200"),
                "{}",
                r.status_line
            );
            assert_eq!(r.get("content-length").as_deref(), Some("0"));
            buf.drain(..r.head_len);
            replies.push(r);
        }
    }
    assert_eq!(replies[0].status(), "OK");
    assert_eq!(replies[1].status(), FAILED);
    assert_eq!(replies[2].get("Auth-Server").as_deref(), Some("127.0.0.2"));
    h.stop().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    NginxRequest::new("ann@example.com", "imap")
        .send(h.http)
        .await;
    NginxRequest::new("nobody@example.com", "imap")
        .send(h.http)
        .await;
    NginxRequest::new("eve@example.com", "imap")
        .send(h.http)
        .await;
    let get = |path: &str| format!("GET {path} HTTP/1.0\r\n\r\n").into_bytes();
    let mut s = tokio::net::TcpStream::connect(h.http).await.unwrap();
    s.write_all(&get("/healthz")).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") && body.ends_with("ok\n"),
        "{body}"
    );
    let mut s = tokio::net::TcpStream::connect(h.http).await.unwrap();
    s.write_all(&get("/metrics")).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    for line in [
        "route_lookup_lookups_total{outcome=\"ok\"} 1",
        "route_lookup_lookups_total{outcome=\"not_found\"} 1",
        "route_lookup_lookups_total{outcome=\"maintenance\"} 1",
        "route_lookup_lookup_duration_seconds_count 3",
        "route_lookup_db_pool_max 32",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    h.stop().await;
}
