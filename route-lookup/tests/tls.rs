//! route-lookup on TLS (`--tls-cert`/`--tls-key`): gRPC is served over TLS only and the
//! workspace's gRPC clients (`proto::endpoint`) verify it against `--ca`, failing with the
//! certificate problem named when the CA is wrong; `--https-listen` serves nginx-lookup,
//! /healthz and /metrics over TLS while `--http-listen` stays plaintext for stock nginx;
//! SIGHUP reloads the certificate for new handshakes, a broken key keeps the old one, and
//! /metrics counts both.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::v1::provisioning_client::ProvisioningClient;
use proto::v1::CreateRequest;
use route_lookup::testing::{Harness, TOKEN};
use support::{parse_head, NginxRequest, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A scratch directory with a `localhost` certificate and key in it.
struct Certs {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    pem: String,
}

impl Certs {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rl-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("lookup.crt"), dir.join("lookup.key"));
        let mut c = Self {
            dir,
            cert,
            key,
            pem: String::new(),
        };
        c.renew();
        c
    }

    /// Writes a new certificate and key (as a renewal hook would).
    fn renew(&mut self) {
        let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
        std::fs::write(&self.key, key).unwrap();
        std::fs::write(&self.cert, &cert).unwrap();
        self.pem = cert;
    }

    fn flags(&self) -> [String; 4] {
        [
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(certs: &Certs) -> Harness {
    let flags = certs.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--https-listen", "127.0.0.1:0"]);
    Harness::start(&args).await
}

fn ca(pem: &str) -> Arc<rustls::ClientConfig> {
    common::tls::client_config_from_pem(pem.as_bytes()).unwrap()
}

/// A TLS connection to `addr` as `localhost`, trusting `pem`; also the certificate shown.
async fn tls(addr: SocketAddr, pem: &str) -> (tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let s = tokio_rustls::TlsConnector::from(ca(pem))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let shown = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (s, shown)
}

/// Sends `request` over TLS and reads the answer to the end.
async fn send_tls(addr: SocketAddr, pem: &str, request: &[u8]) -> (Reply, String) {
    let (mut s, _) = tls(addr, pem).await;
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("an answer");
    let head = parse_head(&buf).expect("a response head");
    let body = String::from_utf8_lossy(&buf[head.head_len..]).into_owned();
    (head, body)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").into_bytes()
}

fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn grpc_and_https_over_tls_with_plaintext_http_kept() {
    let certs = Certs::new("serve");
    let h = start(&certs).await;
    assert!(h.grpc_url().starts_with("https://localhost:"));

    // gRPC verified against the CA.
    let (endpoint, token) = proto::endpoint(
        &h.grpc_url(),
        Some(TOKEN),
        Some(&ca(&certs.pem)),
        Duration::from_secs(3),
        Some(Duration::from_secs(5)),
    )
    .unwrap();
    let mut p = ProvisioningClient::with_interceptor(endpoint.connect().await.unwrap(), token);
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .expect("a provisioning call over TLS");

    // Another CA: the connection fails, naming the certificate problem, on one line.
    let (other, _) = common::tls::self_signed(&["localhost"]).unwrap();
    let (endpoint, _) = proto::endpoint(
        &h.grpc_url(),
        Some(TOKEN),
        Some(&ca(&other)),
        Duration::from_secs(3),
        None,
    )
    .unwrap();
    let e = endpoint.connect().await.unwrap_err().to_string();
    // (UnknownIssuer, or BadSignature when the other CA has the same subject, as two
    // rcgen certificates do.)
    assert!(
        e.starts_with("cannot reach route-lookup at https://localhost:")
            && e.contains(": TLS handshake with localhost:")
            && e.contains(": invalid peer certificate: "),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");

    // Plaintext gRPC to the TLS port gets nowhere.
    let (endpoint, token) = proto::endpoint(
        &format!("http://{}", h.grpc),
        Some(TOKEN),
        None,
        Duration::from_secs(3),
        Some(Duration::from_secs(3)),
    )
    .unwrap();
    let mut plain = ProvisioningClient::with_interceptor(endpoint.connect_lazy(), token);
    assert!(plain
        .create_domain(CreateRequest {
            name: "example.net".into(),
            attrs: vec![],
        })
        .await
        .is_err());

    // nginx-lookup, /healthz and /metrics over TLS on --https-listen...
    let https = h.https.expect("--https-listen is on");
    let request = NginxRequest::new("nobody@example.com", "imap").bytes();
    let (reply, _) = send_tls(https, &certs.pem, &request).await;
    assert_eq!(reply.status(), "Authentication failed");
    let (reply, _) = send_tls(https, &certs.pem, &get("/healthz")).await;
    assert!(reply.status_line.contains(" 200 "), "{}", reply.status_line);
    let (_, metrics) = send_tls(https, &certs.pem, &get("/metrics")).await;
    assert!(
        metrics.contains("route_lookup_tls_certificate_expiry_seconds{cert=\""),
        "{metrics}"
    );
    // ...and in plaintext on --http-listen, for stock nginx.
    let reply = NginxRequest::new("nobody@example.com", "imap")
        .send(h.http)
        .await;
    assert_eq!(reply.status(), "Authentication failed");
    h.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_broken_key_keeps_it() {
    let mut certs = Certs::new("reload");
    let h = start(&certs).await;
    let https = h.https.unwrap();
    let first = certs.pem.clone();
    assert_eq!(tls(h.grpc, &first).await.1, der(&first));

    certs.renew();
    let renewed = certs.pem.clone();
    common::reload::announce();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        // Trusting both while the reload lands.
        let shown = tls(h.grpc, &format!("{first}{renewed}")).await.1;
        if shown == der(&renewed) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tls(https, &renewed).await.1, der(&renewed), "HTTPS too");

    std::fs::write(&certs.key, "-----BEGIN PRIVATE KEY-----\nMIIE\n").unwrap();
    common::reload::announce();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let (_, m) = send_tls(https, &renewed, &get("/metrics")).await;
        if m.contains("route_lookup_tls_reloads_total{result=\"failed\"} 1") {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics.contains("route_lookup_tls_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        tls(h.grpc, &renewed).await.1,
        der(&renewed),
        "the broken key left the renewed certificate in use"
    );
    h.stop().await;
}
