//! The driver on an in-memory stream, with a line-per-command dialect: strikes, the read
//! timeout against the deadline, bounded SASL lines, STARTTLS discarding buffered bytes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use super::*;
use crate::shutdown::Shutdown;

/// POP3 with commands kept as their keyword.
fn dialect() -> pop3::Pop3<String> {
    pop3::Pop3::new(codec::pop3::Limits { max_line: 64 }, |c| {
        format!("{c:?}")
            .split(['(', ' '])
            .next()
            .unwrap_or("")
            .to_string()
    })
}

fn bounds(deadline: Option<Instant>) -> Bounds {
    Bounds {
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        deadline,
        max_bad: 3,
        max_line: 16,
    }
}

/// Answers NOOP, fails every PASS as a refused login, upgrades on STLS, ends on QUIT.
struct Echo;

impl<S: AsyncRead + AsyncWrite + Unpin> Dispatch<pop3::Pop3<String>, S> for Echo {
    type Done = &'static str;

    async fn dispatch(
        &mut self,
        command: String,
        io: &mut LineSession<pop3::Pop3<String>>,
        stream: &mut S,
    ) -> io::Result<Step<&'static str>> {
        Ok(match command.as_str() {
            "Noop" => {
                codec::pop3::ok(io.out(), "");
                Step::Continue
            }
            "Pass" => {
                codec::pop3::err(io.out(), "[AUTH] no");
                if io.failed_login() {
                    Step::Continue
                } else {
                    Step::Close
                }
            }
            "Stls" => Step::StartTls,
            "Auth" => match io.read_line(stream).await? {
                Line::Read(l) => {
                    io.out().extend_from_slice(&l);
                    io.out().extend_from_slice(b"\r\n");
                    Step::Continue
                }
                Line::TooLong => Step::Done("too long"),
                Line::Closed => Step::Close,
            },
            _ => Step::Done("quit"),
        })
    }
}

async fn run(
    input: &[u8],
    deadline: Option<Instant>,
) -> (io::Result<Ended<&'static str>>, String, DuplexStream) {
    let (mut client, mut server) = tokio::io::duplex(4096);
    let (_stop, watch) = Shutdown::new();
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    let mut io = LineSession::new(dialect(), bounds(deadline), watch);
    let ended = io.drive(&mut server, &mut Echo).await;
    drop(server);
    let mut out = String::new();
    client.read_to_string(&mut out).await.unwrap();
    (ended, out, client)
}

#[tokio::test]
async fn failed_logins_and_bad_commands_share_one_cap() {
    let (ended, out, _) = run(b"NOOP\r\nPASS a\r\nBOGUS\r\nPASS b\r\nNOOP\r\n", None).await;
    assert!(matches!(ended, Ok(Ended::Closed)), "{ended:?}");
    assert_eq!(
        out,
        "+OK\r\n-ERR [AUTH] no\r\n-ERR unknown command\r\n-ERR [AUTH] no\r\n\
         -ERR Too many failed logins, closing connection\r\n"
    );
}

#[tokio::test]
async fn an_over_long_line_is_answered_once_and_dropped() {
    let long = format!("NOOP {}\r\nNOOP\r\nQUIT\r\n", "x".repeat(200));
    let (ended, out, _) = run(long.as_bytes(), None).await;
    assert!(matches!(ended, Ok(Ended::Done("quit"))), "{ended:?}");
    assert_eq!(out, "-ERR line too long\r\n+OK\r\n");
}

#[tokio::test]
async fn sasl_lines_are_bounded() {
    let (ended, out, _) = run(b"AUTH PLAIN\r\nshort\r\nAUTH PLAIN\r\n", None).await;
    assert!(matches!(ended, Ok(Ended::Closed)), "{ended:?}");
    assert_eq!(out, "short\r\n");
    let long = format!("AUTH PLAIN\r\n{}\r\nNOOP\r\n", "y".repeat(40));
    let (ended, _, _) = run(long.as_bytes(), None).await;
    assert!(matches!(ended, Ok(Ended::Done("too long"))), "{ended:?}");
}

#[tokio::test]
async fn starttls_discards_what_was_pipelined() {
    let (mut client, mut server) = tokio::io::duplex(4096);
    let (_stop, watch) = Shutdown::new();
    client.write_all(b"STLS\r\nQUIT\r\n").await.unwrap();
    let mut io = LineSession::new(dialect(), bounds(None), watch);
    let ended = io.drive(&mut server, &mut Echo).await.unwrap();
    assert!(matches!(ended, Ended::StartTls));
    assert!(
        io.take_buffered().is_empty(),
        "QUIT sent in the clear is dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_session_that_keeps_talking() {
    let (mut client, mut server) = tokio::io::duplex(4096);
    let (_stop, watch) = Shutdown::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let driver = tokio::spawn(async move {
        let mut io = LineSession::new(dialect(), bounds(Some(deadline)), watch);
        io.drive(&mut server, &mut Echo).await
    });
    let mut sent = 0;
    let mut out = Vec::new();
    loop {
        if client.write_all(b"NOOP\r\n").await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if driver.is_finished() {
            break;
        }
    }
    let ended = driver.await.unwrap();
    assert!(matches!(ended, Ok(Ended::Closed)), "{ended:?}");
    client.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.ends_with("-ERR Login took too long, closing connection\r\n"),
        "{out}"
    );
    assert!(
        (4..=6).contains(&sent),
        "closed near the 2 s deadline, after {sent} NOOPs"
    );
}

#[tokio::test(start_paused = true)]
async fn silence_ends_at_the_read_timeout() {
    let (_client, mut server) = tokio::io::duplex(4096);
    let (_stop, watch) = Shutdown::new();
    let mut io = LineSession::new(dialect(), bounds(None), watch);
    let started = Instant::now();
    let ended = io.drive(&mut server, &mut Echo).await;
    assert!(matches!(ended, Ok(Ended::Closed)));
    assert_eq!(started.elapsed().as_secs(), 5);
}

#[tokio::test]
async fn a_proxy_header_is_refused_where_it_is_not_allowed() {
    for input in [
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nNOOP\r\n"[..],
        &codec::proxy_protocol::V2_SIGNATURE,
    ] {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let (_stop, watch) = Shutdown::new();
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let mut io = LineSession::new(dialect(), bounds(None), watch);
        io.refuse_proxy_header();
        let ended = io.drive(&mut server, &mut Echo).await;
        assert!(matches!(ended, Ok(Ended::Closed)), "{ended:?}");
        drop(server);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert_eq!(
            out,
            "-ERR PROXY protocol header not accepted from this address\r\n"
        );
    }
    // A command that merely starts like one is a command.
    let (mut client, mut server) = tokio::io::duplex(4096);
    let (_stop, watch) = Shutdown::new();
    client.write_all(b"PRO\r\nNOOP\r\n").await.unwrap();
    client.shutdown().await.unwrap();
    let mut io = LineSession::new(dialect(), bounds(None), watch);
    io.refuse_proxy_header();
    let _ = io.drive(&mut server, &mut Echo).await;
    drop(server);
    let mut out = String::new();
    client.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "-ERR unknown command\r\n+OK\r\n");
}
