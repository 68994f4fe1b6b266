//! Table-driven tests of the POP3 command side with the default limits: every command of
//! RFC 1939/2449/2595/5034 plus XCLIENT and XOIP parsed to its exact value, keyword case,
//! CRLF and bare LF, every invalid-line reason, message numbers at their edges, USER/PASS
//! with spaces, the line limit and its discard helper, SASL lines, the canonical encoding
//! and the XCLIENT parameter splitter.

use codec::pop3::{
    parse_command, parse_line, skip_line, xclient_params, Command, Limits, ParseError, Parsed,
};

/// What one single-line input must parse to.
enum Want<'a> {
    /// The command, using the whole input.
    Cmd(Command<'a>),
    /// `Invalid` with this reason, using the whole input.
    Bad(&'static str),
}

use Want::{Bad, Cmd};

/// Builds a `Vec<(&[u8], Want)>` from `input => want` rows.
macro_rules! table {
    ($($input:expr => $want:expr),* $(,)?) => {
        vec![$((&$input[..], $want)),*]
    };
}

fn show(input: &[u8]) -> String {
    format!("\"{}\"", input.escape_ascii())
}

/// Checks each row three ways: the line alone, the line followed by another command (which
/// must not be touched), and every proper prefix of the line (which must be incomplete).
fn check(rows: Vec<(&[u8], Want<'_>)>) {
    let limits = Limits::default();
    for (input, want) in rows {
        let expected = match want {
            Cmd(command) => Ok(Parsed {
                command,
                consumed: input.len(),
            }),
            Bad(reason) => Err(ParseError::Invalid {
                consumed: input.len(),
                reason,
            }),
        };
        assert_eq!(parse_command(input, &limits), expected, "{}", show(input));
        let followed = [input, b"NOOP\r\n"].concat();
        assert_eq!(
            parse_command(&followed, &limits),
            expected,
            "{} followed by NOOP",
            show(input)
        );
        for cut in 0..input.len() {
            assert_eq!(
                parse_command(&input[..cut], &limits),
                Err(ParseError::Incomplete),
                "{} cut at {cut}",
                show(input)
            );
        }
    }
}

const DIGEST: &[u8] = b"c4c9334bac560ecc979e58001b3e22fb";

#[test]
fn every_command() {
    check(table![
        b"USER bob\r\n" => Cmd(Command::User(b"bob")),
        b"USER bob@example.com/tb\r\n" => Cmd(Command::User(b"bob@example.com/tb")),
        b"USER b\xc3\xbcr\xff\r\n" => Cmd(Command::User(b"b\xc3\xbcr\xff")),
        b"PASS secret\r\n" => Cmd(Command::Pass(b"secret")),
        b"PASS p%41+\"\\\x01\t\r\n" => Cmd(Command::Pass(b"p%41+\"\\\x01\t")),
        b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n" => Cmd(Command::Apop {
            name: b"mrose",
            digest: DIGEST,
        }),
        b"APOP mrose C4C9334BAC560ECC979E58001B3E22FB\r\n" => Cmd(Command::Apop {
            name: b"mrose",
            digest: b"C4C9334BAC560ECC979E58001B3E22FB",
        }),
        b"AUTH\r\n" => Cmd(Command::Auth {
            mechanism: None,
            initial: None,
        }),
        b"AUTH PLAIN\r\n" => Cmd(Command::Auth {
            mechanism: Some(b"PLAIN"),
            initial: None,
        }),
        b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n" => Cmd(Command::Auth {
            mechanism: Some(b"PLAIN"),
            initial: Some(b"AGJvYgBzZWNyZXQ="),
        }),
        b"AUTH PLAIN =\r\n" => Cmd(Command::Auth {
            mechanism: Some(b"PLAIN"),
            initial: Some(b"="),
        }),
        b"AUTH login\r\n" => Cmd(Command::Auth {
            mechanism: Some(b"login"),
            initial: None,
        }),
        b"CAPA\r\n" => Cmd(Command::Capa),
        b"STLS\r\n" => Cmd(Command::Stls),
        b"STAT\r\n" => Cmd(Command::Stat),
        b"LIST\r\n" => Cmd(Command::List(None)),
        b"LIST 1\r\n" => Cmd(Command::List(Some(1))),
        b"UIDL\r\n" => Cmd(Command::Uidl(None)),
        b"UIDL 12\r\n" => Cmd(Command::Uidl(Some(12))),
        b"RETR 3\r\n" => Cmd(Command::Retr(3)),
        b"TOP 1 10\r\n" => Cmd(Command::Top { msg: 1, lines: 10 }),
        b"TOP 2 0\r\n" => Cmd(Command::Top { msg: 2, lines: 0 }),
        b"DELE 4\r\n" => Cmd(Command::Dele(4)),
        b"RSET\r\n" => Cmd(Command::Rset),
        b"NOOP\r\n" => Cmd(Command::Noop),
        b"QUIT\r\n" => Cmd(Command::Quit),
        b"XCLIENT ADDR=192.0.2.1 PORT=52431 TTL=5\r\n" =>
            Cmd(Command::Xclient(b"ADDR=192.0.2.1 PORT=52431 TTL=5")),
        b"XOIP 192.0.2.1\r\n" => Cmd(Command::Xoip(b"192.0.2.1")),
        b"XOIP 2001:db8::1\r\n" => Cmd(Command::Xoip(b"2001:db8::1")),
    ]);
}

#[test]
fn keywords_are_case_insensitive_and_arguments_are_not() {
    check(table![
        b"user Bob\r\n" => Cmd(Command::User(b"Bob")),
        b"uSeR BOB\r\n" => Cmd(Command::User(b"BOB")),
        b"pass PassWord\r\n" => Cmd(Command::Pass(b"PassWord")),
        b"apop MRose c4c9334bac560ecc979e58001b3e22fb\r\n" => Cmd(Command::Apop {
            name: b"MRose",
            digest: DIGEST,
        }),
        b"auth Plain\r\n" => Cmd(Command::Auth {
            mechanism: Some(b"Plain"),
            initial: None,
        }),
        b"capa\r\n" => Cmd(Command::Capa),
        b"Stls\r\n" => Cmd(Command::Stls),
        b"stat\r\n" => Cmd(Command::Stat),
        b"list 1\r\n" => Cmd(Command::List(Some(1))),
        b"uidl\r\n" => Cmd(Command::Uidl(None)),
        b"retr 1\r\n" => Cmd(Command::Retr(1)),
        b"tOp 1 1\r\n" => Cmd(Command::Top { msg: 1, lines: 1 }),
        b"dele 1\r\n" => Cmd(Command::Dele(1)),
        b"rset\r\n" => Cmd(Command::Rset),
        b"noop\r\n" => Cmd(Command::Noop),
        b"quit\r\n" => Cmd(Command::Quit),
        b"xclient addr=1\r\n" => Cmd(Command::Xclient(b"addr=1")),
        b"Xoip 10.0.0.1\r\n" => Cmd(Command::Xoip(b"10.0.0.1")),
    ]);
}

#[test]
fn bare_lf_ends_a_line_too() {
    check(table![
        b"USER bob\n" => Cmd(Command::User(b"bob")),
        b"PASS a b\n" => Cmd(Command::Pass(b"a b")),
        b"PASS\n" => Cmd(Command::Pass(b"")),
        b"QUIT\n" => Cmd(Command::Quit),
        b"TOP 1 2\n" => Cmd(Command::Top { msg: 1, lines: 2 }),
        b"AUTH PLAIN AGJvYgBzZWNyZXQ=\n" => Cmd(Command::Auth {
            mechanism: Some(b"PLAIN"),
            initial: Some(b"AGJvYgBzZWNyZXQ="),
        }),
        b"\n" => Bad("empty command"),
        b"FOO\n" => Bad("unknown command"),
    ]);
}

#[test]
fn user_and_pass_keep_spaces() {
    check(table![
        // Everything after the keyword's one space, as nginx and Dovecot take it.
        b"USER bob smith\r\n" => Cmd(Command::User(b"bob smith")),
        b"USER  bob \r\n" => Cmd(Command::User(b" bob ")),
        b"USER \t\r\n" => Cmd(Command::User(b"\t")),
        b"PASS pa ss  word \r\n" => Cmd(Command::Pass(b"pa ss  word ")),
        b"PASS  leading\r\n" => Cmd(Command::Pass(b" leading")),
        b"PASS \r\n" => Cmd(Command::Pass(b"")),
        b"PASS\r\n" => Cmd(Command::Pass(b"")),
        b"PASS   \r\n" => Cmd(Command::Pass(b"  ")),
        b"XCLIENT  ADDR=1 \r\n" => Cmd(Command::Xclient(b" ADDR=1 ")),
        // Token commands take runs of spaces and ignore trailing ones.
        b"LIST  2 \r\n" => Cmd(Command::List(Some(2))),
        b"LIST \r\n" => Cmd(Command::List(None)),
        b"TOP   1   2  \r\n" => Cmd(Command::Top { msg: 1, lines: 2 }),
        b"APOP  mrose   c4c9334bac560ecc979e58001b3e22fb  \r\n" => Cmd(Command::Apop {
            name: b"mrose",
            digest: DIGEST,
        }),
        b"AUTH  PLAIN  =  \r\n" => Cmd(Command::Auth {
            mechanism: Some(b"PLAIN"),
            initial: Some(b"="),
        }),
        b"AUTH \r\n" => Cmd(Command::Auth {
            mechanism: None,
            initial: None,
        }),
        b"QUIT \r\n" => Cmd(Command::Quit),
        b"CAPA   \r\n" => Cmd(Command::Capa),
        b"XOIP  10.0.0.1 \r\n" => Cmd(Command::Xoip(b"10.0.0.1")),
    ]);
}

#[test]
fn message_numbers() {
    check(table![
        b"RETR 1\r\n" => Cmd(Command::Retr(1)),
        b"RETR 01\r\n" => Cmd(Command::Retr(1)),
        b"RETR 0000000000000000000000042\r\n" => Cmd(Command::Retr(42)),
        b"RETR 4294967295\r\n" => Cmd(Command::Retr(u32::MAX)),
        b"RETR 04294967295\r\n" => Cmd(Command::Retr(u32::MAX)),
        b"RETR 4294967296\r\n" => Bad("invalid message number"),
        b"RETR 99999999999999999999999\r\n" => Bad("invalid message number"),
        b"RETR 0\r\n" => Bad("invalid message number"),
        b"RETR 000\r\n" => Bad("invalid message number"),
        b"RETR -1\r\n" => Bad("invalid message number"),
        b"RETR +1\r\n" => Bad("invalid message number"),
        b"RETR 1.0\r\n" => Bad("invalid message number"),
        b"RETR 0x1\r\n" => Bad("invalid message number"),
        b"RETR 1a\r\n" => Bad("invalid message number"),
        b"RETR \xd9\xa1\r\n" => Bad("invalid message number"),
        b"RETR\r\n" => Bad("missing argument"),
        b"RETR \r\n" => Bad("missing argument"),
        b"RETR 1 2\r\n" => Bad("too many arguments"),
        b"DELE 0\r\n" => Bad("invalid message number"),
        b"DELE\r\n" => Bad("missing argument"),
        b"DELE 1 1\r\n" => Bad("too many arguments"),
        b"LIST 0\r\n" => Bad("invalid message number"),
        b"LIST -1\r\n" => Bad("invalid message number"),
        b"LIST 4294967296\r\n" => Bad("invalid message number"),
        b"LIST x\r\n" => Bad("invalid message number"),
        b"LIST 1 2\r\n" => Bad("too many arguments"),
        b"UIDL 0\r\n" => Bad("invalid message number"),
        b"UIDL +3\r\n" => Bad("invalid message number"),
        b"UIDL 3 3\r\n" => Bad("too many arguments"),
        // TOP's line count may be 0 but is otherwise a number like the others.
        b"TOP 1 0\r\n" => Cmd(Command::Top { msg: 1, lines: 0 }),
        b"TOP 1 000\r\n" => Cmd(Command::Top { msg: 1, lines: 0 }),
        b"TOP 4294967295 4294967295\r\n" => Cmd(Command::Top {
            msg: u32::MAX,
            lines: u32::MAX,
        }),
        b"TOP 0 1\r\n" => Bad("invalid message number"),
        b"TOP x 1\r\n" => Bad("invalid message number"),
        b"TOP 1 -1\r\n" => Bad("invalid line count"),
        b"TOP 1 +1\r\n" => Bad("invalid line count"),
        b"TOP 1 4294967296\r\n" => Bad("invalid line count"),
        b"TOP 1 ten\r\n" => Bad("invalid line count"),
        b"TOP 1\r\n" => Bad("missing argument"),
        b"TOP\r\n" => Bad("missing argument"),
        b"TOP 1 2 3\r\n" => Bad("too many arguments"),
    ]);
}

#[test]
fn invalid_lines_and_their_reasons() {
    check(table![
        b"\r\n" => Bad("empty command"),
        b"FOO\r\n" => Bad("unknown command"),
        b"USERS bob\r\n" => Bad("unknown command"),
        b"XCLIENTS A=1\r\n" => Bad("unknown command"),
        b"LOGIN bob secret\r\n" => Bad("unknown command"),
        b"a1 CAPABILITY\r\n" => Bad("unknown command"),
        b"STARTTLS\r\n" => Bad("unknown command"),
        b" USER bob\r\n" => Bad("unknown command"),
        b"US ER bob\r\n" => Bad("unknown command"),
        b"QUIT\t\r\n" => Bad("unknown command"),
        b"\tQUIT\r\n" => Bad("unknown command"),
        b" \r\n" => Bad("unknown command"),
        b"\xff\xfe\r\n" => Bad("unknown command"),
        // A CR inside a line or a NUL anywhere: never passed on to a backend.
        b"USER a\x00b\r\n" => Bad("invalid character in command"),
        b"PASS a\rb\r\n" => Bad("invalid character in command"),
        b"USER bob\r\r\n" => Bad("invalid character in command"),
        b"QUIT\r\r\n" => Bad("invalid character in command"),
        b"\r\r\n" => Bad("invalid character in command"),
        b"\x00\r\n" => Bad("invalid character in command"),
        b"USER\r\n" => Bad("missing argument"),
        b"USER \r\n" => Bad("missing argument"),
        b"XCLIENT\r\n" => Bad("missing argument"),
        b"XCLIENT \r\n" => Bad("missing argument"),
        b"XOIP\r\n" => Bad("missing argument"),
        b"XOIP  \r\n" => Bad("missing argument"),
        b"XOIP 1.2.3.4 5.6.7.8\r\n" => Bad("too many arguments"),
        b"APOP\r\n" => Bad("missing argument"),
        b"APOP mrose\r\n" => Bad("missing argument"),
        b"APOP mrose c4c9334bac560ecc979e58001b3e22fb x\r\n" => Bad("too many arguments"),
        b"APOP mrose c4c9334bac560ecc979e58001b3e22f\r\n" => Bad("invalid APOP digest"),
        b"APOP mrose c4c9334bac560ecc979e58001b3e22fbb\r\n" => Bad("invalid APOP digest"),
        b"APOP mrose g4c9334bac560ecc979e58001b3e22fb\r\n" => Bad("invalid APOP digest"),
        b"APOP mrose secret\r\n" => Bad("invalid APOP digest"),
        b"AUTH PLAIN AGJvYgBzZWNyZXQ= x\r\n" => Bad("too many arguments"),
        b"CAPA x\r\n" => Bad("too many arguments"),
        b"STLS now\r\n" => Bad("too many arguments"),
        b"STAT 1\r\n" => Bad("too many arguments"),
        b"RSET 1\r\n" => Bad("too many arguments"),
        b"NOOP x\r\n" => Bad("too many arguments"),
        b"QUIT now\r\n" => Bad("too many arguments"),
    ]);
}

#[test]
fn invalid_is_displayed_as_its_reason() {
    let e = parse_command(b"FOO\r\n", &Limits::default()).unwrap_err();
    assert_eq!(e.to_string(), "unknown command");
    assert_eq!(ParseError::LineTooLong.to_string(), "line too long");
}

#[test]
fn empty_input_is_incomplete() {
    let limits = Limits::default();
    assert_eq!(parse_command(b"", &limits), Err(ParseError::Incomplete));
    assert_eq!(parse_line(b"", &limits), Err(ParseError::Incomplete));
    assert_eq!(skip_line(b""), None);
}

#[test]
fn pipelined_commands_come_out_one_at_a_time() {
    let limits = Limits::default();
    let input = b"USER bob\r\nPASS x y\nSTAT\r\nbogus\r\nRETR 1\r\nQUI";
    let mut rest = &input[..];
    let mut seen = Vec::new();
    loop {
        match parse_command(rest, &limits) {
            Ok(parsed) => {
                seen.push(Ok(parsed.command));
                rest = &rest[parsed.consumed..];
            }
            Err(ParseError::Invalid { consumed, reason }) => {
                seen.push(Err(reason));
                rest = &rest[consumed..];
            }
            Err(e) => {
                assert_eq!(e, ParseError::Incomplete);
                break;
            }
        }
    }
    assert_eq!(
        seen,
        [
            Ok(Command::User(b"bob")),
            Ok(Command::Pass(b"x y")),
            Ok(Command::Stat),
            Err("unknown command"),
            Ok(Command::Retr(1)),
        ]
    );
    assert_eq!(rest, b"QUI");
}

#[test]
fn default_line_limit_is_1024_with_the_line_end() {
    let limits = Limits::default();
    assert_eq!(limits.max_line, 1024);
    for end in [&b"\r\n"[..], b"\n"] {
        let fits = [b"USER ", &[b'u'; 1024][..1024 - 5 - end.len()], end].concat();
        assert_eq!(fits.len(), 1024);
        assert_eq!(
            parse_command(&fits, &limits),
            Ok(Parsed {
                command: Command::User(&fits[5..1024 - end.len()]),
                consumed: 1024,
            })
        );
        let over = [b"USER u", &fits[5..]].concat();
        assert_eq!(parse_command(&over, &limits), Err(ParseError::LineTooLong));
        assert_eq!(parse_line(&over, &limits), Err(ParseError::LineTooLong));
    }
    // Without a line end: incomplete up to 1023 bytes, too long from 1024 on.
    let no_end = [b'x'; 1024];
    assert_eq!(
        parse_command(&no_end[..1023], &limits),
        Err(ParseError::Incomplete)
    );
    assert_eq!(
        parse_command(&no_end, &limits),
        Err(ParseError::LineTooLong)
    );
    // A CR as the 1024th byte still needs its LF as the 1025th.
    let cr_last = [&[b'x'; 1023][..], b"\r"].concat();
    assert_eq!(
        parse_command(&cr_last, &limits),
        Err(ParseError::LineTooLong)
    );
}

#[test]
fn other_limits_are_honoured() {
    let limits = Limits { max_line: 255 };
    let fits = [b"PASS ", &[b'p'; 248][..], b"\r\n"].concat();
    assert_eq!(fits.len(), 255);
    assert_eq!(parse_command(&fits, &limits).map(|p| p.consumed), Ok(255));
    let over = [b"PASS p", &fits[5..]].concat();
    assert_eq!(parse_command(&over, &limits), Err(ParseError::LineTooLong));
    // The same line is fine under the default limit.
    assert!(parse_command(&over, &Limits::default()).is_ok());
}

#[test]
fn skip_line_discards_through_the_next_lf() {
    let limits = Limits::default();
    let long = [&[b'A'; 3000][..], b"\r\nQUIT\r\n"].concat();
    assert_eq!(parse_command(&long, &limits), Err(ParseError::LineTooLong));
    let skip = skip_line(&long).expect("an LF is buffered");
    assert_eq!(skip, 3002);
    assert_eq!(
        parse_command(&long[skip..], &limits),
        Ok(Parsed {
            command: Command::Quit,
            consumed: 6,
        })
    );
    // No LF yet: the caller drops what it has and keeps discarding.
    assert_eq!(skip_line(&long[..2500]), None);
    assert_eq!(skip_line(b"xyz"), None);
    assert_eq!(skip_line(b"\n"), Some(1));
    assert_eq!(skip_line(b"ab\ncd\n"), Some(3));
}

#[test]
fn sasl_lines_come_back_raw() {
    let limits = Limits::default();
    let cases: Vec<(&[u8], &[u8])> = vec![
        (b"AGJvYgBzZWNyZXQ=\r\n", b"AGJvYgBzZWNyZXQ="),
        (b"*\r\n", b"*"),
        (b"=\r\n", b"="),
        (b"\r\n", b""),
        (b"\n", b""),
        (b"Ym9i\n", b"Ym9i"),
        (b" a b \r\n", b" a b "),
        (b"a\x00b\rc\r\n", b"a\x00b\rc"),
        (b"a\r\r\n", b"a\r"),
    ];
    for (input, line) in cases {
        assert_eq!(
            parse_line(input, &limits),
            Ok(Parsed {
                command: line,
                consumed: input.len(),
            }),
            "{}",
            show(input)
        );
        let followed = [input, b"more\r\n"].concat();
        assert_eq!(
            parse_line(&followed, &limits).map(|p| p.consumed),
            Ok(input.len())
        );
        for cut in 0..input.len() {
            assert_eq!(
                parse_line(&input[..cut], &limits),
                Err(ParseError::Incomplete)
            );
        }
    }
    // A bearer token longer than the default needs a larger limit for its line.
    let token = [&[b'T'; 4000][..], b"\r\n"].concat();
    assert_eq!(parse_line(&token, &limits), Err(ParseError::LineTooLong));
    assert_eq!(
        parse_line(&token, &Limits { max_line: 8192 }).map(|p| p.command.len()),
        Ok(4000)
    );
}

fn encoded(command: Command<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    command.encode(&mut out);
    out
}

#[test]
fn canonical_encoding() {
    let cases: Vec<(Command<'_>, &[u8])> = vec![
        (Command::User(b"bob smith"), b"USER bob smith\r\n"),
        (Command::Pass(b" p w "), b"PASS  p w \r\n"),
        (Command::Pass(b""), b"PASS \r\n"),
        (
            Command::Apop {
                name: b"mrose",
                digest: DIGEST,
            },
            b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
        ),
        (
            Command::Auth {
                mechanism: None,
                initial: None,
            },
            b"AUTH\r\n",
        ),
        (
            Command::Auth {
                mechanism: None,
                initial: Some(b"ignored"),
            },
            b"AUTH\r\n",
        ),
        (
            Command::Auth {
                mechanism: Some(b"PLAIN"),
                initial: None,
            },
            b"AUTH PLAIN\r\n",
        ),
        (
            Command::Auth {
                mechanism: Some(b"PLAIN"),
                initial: Some(b"AGJvYgBzZWNyZXQ="),
            },
            b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
        ),
        (Command::Capa, b"CAPA\r\n"),
        (Command::Stls, b"STLS\r\n"),
        (Command::Stat, b"STAT\r\n"),
        (Command::List(None), b"LIST\r\n"),
        (Command::List(Some(7)), b"LIST 7\r\n"),
        (Command::Uidl(None), b"UIDL\r\n"),
        (Command::Uidl(Some(u32::MAX)), b"UIDL 4294967295\r\n"),
        (Command::Retr(10), b"RETR 10\r\n"),
        (Command::Top { msg: 3, lines: 0 }, b"TOP 3 0\r\n"),
        (Command::Dele(100), b"DELE 100\r\n"),
        (Command::Rset, b"RSET\r\n"),
        (Command::Noop, b"NOOP\r\n"),
        (Command::Quit, b"QUIT\r\n"),
        (
            Command::Xclient(b"ADDR=192.0.2.1 PORT=1"),
            b"XCLIENT ADDR=192.0.2.1 PORT=1\r\n",
        ),
        (Command::Xoip(b"192.0.2.1"), b"XOIP 192.0.2.1\r\n"),
    ];
    let limits = Limits::default();
    for (command, wire) in cases {
        assert_eq!(encoded(command), wire, "{command:?}");
        assert_eq!(
            command.keyword().as_bytes(),
            &wire[..command.keyword().len()]
        );
        // Everything but the unparsable AUTH-without-mechanism form reads back.
        if !matches!(
            command,
            Command::Auth {
                mechanism: None,
                initial: Some(_),
            }
        ) {
            assert_eq!(
                parse_command(wire, &limits),
                Ok(Parsed {
                    command,
                    consumed: wire.len(),
                })
            );
        }
    }
}

#[test]
fn xclient_parameters() {
    let pairs = |args: &'static [u8]| xclient_params(args).collect::<Vec<_>>();
    assert_eq!(
        pairs(b"ADDR=192.0.2.1 PORT=52431 SESSION=abc TTL=5"),
        [
            (&b"ADDR"[..], &b"192.0.2.1"[..]),
            (b"PORT", b"52431"),
            (b"SESSION", b"abc"),
            (b"TTL", b"5"),
        ]
    );
    assert_eq!(
        pairs(b"  A=1   B= C =x D=a=b forward=AAA= "),
        [
            (&b"A"[..], &b"1"[..]),
            (b"B", b""),
            (b"C", b""),
            (b"", b"x"),
            (b"D", b"a=b"),
            (b"forward", b"AAA="),
        ]
    );
    assert!(pairs(b"").is_empty());
    assert!(pairs(b"   ").is_empty());
    // Straight from a parsed command.
    let parsed = parse_command(b"XCLIENT ADDR=::1 PORT=7\r\n", &Limits::default()).unwrap();
    let Command::Xclient(args) = parsed.command else {
        panic!("not XCLIENT: {:?}", parsed.command);
    };
    assert_eq!(
        xclient_params(args).collect::<Vec<_>>(),
        [(&b"ADDR"[..], &b"::1"[..]), (b"PORT", b"7")]
    );
}
