//! Property tests of the POP3 codec: arbitrary bytes never make a parser panic or
//! over-consume, the outcome does not depend on where the bytes were split between reads,
//! generated commands come back unchanged through `encode` and `parse_command`, status
//! texts through the writers and `parse_status_line`, and arbitrary bodies of lines through
//! `dot_stuff` and `parse_multiline` (and `dot_stuff_top` cuts exactly that body).

use codec::pop3::{
    continuation, dot_stuff, dot_stuff_top, err, multiline_end, ok, parse_command, parse_line,
    parse_multiline, parse_status_line, skip_line, Command, Limits, ParseError, Status,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------
// Strategies.

/// A byte allowed in a token argument: anything but space, CR, LF and NUL.
fn token_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => 0x21u8..=0x7e,
        1 => 0x80u8..=0xff,
        1 => select(vec![0x01u8, b'\t', 0x0b, 0x0c, 0x7f]),
    ]
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    vec(token_byte(), 1..=40)
}

/// A rest-of-line argument: tokens and spaces in any arrangement (leading, trailing, runs,
/// spaces only), at least `min` bytes.
fn rest_of_line(min: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![4 => token_byte(), 1 => Just(b' ')], min..=80)
}

/// A message number: any valid one, often a small one.
fn msg() -> impl Strategy<Value = u32> {
    prop_oneof![1..=20u32, 1..=u32::MAX]
}

/// An owned command, so that strategies can produce it.
#[derive(Debug, Clone)]
enum Owned {
    User(Vec<u8>),
    Pass(Vec<u8>),
    Apop(Vec<u8>, Vec<u8>),
    Auth(Option<(Vec<u8>, Option<Vec<u8>>)>),
    Xclient(Vec<u8>),
    Xoip(Vec<u8>),
    Other(Command<'static>),
}

impl Owned {
    fn as_command(&self) -> Command<'_> {
        match self {
            Self::User(a) => Command::User(a),
            Self::Pass(a) => Command::Pass(a),
            Self::Apop(name, digest) => Command::Apop { name, digest },
            Self::Auth(None) => Command::Auth {
                mechanism: None,
                initial: None,
            },
            Self::Auth(Some((mechanism, initial))) => Command::Auth {
                mechanism: Some(mechanism),
                initial: initial.as_deref(),
            },
            Self::Xclient(a) => Command::Xclient(a),
            Self::Xoip(a) => Command::Xoip(a),
            Self::Other(c) => *c,
        }
    }
}

fn command() -> impl Strategy<Value = Owned> {
    prop_oneof![
        rest_of_line(1).prop_map(Owned::User),
        rest_of_line(0).prop_map(Owned::Pass),
        (
            token(),
            vec(select(b"0123456789abcdefABCDEF".to_vec()), 32..=32)
        )
            .prop_map(|(name, digest)| Owned::Apop(name, digest)),
        option::of((token(), option::of(token()))).prop_map(Owned::Auth),
        rest_of_line(1).prop_map(Owned::Xclient),
        token().prop_map(Owned::Xoip),
        select(vec![
            Command::Capa,
            Command::Stls,
            Command::Stat,
            Command::Rset,
            Command::Noop,
            Command::Quit,
            Command::List(None),
            Command::Uidl(None),
        ])
        .prop_map(Owned::Other),
        msg().prop_map(|n| Owned::Other(Command::List(Some(n)))),
        msg().prop_map(|n| Owned::Other(Command::Uidl(Some(n)))),
        msg().prop_map(|n| Owned::Other(Command::Retr(n))),
        msg().prop_map(|n| Owned::Other(Command::Dele(n))),
        (msg(), any::<u32>()).prop_map(|(msg, lines)| Owned::Other(Command::Top { msg, lines })),
    ]
}

/// A line of a message body: any bytes but LF (a CR may be anywhere, even last).
fn body_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>().prop_filter("no LF", |&b| b != b'\n'), 0..60),
        2 => vec(select(b".\r a".to_vec()), 0..6),
    ]
}

/// Byte soup made of POP3 fragments, to reach deeper than uniform random bytes do.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&'static [u8]> = vec![
        b"USER ",
        b"PASS ",
        b"APOP ",
        b"AUTH ",
        b"AUTH",
        b"CAPA",
        b"STLS",
        b"STAT",
        b"LIST ",
        b"UIDL ",
        b"RETR ",
        b"TOP ",
        b"DELE ",
        b"RSET",
        b"NOOP",
        b"QUIT",
        b"XCLIENT ",
        b"XOIP ",
        b"user ",
        b"list",
        b"PLAIN ",
        b"=",
        b"*",
        b"bob ",
        b"0 ",
        b"1 ",
        b"007 ",
        b"4294967295",
        b"4294967296",
        b"-1",
        b"+1",
        b"c4c9334bac560ecc979e58001b3e22fb",
        b"ADDR=1.2.3.4 ",
        b"+OK ",
        b"-ERR ",
        b"+ ",
        b".",
        b"..",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"   ",
        b"\x00",
        b"\xff",
    ];
    let long = vec(Just(b'x'), 1000..1100);
    vec(
        prop_oneof![20 => select(pieces).prop_map(<[u8]>::to_vec), 1 => long],
        0..200,
    )
    .prop_map(|pieces| pieces.concat())
}

// ---------------------------------------------------------------------------------------
// Drivers.

/// What a server's read loop makes of `input` when first `input[..cut]` arrives and then
/// the rest: commands and errors in order, over-long lines discarded through their LF.
fn command_events(input: &[u8], cut: usize) -> Vec<String> {
    let limits = Limits::default();
    let mut events = Vec::new();
    let mut start = 0;
    let mut discarding: Option<usize> = None;
    for end in [cut, input.len()] {
        loop {
            let buf = &input[start..end];
            if let Some(dropped) = discarding {
                match skip_line(buf) {
                    Some(n) => {
                        assert!(n > 0 && n <= buf.len());
                        events.push(format!("too long: {}", dropped + n));
                        discarding = None;
                        start += n;
                    }
                    None => {
                        discarding = Some(dropped + buf.len());
                        start = end;
                        break;
                    }
                }
                continue;
            }
            match parse_command(buf, &limits) {
                Ok(parsed) => {
                    assert!(parsed.consumed > 0 && parsed.consumed <= buf.len());
                    events.push(format!("{:?} {}", parsed.command, parsed.consumed));
                    start += parsed.consumed;
                }
                Err(ParseError::Invalid { consumed, reason }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    events.push(format!("{reason} {consumed}"));
                    start += consumed;
                }
                Err(ParseError::LineTooLong) => {
                    assert!(buf.len() >= limits.max_line);
                    discarding = Some(0);
                }
                Err(ParseError::Incomplete) => break,
            }
        }
    }
    events
}

/// Every raw line in `input` until the first error.
fn line_events(input: &[u8]) -> usize {
    let limits = Limits::default();
    let mut rest = input;
    let mut n = 0;
    while let Ok(parsed) = parse_line(rest, &limits) {
        assert!(parsed.consumed > 0 && parsed.consumed <= rest.len());
        assert!(parsed.command.len() < parsed.consumed);
        rest = &rest[parsed.consumed..];
        n += 1;
    }
    n
}

/// Status lines, each followed by a multi-line block when it is `+OK`, until an error.
fn reply_events(input: &[u8]) -> usize {
    let limits = Limits::default();
    let mut rest = input;
    let mut n = 0;
    while let Ok((status, used)) = parse_status_line(rest, &limits) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
        n += 1;
        if matches!(status, Status::Ok(_)) {
            match parse_multiline(rest, 4096) {
                Ok((_, used)) => {
                    assert!(used > 0 && used <= rest.len());
                    rest = &rest[used..];
                }
                Err(_) => break,
            }
        }
    }
    n
}

fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    dot_stuff(&mut wire, body);
    wire
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes: no panic, and every result stays within the buffer.
    #[test]
    fn random_bytes_never_panic(input in vec(any::<u8>(), 0..4096)) {
        let _ = command_events(&input, input.len());
        let _ = line_events(&input);
        let _ = reply_events(&input);
        if let Ok((_, used)) = parse_multiline(&input, 1 << 20) {
            prop_assert!(used > 0 && used <= input.len());
        }
    }

    /// POP3-like soup: no panic, and the outcome does not depend on where the bytes were
    /// split between two reads.
    #[test]
    fn soup_splits_do_not_matter(input in soup(), cut in any::<prop::sample::Index>()) {
        let whole = command_events(&input, input.len());
        let split = command_events(&input, cut.index(input.len() + 1));
        prop_assert_eq!(whole, split);
        let _ = line_events(&input);
        let _ = reply_events(&input);
    }

    /// Commands survive encode and parse, one after another in a pipeline.
    #[test]
    fn commands_round_trip(owned in vec(command(), 1..=6)) {
        let limits = Limits::default();
        let mut wire = Vec::new();
        let mut lengths = Vec::new();
        for command in &owned {
            let before = wire.len();
            command.as_command().encode(&mut wire);
            lengths.push(wire.len() - before);
        }
        let mut rest = &wire[..];
        for (command, length) in owned.iter().zip(lengths) {
            let parsed = parse_command(rest, &limits).map_err(|e| {
                TestCaseError::fail(format!(
                    "{e:?} for \"{}\"",
                    rest[..length].escape_ascii()
                ))
            })?;
            prop_assert_eq!(parsed.command, command.as_command());
            prop_assert_eq!(parsed.consumed, length);
            rest = &rest[length..];
        }
        prop_assert_eq!(parse_command(rest, &limits), Err(ParseError::Incomplete));
    }

    /// Status texts without line ends come back exactly; with them, the response is still
    /// one line.
    #[test]
    fn status_texts_round_trip(text in vec(any::<u8>(), 0..200), kind in 0..3u8) {
        let mut wire = Vec::new();
        match kind {
            0 => ok(&mut wire, &text),
            1 => err(&mut wire, &text),
            _ => continuation(&mut wire, &text),
        }
        prop_assert!(wire.ends_with(b"\r\n"));
        prop_assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
        let limits = Limits { max_line: 1024 };
        let (status, used) = parse_status_line(&wire, &limits).expect("one status line");
        prop_assert_eq!(used, wire.len());
        let clean: Vec<u8> = text
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        let want = match kind {
            0 => Status::Ok(&clean),
            1 => Status::Err(&clean),
            _ => Status::Continuation(&clean),
        };
        prop_assert_eq!(status, want);
    }

    /// A body of CRLF-terminated lines survives dot-stuffing and unstuffing, and the block
    /// ends exactly at its terminator.
    #[test]
    fn crlf_bodies_round_trip(lines in vec(body_line(), 0..40)) {
        let body: Vec<u8> = lines.iter().flat_map(|l| [&l[..], b"\r\n"].concat()).collect();
        let mut wire = stuffed(&body);
        // No line of the stuffed body can be the terminator.
        prop_assert!(!wire.starts_with(b".\r\n") && !wire.starts_with(b".\n"));
        prop_assert!(memchr::memmem::find(&wire, b"\n.\r\n").is_none());
        prop_assert!(memchr::memmem::find(&wire, b"\n.\n").is_none());
        multiline_end(&mut wire);
        wire.extend_from_slice(b"+OK next\r\n");
        let (unstuffed, used) = parse_multiline(&wire, 1 << 20).expect("a whole block");
        prop_assert_eq!(unstuffed, body);
        prop_assert_eq!(&wire[used..], b"+OK next\r\n");
    }

    /// Bare-LF line ends come back as CRLF, and a last line without a line end gets one.
    #[test]
    fn lf_bodies_are_normalised(
        lines in vec(body_line().prop_map(|l| l.into_iter().filter(|&b| b != b'\r').collect::<Vec<u8>>()), 1..40),
        crlf in vec(any::<bool>(), 40),
        last_end in any::<bool>(),
    ) {
        let mut body = Vec::new();
        let mut want = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            body.extend_from_slice(line);
            if i + 1 < lines.len() || last_end {
                body.extend_from_slice(if crlf[i] { b"\r\n" } else { b"\n" });
            }
            // A last line with neither bytes nor a line end is no line at all.
            if i + 1 < lines.len() || last_end || !line.is_empty() {
                want.extend_from_slice(line);
                want.extend_from_slice(b"\r\n");
            }
        }
        let mut wire = stuffed(&body);
        multiline_end(&mut wire);
        let (unstuffed, used) = parse_multiline(&wire, 1 << 20).expect("a whole block");
        prop_assert_eq!(unstuffed, want);
        prop_assert_eq!(used, wire.len());
    }

    /// TOP sends the header, its empty line and exactly `n` body lines (or all there are),
    /// as a prefix of the whole stuffed message.
    #[test]
    fn top_is_a_prefix_of_the_whole(
        header in vec(body_line().prop_filter("an empty line ends the header", |l| !l.is_empty()), 0..6),
        body in vec(body_line(), 0..20),
        n in 0..25u32,
    ) {
        let mut message: Vec<u8> = header.iter().flat_map(|l| [&l[..], b"\r\n"].concat()).collect();
        message.extend_from_slice(b"\r\n");
        for line in &body {
            message.extend_from_slice(line);
            message.extend_from_slice(b"\r\n");
        }
        let whole = stuffed(&message);
        let mut top = Vec::new();
        dot_stuff_top(&mut top, &message, n);
        prop_assert!(whole.starts_with(&top));
        let mut wire = top.clone();
        multiline_end(&mut wire);
        let (unstuffed, _) = parse_multiline(&wire, 1 << 20).expect("a whole block");
        let sent_lines = unstuffed.windows(2).filter(|w| w == b"\r\n").count();
        let body_sent = (n as usize).min(body.len());
        prop_assert_eq!(sent_lines, header.len() + 1 + body_sent);
        if n as usize >= body.len() {
            prop_assert_eq!(top, whole);
        }
    }
}
