//! The mailbox-stub process: a readable --help, exit code 64 with one line on a bad
//! configuration, listeners on port 0 logged, and a clean exit on SIGTERM.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mailbox-stub");

/// Kills the child if a test fails before it exits.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn help_names_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--hostname",
        "--imap-listen",
        "--pop3-listen",
        "--imaps-listen",
        "--pop3s-listen",
        "--tls-cert",
        "--tls-key",
        "--directory",
        "--ca",
        "--admin-token",
        "--trusted-proxies",
        "--messages",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn bad_configurations_exit_64_with_one_line() {
    let base = ["--hostname", "mbx1", "--directory", "http://127.0.0.1:1"];
    let cases: &[(&[&str], &str)] = &[
        (&["--directory", "http://127.0.0.1:1"], "--hostname"),
        (
            &["--hostname", "mbx1", "--directory", "127.0.0.1:7071"],
            "--directory",
        ),
        (
            &[&base[..], &["--trusted-proxies", "10.0.0.0/99"]].concat(),
            "--trusted-proxies",
        ),
        (
            &[&base[..], &["--proxy-protocol"]].concat(),
            "--trusted-proxies",
        ),
        (
            &[
                &base[..],
                &[
                    "--tls-cert",
                    "/nonexistent.pem",
                    "--tls-key",
                    "/nonexistent.key",
                ],
            ]
            .concat(),
            "nonexistent",
        ),
        (
            &[&base[..], &["--tls-cert", "/nonexistent.pem"]].concat(),
            "tls-key",
        ),
        (
            &[&base[..], &["--ca", "/nonexistent-ca.pem"]].concat(),
            "--ca /nonexistent-ca.pem: cannot read",
        ),
    ];
    for (args, mention) in cases {
        let out = Command::new(BIN).args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(mention), "{args:?}: {err}");
    }
}

#[test]
fn listens_on_port_zero_and_exits_on_sigterm() {
    let child = Command::new(BIN)
        .args([
            "--hostname",
            "mbx1.example.com",
            "--directory",
            "http://127.0.0.1:1",
        ])
        .args([
            "--imap-listen",
            "127.0.0.1:0",
            "--pop3-listen",
            "127.0.0.1:0",
            "--grace-period",
            "2",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap();
    let mut guard = Guard(Some(child));
    let child = guard.0.as_mut().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut listening = Vec::new();
    let mut warned_tls = 0;
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "exited early");
        if line.contains("listening") {
            listening.push(line.clone());
        }
        if line.contains("implicit-TLS listener not started") {
            warned_tls += 1;
        }
        if line.contains("mailbox-stub ready") {
            break;
        }
    }
    assert_eq!(listening.len(), 2, "{listening:?}");
    assert!(
        listening
            .iter()
            .all(|l| !l.contains(":0 ") && l.contains("127.0.0.1:")),
        "{listening:?}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        warned_tls, 2,
        "both TLS listeners were skipped without a certificate, with a warning"
    );
    guard.0 = None;
}

#[test]
fn a_forwarded_client_address_is_logged_once_per_connection() {
    let child = Command::new(BIN)
        .args([
            "--hostname",
            "mbx1.example.com",
            "--directory",
            "http://127.0.0.1:1",
            "--trusted-proxies",
            "127.0.0.1/32",
            "--imap-listen",
            "127.0.0.1:0",
            "--pop3-listen",
            "off",
            "--imaps-listen",
            "off",
            "--pop3s-listen",
            "off",
            "--grace-period",
            "1",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap();
    let mut guard = Guard(Some(child));
    let child = guard.0.as_mut().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "exited early");
        if let Some(at) = line.find("addr=") {
            break line[at + 5..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    };
    // What our proxy sends: the address under both of Zimbra's spellings.
    let mut imap = std::net::TcpStream::connect(&addr).unwrap();
    let mut reader = std::io::BufReader::new(imap.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    std::io::Write::write_all(
        &mut imap,
        b"a ID (\"x-originating-ip\" \"192.0.2.7\" \"X-ORIGINATING-IP\" \"192.0.2.7\")\r\nb LOGOUT\r\n",
    )
    .unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    assert!(rest.contains("b OK"), "{rest}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut log = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
    let _ = child.wait();
    guard.0 = None;
    assert_eq!(
        log.matches("client address forwarded").count(),
        1,
        "one line for one forwarded address: {log}"
    );
    assert!(log.contains("client=192.0.2.7 proxy=127.0.0.1"), "{log}");
}
