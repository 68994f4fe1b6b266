//! Times the server's part of in-memory TLS handshakes (rustls client and server in one
//! thread, no sockets): full TLS 1.3, full TLS 1.2 and TLS 1.3 resumed with a ticket, for
//! an ECDSA P-256 and an RSA 2048 certificate. Only the server's calls are timed. Two
//! comparisons, each alternating rounds between its two setups and printing the median
//! round and the ratio of the server's time per handshake:
//! - the crypto providers, ring and aws-lc-rs (how the proxy's provider was chosen);
//! - under aws-lc-rs, the suite with AES-128-GCM and SHA-256 against the one with
//!   AES-256-GCM and SHA-384 that OpenSSL and rustls clients list first (why the proxy
//!   prefers the first: aws-lc's fast SHA-512 code runs on Intel CPUs only).
//!
//!     cargo run --release -- [HANDSHAKES_PER_ROUND] [ROUNDS]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

struct Identity {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn identity(alg: &'static rcgen::SignatureAlgorithm) -> Identity {
    let key = rcgen::KeyPair::generate_for(alg).expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    Identity {
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}

/// The provider of a setup: "ring", "aws-lc-rs" (its default suites), or "AES-128" /
/// "AES-256" (aws-lc-rs with only the suites of that cipher: SHA-256 / SHA-384).
fn provider(name: &str) -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let only = |suites: &[rustls::SupportedCipherSuite]| CryptoProvider {
        cipher_suites: suites.to_vec(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    Arc::new(match name {
        "ring" => rustls::crypto::ring::default_provider(),
        "AES-128" => only(&[
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ]),
        "AES-256" => only(&[
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ]),
        _ => rustls::crypto::aws_lc_rs::default_provider(),
    })
}

fn configs(
    name: &str,
    p: &Arc<CryptoProvider>,
    id: &Identity,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.clone()));
    let mut server = ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![id.cert.clone()], key)
        .expect("server config");
    server.ticketer = if name == "ring" {
        rustls::crypto::ring::Ticketer::new().expect("ticketer")
    } else {
        rustls::crypto::aws_lc_rs::Ticketer::new().expect("ticketer")
    };
    server.send_tls13_tickets = 1;
    let mut roots = RootCertStore::empty();
    roots.add(id.cert.clone()).expect("root");
    let client = ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Moves bytes until both sides are done; returns the time spent in the server's calls.
fn handshake(server_cfg: &Arc<ServerConfig>, client_cfg: &Arc<ClientConfig>) -> (Duration, bool) {
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(client_cfg.clone(), name).expect("client");
    let started = Instant::now();
    let mut server = ServerConnection::new(server_cfg.clone()).expect("server");
    let mut in_server = started.elapsed();
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).expect("client write");
        }
        if !buf.is_empty() {
            let t = Instant::now();
            let mut slice = &buf[..];
            while !slice.is_empty() {
                server.read_tls(&mut slice).expect("server read");
            }
            server.process_new_packets().expect("server process");
            in_server += t.elapsed();
        }
        buf.clear();
        let t = Instant::now();
        while server.wants_write() {
            server.write_tls(&mut buf).expect("server write");
        }
        in_server += t.elapsed();
        if !buf.is_empty() {
            let mut slice = &buf[..];
            while !slice.is_empty() {
                client.read_tls(&mut slice).expect("client read");
            }
            client.process_new_packets().expect("client process");
        }
        if !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write()
        {
            break;
        }
    }
    // Application data once, so TLS 1.3 tickets (sent after the handshake) reach the client.
    client.writer().write_all(b"a1 NOOP\r\n").expect("write");
    buf.clear();
    while client.wants_write() {
        client.write_tls(&mut buf).expect("client write");
    }
    let mut slice = &buf[..];
    while !slice.is_empty() {
        server.read_tls(&mut slice).expect("server read");
    }
    server.process_new_packets().expect("server process");
    let mut got = [0u8; 16];
    let _ = server.reader().read(&mut got);
    let resumed = matches!(
        server.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    (in_server, resumed)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(400);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let ids = [
        ("P-256", identity(&rcgen::PKCS_ECDSA_P256_SHA256)),
        ("RSA 2048", rsa_identity()),
    ];
    println!("server CPU per handshake, median of {rounds} rounds of {n} (microseconds)");
    compare(["ring", "aws-lc-rs"], &ids, n, rounds);
    println!();
    println!("under aws-lc-rs, by cipher suite (TLS 1.3: TLS_AES_*_GCM_SHA256/384; TLS 1.2: ECDHE_*_WITH_AES_*_GCM)");
    compare(["AES-256", "AES-128"], &ids, n, rounds);
}

/// One table: setup `b`'s time per handshake against `a`'s, for each certificate and kind
/// of handshake.
fn compare(setups: [&str; 2], ids: &[(&str, Identity)], n: usize, rounds: usize) {
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let [a, b] = setups;
    println!(
        "{:<10} {:<16} {:>10} {:>10} {:>16}",
        "cert",
        "handshake",
        a,
        b,
        format!("{b}/{a}")
    );
    for (cert_name, id) in ids {
        for (kind, versions, resume) in [
            ("TLS 1.3 full", tls13, false),
            ("TLS 1.2 full", tls12, false),
            ("TLS 1.3 resumed", tls13, true),
        ] {
            let mut per = std::collections::HashMap::new();
            let configured: Vec<_> = setups
                .iter()
                .map(|p| (*p, configs(p, &provider(p), id, versions)))
                .collect();
            for _ in 0..rounds {
                for (p, (server, client)) in &configured {
                    // A client that resumes keeps its session store across connections;
                    // one that does not gets a fresh config each time.
                    let client = if resume {
                        let _ = handshake(server, client);
                        client.clone()
                    } else {
                        let mut c = (**client).clone();
                        c.resumption = rustls::client::Resumption::disabled();
                        Arc::new(c)
                    };
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let (t, resumed) = handshake(server, &client);
                        assert_eq!(resumed, resume, "{p} {kind}: resumption as intended");
                        total += t;
                    }
                    per.entry(*p)
                        .or_insert_with(Vec::new)
                        .push(total.as_secs_f64() * 1e6 / n as f64);
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            };
            let ta = median(per.get_mut(a).expect("a"));
            let tb = median(per.get_mut(b).expect("b"));
            println!(
                "{cert_name:<10} {kind:<16} {ta:>10.1} {tb:>10.1} {:>16.2}",
                tb / ta
            );
        }
    }
}

/// rcgen cannot generate RSA keys with every backend: make one with openssl.
fn rsa_identity() -> Identity {
    let dir = std::env::temp_dir().join(format!("tls-providers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key_path = dir.join("key.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key_path)
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl genpkey");
    let pem = std::fs::read_to_string(&key_path).expect("key");
    let _ = std::fs::remove_dir_all(&dir);
    let key = rcgen::KeyPair::from_pem(&pem).expect("rsa key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    Identity {
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}
