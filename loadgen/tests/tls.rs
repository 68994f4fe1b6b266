//! imap-loadgen's TLS modes against a small in-test IMAP server: IMAPS (`--tls`) and
//! STARTTLS (`--starttls`), full handshakes only without `--resume` and resumed ones with
//! it (TLS 1.3 tickets and TLS 1.2 sessions), the handshake tally in the JSON line, bulk
//! FETCH and idle sessions over TLS, and a server certificate from another CA refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The name the server's certificate carries and the client asks for (SNI).
const NAME: &str = "imap.loadgen.test";
/// The message every FETCH returns.
const MESSAGE: &[u8] = b"Subject: hello\r\n\r\nfrom the in-test server\r\n";

/// A CA (PEM) and a server certificate it signed (PEM chain, PEM key).
fn pki() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![NAME.to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// A temporary directory removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("loadgen-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts an IMAP server on 127.0.0.1:0, implicit TLS or plaintext with STARTTLS, speaking
/// only the TLS versions given; returns its address.
async fn server(
    cert: &str,
    key: &str,
    implicit: bool,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    // rustls' defaults: stateful resumption (TLS 1.2 session IDs, TLS 1.3 tickets naming
    // server-side sessions), which is enough to show the client offers what it kept.
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if implicit {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = serve(tls, true, false).await;
                    }
                } else if let Ok(Some(tcp)) = serve(tcp, true, true).await {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = serve(tls, false, false).await;
                    }
                }
            });
        }
    });
    addr
}

/// One IMAP dialogue; with `starttls`, returns the stream when the client asks for it, so
/// the caller runs the dialogue again over TLS (without a second greeting).
async fn serve<S>(stream: S, greet: bool, starttls: bool) -> std::io::Result<Option<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = BufReader::new(stream);
    if greet {
        io.get_mut()
            .write_all(b"* OK test server ready\r\n")
            .await?;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let mut words = line.split_whitespace();
        let (tag, verb) = (words.next().unwrap_or("*"), words.next().unwrap_or(""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "STARTTLS" if starttls => {
                io.get_mut()
                    .write_all(format!("{tag} OK begin TLS\r\n").as_bytes())
                    .await?;
                return Ok(Some(io.into_inner()));
            }
            "LOGIN" => format!("{tag} OK logged in\r\n"),
            "SELECT" | "EXAMINE" => format!("* 1 EXISTS\r\n{tag} OK selected\r\n"),
            "FETCH" => {
                let mut r = format!("* 1 FETCH (BODY[] {{{}}}\r\n", MESSAGE.len()).into_bytes();
                r.extend_from_slice(MESSAGE);
                r.extend_from_slice(format!(")\r\n{tag} OK fetched\r\n").as_bytes());
                io.get_mut().write_all(&r).await?;
                continue;
            }
            "LOGOUT" => {
                io.get_mut()
                    .write_all(format!("* BYE\r\n{tag} OK bye\r\n").as_bytes())
                    .await?;
                let _ = io.get_mut().shutdown().await;
                return Ok(None);
            }
            _ => format!("{tag} BAD unknown\r\n"),
        };
        io.get_mut().write_all(reply.as_bytes()).await?;
    }
}

/// Runs imap-loadgen with `args` and returns its JSON line's fields. The wait happens on a
/// blocking thread: blocking a runtime worker could strand the server's tasks queued on it.
async fn loadgen(server: &str, ca: &Path, args: &[&str]) -> Json {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imap-loadgen"));
    cmd.args([
        "--server",
        server,
        "--password",
        "secret",
        "--tls-name",
        NAME,
    ])
    .arg("--ca")
    .arg(ca)
    .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    Json(stdout.lines().last().unwrap_or_default().to_string())
}

/// The one JSON line; only flat numbers, booleans and strings are looked up.
struct Json(String);

impl Json {
    fn raw(&self, key: &str) -> &str {
        let start = self
            .0
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("no {key} in {}", self.0))
            + key.len()
            + 3;
        let rest = &self.0[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim_matches('"')
    }

    fn num(&self, key: &str) -> u64 {
        self.raw(key).parse().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaps_full_handshakes_only_without_resume() {
    let (ca, cert, key) = pki();
    let dir = Dir::new("full");
    let ca = dir.file("ca.pem", &ca);
    let addr = server(&cert, &key, true, rustls::DEFAULT_VERSIONS).await;
    let j = loadgen(&addr, &ca, &["--tls", "--conns", "4", "--seconds", "1"]).await;
    assert_eq!(j.num("errors"), 0, "{}", j.0);
    assert!(j.num("sessions") > 4, "{}", j.0);
    assert_eq!(j.raw("security"), "imaps");
    assert_eq!(j.num("handshakes_resumed"), 0, "{}", j.0);
    assert!(j.num("handshakes_full") >= j.num("sessions"), "{}", j.0);
    assert_eq!(j.num("tls13"), j.num("handshakes_full"), "{}", j.0);
    assert!(j.raw("cipher_suite").starts_with("TLS13_"), "{}", j.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaps_resumes_tls13_tickets() {
    let (ca, cert, key) = pki();
    let dir = Dir::new("resume13");
    let ca = dir.file("ca.pem", &ca);
    let addr = server(&cert, &key, true, rustls::DEFAULT_VERSIONS).await;
    let j = loadgen(
        &addr,
        &ca,
        &["--tls", "--resume", "--conns", "4", "--seconds", "1"],
    )
    .await;
    assert_eq!(j.num("errors"), 0, "{}", j.0);
    assert_eq!(j.raw("resume"), "true");
    // The first connections have nothing to offer; after them nearly all resume.
    assert!(j.num("handshakes_full") >= 1, "{}", j.0);
    assert!(
        j.num("handshakes_resumed") > j.num("handshakes_full"),
        "{}",
        j.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_resumes_tls12_sessions() {
    let (ca, cert, key) = pki();
    let dir = Dir::new("resume12");
    let ca = dir.file("ca.pem", &ca);
    let addr = server(&cert, &key, false, &[&rustls::version::TLS12]).await;
    let j = loadgen(
        &addr,
        &ca,
        &["--starttls", "--resume", "--conns", "2", "--seconds", "1"],
    )
    .await;
    assert_eq!(j.num("errors"), 0, "{}", j.0);
    assert_eq!(j.raw("security"), "starttls");
    assert!(j.num("handshakes_resumed") > 0, "{}", j.0);
    assert_eq!(
        j.num("tls12"),
        j.num("handshakes_full") + j.num("handshakes_resumed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_and_hold_over_tls() {
    let (ca, cert, key) = pki();
    let dir = Dir::new("fetch");
    let ca = dir.file("ca.pem", &ca);
    let addr = server(&cert, &key, true, rustls::DEFAULT_VERSIONS).await;
    let j = loadgen(&addr, &ca, &["--tls", "--mode", "fetch", "--seconds", "1"]).await;
    assert_eq!(j.num("errors"), 0, "{}", j.0);
    assert!(j.num("fetches") > 0 && j.num("bytes") > 0, "{}", j.0);
    let addr = server(&cert, &key, false, rustls::DEFAULT_VERSIONS).await;
    let j = loadgen(
        &addr,
        &ca,
        &[
            "--starttls",
            "--mode",
            "hold",
            "--conns",
            "20",
            "--hold-seconds",
            "0",
        ],
    )
    .await;
    assert_eq!((j.num("established"), j.num("errors")), (20, 0), "{}", j.0);
    assert_eq!(j.num("handshakes_full"), 20, "{}", j.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let (_, cert, key) = pki();
    let (other_ca, _, _) = pki();
    let dir = Dir::new("wrong-ca");
    let ca = dir.file("ca.pem", &other_ca);
    let addr = server(&cert, &key, true, rustls::DEFAULT_VERSIONS).await;
    let j = loadgen(&addr, &ca, &["--tls", "--seconds", "1"]).await;
    assert_eq!(j.num("sessions"), 0, "{}", j.0);
    assert!(j.num("errors") > 0, "{}", j.0);
    assert_eq!(j.num("handshakes_full"), 0, "{}", j.0);
}
