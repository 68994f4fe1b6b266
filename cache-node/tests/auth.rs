//! The closed cache: `--auth-file` and `--disable-flush-all` against the real memcached
//! 1.6.18 started with the same file and `-Y FILE -F` (its absence is a failure, never a
//! skip). The same request sequences go to both; the reply streams must be byte-identical
//! (VERSION text and cas uniques masked), and so must the moment each closes.
//!
//! Before authenticating, each command is written on its own and its reply awaited, as a
//! client does. Two differences are pinned by tests of their own: memcached answers only
//! the last of several commands an unauthenticated connection pipelined in one write (it
//! reuses one reply object), cache-node answers each; and an HTTP request line before
//! authentication closes cache-node's connection (as it does after), while memcached
//! answers each line of the request `CLIENT_ERROR unauthenticated`, so a cross-protocol
//! POST could try passwords there.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{mask, show, Client, Memcached, Reply, SYNC, SYNC_REPLY};

/// The auth file both servers read.
const ENTRIES: &str = "alice:s3cret\nbob:hunter2:x\n";

/// The authenticating set of the first entry.
const AUTH: &[u8] = b"set auth 0 0 12\r\nalice s3cret\r\n";

/// An auth file in the temporary directory, removed on drop.
struct AuthFile(PathBuf);

impl AuthFile {
    fn new(content: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "cache-node-auth-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).expect("write auth file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for AuthFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One request sequence on a fresh connection: its writes, and whether the server closes.
struct Seq {
    name: &'static str,
    writes: Vec<Vec<u8>>,
    closes: bool,
}

/// A sequence of one write per command, as a client talks before it has authenticated:
/// it waits for each reply (see the module doc on pipelining).
fn seq(name: &'static str, commands: &[&[u8]]) -> Seq {
    Seq {
        name,
        writes: commands.iter().map(|c| c.to_vec()).collect(),
        closes: false,
    }
}

/// Reads what the server answers to one write: until a reply line is complete and
/// nothing more follows for a moment (or nothing comes at all, or it closes).
fn settle(client: &mut Client) -> Reply {
    let mut all = client.read_until(Duration::from_millis(300), |b| b.ends_with(b"\r\n"));
    while !all.closed && !all.bytes.is_empty() {
        let more = client.read_until(Duration::from_millis(30), |_| false);
        all.closed = more.closed;
        if more.bytes.is_empty() {
            break;
        }
        all.bytes.extend_from_slice(&more.bytes);
    }
    all
}

/// Plays `seq`, each write after the replies to the one before; unless the server closed,
/// then the authenticating set and the sync, which both servers answer `STORED` and the
/// sync reply whether the sequence left the connection authenticated or not.
fn play(addr: std::net::SocketAddr, seq: &Seq) -> Reply {
    let mut client = Client::connect(addr);
    let mut bytes = Vec::new();
    for write in &seq.writes {
        client.send(write);
        let reply = settle(&mut client);
        bytes.extend_from_slice(&reply.bytes);
        if reply.closed {
            return Reply {
                bytes,
                closed: true,
                timed_out: false,
            };
        }
    }
    client.send(&[AUTH, SYNC].concat());
    let mut last = client.read_until_suffix(SYNC_REPLY);
    bytes.append(&mut last.bytes);
    Reply { bytes, ..last }
}

/// Both servers closed: memcached `-Y FILE -F`, cache-node `--auth-file FILE
/// --disable-flush-all`, on the same file.
fn servers(file: &AuthFile) -> (Memcached, support::Server) {
    let memcached = Memcached::start_with(&["-Y", file.path(), "-F"], Some(AUTH));
    let ours = support::start(&["--auth-file", file.path(), "--disable-flush-all"]);
    (memcached, ours)
}

fn compare(seqs: Vec<Seq>) {
    let file = AuthFile::new(ENTRIES);
    let total = seqs.len();
    let mut failures = Vec::new();
    for seq in &seqs {
        let (memcached, ours) = servers(&file);
        let theirs = play(memcached.addr, seq);
        let mine = play(ours.addr, seq);
        assert!(
            !theirs.timed_out || seq.closes,
            "{}: memcached did not answer the sync: {}",
            seq.name,
            show(&theirs.bytes)
        );
        let (a, b) = (mask(&theirs.bytes, true), mask(&mine.bytes, true));
        if a != b || theirs.closed != mine.closed {
            failures.push(format!(
                "{}\n    request:    {}\n    memcached:  {} (closed: {})\n    cache-node: {} (closed: {})",
                seq.name,
                show(&seq.writes.concat()),
                show(&a),
                theirs.closed,
                show(&b),
                mine.closed
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} sequences differ from memcached -Y -F:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn before_authentication_every_command_is_refused_and_the_connection_stays() {
    compare(vec![
        seq(
            "classic, meta and admin commands, quit included",
            &[
                b"version\r\n",
                b"quit\r\n",
                b"get a\r\n",
                b"stats\r\n",
                b"flush_all\r\n",
                b"mn\r\n",
                b"mg a v\r\n",
                b"delete a\r\n",
                b"incr a 1\r\n",
                b"verbosity 1\r\n",
                b"shutdown\r\n",
            ],
        ),
        seq(
            "storage commands other than set, and their data lines",
            &[
                b"add a 0 0 12\r\n",
                b"alice s3cret\r\n",
                b"ms a 12\r\n",
                b"alice s3cret\r\n",
                b"cas a 0 0 1 1\r\n",
            ],
        ),
        seq(
            "empty lines, garbage, a bare LF",
            &[b"\r\n", b"bogus\r\n", b"\xff\xfe\r\n", b"get a\n"],
        ),
        seq(
            "set lines memcached does not read as one",
            &[
                b"set a 0 0\r\n",
                b"set a 0 0 x\r\n",
                b"set a 0 0 -1\r\n",
                b"set a 0 0 12x\r\n",
                b"set\ta 0 0 1\r\n",
                b"SET a 0 0 12\r\n",
                b"get a\r\n",
            ],
        ),
    ]);
}

#[test]
fn the_first_good_set_authenticates() {
    compare(vec![
        seq(
            "then every command works, pipelined",
            &[&[
                AUTH,
                b"set a 3 0 1\r\nx\r\nget a\r\nversion\r\nmg a v f\r\nincr a 1\r\n",
            ]
            .concat()],
        ),
        seq(
            "the second entry, whose password has a colon",
            &[b"set k 0 0 13\r\nbob hunter2:x\r\n", b"get k\r\n"],
        ),
        seq(
            "a wrong password, a wrong user, wrong case, then the right one",
            &[
                b"set k 0 0 12\r\nalice s3cres\r\n",
                b"set k 0 0 12\r\nmallo s3cret\r\n",
                b"set k 0 0 12\r\nALICE s3cret\r\n",
                b"set k 0 0 12\r\nalice S3CRET\r\n",
                b"set k 0 0 7\r\nbob pw2\r\n",
                b"get k\r\n",
                b"set k 0 0 12\r\nalice s3cret\r\n",
                b"get k\r\n",
            ],
        ),
        seq(
            "key, flags and exptime are ignored; noreply too",
            &[b"set a b c 12 noreply\r\nalice s3cret\r\n", b"get a\r\n"],
        ),
        seq(
            "spaces, extra tokens, a sign, leading zeros, a bare LF",
            &[
                b"  set  k  0  0  +017 x y\n  alice  s3cret x\r\n",
                b"get k\r\n",
            ],
        ),
        seq(
            "after authenticating, the same set is a plain set",
            &[AUTH, AUTH, b"get auth\r\n"],
        ),
        seq(
            "one entry's user with the other's password",
            &[b"set k 0 0 13\r\nalice hunter2\r\n", b"get k\r\n"],
        ),
        seq(
            "the set line and its data in separate writes",
            &[b"set k 0 0 12\r\n", b"alice s3cret\r\n", b"get k\r\n"],
        ),
        seq(
            "split anywhere",
            &[
                b"se",
                b"t a 0 0 12\r",
                b"\nalice s3",
                b"cret\r",
                b"\nget a\r\n",
            ],
        ),
    ]);
}

#[test]
fn malformed_credentials_blocks() {
    compare(vec![
        seq("one token", &[b"set a 0 0 5\r\nalice\r\n", b"get a\r\n"]),
        seq("no token", &[b"set a 0 0 0\r\n\r\n", b"get a\r\n"]),
        seq(
            "a tab is no separator",
            &[b"set a 0 0 12\r\nalice\ts3cret\r\n", b"get a\r\n"],
        ),
        seq(
            "a NUL ends the block",
            &[b"set a 0 0 14\r\nalice s3cret\x00x\r\n", b"get a\r\n"],
        ),
        seq(
            "data block not ending in CRLF",
            &[b"set a 0 0 12\r\nalice s3cretXX", b"\r\n", b"get a\r\n"],
        ),
        seq(
            "LF-only data block",
            &[b"set a 0 0 1\r\nx\n\n", b"get a\r\n"],
        ),
    ]);
}

#[test]
fn junk_without_a_newline_closes() {
    let long = "x".repeat(2049);
    let fits = format!("{}\r\n", "x".repeat(2046));
    compare(vec![
        Seq {
            closes: true,
            ..seq("2,049 bytes and no newline", &[long.as_bytes()])
        },
        seq("2,048 bytes with the newline", &[fits.as_bytes()]),
    ]);
}

#[test]
fn flush_all_is_refused_as_memcached_f_refuses_it() {
    compare(vec![seq(
        "every flush_all form, after authenticating",
        &[&[
            AUTH,
            b"set a 0 0 1\r\nx\r\nflush_all\r\nflush_all 0\r\nflush_all noreply\r\nflush_all x\r\n\
              flush_all -1\r\nflush_all x noreply\r\nflush_all 1 2 3\r\nflush_all 10 noreply\r\nget a\r\n",
        ]
        .concat()],
    )]);
    // Without an auth file too.
    let memcached = Memcached::start_with(&["-F"], None);
    let ours = support::start(&["--disable-flush-all"]);
    let request = b"set a 0 0 1\r\nx\r\nflush_all\r\nflush_all 5\r\nget a\r\n";
    let theirs = Client::connect(memcached.addr).roundtrip(request);
    let mine = Client::connect(ours.addr).roundtrip(request);
    assert_eq!(show(&mine), show(&theirs));
    assert!(mine.starts_with(b"STORED\r\nCLIENT_ERROR flush_all not allowed\r\n"));
}

/// memcached keeps one reply object for everything an unauthenticated connection sent in
/// one read, so of pipelined commands only the last one's reply arrives; cache-node
/// answers each, so a client that pipelines stays in step.
#[test]
fn pipelined_commands_before_authentication_each_get_their_reply() {
    let file = AuthFile::new(ENTRIES);
    let (memcached, ours) = servers(&file);
    let request = b"get a\r\nversion\r\nset k 0 0 12\r\nalice wrong!\r\n";
    let mut theirs = Client::connect(memcached.addr);
    theirs.send(request);
    assert_eq!(
        show(&settle(&mut theirs).bytes),
        "CLIENT_ERROR authentication failure\\r\\n"
    );
    let mut mine = Client::connect(ours.addr);
    mine.send(request);
    assert_eq!(
        show(&settle(&mut mine).bytes),
        "CLIENT_ERROR unauthenticated\\r\\nCLIENT_ERROR unauthenticated\\r\\n\
         CLIENT_ERROR authentication failure\\r\\n"
    );
}

/// `auth_cmds`, `auth_errors` and `cmd_flush` count as memcached counts them.
#[test]
fn counters_match() {
    let file = AuthFile::new(ENTRIES);
    let (memcached, ours) = servers(&file);
    // memcached's start-up check authenticated once: so does this one on ours.
    Client::connect(ours.addr).roundtrip(AUTH);
    let request = [
        b"set k 0 0 12\r\nalice wrong!\r\n".as_slice(),
        b"get a\r\n",
        AUTH,
        b"flush_all\r\nflush_all x\r\nstats\r\n",
    ]
    .concat();
    let pick = |stats: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(stats)
            .lines()
            .filter(|l| {
                ["auth_cmds", "auth_errors", "cmd_flush"]
                    .iter()
                    .any(|n| l.starts_with(&format!("STAT {n} ")))
            })
            .map(str::to_string)
            .collect()
    };
    let theirs = pick(&Client::connect(memcached.addr).roundtrip(&request));
    let mine = pick(&Client::connect(ours.addr).roundtrip(&request));
    assert_eq!(mine, theirs);
    assert_eq!(
        theirs,
        ["STAT cmd_flush 2", "STAT auth_cmds 3", "STAT auth_errors 1"],
        "memcached's own numbers"
    );
}

#[test]
fn an_http_request_line_closes_before_authentication() {
    let file = AuthFile::new(ENTRIES);
    let (memcached, ours) = servers(&file);
    let attack = b"POST /x HTTP/1.1\r\nHost: cache\r\nContent-Length: 30\r\n\r\nset k 0 0 12\r\nalice guess1\r\n";
    let mut theirs = Client::connect(memcached.addr);
    theirs.send(attack);
    let theirs = theirs.read_until(Duration::from_millis(500), |b| {
        b.ends_with(b"CLIENT_ERROR authentication failure\r\n")
    });
    assert!(
        !theirs.closed
            && theirs
                .bytes
                .ends_with(b"CLIENT_ERROR authentication failure\r\n"),
        "memcached reads on and tries the password: {}",
        show(&theirs.bytes)
    );
    let mut mine = Client::connect(ours.addr);
    mine.send(attack);
    let mine = mine.read_to_close();
    assert!(
        mine.closed && mine.bytes.is_empty(),
        "cache-node closes at the request line: {}",
        show(&mine.bytes)
    );
}

/// SIGHUP (here its in-process announcement) reads the file again; a file that has become
/// unusable leaves the entries in force.
#[test]
fn the_auth_file_is_reloaded_on_sighup() {
    let file = AuthFile::new("alice:first\n");
    let node = support::start(&["--auth-file", file.path()]);
    let try_auth = |user_pass: &str| -> Vec<u8> {
        let request = format!("set k 0 0 {}\r\n{user_pass}\r\n", user_pass.len());
        let mut c = node.connect();
        c.send(request.as_bytes());
        c.read_until_suffix(b"\r\n").bytes
    };
    assert_eq!(try_auth("alice first"), b"STORED\r\n");
    std::fs::write(&file.0, "alice:second\n").unwrap();
    common::reload::announce();
    let deadline = Instant::now() + Duration::from_secs(5);
    while try_auth("alice second") != b"STORED\r\n" {
        assert!(Instant::now() < deadline, "the new entry never took effect");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        try_auth("alice first"),
        b"CLIENT_ERROR authentication failure\r\n"
    );
    std::fs::write(&file.0, "not an entry\n").unwrap();
    common::reload::announce();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        try_auth("alice second"),
        b"STORED\r\n",
        "a broken file changes nothing"
    );
}
