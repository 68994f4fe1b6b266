//! Chunk sweep of the IMAP command parser: a pipeline of mixed commands (synchronizing and
//! non-synchronizing literals, quoted strings with escapes, nested lists, `BODY[...]`
//! sections, bad commands and over-long lines) gives the same commands and errors when its
//! bytes arrive in pieces of every size from 1 to 64 and a few larger ones. The
//! continuation request (`NeedsLiteral`) comes exactly once for each synchronizing literal
//! whose bytes were still missing, never for `{n+}`; and a client that waits for it before
//! sending a literal, as RFC 3501 demands, is never left waiting.

use codec::imap::{Arg, Limits, ParseError, Parser};

/// Lines and literals are kept small so that the limits are reached inside the pipeline.
const LIMITS: Limits = Limits {
    max_line: 256,
    max_literal: 1024,
    max_command: 4096,
    max_depth: 8,
    max_args: 1024,
    max_tag: 64,
};

/// An argument, owned so that runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Literal(Vec<u8>),
    List(Vec<Owned>),
}

fn own(arg: &Arg<'_>) -> Owned {
    match arg {
        Arg::Atom(a) => Owned::Atom(a.to_vec()),
        Arg::Quoted(q) => Owned::Quoted(q.to_vec()),
        Arg::Literal(l) => Owned::Literal(l.to_vec()),
        Arg::List(items) => Owned::List(items.iter().map(own).collect()),
    }
}

fn a(value: &[u8]) -> Owned {
    Owned::Atom(value.to_vec())
}

fn q(value: &[u8]) -> Owned {
    Owned::Quoted(value.to_vec())
}

fn lit(value: &[u8]) -> Owned {
    Owned::Literal(value.to_vec())
}

fn list(items: Vec<Owned>) -> Owned {
    Owned::List(items)
}

/// What the session sees, apart from `Incomplete`, `NeedsLiteral` and `Discard` (the
/// last two depend on how the bytes were split; they are checked separately).
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// A command and the stream offset just after it.
    Command {
        tag: Vec<u8>,
        name: Vec<u8>,
        args: Vec<Owned>,
        end: usize,
    },
    /// A tagged (or untagged) BAD reply.
    Bad {
        tag: Option<Vec<u8>>,
        message: &'static str,
    },
    /// BYE and close.
    Fatal {
        tag: Option<Vec<u8>>,
        message: &'static str,
    },
}

/// The outcome of one run.
#[derive(Debug, Default)]
struct Run {
    events: Vec<Event>,
    /// Each `NeedsLiteral`: the stream offset where the buffer ended, and the size.
    asked: Vec<(usize, usize)>,
}

/// Feeds `input` to one parser `chunk` bytes at a time, the way a session's read loop does:
/// parse until `Incomplete` or `NeedsLiteral`, drop what was consumed, read more.
///
/// `gates` are stream offsets (the ends of synchronizing literal marker lines) that a
/// waiting client does not send past until the parser asked for the literal there or
/// refused the command; an empty slice is a client that never waits.
fn run(input: &[u8], chunk: usize, gates: &[usize]) -> Run {
    let mut parser = Parser::new(LIMITS);
    let mut buf: Vec<u8> = Vec::new();
    let mut base = 0; // stream offset of buf[0]
    let mut fed = 0;
    let mut open = 0; // gates[..open] are passed
    let mut run = Run::default();
    loop {
        loop {
            let used = match parser.parse(&buf) {
                Ok((c, used)) => {
                    assert!(used > 0 && used <= buf.len(), "chunk {chunk}: used {used}");
                    run.events.push(Event::Command {
                        tag: c.tag.to_vec(),
                        name: c.name.to_vec(),
                        args: c.args.iter().map(own).collect(),
                        end: base + used,
                    });
                    used
                }
                Err(ParseError::Incomplete) => break,
                Err(ParseError::NeedsLiteral { size }) => {
                    run.asked.push((base + buf.len(), size));
                    break;
                }
                Err(ParseError::Bad {
                    tag,
                    message,
                    consumed,
                }) => {
                    assert!(consumed > 0 && consumed <= buf.len(), "chunk {chunk}");
                    run.events.push(Event::Bad { tag, message });
                    consumed
                }
                Err(ParseError::Discard { consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len(), "chunk {chunk}");
                    consumed
                }
                Err(ParseError::Fatal { tag, message }) => {
                    run.events.push(Event::Fatal { tag, message });
                    return run;
                }
            };
            buf.drain(..used);
            base += used;
        }
        while let Some(&gate) = gates.get(open) {
            if base >= gate || run.asked.last().is_some_and(|&(at, _)| at == gate) {
                open += 1;
            } else {
                break;
            }
        }
        if fed == input.len() {
            break;
        }
        let limit = gates.get(open).copied().unwrap_or(input.len());
        assert!(
            fed < limit,
            "chunk {chunk}: the client waits at byte {fed} for a continuation request that \
             never came"
        );
        let end = (fed + chunk).min(limit);
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
    }
    assert!(
        buf.is_empty(),
        "chunk {chunk}: unparsed bytes left: {:?}",
        buf.escape_ascii().to_string()
    );
    run
}

/// A synchronizing literal: where its marker line ends and how big it is.
#[derive(Debug, Clone, Copy)]
struct SyncLiteral {
    marker_end: usize,
    size: usize,
}

/// The pipeline, the events it must give, and where its synchronizing literals are.
#[derive(Default)]
struct Script {
    bytes: Vec<u8>,
    events: Vec<Event>,
    literals: Vec<SyncLiteral>,
    /// Every point a waiting client stops at (the literals above and refused ones).
    gates: Vec<usize>,
}

impl Script {
    /// Appends `raw` and notes the synchronizing literals in it (found by framing it
    /// here, line by line).
    fn push(&mut self, raw: &[u8]) {
        let offset = self.bytes.len();
        let mut pos = 0;
        while let Some(rel) = raw[pos..].iter().position(|&b| b == b'\n') {
            let line = &raw[pos..pos + rel];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            pos += rel + 1;
            let Some(body) = line.strip_suffix(b"}") else {
                continue;
            };
            let Some(open) = body.iter().rposition(|&b| b == b'{') else {
                continue;
            };
            let inner = &body[open + 1..];
            let (digits, sync) = match inner.strip_suffix(b"+") {
                Some(d) => (d, false),
                None => (inner, true),
            };
            let size: usize = std::str::from_utf8(digits).unwrap().parse().unwrap();
            if sync {
                self.literals.push(SyncLiteral {
                    marker_end: offset + pos,
                    size,
                });
                self.gates.push(offset + pos);
            }
            pos += size;
        }
        assert_eq!(pos, raw.len(), "{:?}", raw.escape_ascii().to_string());
        self.bytes.extend_from_slice(raw);
    }

    fn command(&mut self, raw: &[u8], tag: &[u8], name: &[u8], args: Vec<Owned>) {
        self.push(raw);
        self.events.push(Event::Command {
            tag: tag.to_vec(),
            name: name.to_vec(),
            args,
            end: self.bytes.len(),
        });
    }

    fn bad(&mut self, raw: &[u8], tag: Option<&[u8]>, message: &'static str) {
        self.push(raw);
        self.events.push(Event::Bad {
            tag: tag.map(<[u8]>::to_vec),
            message,
        });
    }

    /// A synchronizing literal refused by the limits: the client sends the marker line,
    /// gets a BAD instead of `+`, and never sends the literal.
    fn refused(&mut self, line: &[u8], tag: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.gates.push(self.bytes.len());
        self.events.push(Event::Bad {
            tag: Some(tag.to_vec()),
            message: "literal too big",
        });
    }

    /// The `NeedsLiteral`s a client that does not wait gets when its bytes arrive
    /// `chunk` at a time: one for each synchronizing literal whose bytes were not all
    /// there at the end of some read, at the first such read. (An empty literal's bytes
    /// are never missing, but the client waits for `+` all the same, so a read ending at
    /// its marker line asks too.)
    fn asked_in_chunks(&self, chunk: usize) -> Vec<(usize, usize)> {
        let len = self.bytes.len();
        let reads: Vec<usize> = (1..=len.div_ceil(chunk))
            .map(|k| (k * chunk).min(len))
            .collect();
        self.literals
            .iter()
            .filter_map(|l| {
                let end = l.marker_end + l.size;
                reads
                    .iter()
                    .find(|&&b| b >= l.marker_end && (b < end || b == l.marker_end))
                    .map(|&b| (b, l.size))
            })
            .collect()
    }
}

/// A 310-byte message with protocol text inside that must not be parsed.
fn message310() -> Vec<u8> {
    let mut m = b"From: Joe <joe@example.com>\r\n\
Subject: test {5}\r\n\
\r\n\
a1 LOGOUT\r\n\
b2 APPEND INBOX {10}\r\n\
\"(unbalanced [\r\n"
        .to_vec();
    while m.len() < 308 {
        m.push(b'x');
    }
    m.extend_from_slice(b"\r\n");
    m
}

fn script() -> Script {
    let msg = message310();
    let mut s = Script::default();
    s.command(b"a001 CAPABILITY\r\n", b"a001", b"CAPABILITY", vec![]);
    s.command(
        b"A1 LOGIN {4}\r\njohn {6}\r\nsecret\r\n",
        b"A1",
        b"LOGIN",
        vec![lit(b"john"), lit(b"secret")],
    );
    s.command(
        b"A2 LOGIN \"joe \\\"q\\\" \\\\x\" {6+}\r\nsecret\r\n",
        b"A2",
        b"LOGIN",
        vec![q(b"joe \"q\" \\x"), lit(b"secret")],
    );
    s.command(
        b"A3 AUTHENTICATE PLAIN dGVzdA==\r\n",
        b"A3",
        b"AUTHENTICATE",
        vec![a(b"PLAIN"), a(b"dGVzdA==")],
    );
    s.command(
        b"4 ID (\"name\" \"Thunderbird\" \"version\" \"115.0\")\r\n",
        b"4",
        b"ID",
        vec![list(vec![
            q(b"name"),
            q(b"Thunderbird"),
            q(b"version"),
            q(b"115.0"),
        ])],
    );
    s.command(b"a ID NIL\n", b"a", b"ID", vec![a(b"NIL")]);
    s.command(b"A4 SELECT INBOX\r\n", b"A4", b"SELECT", vec![a(b"INBOX")]);
    s.command(
        b"A5 LIST \"\" \"*\"\r\n",
        b"A5",
        b"LIST",
        vec![q(b""), q(b"*")],
    );
    s.command(
        b"s STATUS INBOX (MESSAGES UIDNEXT UNSEEN)\r\n",
        b"s",
        b"STATUS",
        vec![
            a(b"INBOX"),
            list(vec![a(b"MESSAGES"), a(b"UIDNEXT"), a(b"UNSEEN")]),
        ],
    );
    s.bad(
        b"e1 LOGIN \"\\a\" x\r\n",
        Some(b"e1"),
        "invalid escape in quoted string",
    );
    s.command(
        &[
            &b"5 APPEND INBOX (\\Seen) \"05-Jan-2024 10:00:00 +0000\" {310}\r\n"[..],
            &msg,
            b"\r\n",
        ]
        .concat(),
        b"5",
        b"APPEND",
        vec![
            a(b"INBOX"),
            list(vec![a(b"\\Seen")]),
            q(b"05-Jan-2024 10:00:00 +0000"),
            lit(&msg),
        ],
    );
    s.command(
        &[&b"6 APPEND \"Sent Items\" () {310+}\r\n"[..], &msg, b"\r\n"].concat(),
        b"6",
        b"APPEND",
        vec![q(b"Sent Items"), list(vec![]), lit(&msg)],
    );
    s.bad(b"\r\n", None, "missing tag");
    s.command(
        b"9 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)])\r\n",
        b"9",
        b"UID",
        vec![
            a(b"FETCH"),
            a(b"1:*"),
            list(vec![
                a(b"UID"),
                a(b"FLAGS"),
                a(b"INTERNALDATE"),
                a(b"RFC822.SIZE"),
                a(b"BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)]"),
            ]),
        ],
    );
    s.refused(b"e2 APPEND INBOX {5000}\r\n", b"e2");
    s.command(
        b"A6 FETCH 1 BODY[]<0.1024>\r\n",
        b"A6",
        b"FETCH",
        vec![a(b"1"), a(b"BODY[]<0.1024>")],
    );
    s.command(
        b"A7 UID STORE 3 +FLAGS.SILENT (\\Deleted)\r\n",
        b"A7",
        b"UID",
        vec![
            a(b"STORE"),
            a(b"3"),
            a(b"+FLAGS.SILENT"),
            list(vec![a(b"\\Deleted")]),
        ],
    );
    // The literal is sent, then a line too long: refused with the tag, rest dropped.
    s.bad(
        &[&b"e3 APPEND INBOX {5}\r\nhello "[..], &[b'x'; 300], b"\r\n"].concat(),
        Some(b"e3"),
        "line too long",
    );
    s.command(
        "A8 SEARCH CHARSET UTF-8 SUBJECT {6}\r\nh\u{e4}llo\r\n".as_bytes(),
        b"A8",
        b"SEARCH",
        vec![
            a(b"CHARSET"),
            a(b"UTF-8"),
            a(b"SUBJECT"),
            lit("h\u{e4}llo".as_bytes()),
        ],
    );
    // An empty synchronizing literal, a non-synchronizing one holding a line end, and a
    // literal that looks like a marker, in nested lists.
    s.command(
        b"A9 X ((a {0}\r\n) {2+}\r\n\r\n \"b\") {3}\r\n{1}\r\n",
        b"A9",
        b"X",
        vec![
            list(vec![list(vec![a(b"a"), lit(b"")]), lit(b"\r\n"), q(b"b")]),
            lit(b"{1}"),
        ],
    );
    s.bad(
        b"e4 LOGIN {3}\r\nabc )\r\n",
        Some(b"e4"),
        "invalid argument",
    );
    s.command(
        b"A10 COPY 1:3 Trash\r\n",
        b"A10",
        b"COPY",
        vec![a(b"1:3"), a(b"Trash")],
    );
    s.bad(
        &[&b"e5 NOOP "[..], &[b'y'; 300], b"\r\n"].concat(),
        Some(b"e5"),
        "line too long",
    );
    s.command(b"A11 IDLE\r\n", b"A11", b"IDLE", vec![]);
    s.command(
        b"a fetch 2 (body[1.MIME] bodystructure envelope)\n",
        b"a",
        b"fetch",
        vec![
            a(b"2"),
            list(vec![
                a(b"body[1.MIME]"),
                a(b"bodystructure"),
                a(b"envelope"),
            ]),
        ],
    );
    s.command(b"A12 LOGOUT\r\n", b"A12", b"LOGOUT", vec![]);
    s
}

/// Chunk sizes: every one from 1 to 64, then a few that straddle the literals and lines.
fn chunk_sizes(len: usize) -> Vec<usize> {
    (1..=64)
        .chain([100, 255, 257, 311, 1000, 4096, len])
        .collect()
}

fn first_difference(got: &[Event], want: &[Event]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    format!(
        "{} events instead of {}; first difference at {at}: {:?} instead of {:?}",
        got.len(),
        want.len(),
        got.get(at),
        want.get(at)
    )
}

#[test]
fn the_script_is_what_it_claims() {
    let s = script();
    let commands = s
        .events
        .iter()
        .filter(|e| matches!(e, Event::Command { .. }))
        .count();
    assert_eq!(commands, 20);
    assert_eq!(s.events.len(), 26);
    // A1 (2), 5, e3, A8, A9 (2), e4.
    assert_eq!(s.literals.len(), 8);
    assert_eq!(s.literals.iter().filter(|l| l.size == 0).count(), 1);
    assert_eq!(s.gates.len(), 9);
}

#[test]
fn whole_buffer() {
    let s = script();
    let r = run(&s.bytes, s.bytes.len(), &[]);
    if r.events != s.events {
        panic!("{}", first_difference(&r.events, &s.events));
    }
    assert_eq!(r.asked, []);
}

#[test]
fn every_chunk_size_gives_the_same_commands() {
    let s = script();
    for chunk in chunk_sizes(s.bytes.len()) {
        let r = run(&s.bytes, chunk, &[]);
        if r.events != s.events {
            panic!(
                "chunk size {chunk}: {}",
                first_difference(&r.events, &s.events)
            );
        }
        assert_eq!(r.asked, s.asked_in_chunks(chunk), "chunk size {chunk}");
    }
    // One byte at a time every literal's bytes are missing at some read: each
    // synchronizing literal asks exactly once, right after its marker line.
    let r = run(&s.bytes, 1, &[]);
    let want: Vec<_> = s.literals.iter().map(|l| (l.marker_end, l.size)).collect();
    assert_eq!(r.asked, want);
}

#[test]
fn a_client_waiting_for_continuations_is_asked_once_per_literal() {
    let s = script();
    let want: Vec<_> = s.literals.iter().map(|l| (l.marker_end, l.size)).collect();
    for chunk in chunk_sizes(s.bytes.len()) {
        let r = run(&s.bytes, chunk, &s.gates);
        if r.events != s.events {
            panic!(
                "chunk size {chunk}: {}",
                first_difference(&r.events, &s.events)
            );
        }
        assert_eq!(r.asked, want, "chunk size {chunk}");
    }
}

#[test]
fn a_fatal_literal_ends_the_stream_at_the_same_place() {
    let mut s = Script::default();
    s.command(b"a1 NOOP\r\n", b"a1", b"NOOP", vec![]);
    s.command(
        b"a2 LOGIN {4}\r\njohn x\r\n",
        b"a2",
        b"LOGIN",
        vec![lit(b"john"), a(b"x")],
    );
    s.bytes.extend_from_slice(b"a3 APPEND INBOX {2000+}\r\n");
    s.events.push(Event::Fatal {
        tag: Some(b"a3".to_vec()),
        message: "literal too big",
    });
    // The literal's bytes, which look like commands, are never read.
    for _ in 0..100 {
        s.bytes.extend_from_slice(b"b1 NOOP\r\n");
    }
    for chunk in chunk_sizes(s.bytes.len()) {
        let r = run(&s.bytes, chunk, &[]);
        if r.events != s.events {
            panic!(
                "chunk size {chunk}: {}",
                first_difference(&r.events, &s.events)
            );
        }
    }
}
