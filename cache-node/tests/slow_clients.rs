//! Clients that are slow or stall: the idle timeout closes silent connections (and ones
//! that stop mid-request), and a long multi-get trickling in byte by byte still works.

mod support;

use std::time::{Duration, Instant};

#[test]
fn silent_connection_is_closed_after_the_idle_timeout() {
    let server = support::start(&["--idle-timeout", "1"]);
    let mut c = server.connect();
    assert_eq!(c.roundtrip(b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    let started = Instant::now();
    let reply = c.read_until(Duration::from_secs(5), |_| false);
    assert!(reply.closed, "connection still open after 5 s of silence");
    assert!(reply.bytes.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The node itself is fine.
    assert_eq!(
        server.connect().roundtrip(b"get k\r\n"),
        b"VALUE k 0 1\r\nv\r\nEND\r\n"
    );
}

#[test]
fn a_request_stalled_halfway_is_dropped_by_the_idle_timeout() {
    let server = support::start(&["--idle-timeout", "1"]);
    let mut c = server.connect();
    c.send(b"set k 0 0 100\r\nonly part of the data");
    let reply = c.read_until(Duration::from_secs(5), |_| false);
    assert!(
        reply.closed && reply.bytes.is_empty(),
        "got {:?}",
        reply.bytes
    );
    assert_eq!(server.connect().roundtrip(b"get k\r\n"), b"END\r\n");
}

#[test]
fn long_multi_get_trickling_in_is_answered() {
    let server = support::start(&[]);
    let mut c = server.connect();
    let keys: Vec<String> = (0..1500).map(|i| format!("key:{i:05}")).collect();
    let mut set = Vec::new();
    for k in &keys {
        set.extend_from_slice(format!("set {k} 0 0 1 noreply\r\nx\r\n").as_bytes());
    }
    assert_eq!(c.roundtrip(&set), b"");
    // A 16 KB get line in 64-byte pieces: past the 2048-byte command limit, which only
    // multi-gets may exceed.
    let line = format!("get {}\r\n", keys.join(" "));
    for piece in line.as_bytes().chunks(64) {
        c.send(piece);
    }
    let reply = c.read_until_suffix(b"END\r\n");
    let values = reply.bytes.windows(6).filter(|w| w == b"VALUE ").count();
    assert_eq!(values, keys.len());
}

#[test]
fn non_get_line_over_the_limit_trickling_in_is_refused() {
    let server = support::start(&[]);
    let mut c = server.connect();
    let line = format!("set {} 0 0 1\r\n", "k".repeat(3000));
    for piece in line.as_bytes().chunks(100) {
        if c.try_send(piece).is_err() {
            break;
        }
    }
    let reply = c.read_to_close();
    assert_eq!(reply.bytes, b"CLIENT_ERROR line too long\r\n");
    assert!(reply.closed);
}
