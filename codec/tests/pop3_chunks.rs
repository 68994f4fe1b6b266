//! Chunk sweep of the POP3 codec: a long pipelined client script (every command, odd
//! spacing, bare LFs, invalid lines, over-long lines that must be discarded, SASL
//! continuation lines) and a server transcript of status lines and multi-line blocks must
//! give exactly the same sequence whether parsed from one buffer or fed in pieces of every
//! size from 1 to 64 and some larger ones, the parser being called after each piece.

use codec::pop3::{
    continuation, dot_stuff, err, multiline_end, multiline_line, ok, parse_command, parse_line,
    parse_multiline, parse_status_line, skip_line, Command, Limits, ParseError, ResponseError,
    Status,
};

const LIMITS: Limits = Limits { max_line: 1024 };

/// Chunk sizes to sweep besides 1..=64: around the line limit and far beyond it.
const LARGE: [usize; 9] = [100, 255, 256, 511, 1023, 1024, 1025, 4096, 100_000];

/// One outcome on the server side, owned so that runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A command, by its canonical encoding, and the bytes it used.
    Command { wire: Vec<u8>, consumed: usize },
    /// A SASL continuation line and the bytes it used.
    Line { line: Vec<u8>, consumed: usize },
    /// An invalid line.
    Invalid {
        consumed: usize,
        reason: &'static str,
    },
    /// An over-long line, with how many bytes were discarded for it in all.
    TooLong { discarded: usize },
}

fn encode(command: &Command<'_>) -> Vec<u8> {
    let mut wire = Vec::new();
    command.encode(&mut wire);
    wire
}

/// Feeds `input` to the server side `chunk` bytes at a time, the way a session's read loop
/// does: parse until `Incomplete`; after `AUTH <mechanism>` without an initial response
/// read one SASL line; after `LineTooLong` discard through the next LF, across reads if need
/// be; keep the unparsed rest and append the next read.
fn commands_in_chunks(input: &[u8], chunk: usize) -> Vec<Event> {
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut events = Vec::new();
    let mut sasl = false;
    // Some(n) while discarding an over-long line, n bytes dropped so far.
    let mut discarding: Option<usize> = None;
    loop {
        let mut start = 0;
        loop {
            let rest = &buf[start..];
            if let Some(dropped) = discarding {
                match skip_line(rest) {
                    Some(n) => {
                        events.push(Event::TooLong {
                            discarded: dropped + n,
                        });
                        discarding = None;
                        start += n;
                        continue;
                    }
                    None => {
                        discarding = Some(dropped + rest.len());
                        start = buf.len();
                        break;
                    }
                }
            }
            let result = if sasl {
                parse_line(rest, &LIMITS).map(|p| {
                    (
                        Event::Line {
                            line: p.command.to_vec(),
                            consumed: p.consumed,
                        },
                        p.consumed,
                        false,
                    )
                })
            } else {
                parse_command(rest, &LIMITS).map(|p| {
                    let auth = matches!(
                        p.command,
                        Command::Auth {
                            mechanism: Some(_),
                            initial: None
                        }
                    );
                    (
                        Event::Command {
                            wire: encode(&p.command),
                            consumed: p.consumed,
                        },
                        p.consumed,
                        auth,
                    )
                })
            };
            match result {
                Ok((event, consumed, auth)) => {
                    assert!(consumed > 0 && consumed <= rest.len());
                    events.push(event);
                    start += consumed;
                    sasl = auth;
                }
                Err(ParseError::Invalid { consumed, reason }) => {
                    assert!(consumed > 0 && consumed <= rest.len());
                    events.push(Event::Invalid { consumed, reason });
                    start += consumed;
                }
                Err(ParseError::LineTooLong) => {
                    assert!(rest.len() >= LIMITS.max_line);
                    sasl = false;
                    discarding = Some(0);
                }
                Err(ParseError::Incomplete) => break,
            }
        }
        buf.drain(..start);
        if fed == input.len() {
            break;
        }
        let end = (fed + chunk).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
    }
    assert!(buf.is_empty(), "unparsed bytes left at the end");
    assert_eq!(discarding, None, "an over-long line was cut short");
    events
}

/// The client script and the events it must give.
#[derive(Default)]
struct Script {
    bytes: Vec<u8>,
    events: Vec<Event>,
}

impl Script {
    /// A command in its canonical encoding.
    fn command(&mut self, command: Command<'_>) {
        let wire = encode(&command);
        self.bytes.extend_from_slice(&wire);
        self.events.push(Event::Command {
            consumed: wire.len(),
            wire,
        });
    }

    /// A command written some other way (case, spacing, bare LF, leading zeros).
    fn raw(&mut self, raw: &[u8], same_as: Command<'_>) {
        self.bytes.extend_from_slice(raw);
        self.events.push(Event::Command {
            wire: encode(&same_as),
            consumed: raw.len(),
        });
    }

    /// A SASL line after `AUTH <mechanism>`.
    fn sasl(&mut self, raw: &[u8], line: &[u8]) {
        self.bytes.extend_from_slice(raw);
        self.events.push(Event::Line {
            line: line.to_vec(),
            consumed: raw.len(),
        });
    }

    fn invalid(&mut self, raw: &[u8], reason: &'static str) {
        self.bytes.extend_from_slice(raw);
        self.events.push(Event::Invalid {
            consumed: raw.len(),
            reason,
        });
    }

    fn too_long(&mut self, raw: &[u8]) {
        self.bytes.extend_from_slice(raw);
        self.events.push(Event::TooLong {
            discarded: raw.len(),
        });
    }
}

fn client_script() -> Script {
    let mut s = Script::default();
    let user1019 = [b"USER ", &[b'u'; 1017][..], b"\r\n"].concat();
    let long_user: &[u8] = &user1019[5..1022];
    assert_eq!(user1019.len(), 1024);

    s.command(Command::Capa);
    s.command(Command::Stls);
    s.command(Command::Capa);
    s.raw(b"capa\n", Command::Capa);
    s.command(Command::Xoip(b"192.0.2.7"));
    s.command(Command::Xclient(
        b"ADDR=192.0.2.7 PORT=50123 SESSION=x1 TTL=4",
    ));
    s.command(Command::Auth {
        mechanism: None,
        initial: None,
    });
    // AUTH with a continuation line, a cancelled one, and one with an initial response.
    s.command(Command::Auth {
        mechanism: Some(b"PLAIN"),
        initial: None,
    });
    s.sasl(b"AGJvYgBzZWNyZXQ=\r\n", b"AGJvYgBzZWNyZXQ=");
    s.raw(
        b"auth login\n",
        Command::Auth {
            mechanism: Some(b"login"),
            initial: None,
        },
    );
    s.sasl(b"*\n", b"*");
    s.command(Command::Auth {
        mechanism: Some(b"PLAIN"),
        initial: Some(b"AGJvYgBzZWNyZXQ="),
    });
    // A SASL line is raw: what would be a command is just its text here.
    s.command(Command::Auth {
        mechanism: Some(b"XOAUTH2"),
        initial: None,
    });
    s.sasl(b"QUIT\r\n", b"QUIT");
    s.command(Command::Apop {
        name: b"mrose",
        digest: b"c4c9334bac560ecc979e58001b3e22fb",
    });
    s.command(Command::User(b"bob smith"));
    s.raw(b"user  bob \r\n", Command::User(b" bob "));
    s.command(Command::Pass(b"pa ss word"));
    s.raw(b"PASS\r\n", Command::Pass(b""));
    s.raw(b"pass \n", Command::Pass(b""));
    s.raw(&user1019, Command::User(long_user));
    s.command(Command::Stat);
    for n in 1..=120u32 {
        s.command(Command::List(Some(n)));
        s.command(Command::Uidl(Some(n)));
        s.command(Command::Top {
            msg: n,
            lines: n % 7,
        });
        s.command(Command::Retr(n));
        if n % 10 == 0 {
            s.command(Command::Dele(n));
        }
    }
    s.command(Command::List(None));
    s.command(Command::Uidl(None));
    s.raw(b"LIST  00042 \r\n", Command::List(Some(42)));
    s.raw(
        b"top 4294967295 0\n",
        Command::Top {
            msg: u32::MAX,
            lines: 0,
        },
    );
    s.command(Command::Retr(u32::MAX));
    s.command(Command::Noop);
    s.command(Command::Rset);

    // Errors, each followed by recovery at the next line.
    s.invalid(b"\r\n", "empty command");
    s.invalid(b"\n", "empty command");
    s.invalid(b"FOO bar\r\n", "unknown command");
    s.invalid(b"a1 LOGIN bob secret\r\n", "unknown command");
    s.invalid(b"RETR 0\r\n", "invalid message number");
    s.invalid(b"LIST 4294967296\n", "invalid message number");
    s.invalid(b"TOP 1 -1\r\n", "invalid line count");
    s.invalid(b"TOP 1\r\n", "missing argument");
    s.invalid(b"USER\r\n", "missing argument");
    s.invalid(b"QUIT now\r\n", "too many arguments");
    s.invalid(b"PASS a\rb\r\n", "invalid character in command");
    s.invalid(b"USER a\x00b\n", "invalid character in command");
    s.invalid(b"APOP mrose short\r\n", "invalid APOP digest");
    s.command(Command::Noop);

    // Over-long lines: just over the limit, far over, with a bare LF, one whose CR is the
    // 1024th byte, and an AUTH continuation that is too long (the session leaves SASL).
    s.too_long(&[b"USER u", &user1019[5..]].concat());
    s.command(Command::Stat);
    s.too_long(&[&[b'X'; 5000][..], b"\r\n"].concat());
    s.too_long(&[&b"PASS "[..], &[b'p'; 3000][..], b"\n"].concat());
    s.too_long(&[&[b'Y'; 1023][..], b"\r\n"].concat());
    s.command(Command::Auth {
        mechanism: Some(b"OAUTHBEARER"),
        initial: None,
    });
    s.too_long(&[&[b'T'; 2000][..], b"\r\n"].concat());
    s.command(Command::Noop);
    s.too_long(&[&[b'Z'; 1024][..], b"\n"].concat());
    s.command(Command::Quit);
    s
}

#[test]
fn commands_are_the_same_in_every_chunk_size() {
    let script = client_script();
    let whole = commands_in_chunks(&script.bytes, script.bytes.len());
    assert_eq!(whole, script.events);
    for chunk in (1..=64).chain(LARGE) {
        let events = commands_in_chunks(&script.bytes, chunk);
        if events != whole {
            let first = events
                .iter()
                .zip(&whole)
                .position(|(a, b)| a != b)
                .unwrap_or(events.len().min(whole.len()));
            panic!(
                "chunk size {chunk}: {} events instead of {}; first difference at {first}: \
                 {:?} vs {:?}",
                events.len(),
                whole.len(),
                events.get(first),
                whole.get(first)
            );
        }
    }
}

/// One outcome on the client side, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Ok(Vec<u8>, usize),
    Err(Vec<u8>, usize),
    Continuation(Vec<u8>, usize),
    /// An unstuffed multi-line body and the bytes it used.
    Block(Vec<u8>, usize),
}

/// Feeds a server transcript to the client side `chunk` bytes at a time. `multiline[i]`
/// says whether the i-th status line opens a multi-line block (a client knows this from the
/// command it sent).
fn replies_in_chunks(input: &[u8], multiline: &[bool], chunk: usize) -> Vec<Reply> {
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    let mut statuses = 0;
    let mut in_block = false;
    loop {
        let mut start = 0;
        loop {
            let rest = &buf[start..];
            if in_block {
                match parse_multiline(rest, 1 << 20) {
                    Ok((body, used)) => {
                        assert!(used > 0 && used <= rest.len());
                        out.push(Reply::Block(body, used));
                        start += used;
                        in_block = false;
                    }
                    Err(ResponseError::Incomplete) => break,
                    Err(e) => panic!("{e} at chunk size {chunk}"),
                }
                continue;
            }
            match parse_status_line(rest, &LIMITS) {
                Ok((status, used)) => {
                    assert!(used > 0 && used <= rest.len());
                    out.push(match status {
                        Status::Ok(t) => Reply::Ok(t.to_vec(), used),
                        Status::Err(t) => Reply::Err(t.to_vec(), used),
                        Status::Continuation(t) => Reply::Continuation(t.to_vec(), used),
                    });
                    in_block = matches!(status, Status::Ok(_)) && multiline[statuses];
                    statuses += 1;
                    start += used;
                }
                Err(ResponseError::Incomplete) => break,
                Err(e) => panic!("{e} at chunk size {chunk}"),
            }
        }
        buf.drain(..start);
        if fed == input.len() {
            break;
        }
        let end = (fed + chunk).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
    }
    assert!(buf.is_empty(), "unparsed bytes left at the end");
    assert!(!in_block, "a block was cut short");
    out
}

/// The server transcript, which status lines open blocks, and the replies it must give.
#[derive(Default)]
struct Transcript {
    bytes: Vec<u8>,
    multiline: Vec<bool>,
    replies: Vec<Reply>,
}

impl Transcript {
    /// A single-line reply written by `write`, expected back as `reply`.
    fn single(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>),
        reply: fn(Vec<u8>, usize) -> Reply,
        text: &[u8],
    ) {
        let before = self.bytes.len();
        write(&mut self.bytes);
        self.multiline.push(false);
        self.replies
            .push(reply(text.to_vec(), self.bytes.len() - before));
    }

    /// A multi-line reply: `+OK text`, then `block` (already on the wire), which must
    /// unstuff to `body`.
    fn block(&mut self, text: &[u8], block: &[u8], body: &[u8]) {
        let before = self.bytes.len();
        ok(&mut self.bytes, text);
        self.multiline.push(true);
        self.replies
            .push(Reply::Ok(text.to_vec(), self.bytes.len() - before));
        self.bytes.extend_from_slice(block);
        self.replies.push(Reply::Block(body.to_vec(), block.len()));
    }
}

/// A message with dots, empty lines and protocol text inside, `lines` lines long.
fn tricky_message(lines: usize) -> Vec<u8> {
    let pieces: [&[u8]; 7] = [
        b"Subject: test",
        b".",
        b"..",
        b".hidden",
        b"",
        b"+OK not a status",
        b"a line with trailing spaces   ",
    ];
    let mut out = Vec::new();
    for i in 0..lines {
        out.extend_from_slice(pieces[i % pieces.len()]);
        // Every fifth line is the piece alone, so "." and "" lines occur bare.
        if i % 5 != 4 {
            out.extend_from_slice(format!(" {i}").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The server transcript; `message_lines` gives the sizes of the RETR bodies at its end.
fn transcript(message_lines: &[usize]) -> Transcript {
    let mut t = Transcript::default();
    t.single(
        |o| ok(o, "POP3 ready <1896.697170952@dbc.mtview.ca.us>"),
        Reply::Ok,
        b"POP3 ready <1896.697170952@dbc.mtview.ca.us>",
    );
    let mut capa = Vec::new();
    for line in [
        "TOP",
        "UIDL",
        "USER",
        "SASL PLAIN LOGIN",
        "STLS",
        "XOIP",
        "PIPELINING",
    ] {
        multiline_line(&mut capa, line);
    }
    multiline_end(&mut capa);
    t.block(
        b"Capability list follows",
        &capa,
        b"TOP\r\nUIDL\r\nUSER\r\nSASL PLAIN LOGIN\r\nSTLS\r\nXOIP\r\nPIPELINING\r\n",
    );
    t.single(|o| continuation(o, ""), Reply::Continuation, b"");
    t.single(
        |o| continuation(o, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+"),
        Reply::Continuation,
        b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+",
    );
    t.single(
        |o| err(o, "[AUTH] invalid credentials"),
        Reply::Err,
        b"[AUTH] invalid credentials",
    );
    t.single(|o| err(o, ""), Reply::Err, b"");
    t.single(|o| ok(o, ""), Reply::Ok, b"");
    t.single(
        |o| o.extend_from_slice(b"+OK bare LF\n"),
        Reply::Ok,
        b"bare LF",
    );
    t.single(|o| o.extend_from_slice(b"+\r\n"), Reply::Continuation, b"");
    t.single(|o| ok(o, "2 320"), Reply::Ok, b"2 320");
    // Empty listing, then listings and bodies with stuffing and bare LFs.
    t.block(b"0 messages", b".\r\n", b"");
    t.block(
        b"scan listing follows",
        b"1 120\r\n2 200\r\n.\r\n",
        b"1 120\r\n2 200\r\n",
    );
    t.block(b"", b"1 a\n2 b\n.\n", b"1 a\r\n2 b\r\n");
    // Stuffed lines, a line that is "." plus a CR (not the end), empty and blank lines.
    t.block(
        b"message follows",
        b"..\r\n...\r\n..x\r\n.\r\r\n\r\n \r\n. \r\n.\r\n",
        b".\r\n..\r\n.x\r\n\r\r\n\r\n \r\n \r\n",
    );
    for &lines in message_lines {
        let message = tricky_message(lines);
        let mut block = Vec::new();
        dot_stuff(&mut block, &message);
        multiline_end(&mut block);
        t.block(b"message follows", &block, &message);
    }
    t.single(|o| ok(o, "bye"), Reply::Ok, b"bye");
    t
}

fn sweep(t: &Transcript, chunks: impl Iterator<Item = usize>) {
    let whole = replies_in_chunks(&t.bytes, &t.multiline, t.bytes.len());
    assert_eq!(whole, t.replies);
    for chunk in chunks {
        assert_eq!(
            replies_in_chunks(&t.bytes, &t.multiline, chunk),
            whole,
            "chunk size {chunk}"
        );
    }
}

#[test]
fn replies_are_the_same_in_every_chunk_size() {
    sweep(&transcript(&[1, 10, 200]), (1..=64).chain(LARGE));
}

/// Each call rescans the block from its start, so the sweep over tiny reads would be
/// quadratic in a large block; large blocks get read sizes a client really uses.
#[test]
fn large_blocks_in_large_reads() {
    let t = transcript(&[3000, 20_000]);
    assert!(t.bytes.len() > 300_000, "{} bytes", t.bytes.len());
    sweep(&t, [509, 1024, 4096, 8192, 16_384, 65_536].into_iter());
}
