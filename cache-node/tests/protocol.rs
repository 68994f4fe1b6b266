//! Byte-exact protocol tests of cache-node against an in-process server: every classic and
//! meta command of memcached 1.6 with its edges (reference/cache.md §1), noreply,
//! pipelining, error recovery, too-large items, binary and garbage input, over-long lines,
//! keys with control characters and the connection limit.
//!
//! The tables run each case on a fresh server and a fresh connection. A case's request is
//! followed by a sync command whose reply marks the end, so the whole reply stream is
//! compared exactly (nothing extra, nothing missing) without sleeping. Cas uniques are
//! masked to `<cas>`; the tests that need real cas values learn them first.

mod support;

use std::time::Duration;

use support::{mask, show, Client, SYNC, SYNC_REPLY};

/// One table row.
struct Case {
    name: String,
    request: Vec<u8>,
    expect: Vec<u8>,
    /// The server must close the connection after the reply (no sync is sent).
    closes: bool,
}

fn case(name: impl Into<String>, request: impl AsRef<[u8]>, expect: impl AsRef<[u8]>) -> Case {
    Case {
        name: name.into(),
        request: request.as_ref().to_vec(),
        expect: expect.as_ref().to_vec(),
        closes: false,
    }
}

fn closing(name: impl Into<String>, request: impl AsRef<[u8]>, expect: impl AsRef<[u8]>) -> Case {
    Case {
        closes: true,
        ..case(name, request, expect)
    }
}

/// Runs every case on its own server and reports all failures together.
fn run(cases: Vec<Case>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for case in &cases {
        let server = support::start(&[]);
        let mut client = server.connect();
        let (got, closed, expect) = if case.closes {
            client.send(&case.request);
            let reply = client.read_to_close();
            (reply.bytes, reply.closed, case.expect.clone())
        } else {
            // One write, so the request is normally handled in one read.
            client.send(&[case.request.as_slice(), SYNC].concat());
            let reply = client.read_until_suffix(SYNC_REPLY);
            (
                reply.bytes,
                reply.closed,
                [case.expect.as_slice(), SYNC_REPLY].concat(),
            )
        };
        let got = mask(&got, false);
        if got != expect || closed != case.closes {
            failures.push(format!(
                "{}\n    request:  {}\n    expected: {} (close: {})\n    actual:   {} (closed: {})",
                case.name,
                show(&case.request),
                show(&expect),
                case.closes,
                show(&got),
                closed
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn key(len: usize) -> String {
    "k".repeat(len)
}

#[test]
fn retrieval() {
    let mut multi_set = String::new();
    let mut multi_reply = String::new();
    for i in [1, 2, 3, 5, 6] {
        multi_set.push_str(&format!("set k{i} {i} 0 2\r\nv{i}\r\n"));
        multi_reply.push_str("STORED\r\n");
    }
    let multi_values: String = [1, 2, 3, 5, 6]
        .iter()
        .map(|i| format!("VALUE k{i} {i} 2\r\nv{i}\r\n"))
        .collect();
    run(vec![
        case("get miss", "get a\r\n", "END\r\n"),
        case(
            "get hit with flags",
            "set a 5 0 3\r\nabc\r\nget a\r\n",
            "STORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\n",
        ),
        case(
            "multi-get of six keys, one missing",
            format!("{multi_set}get k1 k2 k3 k4 k5 k6\r\n"),
            format!("{multi_reply}{multi_values}END\r\n"),
        ),
        case(
            "gets returns the cas",
            "set a 0 0 1\r\nx\r\ngets a\r\n",
            "STORED\r\nVALUE a 0 1 <cas>\r\nx\r\nEND\r\n",
        ),
        case(
            "gets multi with a miss",
            "set a 1 0 1\r\nx\r\nset b 2 0 2\r\nyy\r\ngets a nope b\r\n",
            "STORED\r\nSTORED\r\nVALUE a 1 1 <cas>\r\nx\r\nVALUE b 2 2 <cas>\r\nyy\r\nEND\r\n",
        ),
        case(
            "gat hit has no cas and sets the ttl",
            "set a 3 0 1\r\nx\r\ngat 100 a nope\r\nmg a t\r\n",
            "STORED\r\nVALUE a 3 1\r\nx\r\nEND\r\nHD t100\r\n",
        ),
        case(
            "gats hit has the cas",
            "set a 3 0 1\r\nx\r\ngats 100 a\r\n",
            "STORED\r\nVALUE a 3 1 <cas>\r\nx\r\nEND\r\n",
        ),
        case("gat miss", "gat 100 a\r\n", "END\r\n"),
        case("gats miss", "gats 100 a b\r\n", "END\r\n"),
        case(
            "gat with a negative exptime returns the item, then it is gone",
            "set a 0 0 1\r\nx\r\ngat -1 a\r\nget a\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nEND\r\n",
        ),
        case(
            "gat 0 removes the ttl",
            "set a 0 100 1\r\nx\r\ngat 0 a\r\nmg a t\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nHD t-1\r\n",
        ),
        case("get without a key", "get\r\n", "ERROR\r\n"),
        case("gets without a key", "gets\r\n", "ERROR\r\n"),
        case("gat without anything", "gat\r\n", "ERROR\r\n"),
        case("gats without anything", "gats\r\n", "ERROR\r\n"),
        case(
            "gat with a bad exptime",
            "gat x a\r\n",
            "CLIENT_ERROR invalid exptime argument\r\n",
        ),
        case(
            "get 250-byte key",
            format!("get {}\r\n", key(250)),
            "END\r\n",
        ),
        case(
            "get 251-byte key",
            format!("get {}\r\n", key(251)),
            "CLIENT_ERROR bad command line format\r\n",
        ),
        case(
            "multi-get with one over-long key",
            format!("get a {} b\r\n", key(251)),
            "CLIENT_ERROR bad command line format\r\n",
        ),
        case(
            "set and get a 250-byte key",
            format!("set {k} 0 0 1\r\nx\r\nget {k}\r\n", k = key(250)),
            format!("STORED\r\nVALUE {} 0 1\r\nx\r\nEND\r\n", key(250)),
        ),
        case(
            "repeated keys and runs of spaces",
            "set a 0 0 1\r\nx\r\n  get  a   a \r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case("bare LF line ends", "get a\n", "END\r\n"),
        case(
            "get line of about 3000 bytes is a multi-get, not a long line",
            format!("get {}\r\n", vec!["abcdefghi"; 300].join(" ")),
            "END\r\n",
        ),
    ]);
}

#[test]
fn storage() {
    run(vec![
        case(
            "zero-length value",
            "set a 0 0 0\r\n\r\nget a\r\n",
            "STORED\r\nVALUE a 0 0\r\n\r\nEND\r\n",
        ),
        case(
            "largest 32-bit flags",
            "set a 4294967295 0 1\r\nx\r\nget a\r\n",
            "STORED\r\nVALUE a 4294967295 1\r\nx\r\nEND\r\n",
        ),
        case(
            "value with CR, LF and binary bytes",
            b"set a 0 0 6\r\n\r\n\x00\xff\r\n\r\nget a\r\n".as_slice(),
            b"STORED\r\nVALUE a 0 6\r\n\r\n\x00\xff\r\n\r\nEND\r\n".as_slice(),
        ),
        case(
            "set overwrites",
            "set a 1 0 1\r\nx\r\nset a 2 0 2\r\nyy\r\nget a\r\n",
            "STORED\r\nSTORED\r\nVALUE a 2 2\r\nyy\r\nEND\r\n",
        ),
        case(
            "add stores once",
            "add a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\nget a\r\n",
            "STORED\r\nNOT_STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "replace needs the key",
            "replace a 0 0 1\r\nx\r\nset a 1 0 1\r\nx\r\nreplace a 9 0 2\r\nzz\r\nget a\r\n",
            "NOT_STORED\r\nSTORED\r\nSTORED\r\nVALUE a 9 2\r\nzz\r\nEND\r\n",
        ),
        case(
            "append and prepend keep the flags",
            "set a 5 0 2\r\nmm\r\nappend a 9 0 2\r\n12\r\nprepend a 9 0 2\r\n00\r\nget a\r\n",
            "STORED\r\nSTORED\r\nSTORED\r\nVALUE a 5 6\r\n00mm12\r\nEND\r\n",
        ),
        case(
            "append and prepend on a missing key",
            "append a 0 0 1\r\nx\r\nprepend a 0 0 1\r\nx\r\nget a\r\n",
            "NOT_STORED\r\nNOT_STORED\r\nEND\r\n",
        ),
        case(
            "append of zero bytes",
            "set a 0 0 1\r\nx\r\nappend a 0 0 0\r\n\r\nget a\r\n",
            "STORED\r\nSTORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "cas on a missing key",
            "cas a 0 0 1 1\r\nx\r\n",
            "NOT_FOUND\r\n",
        ),
        case(
            "cas with a stale unique",
            "set a 0 0 1\r\nx\r\ncas a 0 0 1 99999\r\ny\r\nget a\r\n",
            "STORED\r\nEXISTS\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "cas without its unique",
            "cas a 0 0 1\r\nx\r\n",
            "ERROR\r\nERROR\r\n",
        ),
        case(
            "cas with a non-numeric unique",
            "cas a 0 0 1 x\r\nx\r\n",
            "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
        case(
            "negative exptime stores an expired item",
            "set neg 0 -1 1\r\nx\r\nget neg\r\n",
            "STORED\r\nEND\r\n",
        ),
        case(
            "exptime over 30 days is an absolute time in the past",
            "set b 0 2592001 1\r\nx\r\nget b\r\n",
            "STORED\r\nEND\r\n",
        ),
        case(
            "exptime of exactly 30 days is relative",
            "set a 0 2592000 1\r\nx\r\nmg a t\r\n",
            "STORED\r\nHD t2592000\r\n",
        ),
        case("set with too few tokens", "set a 0 0\r\n", "ERROR\r\n"),
        case(
            "set with a token after noreply",
            "set a 0 0 1 noreply extra\r\nx\r\n",
            "ERROR\r\nERROR\r\n",
        ),
        case(
            "an unknown sixth token is not noreply",
            "set a 0 0 1 2\r\nx\r\nget a\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "bad flags",
            "set a x 0 1\r\nx\r\n",
            "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
        case(
            "bad exptime",
            "set a 0 x 1\r\nx\r\n",
            "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
        case(
            "bad length",
            "set a 0 0 abc\r\nx\r\n",
            "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
        case(
            "bad arguments of append",
            "append a x y 1\r\nx\r\n",
            "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
        case(
            "runs of spaces between arguments",
            "set  a  0  0  1 \r\nx\r\nget a\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "leading zeros in numbers",
            "set a 00 0 01\r\nx\r\nget a\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
    ]);
}

#[test]
fn delete_incr_decr_touch() {
    let usage = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
    run(vec![
        case(
            "delete hit, then miss",
            "set a 0 0 1\r\nx\r\ndelete a\r\ndelete a\r\nget a\r\n",
            "STORED\r\nDELETED\r\nNOT_FOUND\r\nEND\r\n",
        ),
        case(
            "legacy delete k 0",
            "set a 0 0 1\r\nx\r\ndelete a 0\r\nget a\r\n",
            "STORED\r\nDELETED\r\nEND\r\n",
        ),
        case(
            "legacy delete k 0 noreply",
            "set a 0 0 1\r\nx\r\ndelete a 0 noreply\r\nget a\r\n",
            "STORED\r\nEND\r\n",
        ),
        case(
            "delete k noreply",
            "set a 0 0 1\r\nx\r\ndelete a noreply\r\ndelete a noreply\r\nget a\r\n",
            "STORED\r\nEND\r\n",
        ),
        case("delete without a key", "delete\r\n", "ERROR\r\n"),
        case(
            "delete with five arguments",
            "delete a b c d e\r\n",
            "ERROR\r\n",
        ),
        case("delete with a hold time", "delete a 1\r\n", usage),
        case(
            "delete with two unknown arguments",
            "delete a b c\r\n",
            usage,
        ),
        case(
            "bad delete with noreply stays silent",
            "delete a x noreply\r\n",
            "",
        ),
        case(
            "a lone noreply is the key",
            "delete noreply\r\n",
            "NOT_FOUND\r\n",
        ),
        case(
            "delete of a 251-byte key",
            format!("delete {}\r\n", key(251)),
            "CLIENT_ERROR bad command line format\r\n",
        ),
        case(
            "incr and decr",
            "set a 7 0 1\r\n5\r\nincr a 2\r\ndecr a 3\r\nget a\r\n",
            "STORED\r\n7\r\n4\r\nVALUE a 7 1\r\n4\r\nEND\r\n",
        ),
        case(
            "incr wraps at 2^64",
            "set a 0 0 20\r\n18446744073709551615\r\nincr a 1\r\n",
            "STORED\r\n0\r\n",
        ),
        case(
            "incr by the largest delta",
            "set a 0 0 1\r\n1\r\nincr a 18446744073709551615\r\nincr a 18446744073709551615\r\n",
            "STORED\r\n0\r\n18446744073709551615\r\n",
        ),
        case(
            "decr stops at 0",
            "set a 0 0 2\r\n10\r\ndecr a 100\r\ndecr a 1\r\n",
            "STORED\r\n0\r\n0\r\n",
        ),
        case(
            "incr grows the value",
            "set a 0 0 2\r\n99\r\nincr a 1\r\nget a\r\n",
            "STORED\r\n100\r\nVALUE a 0 3\r\n100\r\nEND\r\n",
        ),
        case(
            "incr and decr on a missing key",
            "incr a 1\r\ndecr a 1\r\n",
            "NOT_FOUND\r\nNOT_FOUND\r\n",
        ),
        case(
            "incr and decr of a non-numeric value",
            "set s 0 0 2\r\nab\r\nincr s 1\r\ndecr s 1\r\n",
            "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n\
             CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        ),
        case(
            "incr of a number over 2^64 is non-numeric",
            "set s 0 0 20\r\n18446744073709551616\r\nincr s 1\r\n",
            "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        ),
        case(
            "bad deltas",
            "set a 0 0 1\r\n1\r\nincr a x\r\nincr a -1\r\ndecr a 18446744073709551616\r\n",
            "STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\n\
             CLIENT_ERROR invalid numeric delta argument\r\n\
             CLIENT_ERROR invalid numeric delta argument\r\n",
        ),
        case(
            "bad delta with noreply stays silent",
            "set a 0 0 1\r\n1\r\nincr a x noreply\r\n",
            "STORED\r\n",
        ),
        case(
            "incr with the wrong number of tokens",
            "incr\r\nincr a\r\nincr a 1 2 3\r\n",
            "ERROR\r\nERROR\r\nERROR\r\n",
        ),
        case(
            "an unknown fourth incr token is not noreply",
            "incr a 1 2\r\n",
            "NOT_FOUND\r\n",
        ),
        case(
            "touch miss, hit",
            "touch a 10\r\nset a 0 0 1\r\nx\r\ntouch a 10\r\nmg a t\r\n",
            "NOT_FOUND\r\nSTORED\r\nTOUCHED\r\nHD t10\r\n",
        ),
        case(
            "touch with a negative exptime expires",
            "set a 0 0 1\r\nx\r\ntouch a -1\r\nget a\r\n",
            "STORED\r\nTOUCHED\r\nEND\r\n",
        ),
        case(
            "touch noreply",
            "set a 0 0 1\r\nx\r\ntouch a 10 noreply\r\ntouch b 10 noreply\r\nmg a t\r\n",
            "STORED\r\nHD t10\r\n",
        ),
        case(
            "touch forms",
            "touch a\r\ntouch\r\ntouch a x\r\n",
            "ERROR\r\nERROR\r\nCLIENT_ERROR invalid exptime argument\r\n",
        ),
    ]);
}

#[test]
fn flush_version_verbosity_stats_quit() {
    run(vec![
        case(
            "flush_all hides items",
            "set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\n",
            "STORED\r\nOK\r\nEND\r\n",
        ),
        case(
            "an item set after the flush survives it",
            "set a 0 0 1\r\nx\r\nflush_all\r\nset a 0 0 1\r\ny\r\nget a\r\n",
            "STORED\r\nOK\r\nSTORED\r\nVALUE a 0 1\r\ny\r\nEND\r\n",
        ),
        case(
            "flush_all 0",
            "set a 0 0 1\r\nx\r\nflush_all 0\r\nset b 0 0 1\r\ny\r\nget a b\r\n",
            "STORED\r\nOK\r\nSTORED\r\nVALUE b 0 1\r\ny\r\nEND\r\n",
        ),
        case(
            "flush_all with a delay leaves items for now",
            "set a 0 0 1\r\nx\r\nflush_all 2\r\nget a\r\n",
            "STORED\r\nOK\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "flush_all noreply",
            "set a 0 0 1\r\nx\r\nflush_all noreply\r\nget a\r\n",
            "STORED\r\nEND\r\n",
        ),
        case("flush_all delay noreply", "flush_all 10 noreply\r\n", ""),
        case("flush_all -1", "flush_all -1\r\n", "OK\r\n"),
        case(
            "flush_all with three arguments",
            "flush_all 1 2 3\r\n",
            "ERROR\r\n",
        ),
        case("verbosity without a level", "verbosity\r\n", "ERROR\r\n"),
        case("verbosity 1", "verbosity 1\r\n", "OK\r\n"),
        case("verbosity noreply", "verbosity noreply\r\n", ""),
        case("verbosity 0 noreply", "verbosity 0 noreply\r\n", ""),
        case(
            "verbosity foo bar my",
            "verbosity foo bar my\r\n",
            "ERROR\r\n",
        ),
        case(
            "verbosity x",
            "verbosity x\r\n",
            "CLIENT_ERROR bad command line format\r\n",
        ),
        case("verbosity 1 2", "verbosity 1 2\r\n", "OK\r\n"),
        case("stats noreply", "stats noreply\r\n", "ERROR\r\n"),
        case(
            "stats detail",
            "stats detail\r\n",
            "CLIENT_ERROR usage: stats detail on|off|dump\r\n",
        ),
        case("stats detail on", "stats detail on\r\n", "OK\r\n"),
        case("stats detail dump", "stats detail dump\r\n", "END\r\n"),
        case("stats bogus", "stats bogus\r\n", "ERROR\r\n"),
        case("stats reset", "stats reset\r\n", "RESET\r\n"),
        case("stats slabs", "stats slabs\r\n", "END\r\n"),
        case("stats items", "stats items\r\n", "END\r\n"),
        case(
            "shutdown is refused",
            "shutdown\r\n",
            "ERROR: shutdown not enabled\r\n",
        ),
        case("GET is not get", "GET foo\r\n", "ERROR\r\n"),
        case("unknown command", "bogus\r\n", "ERROR\r\n"),
        case("empty lines", "\r\n\r\n", "ERROR\r\nERROR\r\n"),
        case("tab is no separator", "get\ta\r\n", "ERROR\r\n"),
        case(
            "garbage bytes, then a command",
            b"\xff\xfe\xfd\x00\r\nget a\r\n".as_slice(),
            "ERROR\r\nEND\r\n",
        ),
        closing("quit", "quit\r\n", ""),
        closing("quit with arguments", "quit foo bar\r\n", ""),
        closing(
            "quit in a pipeline: earlier replies, nothing after",
            "set a 0 0 1\r\nx\r\nget a\r\nquit\r\nget a\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
    ]);
}

#[test]
fn noreply_effects() {
    run(vec![
        case(
            "set noreply",
            "set a 0 0 1 noreply\r\nx\r\nget a\r\n",
            "VALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "add noreply, both outcomes",
            "add a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\nget a\r\n",
            "VALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "replace noreply, both outcomes",
            "set a 0 0 1 noreply\r\nx\r\nreplace a 0 0 1 noreply\r\nz\r\n\
             replace b 0 0 1 noreply\r\nz\r\nget a b\r\n",
            "VALUE a 0 1\r\nz\r\nEND\r\n",
        ),
        case(
            "append and prepend noreply",
            "set a 0 0 1 noreply\r\nx\r\nappend a 0 0 1 noreply\r\n1\r\n\
             prepend a 0 0 1 noreply\r\n0\r\nappend b 0 0 1 noreply\r\n1\r\nget a b\r\n",
            "VALUE a 0 3\r\n0x1\r\nEND\r\n",
        ),
        case(
            "cas noreply, missing and stale",
            "cas a 0 0 1 1 noreply\r\nq\r\nset a 0 0 1 noreply\r\nx\r\n\
             cas a 0 0 1 99999 noreply\r\nq\r\nget a\r\n",
            "VALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "incr and decr noreply",
            "set k 0 0 1\r\n5\r\nincr k 2 noreply\r\ndecr k 1 noreply\r\nincr nope 1 noreply\r\nget k\r\n",
            "STORED\r\nVALUE k 0 1\r\n6\r\nEND\r\n",
        ),
        case(
            "non-numeric incr noreply",
            "set s 0 0 1\r\nx\r\nincr s 1 noreply\r\n",
            "STORED\r\n",
        ),
        case(
            "noreply on a too-large set",
            format!("set big 0 0 2000000 noreply\r\n{}\r\n", "a".repeat(2_000_000)),
            "",
        ),
        case(
            "noreply on a bad data chunk",
            "set a 0 0 1 noreply\r\nxy\r\n",
            // The chunk error is silent; the stray LF after the block is an empty line.
            "ERROR\r\n",
        ),
    ]);
}

#[test]
fn noreply_then_version_gets_only_the_version_line() {
    // memccapable's pattern: every noreply command, then `version`; a stray reply to any
    // of them would come before the VERSION line.
    let server = support::start(&[]);
    let mut client = server.connect();
    let request = b"set a 0 0 1 noreply\r\n1\r\nadd a 0 0 1 noreply\r\n2\r\nadd b 0 0 1 noreply\r\n2\r\n\
        replace a 0 0 1 noreply\r\n3\r\nreplace c 0 0 1 noreply\r\n3\r\nappend a 0 0 1 noreply\r\n4\r\n\
        prepend a 0 0 1 noreply\r\n5\r\nappend c 0 0 1 noreply\r\n4\r\ncas a 0 0 1 1 noreply\r\n6\r\n\
        cas c 0 0 1 1 noreply\r\n6\r\nincr a 1 noreply\r\ndecr a 1 noreply\r\nincr c 1 noreply\r\n\
        touch a 10 noreply\r\ntouch c 10 noreply\r\ndelete b noreply\r\ndelete c noreply\r\n\
        delete a 0 noreply\r\nflush_all noreply\r\nflush_all 0 noreply\r\nverbosity 1 noreply\r\n\
        verbosity noreply\r\nversion\r\n";
    client.send(request);
    let reply = client.read_until(support::READ_TIMEOUT, |b| b.ends_with(b"\r\n"));
    assert!(
        reply.bytes.starts_with(b"VERSION 1.6") && reply.bytes.ends_with(b"\r\n"),
        "expected only a VERSION line, got {}",
        show(&reply.bytes)
    );
    assert_eq!(
        reply.bytes.iter().filter(|&&b| b == b'\n').count(),
        1,
        "expected exactly one line, got {}",
        show(&reply.bytes)
    );
    // And the effects happened: a was deleted, b deleted, everything flushed.
    assert_eq!(client.roundtrip(b"get a b c\r\n"), b"END\r\n");
}

#[test]
fn version_speaks_1_6() {
    let server = support::start(&[]);
    let mut client = server.connect();
    for request in [
        &b"version\r\n"[..],
        b"version foo bar\r\n",
        b"version noreply\r\n",
    ] {
        let reply = client.roundtrip(request);
        assert!(
            reply.starts_with(b"VERSION 1.6") && reply.ends_with(b"\r\n"),
            "{}: {}",
            show(request),
            show(&reply)
        );
        assert_eq!(reply.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}

#[test]
fn stats_has_the_memcached_fields() {
    let server = support::start(&[]);
    let mut client = server.connect();
    // No sync command here: it would count as a get.
    client.send(b"set a 0 0 1\r\nx\r\nget a\r\nget b\r\n");
    let reply = client.read_until_suffix(b"END\r\nEND\r\n");
    assert!(
        reply.bytes.ends_with(b"x\r\nEND\r\nEND\r\n"),
        "{}",
        show(&reply.bytes)
    );
    client.send(b"stats\r\n");
    let reply = client.read_until_suffix(b"\r\nEND\r\n").bytes;
    assert!(reply.ends_with(b"END\r\n"), "{}", show(&reply));
    let text = String::from_utf8(reply).expect("stats are text");
    let mut stats = std::collections::HashMap::new();
    for line in text.trim_end_matches("END\r\n").split("\r\n") {
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("STAT"), "line {line:?}");
        let name = parts.next().expect("name");
        let value = parts.next().expect("value");
        assert!(!value.is_empty(), "empty value in {line:?}");
        stats.insert(name.to_string(), value.to_string());
    }
    for field in [
        "pid",
        "uptime",
        "time",
        "version",
        "curr_connections",
        "total_connections",
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "curr_items",
        "total_items",
        "bytes",
        "limit_maxbytes",
        "evictions",
        "threads",
    ] {
        assert!(stats.contains_key(field), "stats lacks {field}: {text}");
    }
    assert_eq!(stats["pid"], std::process::id().to_string());
    assert!(stats["version"].starts_with("1.6"), "{}", stats["version"]);
    assert_eq!(stats["cmd_get"], "2");
    assert_eq!(stats["cmd_set"], "1");
    assert_eq!(stats["get_hits"], "1");
    assert_eq!(stats["get_misses"], "1");
    assert_eq!(stats["curr_items"], "1");
    assert_eq!(stats["total_items"], "1");
    assert_eq!(stats["curr_connections"], "1");
    assert_eq!(stats["limit_maxbytes"], (64u64 << 20).to_string());
}

/// Learns the cas of `key` with `mg <key> c`.
fn cas_of(client: &mut Client, key: &str) -> u64 {
    let reply = client.roundtrip(format!("mg {key} c\r\n").as_bytes());
    let text = String::from_utf8(reply).expect("text");
    text.strip_prefix("HD c")
        .and_then(|r| r.strip_suffix("\r\n"))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no cas in {text:?}"))
}

#[test]
fn cas_flow_with_real_uniques() {
    let server = support::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.roundtrip(b"set a 0 0 1\r\nx\r\n"), b"STORED\r\n");
    let cas = cas_of(&mut c, "a");
    assert_eq!(
        c.roundtrip(b"gets a\r\n"),
        format!("VALUE a 0 1 {cas}\r\nx\r\nEND\r\n").as_bytes()
    );
    assert_eq!(
        c.roundtrip(b"gats 0 a\r\n"),
        format!("VALUE a 0 1 {cas}\r\nx\r\nEND\r\n").as_bytes(),
        "a touch does not change the cas"
    );
    let wrong = cas + 1000;
    assert_eq!(
        c.roundtrip(format!("cas a 0 0 1 {wrong}\r\ny\r\n").as_bytes()),
        b"EXISTS\r\n"
    );
    assert_eq!(
        c.roundtrip(format!("cas a 3 0 1 {cas}\r\ny\r\n").as_bytes()),
        b"STORED\r\n"
    );
    assert_eq!(
        c.roundtrip(format!("cas a 0 0 1 {cas}\r\nz\r\n").as_bytes()),
        b"EXISTS\r\n",
        "a cas retried after success"
    );
    let new = cas_of(&mut c, "a");
    assert_ne!(new, cas);
    assert_eq!(
        c.roundtrip(b"gets a\r\n"),
        format!("VALUE a 3 1 {new}\r\ny\r\nEND\r\n").as_bytes()
    );
    // Every store gives a new unique.
    c.roundtrip(b"append a 0 0 1\r\n!\r\n");
    let appended = cas_of(&mut c, "a");
    assert_ne!(appended, new);
    c.roundtrip(b"incr n 1\r\nset n 0 0 1\r\n1\r\n");
    let n1 = cas_of(&mut c, "n");
    c.roundtrip(b"incr n 1\r\n");
    assert_ne!(cas_of(&mut c, "n"), n1);
    // Meta: C compares, E sets an explicit cas.
    assert_eq!(
        c.roundtrip(format!("ms a 1 C{wrong}\r\nq\r\n").as_bytes()),
        b"EX\r\n"
    );
    assert_eq!(
        c.roundtrip(format!("ms a 1 C{appended} E5000 c\r\nq\r\n").as_bytes()),
        b"HD c5000\r\n"
    );
    assert_eq!(cas_of(&mut c, "a"), 5000);
    assert_eq!(c.roundtrip(b"md a C4999\r\n"), b"EX\r\n");
    assert_eq!(c.roundtrip(b"md a C5000\r\n"), b"HD\r\n");
    assert_eq!(c.roundtrip(b"mg a v\r\n"), b"EN\r\n");
}

#[test]
fn meta_commands() {
    let opaque33 = format!("mg a O{}\r\n", "1".repeat(33));
    run(vec![
        case(
            "ms then mg with v f t k s c",
            "ms mk 2 T60 F7\r\nhi\r\nmg mk v f t k s c\r\n",
            "HD\r\nVA 2 f7 t60 kmk s2 c<cas>\r\nhi\r\n",
        ),
        case("mg miss", "mg nokey v\r\n", "EN\r\n"),
        case("mg miss with q is silent", "mg nokey v q\r\n", ""),
        case(
            "ms ME on an existing key",
            "ms mk2 2\r\nhi\r\nms mk2 2 ME\r\nho\r\nmg mk2 v\r\n",
            "HD\r\nNS\r\nVA 2\r\nhi\r\n",
        ),
        case(
            "mg hit with O and q",
            "ms mk 2\r\nhi\r\nmg mk v O123 q\r\n",
            "HD\r\nVA 2 O123\r\nhi\r\n",
        ),
        case("md q on a miss still says NF", "md nokey q\r\n", "NF\r\n"),
        case(
            "md q on a hit is silent",
            "ms a 1\r\nx\r\nmd a q\r\nmg a v\r\n",
            "HD\r\nEN\r\n",
        ),
        case(
            "md echoes O and k",
            "ms a 1\r\nx\r\nmd a O1 k\r\nmd a O1 k\r\n",
            "HD\r\nHD O1 ka\r\nNF O1 ka\r\n",
        ),
        case(
            "ma: miss, create with N and J, delta, decrement to 0",
            "ma cnt\r\nma cnt N0 J10 v\r\nma cnt D5 v\r\nma cnt MD D100 v\r\n",
            "NF\r\nVA 2\r\n10\r\nVA 2\r\n15\r\nVA 1\r\n0\r\n",
        ),
        case(
            "ma flags t c O k",
            "ma c N0 J0\r\nma c v t c\r\nma c O9 k\r\nma nope O9 k\r\n",
            "HD\r\nVA 1 t-1 c<cas>\r\n1\r\nHD O9 kc\r\nNF O9 knope\r\n",
        ),
        case(
            "ma modes + and -",
            "ma c N0 J5 M+ v\r\nma c M- D2 v\r\nma c MI v\r\n",
            "VA 1\r\n5\r\nVA 1\r\n3\r\nVA 1\r\n4\r\n",
        ),
        case(
            "ma q on a miss says NF; on a hit is silent",
            "ma c q\r\nma c N0 J5 v\r\nma c q\r\nmg c v\r\n",
            "NF\r\nVA 1\r\n5\r\nVA 1\r\n6\r\n",
        ),
        case(
            "ma wraps at 2^64",
            "ma c N0 J18446744073709551615 v\r\nma c v\r\n",
            "VA 20\r\n18446744073709551615\r\nVA 1\r\n0\r\n",
        ),
        case(
            "ma errors",
            "ma c Mx v\r\nma c Dx\r\nma c z\r\nms s 1\r\nx\r\nma s\r\n",
            "CLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid or duplicate flag\r\n\
             CLIENT_ERROR invalid or duplicate flag\r\nHD\r\n\
             CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        ),
        case("mn", "mn\r\n", "MN\r\n"),
        case("unknown meta command", "mz\r\n", "ERROR\r\n"),
        case("mg without a key", "mg\r\n", "ERROR\r\n"),
        case("md without a key", "md\r\n", "ERROR\r\n"),
        case("ma without a key", "ma\r\n", "ERROR\r\n"),
        case("ms without a key", "ms\r\n", "ERROR\r\n"),
        case(
            "ms without a length",
            "ms k\r\n",
            "CLIENT_ERROR bad command line format\r\n",
        ),
        case(
            "mg without flags, with k, with O",
            "ms a 1\r\nx\r\nmg a\r\nmg a k\r\nmg a O1 k\r\nmg nope k O5\r\n",
            "HD\r\nHD\r\nHD ka\r\nHD O1 ka\r\nEN knope O5\r\n",
        ),
        case(
            "mg h and l",
            "ms a 1 T0\r\nx\r\nmg a h l t\r\nmg a h l t\r\n",
            "HD\r\nHD h0 l0 t-1\r\nHD h1 l0 t-1\r\n",
        ),
        case(
            "mg T touches",
            "ms a 1 T0\r\nx\r\nmg a v T30 t\r\nmg a t\r\n",
            "HD\r\nVA 1 t30\r\nx\r\nHD t30\r\n",
        ),
        case(
            "mg T-1 expires",
            "ms a 1\r\nx\r\nmg a v T-1\r\nmg a v\r\n",
            "HD\r\nVA 1\r\nx\r\nEN\r\n",
        ),
        case(
            "mg P and L are ignored",
            "ms a 1 P L\r\nx\r\nmg a v P L\r\n",
            "HD\r\nVA 1\r\nx\r\n",
        ),
        case("ms c", "ms a 1 c\r\nx\r\n", "HD c<cas>\r\n"),
        case(
            "ms q suppresses only HD",
            "ms a 1 O1 k c q\r\nx\r\nms a 1 O1 k c\r\nx\r\nms a 1 MR q\r\nx\r\nms b 1 MR q\r\nx\r\n",
            "HD O1 ka c<cas>\r\nNS\r\n",
        ),
        case(
            "ms modes",
            "ms a 1 MA\r\nx\r\nms a 1 MP\r\ny\r\nms a 1 MR\r\nz\r\nms a 1\r\nm\r\nms a 1 MA\r\nx\r\n\
             ms a 1 MP\r\ny\r\nmg a v\r\nms a 1 MR\r\nz\r\nms b 1 MR\r\nz\r\nms a 1 ME\r\nq\r\n\
             ms c 1 ME\r\nq\r\nmg a v\r\nmg c v\r\nms a 1 MX\r\nq\r\nms a 1 MS\r\nq\r\nmg a v\r\n",
            "NS\r\nNS\r\nNS\r\nHD\r\nHD\r\nHD\r\nVA 3\r\nymx\r\nHD\r\nNS\r\nNS\r\nHD\r\nVA 1\r\nz\r\n\
             VA 1\r\nq\r\nCLIENT_ERROR invalid mode for ms M token\r\nHD\r\nVA 1\r\nq\r\n",
        ),
        case(
            "ms flags F and T",
            "ms a 2 F9 T100\r\nhi\r\nmg a f t v\r\nget a\r\n",
            "HD\r\nVA 2 f9 t100\r\nhi\r\nVALUE a 9 2\r\nhi\r\nEND\r\n",
        ),
        case(
            "ms T-1 stores an expired item",
            "ms a 1 T-1\r\nx\r\nmg a v\r\n",
            "HD\r\nEN\r\n",
        ),
        case(
            "ms C compares",
            "ms a 1\r\nx\r\nms a 1 C999\r\ny\r\nms nope 1 C5\r\nz\r\nmg a v\r\n",
            "HD\r\nEX\r\nNF\r\nVA 1\r\nx\r\n",
        ),
        case(
            "md C compares",
            "ms a 1\r\nx\r\nmd a C999\r\nmg a v\r\n",
            "HD\r\nEX\r\nVA 1\r\nx\r\n",
        ),
        case(
            "ms flag errors swallow the data block",
            "ms a 1 z\r\nx\r\nms a 1 v v\r\nx\r\nmg a v\r\n",
            "CLIENT_ERROR invalid flag\r\nCLIENT_ERROR duplicate flag\r\nEN\r\n",
        ),
        case(
            "ms with a bad data chunk",
            "ms a 1 k O99 s\r\nxy\r\n",
            "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        case(
            "mg flag errors",
            format!("mg a v v\r\nmg a z\r\nmg a Tx\r\n{opaque33}"),
            "CLIENT_ERROR duplicate flag\r\nCLIENT_ERROR invalid flag\r\n\
             CLIENT_ERROR bad token in command line format\r\nCLIENT_ERROR opaque token too long\r\n",
        ),
        case(
            "meta commands with a 251-byte key",
            format!(
                "mg {k} v\r\nmd {k}\r\nma {k}\r\nms {k} 1\r\nx\r\n",
                k = key(251)
            ),
            "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n\
             CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
        case("me miss", "me a\r\n", "EN\r\n"),
        case(
            "recache: N vivifies and wins once, R wins below the threshold once",
            "mg r v N30 t\r\nmg r v N30 t\r\nms r 3 T60\r\nnew\r\nmg r v t\r\nmg r v R100 t\r\n\
             mg r v R100 t\r\nmg r v R10 t\r\n",
            "VA 0 t30 W\r\n\r\nVA 0 t30 Z\r\n\r\nHD\r\nVA 3 t60\r\nnew\r\nVA 3 t60 W\r\nnew\r\n\
             VA 3 t60 Z\r\nnew\r\nVA 3 t60 Z\r\nnew\r\n",
        ),
        case(
            "invalidation: md I marks stale, one fetch wins, a new set clears it",
            "ms x 2 T100\r\nv1\r\nmd x I T30\r\nmg x v t c\r\nmg x v c\r\nmg x v\r\n\
             ms x 2 C999 I\r\nv2\r\nms x 2\r\nv3\r\nmg x v\r\n",
            "HD\r\nHD\r\nVA 2 t30 c<cas> X W\r\nv1\r\nVA 2 c<cas> Z X\r\nv1\r\nVA 2 Z X\r\nv1\r\n\
             EX\r\nHD\r\nVA 2\r\nv3\r\n",
        ),
    ]);
}

#[test]
fn me_reports_the_item() {
    let server = support::start(&[]);
    let mut c = server.connect();
    c.roundtrip(b"set a 0 0 1\r\nx\r\n");
    let reply = c.roundtrip(b"me a\r\n");
    assert!(
        reply.starts_with(b"ME a exp=-1 la=") && reply.ends_with(b"\r\n"),
        "{}",
        show(&reply)
    );
    for field in [&b" cas="[..], b" fetch=", b" cls=", b" size="] {
        assert!(
            reply.windows(field.len()).any(|w| w == field),
            "{} lacks {}",
            show(&reply),
            show(field)
        );
    }
}

#[test]
fn error_recovery() {
    run(vec![
        case(
            "set with a 251-byte key: the data line is a command",
            format!("set {} 0 0 1\r\nx\r\nget a\r\n", key(251)),
            "CLIENT_ERROR bad command line format\r\nERROR\r\nEND\r\n",
        ),
        case(
            "data block longer than announced",
            "set a 0 0 3\r\nabcd\r\nget a\r\n",
            "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n",
        ),
        case(
            "data block with LF only",
            "set a 0 0 1\nx\nget a\n",
            "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        case(
            "data block with a lone CR",
            "set a 0 0 1\r\nx\rget a\r\n",
            "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        case(
            "empty data where one byte was announced",
            "set a 0 0 1\r\n\r\n\r\n",
            "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        case(
            "negative length",
            "set a 0 0 -1\r\nget a\r\n",
            "CLIENT_ERROR bad command line format\r\nEND\r\n",
        ),
        case(
            "a bad data chunk leaves the old value",
            "set a 0 0 1\r\nx\r\nset a 0 0 1\r\nyz\r\nget a\r\n",
            "STORED\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
    ]);
}

/// Numbers memcached's C conversions silently truncate to 32 bits or wrap modulo 2^64
/// (it would store flags 0, never expire, read 1 byte, count by 1): refused here like any
/// other bad number, a storage line's data block then read as a command.
#[test]
fn numbers_memcached_would_truncate_are_refused() {
    let bad = "CLIENT_ERROR bad command line format\r\n";
    let exptime = "CLIENT_ERROR invalid exptime argument\r\n";
    run(vec![
        case(
            "flags above 2^32-1",
            "set a 4294967296 0 1\r\nx\r\nget a\r\n",
            format!("{bad}ERROR\r\nEND\r\n"),
        ),
        case(
            "a 64-bit exptime",
            "set a 0 4294967296 1\r\nx\r\nget a\r\n",
            format!("{bad}ERROR\r\nEND\r\n"),
        ),
        case(
            "a length that would wrap to 1",
            "set a 0 0 4294967297\r\nx\r\nget a\r\n",
            format!("{bad}ERROR\r\nEND\r\n"),
        ),
        case(
            "touch, gat and flush_all with a 64-bit exptime",
            "set a 0 0 1\r\nx\r\ntouch a 4294967296\r\ngat 4294967296 a\r\n\
             flush_all 4294967296\r\nget a\r\n",
            format!("STORED\r\n{exptime}{exptime}{exptime}VALUE a 0 1\r\nx\r\nEND\r\n"),
        ),
        case(
            "a delta below -2^63",
            "set n 0 0 1\r\n5\r\nincr n -18446744073709551615\r\nget n\r\n",
            "STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\nVALUE n 0 1\r\n5\r\nEND\r\n",
        ),
        case(
            "a verbosity level above 2^32-1",
            "verbosity 4294967296\r\n",
            bad,
        ),
        case(
            "meta flags and lengths",
            "ms a 4294967297 T0\r\nx\r\nms a 1 F4294967296\r\nx\r\nmg a T4294967296\r\nmn\r\n",
            format!("{bad}ERROR\r\n{bad}CLIENT_ERROR bad token in command line format\r\nMN\r\n"),
        ),
    ]);
}

/// The value size at which a 3-byte key's item reaches memcached's 1 MiB limit.
const LARGEST_FOR_3_BYTE_KEY: usize = 1_048_514;

#[test]
fn too_large() {
    let data = |n: usize| "a".repeat(n);
    let big = 1_048_576;
    let mut cases = vec![
        case(
            "set of 1 MiB is refused, the old value is gone",
            format!(
                "set big 0 0 1\r\nx\r\nset big 0 0 {big}\r\n{}\r\nget big\r\n",
                data(big)
            ),
            "STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n",
        ),
        case(
            "largest value that fits",
            format!(
                "set big 0 0 {n}\r\n{d}\r\nget big\r\n",
                n = LARGEST_FOR_3_BYTE_KEY,
                d = data(LARGEST_FOR_3_BYTE_KEY)
            ),
            format!(
                "STORED\r\nVALUE big 0 {n}\r\n{d}\r\nEND\r\n",
                n = LARGEST_FOR_3_BYTE_KEY,
                d = data(LARGEST_FOR_3_BYTE_KEY)
            ),
        ),
        case(
            "one byte more is refused",
            format!(
                "set big 0 0 {n}\r\n{d}\r\nget big\r\n",
                n = LARGEST_FOR_3_BYTE_KEY + 1,
                d = data(LARGEST_FOR_3_BYTE_KEY + 1)
            ),
            "SERVER_ERROR object too large for cache\r\nEND\r\n",
        ),
        case(
            "2,000,000 bytes, then the connection goes on",
            format!(
                "set big 0 0 2000000\r\n{}\r\nset a 0 0 1\r\nx\r\nget a\r\n",
                data(2_000_000)
            ),
            "SERVER_ERROR object too large for cache\r\nSTORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        case(
            "too-large set noreply still removes the old value",
            format!(
                "set big 0 0 1\r\nx\r\nset big 0 0 {big} noreply\r\n{}\r\nget big\r\n",
                data(big)
            ),
            "STORED\r\nEND\r\n",
        ),
        case(
            "meta set too large",
            format!(
                "ms big 1\r\nx\r\nms big {big} T0\r\n{}\r\nmg big v\r\n",
                data(big)
            ),
            "HD\r\nSERVER_ERROR object too large for cache\r\nEN\r\n",
        ),
    ];
    for cmd in ["add", "replace", "append", "prepend", "cas"] {
        let extra = if cmd == "cas" { " 1" } else { "" };
        cases.push(case(
            format!("too-large {cmd} keeps the old value"),
            format!(
                "set big 0 0 1\r\nx\r\n{cmd} big 0 0 {big}{extra}\r\n{}\r\nget big\r\n",
                data(big)
            ),
            "STORED\r\nSERVER_ERROR object too large for cache\r\nVALUE big 0 1\r\nx\r\nEND\r\n",
        ));
    }
    run(cases);
}

#[test]
fn too_large_data_sent_in_several_writes_is_swallowed() {
    let server = support::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.roundtrip(b"set big 0 0 1\r\nx\r\n"), b"STORED\r\n");
    let n = 1_048_576;
    let request = [
        format!("set big 0 0 {n}\r\n").into_bytes(),
        vec![b'z'; n],
        b"\r\nget big\r\nset a 0 0 1\r\ny\r\nget a\r\n".to_vec(),
    ]
    .concat();
    // Split inside the command line, inside the data, inside the CRLF and after it.
    // The tail after the data is 34 bytes: "\r\n" then the three commands.
    let tail = request.len() - 34;
    let cuts = [5, 100, 300_000, 700_000, tail - 1, tail + 1, tail + 20];
    let mut start = 0;
    for cut in cuts.into_iter().chain([request.len()]) {
        c.send(&request[start..cut]);
        start = cut;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        c.roundtrip(b""),
        b"SERVER_ERROR object too large for cache\r\nEND\r\nSTORED\r\nVALUE a 0 1\r\ny\r\nEND\r\n"
    );
}

#[test]
fn pipelining_keeps_order() {
    let server = support::start(&[]);
    let mut c = server.connect();
    let mut request = Vec::new();
    let mut expect = Vec::new();
    for i in 0..200 {
        let k = format!("p{i}");
        match i % 5 {
            0 => {
                request.extend(format!("set {k} {i} 0 {}\r\n{i}\r\n", i.to_string().len()).bytes());
                expect.extend(b"STORED\r\n");
            }
            1 => {
                request.extend(format!("get p{}\r\n", i - 1).bytes());
                expect.extend(
                    format!(
                        "VALUE p{0} {0} {1}\r\n{0}\r\nEND\r\n",
                        i - 1,
                        (i - 1).to_string().len()
                    )
                    .bytes(),
                );
            }
            2 => {
                request.extend(format!("incr p{} 1\r\n", i - 2).bytes());
                expect.extend(format!("{}\r\n", i - 1).bytes());
            }
            3 => {
                request.extend(format!("delete {k}\r\nmn\r\n").bytes());
                expect.extend(b"NOT_FOUND\r\nMN\r\n");
            }
            _ => {
                request.extend(format!("mg p{} v\r\n", i - 4).bytes());
                let v = (i - 3).to_string();
                expect.extend(format!("VA {}\r\n{v}\r\n", v.len()).bytes());
            }
        }
    }
    assert_eq!(
        show(&c.roundtrip(&request)),
        show(&expect),
        "replies out of order or missing"
    );
}

#[test]
fn multi_get_of_ten_thousand_keys_in_one_line() {
    let server = support::start(&[]);
    let mut c = server.connect();
    let keys: Vec<String> = (0..10_000).map(|i| format!("key:{i:05}")).collect();
    let mut sets = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            sets.extend(format!("set {k} {i} 0 {}\r\n{k}\r\n", k.len()).bytes());
        }
    }
    // Stored with replies, so the check below also proves all 6,666 went in.
    let stored = c.roundtrip(&sets);
    assert_eq!(stored.len(), 6_666 * b"STORED\r\n".len());
    let line = format!("get {}\r\n", keys.join(" "));
    assert!(line.len() > 100_000);
    let mut expect = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            expect.extend(format!("VALUE {k} {i} {}\r\n{k}\r\n", k.len()).bytes());
        }
    }
    expect.extend(b"END\r\n");
    let reply = c.roundtrip(line.as_bytes());
    assert!(reply == expect, "10,000-key get: {}", show(&reply));
    // The same line trickling in, in 8 writes.
    let bytes = line.as_bytes();
    for piece in bytes.chunks(bytes.len() / 8 + 1) {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(10));
    }
    let reply = c.roundtrip(b"");
    assert!(
        reply == expect,
        "10,000-key get in pieces: {}",
        show(&reply)
    );
}

#[test]
fn keys_with_control_characters_are_refused() {
    let bad = "CLIENT_ERROR bad command line format\r\n";
    run(vec![
        case(
            "set",
            b"set a\x01 0 0 1\r\nx\r\n".as_slice(),
            format!("{bad}ERROR\r\n"),
        ),
        case("get with DEL", b"get a\x7f\r\n".as_slice(), bad),
        case("get with NUL", b"get a\x00b\r\n".as_slice(), bad),
        case("get with a tab inside", b"get a\tb\r\n".as_slice(), bad),
        case("get with a CR inside", b"get a\rb\r\n".as_slice(), bad),
        case("mg", b"mg a\x02 v\r\n".as_slice(), bad),
        case("delete", b"delete a\x01\r\n".as_slice(), bad),
        case("incr", b"incr a\x01 1\r\n".as_slice(), bad),
        case("touch", b"touch a\x01 1\r\n".as_slice(), bad),
        case("md", b"md a\x01\r\n".as_slice(), bad),
        case("ma", b"ma a\x01\r\n".as_slice(), bad),
        case(
            "ms",
            b"ms a\x01 1\r\nx\r\n".as_slice(),
            format!("{bad}ERROR\r\n"),
        ),
        case(
            "UTF-8 keys are fine",
            b"set \xc3\xa9 0 0 1\r\nx\r\nget \xc3\xa9\r\n".as_slice(),
            b"STORED\r\nVALUE \xc3\xa9 0 1\r\nx\r\nEND\r\n".as_slice(),
        ),
    ]);
}

#[test]
fn long_lines_close_the_connection() {
    run(vec![
        closing(
            "3000 bytes without a newline",
            "x".repeat(3000),
            "CLIENT_ERROR line too long\r\n",
        ),
        closing(
            "a 3000-byte set key without a newline",
            format!("set {}", key(3000)),
            "CLIENT_ERROR line too long\r\n",
        ),
        closing(
            "a complete 3000-byte set line",
            format!("set {} 0 0 1\r\nx\r\n", key(3000)),
            "CLIENT_ERROR line too long\r\n",
        ),
        closing(
            "earlier replies come first",
            format!("get a\r\n{}", "x".repeat(3000)),
            "END\r\nCLIENT_ERROR line too long\r\n",
        ),
    ]);
}

#[test]
fn a_line_just_under_the_limit_waits_for_more() {
    let server = support::start(&[]);
    let mut c = server.connect();
    c.send(&[b"set ".as_slice(), &[b'k'; 2000]].concat());
    let reply = c.read_until(Duration::from_millis(300), |b| !b.is_empty());
    assert!(
        reply.bytes.is_empty() && !reply.closed,
        "{}",
        show(&reply.bytes)
    );
    assert_eq!(
        c.roundtrip(b" 0 0 1\r\nx\r\n"),
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n"
    );
}

#[test]
fn binary_protocol_gets_a_binary_error_and_close() {
    let server = support::start(&[]);
    let mut c = server.connect();
    // A binary GET request header (magic 0x80) with opaque 0xdeadbeef and key "a".
    let mut request = vec![0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1];
    request.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    request.extend_from_slice(&[0; 8]);
    request.push(b'a');
    c.send(&request);
    let reply = c.read_to_close();
    assert!(reply.closed, "connection left open: {}", show(&reply.bytes));
    let bytes = &reply.bytes;
    assert!(bytes.len() >= 24, "short binary reply: {}", show(bytes));
    assert_eq!(bytes[0], 0x81, "response magic: {}", show(bytes));
    assert_eq!(bytes[1], 0x00, "opcode echoed");
    assert_ne!(&bytes[6..8], &[0, 0], "a non-success status");
    assert_eq!(&bytes[12..16], &[0xde, 0xad, 0xbe, 0xef], "opaque echoed");
    let body = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    assert_eq!(
        bytes.len(),
        24 + body,
        "body length matches: {}",
        show(bytes)
    );
    // The server still serves new connections.
    let mut again = server.connect();
    assert_eq!(again.roundtrip(b"get a\r\n"), b"END\r\n");
    let mut third = server.connect();
    third.send(&[0x80]);
    let reply = third.read_to_close();
    assert!(reply.closed && reply.bytes.first() == Some(&0x81));
    assert_eq!(again.roundtrip(b"mn\r\n"), b"MN\r\n");
}

#[test]
fn garbage_does_not_hurt_the_server() {
    let server = support::start(&[]);
    let mut c = server.connect();
    let mut garbage: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n' && b != 0x80).collect();
    garbage.extend_from_slice(b"\r\n");
    assert_eq!(c.roundtrip(&garbage), b"ERROR\r\n");
    assert_eq!(
        c.roundtrip(b"set a 0 0 1\r\nx\r\nget a\r\n"),
        b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
    );
    // A client that vanishes mid-request.
    let mut gone = server.connect();
    gone.send(b"set b 0 0 100\r\nonly part");
    drop(gone);
    let mut fresh = server.connect();
    assert_eq!(
        fresh.roundtrip(b"get a b\r\n"),
        b"VALUE a 0 1\r\nx\r\nEND\r\n"
    );
}

#[test]
fn max_connections_refuses_the_extra_one() {
    let server = support::start(&["--max-connections", "2"]);
    let mut first = server.connect();
    let mut second = server.connect();
    // Both are being served (so both hold a slot) before the third arrives.
    assert_eq!(first.roundtrip(b"get a\r\n"), b"END\r\n");
    assert_eq!(second.roundtrip(b"get a\r\n"), b"END\r\n");
    let mut third = server.connect();
    let reply = third.read_to_close();
    assert_eq!(
        show(&reply.bytes),
        show(b"ERROR Too many open connections\r\n")
    );
    assert!(reply.closed, "the refused connection must be closed");
    drop(first);
    // The slot is freed once the server has seen the close; retry briefly.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let mut next = server.connect();
        next.send(b"version\r\n");
        let reply = next.read_until_suffix(b"\r\n");
        if reply.bytes.starts_with(b"VERSION ") {
            break;
        }
        assert_eq!(
            show(&reply.bytes),
            show(b"ERROR Too many open connections\r\n")
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no slot freed within 3 s after a close"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(second.roundtrip(b"mn\r\n"), b"MN\r\n");
}
