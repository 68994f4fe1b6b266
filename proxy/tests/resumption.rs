//! TLS session resumption on the client side of the proxy: a client that reuses one
//! session ticket on several connections (as mail clients opening parallel connections
//! do) resumes on every one, with TLS 1.3 and with TLS 1.2, and /metrics counts full and
//! resumed handshakes. rustls' default single-use tickets made every reuse after the
//! first a full handshake.

use std::process::{Command, Stdio};

use clap::Parser;
use common::shutdown::Shutdown;
use proxy::config::Config;
use proxy::server::Kind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One `openssl s_client` handshake that keeps its stdin open a moment (so the tickets
/// sent after the handshake arrive), saving the session to `out` or resuming from `from`.
/// Returns s_client's "New, …" / "Reused, …" line.
fn s_client(
    addr: std::net::SocketAddr,
    version: &str,
    session: (&str, &std::path::Path),
) -> String {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "sleep 0.5 | openssl s_client -connect {addr} -servername localhost {version} {} {} 2>&1",
            session.0,
            session.1.display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed (.ci/run installs it)");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
        .unwrap_or_else(|| panic!("no session line from s_client: {text}"))
        .to_string()
}

async fn metric(admin: std::net::SocketAddr, line: &str) -> u64 {
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn one_ticket_resumes_on_every_connection() {
    let (cert_pem, key_pem) = common::tls::self_signed(&["localhost"]).unwrap();
    let dir = std::env::temp_dir().join(format!("proxy-resumption-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &key_pem).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let config = Config::try_parse_from([
        "proxy",
        "--lookup-url",
        "http://127.0.0.1:1/service/extension/nginx-lookup",
        "--imap-listen",
        "off",
        "--pop3-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--imaps-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .unwrap()
    .validate()
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let (imaps, admin) = (
        bound.local_addr(Kind::Imaps).unwrap(),
        bound.admin_addr().unwrap(),
    );
    let (_stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));

    for version in ["-tls1_3", "-tls1_2"] {
        let session = std::env::temp_dir().join(format!(
            "proxy-resumption-{}{version}.pem",
            std::process::id()
        ));
        let s = session.clone();
        let first =
            tokio::task::spawn_blocking(move || s_client(imaps, version, ("-sess_out", &s)))
                .await
                .unwrap();
        assert!(first.starts_with("New, "), "{version}: {first}");
        // The same saved session, three times: each resumes.
        for _ in 0..3 {
            let s = session.clone();
            let again =
                tokio::task::spawn_blocking(move || s_client(imaps, version, ("-sess_in", &s)))
                    .await
                    .unwrap();
            assert!(again.starts_with("Reused, "), "{version}: {again}");
        }
        std::fs::remove_file(&session).ok();
    }
    assert_eq!(
        metric(admin, "proxy_tls_handshakes_total{kind=\"full\"} ").await,
        2
    );
    assert_eq!(
        metric(admin, "proxy_tls_handshakes_total{kind=\"resumed\"} ").await,
        6
    );
}
