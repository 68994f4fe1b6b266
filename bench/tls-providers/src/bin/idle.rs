//! Memory an idle rustls server connection keeps, per provider: N in-memory handshakes
//! (TLS 1.3, ECDSA P-256), each followed by one small exchange each way (a login and its
//! answer), then every server connection kept and every client dropped; the growth of
//! the resident set divided by N. What a relayed IMAPS session cannot go below while it
//! holds a rustls connection.
//!
//!     cargo run --release --bin idle -- [CONNECTIONS] [ring|aws-lc-rs]

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn pump<A, B>(from: &mut rustls::ConnectionCommon<A>, to: &mut rustls::ConnectionCommon<B>) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).expect("write_tls");
    }
    let mut input = &buf[..];
    while !input.is_empty() {
        to.read_tls(&mut input).expect("read_tls");
    }
    to.process_new_packets().expect("process");
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3000);
    // One provider per process: memory freed by one run would be reused by the next.
    let only = std::env::args().nth(2);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let cert_der: CertificateDer<'static> = cert.der().clone();
    let key_der = key.serialize_der();
    for name in ["ring", "aws-lc-rs"] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let provider = Arc::new(match name {
            "ring" => rustls::crypto::ring::default_provider(),
            _ => rustls::crypto::aws_lc_rs::default_provider(),
        });
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.clone())),
            )
            .expect("server");
        server.send_tls13_tickets = 1;
        let server = Arc::new(server);
        let mut roots = RootCertStore::empty();
        roots.add(cert_der.clone()).expect("root");
        let client = Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let before = rss_kib();
        let mut kept = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c = ClientConnection::new(
                client.clone(),
                ServerName::try_from("localhost").expect("name"),
            )
            .expect("client");
            let mut s = ServerConnection::new(server.clone()).expect("server");
            while c.is_handshaking() || s.is_handshaking() {
                pump(&mut *c, &mut *s);
                pump(&mut *s, &mut *c);
            }
            c.writer()
                .write_all(b"a LOGIN ann secret\r\n")
                .expect("write");
            pump(&mut *c, &mut *s);
            let mut got = [0u8; 64];
            let _ = s.reader().read(&mut got).expect("read");
            s.writer().write_all(b"a OK Logged in\r\n").expect("write");
            pump(&mut *s, &mut *c);
            let _ = c.reader().read(&mut got).expect("read");
            kept.push(s);
        }
        let after = rss_kib();
        println!(
            "{name:<10} {:.1} KiB per idle server connection ({n} kept; struct {} bytes)",
            (after - before) as f64 / n as f64,
            std::mem::size_of::<ServerConnection>()
        );
        drop(kept);
    }
}
