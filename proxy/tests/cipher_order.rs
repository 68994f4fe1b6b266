//! Which TLS cipher suite a real client gets from the proxy: by default the proxy's order
//! decides (AES-128-GCM first on a CPU with AES instructions) even when the client lists
//! AES-256-GCM first, as OpenSSL does; `--tls-cipher-order client` gives the client's
//! choice; `--tls-ciphers` limits what is offered, and a list without a TLS 1.2 suite for
//! the certificate's key type stops the start. `openssl s_client` is the client, for TLS 1.3
//! (IMAPS) and TLS 1.2 (STARTTLS), with ECDSA and RSA certificates.
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use clap::Parser;
use common::shutdown::Shutdown;
use common::tls_ciphers::{name, CipherPolicy};
use proxy::config::Config;
use proxy::server::Kind;

struct Running {
    imaps: SocketAddr,
    imap: SocketAddr,
    admin: SocketAddr,
    _stop: Shutdown,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    Ecdsa,
    Rsa,
}

/// A certificate for localhost with a key of `kind`, in a directory of its own.
fn certificate(kind: Key, tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "proxy-ciphers-{}-{kind:?}-{}",
        std::process::id(),
        tag.replace(['/', ':', ' '], "_")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    match kind {
        Key::Ecdsa => {
            let (cert_pem, key_pem) = common::tls::self_signed(&["localhost"]).unwrap();
            std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
            std::fs::write(dir.join("key.pem"), &key_pem).unwrap();
        }
        // rcgen makes RSA keys only with aws-lc-rs as its backend.
        Key::Rsa => {
            let status = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args([
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=DNS:localhost",
                ])
                .arg("-keyout")
                .arg(dir.join("key.pem"))
                .arg("-out")
                .arg(dir.join("cert.pem"))
                .stderr(Stdio::null())
                .status()
                .expect("openssl is installed (.ci/run installs it)");
            assert!(status.success());
        }
    }
    dir
}

fn argv<'a>(cert: &'a str, key: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![
        "proxy",
        "--lookup-url",
        "http://127.0.0.1:1/service/extension/nginx-lookup",
        "--imap-listen",
        "127.0.0.1:0",
        "--starttls",
        "only",
        "--pop3-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--imaps-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ];
    argv.extend_from_slice(extra);
    argv
}

async fn start(extra: &[&str]) -> Running {
    start_with(Key::Ecdsa, extra).await
}

async fn start_with(kind: Key, extra: &[&str]) -> Running {
    let dir = certificate(kind, &extra.join("_"));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let argv = argv(cert.to_str().unwrap(), key.to_str().unwrap(), extra);
    let config = Config::try_parse_from(argv).unwrap().validate().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let imaps = bound.local_addr(Kind::Imaps).unwrap();
    let imap = bound.local_addr(Kind::Imap).unwrap();
    let admin = bound.admin_addr().unwrap();
    let (stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));
    Running {
        imaps,
        imap,
        admin,
        _stop: stop,
    }
}

/// The value of the /metrics sample that starts with `sample` (labels included).
async fn metric(admin: SocketAddr, sample: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {sample} in {body}"))
        .parse()
        .unwrap()
}

/// [`metric`] once it reads `want`, or what it reads after 5 s: the proxy counts a
/// handshake when its own side ends, which can be just after the client's.
async fn metric_reaching(admin: SocketAddr, sample: &str, want: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = metric(admin, sample).await;
        if got == want || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// One `openssl s_client` handshake with `args`; its "New, …, Cipher is X" line.
async fn s_client(addr: SocketAddr, args: &'static str) -> String {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                // The pause keeps the connection open until the proxy has finished its side
                // of a TLS 1.3 handshake (the client's is done first), so it is counted.
                "sleep 0.5 | openssl s_client -connect {addr} -servername localhost {args} 2>&1"
            ))
            .stdout(Stdio::piped())
            .output()
            .expect("openssl is installed (.ci/run installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.starts_with("New, "))
            .unwrap_or_else(|| panic!("no session line from s_client: {text}"))
            .to_string()
    })
    .await
    .unwrap()
}

const TLS13_AES256_FIRST: &str =
    "-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
const TLS12_AES256_FIRST: &str = "-starttls imap -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256";

#[tokio::test]
async fn by_default_the_proxys_order_picks_the_suite() {
    let p = start(&[]).await;
    let first = name(CipherPolicy::recommended().suites()[0]);
    let tls12 = match first {
        "TLS_AES_128_GCM_SHA256" => "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_CHACHA20_POLY1305_SHA256" => "ECDHE-ECDSA-CHACHA20-POLY1305",
        other => panic!("recommended first: {other}"),
    };
    assert_eq!(
        s_client(p.imaps, TLS13_AES256_FIRST).await,
        format!("New, TLSv1.3, Cipher is {first}")
    );
    assert_eq!(
        s_client(p.imap, TLS12_AES256_FIRST).await,
        format!("New, TLSv1.2, Cipher is {tls12}")
    );
}

#[tokio::test]
async fn with_client_order_the_client_picks_the_suite() {
    let p = start(&["--tls-cipher-order", "client"]).await;
    assert_eq!(
        s_client(p.imaps, TLS13_AES256_FIRST).await,
        "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
    );
    assert_eq!(
        s_client(p.imap, TLS12_AES256_FIRST).await,
        "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384"
    );
    // /metrics counts each handshake under the suite it settled on.
    for (sample, count) in [
        (r#"{version="TLSv1.3",cipher="TLS_AES_256_GCM_SHA384"}"#, 1),
        (
            r#"{version="TLSv1.2",cipher="TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}"#,
            1,
        ),
        (r#"{version="TLSv1.3",cipher="TLS_AES_128_GCM_SHA256"}"#, 0),
    ] {
        let sample = format!("proxy_tls_ciphers_total{sample}");
        assert_eq!(
            metric_reaching(p.admin, &sample, count).await,
            count,
            "{sample}"
        );
    }
}

#[tokio::test]
async fn only_the_listed_suites_are_offered() {
    let p = start(&[
        "--tls-ciphers",
        "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384",
    ])
    .await;
    assert_eq!(
        s_client(p.imaps, TLS13_AES256_FIRST).await,
        "New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256"
    );
    // AES-128 only: no suite in common. No TLS 1.2 suite listed: no TLS 1.2.
    for refused in ["-tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256", "-tls1_2"] {
        assert_eq!(
            s_client(p.imaps, refused).await,
            "New, (NONE), Cipher is (NONE)",
            "{refused}"
        );
    }
}

const TLS12_RSA_AES256_FIRST: &str = "-starttls imap -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256";

#[tokio::test]
async fn an_rsa_certificate_gets_the_rsa_suites_in_the_proxys_order() {
    let p = start_with(Key::Rsa, &[]).await;
    let first = name(CipherPolicy::recommended().suites()[0]);
    let tls12 = match first {
        "TLS_AES_128_GCM_SHA256" => "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_CHACHA20_POLY1305_SHA256" => "ECDHE-RSA-CHACHA20-POLY1305",
        other => panic!("recommended first: {other}"),
    };
    assert_eq!(
        s_client(p.imap, TLS12_RSA_AES256_FIRST).await,
        format!("New, TLSv1.2, Cipher is {tls12}")
    );
    assert_eq!(
        s_client(p.imaps, TLS13_AES256_FIRST).await,
        format!("New, TLSv1.3, Cipher is {first}")
    );
}

#[test]
fn a_list_without_a_tls12_suite_for_the_key_stops_the_start() {
    let ecdsa_tls12 = "TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256";
    let dir = certificate(Key::Rsa, "mismatch");
    let cert = dir.join("cert.pem");
    let (c, k) = (cert.to_str().unwrap(), dir.join("key.pem"));
    let refused = Config::try_parse_from(argv(
        c,
        k.to_str().unwrap(),
        &["--tls-ciphers", ecdsa_tls12],
    ))
    .unwrap()
    .validate()
    .unwrap_err();
    assert!(
        refused.0.starts_with(&format!(
            "--tls-ciphers: {c}: no TLS 1.2 suite listed works with an RSA key; list one of ECDHE-RSA-AES128-GCM-SHA256, "
        )),
        "{}", refused.0
    );
    // An RSA suite beside it, or no TLS 1.2 suite at all, is accepted.
    for list in [
        "TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_AES_128_GCM_SHA256",
    ] {
        let argv = argv(c, k.to_str().unwrap(), &["--tls-ciphers", list]);
        assert!(
            Config::try_parse_from(argv).unwrap().validate().is_ok(),
            "{list}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
