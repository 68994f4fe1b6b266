//! Table tests of the IMAP codec, byte for byte: commands as real clients send them (curl,
//! Python imaplib, mbsync, fetchmail, Thunderbird) parse to the exact tag, name and argument
//! tree; synchronizing literals ask for their continuation once and LITERAL+ never does;
//! every malformed or over-limit command gives the right error, keeps its tag and lets the
//! next command through; raw lines; sequence sets; and the response encoders' exact output.

use std::borrow::Cow;

use codec::imap::{
    astring, continuation, nstring, parse_line, quoted, string, tagged, untagged, Arg, Command,
    Limits, ParseError, Parser, SeqRange, SequenceSet, Status,
};

// ---------------------------------------------------------------------------------------
// Helpers.

fn atom(value: &[u8]) -> Arg<'_> {
    Arg::Atom(value)
}

fn q(value: &[u8]) -> Arg<'_> {
    Arg::Quoted(Cow::Borrowed(value))
}

fn lit(value: &[u8]) -> Arg<'_> {
    Arg::Literal(value)
}

fn list(items: Vec<Arg<'_>>) -> Arg<'_> {
    Arg::List(items)
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Parses `input` with a fresh parser: it must be exactly one command.
fn parse_one<'a>(input: &'a [u8], limits: Limits) -> Command<'a> {
    let mut parser = Parser::new(limits);
    match parser.parse(input) {
        Ok((command, used)) => {
            assert_eq!(used, input.len(), "bytes used by {:?}", show(input));
            command
        }
        Err(e) => panic!("{:?}: {e:?}", show(input)),
    }
}

/// One table row: `input` is one command with this tag, name and argument tree.
#[track_caller]
fn check(input: &[u8], tag: &[u8], name: &[u8], args: &[Arg<'_>]) {
    let command = parse_one(input, Limits::default());
    assert_eq!(
        (show(command.tag), show(command.name)),
        (show(tag), show(name)),
        "{:?}",
        show(input)
    );
    assert_eq!(command.args, args, "{:?}", show(input));
}

/// One error row: `input` (with `limits`) gives `want`; for `Bad`, dropping `consumed`
/// leaves the command after it, which parses with the same parser.
#[track_caller]
fn check_err(input: &[u8], limits: Limits, want: ParseError) {
    let next = b"z9 NOOP\r\n";
    let buf = [input, next].concat();
    let mut parser = Parser::new(limits);
    let got = parser.parse(&buf);
    assert_eq!(got, Err(want.clone()), "{:?}", show(input));
    if let ParseError::Bad { consumed, .. } = want {
        assert_eq!(consumed, input.len(), "{:?}", show(input));
        let (command, used) = parser
            .parse(&buf[consumed..])
            .unwrap_or_else(|e| panic!("after {:?}: {e:?}", show(input)));
        assert_eq!((command.tag, command.name), (&b"z9"[..], &b"NOOP"[..]));
        assert_eq!(used, next.len());
    }
}

fn bad(tag: Option<&[u8]>, message: &'static str, consumed: usize) -> ParseError {
    ParseError::Bad {
        tag: tag.map(<[u8]>::to_vec),
        message,
        consumed,
    }
}

/// A 310-byte message for APPEND, with protocol text inside that must not be parsed.
fn message310() -> Vec<u8> {
    let mut m = b"From: Joe <joe@example.com>\r\n\
To: ann@example.com\r\n\
Subject: test {5}\r\n\
Date: Fri, 05 Jan 2024 10:00:00 +0000\r\n\
Message-ID: <1@example.com>\r\n\
\r\n\
a1 LOGOUT\r\n\
\"(unbalanced [\r\n"
        .to_vec();
    while m.len() < 308 {
        m.push(b'x');
    }
    m.extend_from_slice(b"\r\n");
    assert_eq!(m.len(), 310);
    m
}

// ---------------------------------------------------------------------------------------
// Commands real clients send.

#[test]
fn session_setup_commands() {
    check(b"a001 CAPABILITY\r\n", b"a001", b"CAPABILITY", &[]);
    check(b"A0001 CAPABILITY\r\n", b"A0001", b"CAPABILITY", &[]);
    check(b"2 capability\r\n", b"2", b"capability", &[]);
    check(b"A1 STARTTLS\r\n", b"A1", b"STARTTLS", &[]);
    check(b"a NOOP\r\n", b"a", b"NOOP", &[]);
    check(
        b"4 ID (\"name\" \"Thunderbird\" \"version\" \"115.0\")\r\n",
        b"4",
        b"ID",
        &[list(vec![
            q(b"name"),
            q(b"Thunderbird"),
            q(b"version"),
            q(b"115.0"),
        ])],
    );
    check(
        b"a ID (\"name\" \"x\" \"version\" \"1\")\r\n",
        b"a",
        b"ID",
        &[list(vec![q(b"name"), q(b"x"), q(b"version"), q(b"1")])],
    );
    let c = parse_one(b"a ID NIL\r\n", Limits::default());
    assert_eq!(c.args, [atom(b"NIL")]);
    assert!(c.args[0].is_nil());
    assert!(parse_one(b"a ID nil\r\n", Limits::default()).args[0].is_nil());
    assert!(!parse_one(b"a ID \"NIL\"\r\n", Limits::default()).args[0].is_nil());
    check(
        b"A2 ENABLE UTF8=ACCEPT CONDSTORE\r\n",
        b"A2",
        b"ENABLE",
        &[atom(b"UTF8=ACCEPT"), atom(b"CONDSTORE")],
    );
    check(
        b"A3 COMPRESS DEFLATE\r\n",
        b"A3",
        b"COMPRESS",
        &[atom(b"DEFLATE")],
    );
    check(b"a1 LOGOUT\r\n", b"a1", b"LOGOUT", &[]);
    check(b"A12 IDLE\r\n", b"A12", b"IDLE", &[]);
}

#[test]
fn login_forms() {
    check(
        b"A1 LOGIN user pass\r\n",
        b"A1",
        b"LOGIN",
        &[atom(b"user"), atom(b"pass")],
    );
    // curl quotes only when needed; imaplib quotes a password with specials.
    check(
        b"A005 LOGIN joe@example.com \"p a\\\"s\\\\s\"\r\n",
        b"A005",
        b"LOGIN",
        &[atom(b"joe@example.com"), q(b"p a\"s\\s")],
    );
    // mbsync and fetchmail quote both.
    check(
        b"2 LOGIN \"user\" \"pass\"\r\n",
        b"2",
        b"LOGIN",
        &[q(b"user"), q(b"pass")],
    );
    check(b"a LOGIN \"\" \"\"\r\n", b"a", b"LOGIN", &[q(b""), q(b"")]);
    // Escapes only: the unescaped value is a copy, not a slice.
    let c = parse_one(b"a LOGIN \"\\\\\" \"\\\"\"\r\n", Limits::default());
    assert_eq!(c.args, [q(b"\\"), q(b"\"")]);
    assert!(matches!(&c.args[0], Arg::Quoted(Cow::Owned(_))));
    // Without escapes it borrows.
    let c = parse_one(b"a LOGIN \"user\" x\r\n", Limits::default());
    assert!(matches!(&c.args[0], Arg::Quoted(Cow::Borrowed(b"user"))));
    // Quoted strings may hold what would be specials elsewhere.
    check(
        b"a LOGIN \"{4}\" \"(x) [y %*]\"\r\n",
        b"a",
        b"LOGIN",
        &[q(b"{4}"), q(b"(x) [y %*]")],
    );
    // Synchronizing literals (Thunderbird for passwords with specials).
    check(
        b"A2 LOGIN {4}\r\njohn {6}\r\nsecret\r\n",
        b"A2",
        b"LOGIN",
        &[lit(b"john"), lit(b"secret")],
    );
    // LITERAL+ (mbsync).
    check(
        b"3 LOGIN \"user\" {6+}\r\nsecret\r\n",
        b"3",
        b"LOGIN",
        &[q(b"user"), lit(b"secret")],
    );
    // Literal bytes are raw: line ends, quotes, braces and NUL included.
    check(
        b"a LOGIN {4+}\r\n\r\n\"\0 {3}\r\n{1}\r\n",
        b"a",
        b"LOGIN",
        &[lit(b"\r\n\"\0"), lit(b"{1}")],
    );
    check(
        b"a LOGIN {0}\r\n {0+}\r\n\r\n",
        b"a",
        b"LOGIN",
        &[lit(b""), lit(b"")],
    );
    check(
        b"a LOGIN {004}\r\njohn x\r\n",
        b"a",
        b"LOGIN",
        &[lit(b"john"), atom(b"x")],
    );
}

#[test]
fn authenticate_forms() {
    // SASL-IR (curl, Thunderbird when the server offers it).
    check(
        b"A002 AUTHENTICATE PLAIN dGVzdA==\r\n",
        b"A002",
        b"AUTHENTICATE",
        &[atom(b"PLAIN"), atom(b"dGVzdA==")],
    );
    check(
        b"A003 AUTHENTICATE PLAIN =\r\n",
        b"A003",
        b"AUTHENTICATE",
        &[atom(b"PLAIN"), atom(b"=")],
    );
    check(
        b"3 authenticate PLAIN\r\n",
        b"3",
        b"authenticate",
        &[atom(b"PLAIN")],
    );
    check(
        b"a AUTHENTICATE XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n",
        b"a",
        b"AUTHENTICATE",
        &[
            atom(b"XOAUTH2"),
            atom(b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="),
        ],
    );
}

#[test]
fn mailbox_commands() {
    check(
        b"A003 SELECT INBOX\r\n",
        b"A003",
        b"SELECT",
        &[atom(b"INBOX")],
    );
    check(b"7 select \"INBOX\"\r\n", b"7", b"select", &[q(b"INBOX")]);
    check(
        b"A4 EXAMINE \"Sent Items\"\r\n",
        b"A4",
        b"EXAMINE",
        &[q(b"Sent Items")],
    );
    check(
        b"A5 SELECT INBOX (CONDSTORE)\r\n",
        b"A5",
        b"SELECT",
        &[atom(b"INBOX"), list(vec![atom(b"CONDSTORE")])],
    );
    check(b"3 LIST \"\" \"*\"\r\n", b"3", b"LIST", &[q(b""), q(b"*")]);
    check(b"x LIST \"\" %\r\n", b"x", b"LIST", &[q(b""), atom(b"%")]);
    check(b"x LIST \"\" *\r\n", b"x", b"LIST", &[q(b""), atom(b"*")]);
    check(
        b"x LSUB \"\" \"INBOX/*\"\r\n",
        b"x",
        b"LSUB",
        &[q(b""), q(b"INBOX/*")],
    );
    check(
        b"x LIST (SPECIAL-USE) \"\" \"*\" RETURN (SUBSCRIBED CHILDREN)\r\n",
        b"x",
        b"LIST",
        &[
            list(vec![atom(b"SPECIAL-USE")]),
            q(b""),
            q(b"*"),
            atom(b"RETURN"),
            list(vec![atom(b"SUBSCRIBED"), atom(b"CHILDREN")]),
        ],
    );
    check(
        b"s STATUS INBOX (MESSAGES UIDNEXT UNSEEN)\r\n",
        b"s",
        b"STATUS",
        &[
            atom(b"INBOX"),
            list(vec![atom(b"MESSAGES"), atom(b"UIDNEXT"), atom(b"UNSEEN")]),
        ],
    );
    check(
        b"8 getquotaroot \"INBOX\"\r\n",
        b"8",
        b"getquotaroot",
        &[q(b"INBOX")],
    );
    check(b"a CREATE \"a/b c\"\r\n", b"a", b"CREATE", &[q(b"a/b c")]);
    check(
        b"a RENAME old new\r\n",
        b"a",
        b"RENAME",
        &[atom(b"old"), atom(b"new")],
    );
    // A modified UTF-7 name (Thunderbird) is a plain atom.
    check(
        b"a SELECT Entw&APw-rfe\r\n",
        b"a",
        b"SELECT",
        &[atom(b"Entw&APw-rfe")],
    );
    check(b"A0004 EXPUNGE\r\n", b"A0004", b"EXPUNGE", &[]);
    check(b"a CLOSE\r\n", b"a", b"CLOSE", &[]);
    check(b"a NAMESPACE\r\n", b"a", b"NAMESPACE", &[]);
}

#[test]
fn append_with_literals() {
    let msg = message310();
    let input = [
        &b"5 APPEND INBOX (\\Seen) \"05-Jan-2024 10:00:00 +0000\" {310}\r\n"[..],
        &msg,
        b"\r\n",
    ]
    .concat();
    check(
        &input,
        b"5",
        b"APPEND",
        &[
            atom(b"INBOX"),
            list(vec![atom(b"\\Seen")]),
            q(b"05-Jan-2024 10:00:00 +0000"),
            lit(&msg),
        ],
    );
    // mbsync with LITERAL+ and an empty flag list.
    let input = [&b"9 APPEND \"INBOX\" () {310+}\r\n"[..], &msg, b"\r\n"].concat();
    check(
        &input,
        b"9",
        b"APPEND",
        &[q(b"INBOX"), list(vec![]), lit(&msg)],
    );
    // Fed as a client sends it: the line, the `+`, then the message.
    let input = [&b"5 APPEND INBOX {310}\r\n"[..], &msg, b"\r\n"].concat();
    let mut parser = Parser::default();
    assert_eq!(
        parser.parse(&input[..22]),
        Err(ParseError::NeedsLiteral { size: 310 })
    );
    for end in 22..input.len() {
        assert_eq!(
            parser.parse(&input[..end]),
            Err(ParseError::Incomplete),
            "{end}"
        );
    }
    let (c, used) = parser.parse(&input).unwrap();
    assert_eq!(used, input.len());
    assert_eq!(c.args, [atom(b"INBOX"), lit(&msg)]);
}

#[test]
fn fetch_store_search_copy() {
    check(
        b"9 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)])\r\n",
        b"9",
        b"UID",
        &[
            atom(b"FETCH"),
            atom(b"1:*"),
            list(vec![
                atom(b"UID"),
                atom(b"FLAGS"),
                atom(b"INTERNALDATE"),
                atom(b"RFC822.SIZE"),
                atom(b"BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)]"),
            ]),
        ],
    );
    // Thunderbird's header fetch.
    check(
        b"11 UID fetch 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])\r\n",
        b"11",
        b"UID",
        &[
            atom(b"fetch"),
            atom(b"1:*"),
            list(vec![
                atom(b"UID"),
                atom(b"RFC822.SIZE"),
                atom(b"FLAGS"),
                atom(b"BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)]"),
            ]),
        ],
    );
    check(
        b"A5 FETCH 1 BODY[]<0.1024>\r\n",
        b"A5",
        b"FETCH",
        &[atom(b"1"), atom(b"BODY[]<0.1024>")],
    );
    check(
        b"A004 FETCH 1 BODY[TEXT]\r\n",
        b"A004",
        b"FETCH",
        &[atom(b"1"), atom(b"BODY[TEXT]")],
    );
    check(
        b"A6 FETCH 2 (BODY[1.MIME] BODYSTRUCTURE ENVELOPE)\r\n",
        b"A6",
        b"FETCH",
        &[
            atom(b"2"),
            list(vec![
                atom(b"BODY[1.MIME]"),
                atom(b"BODYSTRUCTURE"),
                atom(b"ENVELOPE"),
            ]),
        ],
    );
    // A section may hold quotes and brackets' neighbours; it runs to the first `]`.
    check(
        b"a FETCH 3 (BODY.PEEK[HEADER.FIELDS.NOT (\"X-A\" X-B)]<10.20> FLAGS)\r\n",
        b"a",
        b"FETCH",
        &[
            atom(b"3"),
            list(vec![
                atom(b"BODY.PEEK[HEADER.FIELDS.NOT (\"X-A\" X-B)]<10.20>"),
                atom(b"FLAGS"),
            ]),
        ],
    );
    check(
        b"a FETCH 1 BINARY.PEEK[1][2]\r\n",
        b"a",
        b"FETCH",
        &[atom(b"1"), atom(b"BINARY.PEEK[1][2]")],
    );
    check(
        b"A0006 FETCH 1:2 RFC822.SIZE\r\n",
        b"A0006",
        b"FETCH",
        &[atom(b"1:2"), atom(b"RFC822.SIZE")],
    );
    check(
        b"5 UID FETCH 1:1000000000 (UID FLAGS) (CHANGEDSINCE 12345)\r\n",
        b"5",
        b"UID",
        &[
            atom(b"FETCH"),
            atom(b"1:1000000000"),
            list(vec![atom(b"UID"), atom(b"FLAGS")]),
            list(vec![atom(b"CHANGEDSINCE"), atom(b"12345")]),
        ],
    );
    check(
        b"A7 UID STORE 3 +FLAGS.SILENT (\\Deleted)\r\n",
        b"A7",
        b"UID",
        &[
            atom(b"STORE"),
            atom(b"3"),
            atom(b"+FLAGS.SILENT"),
            list(vec![atom(b"\\Deleted")]),
        ],
    );
    check(
        b"A0009 STORE 1 +FLAGS (\\Seen \\Deleted)\r\n",
        b"A0009",
        b"STORE",
        &[
            atom(b"1"),
            atom(b"+FLAGS"),
            list(vec![atom(b"\\Seen"), atom(b"\\Deleted")]),
        ],
    );
    check(
        b"a STORE 1 -FLAGS ($Junk \\*)\r\n",
        b"a",
        b"STORE",
        &[
            atom(b"1"),
            atom(b"-FLAGS"),
            list(vec![atom(b"$Junk"), atom(b"\\*")]),
        ],
    );
    check(
        b"A0005 SEARCH UNSEEN\r\n",
        b"A0005",
        b"SEARCH",
        &[atom(b"UNSEEN")],
    );
    check(
        b"A8 UID SEARCH HEADER Subject \"hello world\"\r\n",
        b"A8",
        b"UID",
        &[
            atom(b"SEARCH"),
            atom(b"HEADER"),
            atom(b"Subject"),
            q(b"hello world"),
        ],
    );
    check(
        "A9 SEARCH CHARSET UTF-8 SUBJECT {6}\r\nh\u{e4}llo\r\n".as_bytes(),
        b"A9",
        b"SEARCH",
        &[
            atom(b"CHARSET"),
            atom(b"UTF-8"),
            atom(b"SUBJECT"),
            lit("h\u{e4}llo".as_bytes()),
        ],
    );
    check(
        b"a SEARCH OR (FROM \"x\" SINCE 1-Jan-2024) NOT (DELETED)\r\n",
        b"a",
        b"SEARCH",
        &[
            atom(b"OR"),
            list(vec![
                atom(b"FROM"),
                q(b"x"),
                atom(b"SINCE"),
                atom(b"1-Jan-2024"),
            ]),
            atom(b"NOT"),
            list(vec![atom(b"DELETED")]),
        ],
    );
    check(
        b"A10 COPY 1:3 Trash\r\n",
        b"A10",
        b"COPY",
        &[atom(b"1:3"), atom(b"Trash")],
    );
    check(
        b"a UID MOVE 4,7:9 \"Deleted Items\"\r\n",
        b"a",
        b"UID",
        &[atom(b"MOVE"), atom(b"4,7:9"), q(b"Deleted Items")],
    );
    check(
        b"a UID EXPUNGE 1:3\r\n",
        b"a",
        b"UID",
        &[atom(b"EXPUNGE"), atom(b"1:3")],
    );
}

#[test]
fn case_line_ends_and_nesting() {
    let c = parse_one(b"a fetch 1 (flags)\r\n", Limits::default());
    assert!(c.is("FETCH") && c.is("fetch") && c.is("Fetch") && !c.is("FETC"));
    assert_eq!(c.name, b"fetch");
    check(
        b"a uid fetch 1 body.peek[]\r\n",
        b"a",
        b"uid",
        &[atom(b"fetch"), atom(b"1"), atom(b"body.peek[]")],
    );
    // Bare LF line ends, also after a literal marker.
    check(b"a001 CAPABILITY\n", b"a001", b"CAPABILITY", &[]);
    check(
        b"a LOGIN {4}\njohn pass\n",
        b"a",
        b"LOGIN",
        &[lit(b"john"), atom(b"pass")],
    );
    check(
        b"a LOGIN {4+}\njohn {4}\r\npass\n",
        b"a",
        b"LOGIN",
        &[lit(b"john"), lit(b"pass")],
    );
    check(
        b"a X () (()) ((a) \"b\" {1}\r\nc)\r\n",
        b"a",
        b"X",
        &[
            list(vec![]),
            list(vec![list(vec![])]),
            list(vec![list(vec![atom(b"a")]), q(b"b"), lit(b"c")]),
        ],
    );
    // Atom bytes that are specials elsewhere in IMAP.
    check(
        b"a X } ]x \\ % * + a}\r\n",
        b"a",
        b"X",
        &[
            atom(b"}"),
            atom(b"]x"),
            atom(b"\\"),
            atom(b"%"),
            atom(b"*"),
            atom(b"+"),
            atom(b"a}"),
        ],
    );
}

#[test]
fn a_line_ending_in_a_brace_that_is_no_literal() {
    // `}` is an atom byte, so these lines end in `}` without announcing a literal; the
    // `{` earlier on the line is inside a quoted string or a section.
    check(
        b"a SEARCH SUBJECT \"{\" x}\r\n",
        b"a",
        b"SEARCH",
        &[atom(b"SUBJECT"), q(b"{"), atom(b"x}")],
    );
    check(b"a X \"{1\" }\r\n", b"a", b"X", &[q(b"{1"), atom(b"}")]);
    check(
        b"a FETCH 1 B[{]5}\r\n",
        b"a",
        b"FETCH",
        &[atom(b"1"), atom(b"B[{]5}")],
    );
}

#[test]
fn eight_bit_bytes_pass_through_atoms_and_quoted_strings() {
    // RFC 3501 is 7-bit outside literals, but clients do send UTF-8 (and RFC 9051 allows
    // it in quoted strings): the parser hands the bytes on unchanged.
    check(
        "a SELECT Entw\u{fc}rfe\r\n".as_bytes(),
        b"a",
        b"SELECT",
        &[atom("Entw\u{fc}rfe".as_bytes())],
    );
    check(
        "a SEARCH SUBJECT \"h\u{e4}llo\"\r\n".as_bytes(),
        b"a",
        b"SEARCH",
        &[atom(b"SUBJECT"), q("h\u{e4}llo".as_bytes())],
    );
    check(b"a X \"\xff\x80\"\r\n", b"a", b"X", &[q(b"\xff\x80")]);
    check(b"\xc3\xa9 NOOP\r\n", b"\xc3\xa9", b"NOOP", &[]);
    // Other control bytes are TEXT-CHARs in a quoted string.
    check(b"a X \"\x01\t\x7f\"\r\n", b"a", b"X", &[q(b"\x01\t\x7f")]);
}

// ---------------------------------------------------------------------------------------
// Literals fed as they arrive.

#[test]
fn synchronizing_literals_ask_once_each() {
    let input = b"A2 LOGIN {4}\r\njohn {6}\r\nsecret\r\n";
    let mut parser = Parser::default();
    for end in 0..14 {
        assert_eq!(
            parser.parse(&input[..end]),
            Err(ParseError::Incomplete),
            "{end}"
        );
    }
    assert_eq!(
        parser.parse(&input[..14]),
        Err(ParseError::NeedsLiteral { size: 4 })
    );
    // Asked once: the same bytes again, or part of the literal, are just incomplete.
    assert_eq!(parser.parse(&input[..14]), Err(ParseError::Incomplete));
    for end in 15..24 {
        assert_eq!(
            parser.parse(&input[..end]),
            Err(ParseError::Incomplete),
            "{end}"
        );
    }
    assert_eq!(
        parser.parse(&input[..24]),
        Err(ParseError::NeedsLiteral { size: 6 })
    );
    assert_eq!(parser.parse(&input[..29]), Err(ParseError::Incomplete));
    assert_eq!(parser.parse(&input[..31]), Err(ParseError::Incomplete));
    let (c, used) = parser.parse(input).unwrap();
    assert_eq!(used, input.len());
    assert_eq!(c.args, [lit(b"john"), lit(b"secret")]);
    // The next command starts afresh.
    assert_eq!(
        parser.parse(b"A3 LOGIN {2}\r\n"),
        Err(ParseError::NeedsLiteral { size: 2 })
    );
}

#[test]
fn a_client_that_sent_the_literal_anyway_is_not_asked() {
    // All the bytes already here: no continuation is needed.
    let mut parser = Parser::default();
    let (c, _) = parser.parse(b"a LOGIN {4}\r\njohn x\r\n").unwrap();
    assert_eq!(c.args, [lit(b"john"), atom(b"x")]);
    // Part of it here: the client is not waiting, but asking does no harm; once.
    assert_eq!(
        parser.parse(b"a LOGIN {4}\r\njo"),
        Err(ParseError::NeedsLiteral { size: 4 })
    );
    assert_eq!(
        parser.parse(b"a LOGIN {4}\r\njoh"),
        Err(ParseError::Incomplete)
    );
}

#[test]
fn an_empty_synchronizing_literal_is_asked_for_too() {
    // The client sends `{0}` and its line end, then waits for `+` before the rest.
    let mut parser = Parser::default();
    let input = b"a LOGIN {0}\r\n {0}\r\n\r\n";
    assert_eq!(
        parser.parse(&input[..13]),
        Err(ParseError::NeedsLiteral { size: 0 })
    );
    assert_eq!(parser.parse(&input[..13]), Err(ParseError::Incomplete));
    assert_eq!(parser.parse(&input[..14]), Err(ParseError::Incomplete));
    assert_eq!(
        parser.parse(&input[..19]),
        Err(ParseError::NeedsLiteral { size: 0 })
    );
    let (c, used) = parser.parse(input).unwrap();
    assert_eq!(used, input.len());
    assert_eq!(c.args, [lit(b""), lit(b"")]);
}

#[test]
fn non_synchronizing_literals_never_ask() {
    let input = b"a LOGIN {4+}\r\njohn {0+}\r\n {6+}\r\nsecret\r\n";
    let mut parser = Parser::default();
    for end in 0..input.len() {
        assert_eq!(
            parser.parse(&input[..end]),
            Err(ParseError::Incomplete),
            "{end}"
        );
    }
    let (c, used) = parser.parse(input).unwrap();
    assert_eq!(used, input.len());
    assert_eq!(c.args, [lit(b"john"), lit(b""), lit(b"secret")]);
    // Mixed: only the synchronizing one asks.
    let input = b"a LOGIN {4+}\r\njohn {6}\r\nsecret\r\n";
    let mut parser = Parser::default();
    let asked: Vec<_> = (0..input.len())
        .filter_map(|end| match parser.parse(&input[..end]) {
            Err(ParseError::Incomplete) => None,
            other => Some((end, other)),
        })
        .collect();
    assert_eq!(asked, [(24, Err(ParseError::NeedsLiteral { size: 6 }))]);
}

// ---------------------------------------------------------------------------------------
// Errors.

#[test]
fn malformed_commands() {
    let d = Limits::default();
    let a: Option<&[u8]> = Some(b"a");
    check_err(b"\r\n", d, bad(None, "missing tag", 2));
    check_err(b"\n", d, bad(None, "missing tag", 1));
    check_err(b" NOOP\r\n", d, bad(None, "missing tag", 7));
    check_err(b"(a) NOOP\r\n", d, bad(None, "missing tag", 10));
    check_err(b"a+ NOOP\r\n", d, bad(None, "invalid tag", 9));
    check_err(b"+ NOOP\r\n", d, bad(None, "invalid tag", 8));
    check_err(b"+\r\n", d, bad(None, "invalid tag", 3));
    check_err(b"a1\r\n", d, bad(Some(b"a1"), "missing command", 4));
    check_err(b"a1\tNOOP\r\n", d, bad(Some(b"a1"), "missing command", 9));
    check_err(b"a1 \r\n", d, bad(Some(b"a1"), "invalid command name", 5));
    check_err(
        b"a1  NOOP\r\n",
        d,
        bad(Some(b"a1"), "invalid command name", 10),
    );
    check_err(
        b"a1 (NOOP)\r\n",
        d,
        bad(Some(b"a1"), "invalid command name", 11),
    );
    check_err(
        b"a1 NO-OP\r\n",
        d,
        bad(Some(b"a1"), "invalid command name", 10),
    );
    check_err(
        b"a1 \"NOOP\"\r\n",
        d,
        bad(Some(b"a1"), "invalid command name", 11),
    );
    check_err(b"a NOOP \r\n", d, bad(a, "invalid argument", 9));
    check_err(b"a LOGIN  x\r\n", d, bad(a, "invalid argument", 12));
    check_err(b"a NOOP\rx\r\n", d, bad(a, "invalid arguments", 10));
    // Quoted strings.
    check_err(
        b"a LOGIN \"\\a\" x\r\n",
        d,
        bad(a, "invalid escape in quoted string", 16),
    );
    check_err(
        b"a LOGIN \"x\\\" y\r\n",
        d,
        bad(a, "unterminated quoted string", 16),
    );
    check_err(
        b"a LOGIN x \"\\\r\n",
        d,
        bad(a, "invalid escape in quoted string", 14),
    );
    check_err(
        b"a LOGIN \"john\r\n",
        d,
        bad(a, "unterminated quoted string", 15),
    );
    check_err(
        b"a LOGIN \"john\" \"pa\n",
        d,
        bad(a, "unterminated quoted string", 19),
    );
    check_err(
        b"a LOGIN \"jo\"hn x\r\n",
        d,
        bad(a, "invalid arguments", 18),
    );
    // Lists and sections.
    check_err(b"a FETCH 1 (FLAGS\r\n", d, bad(a, "unterminated list", 18));
    check_err(
        b"a FETCH 1 (FLAGS (UID)\r\n",
        d,
        bad(a, "unterminated list", 24),
    );
    check_err(b"a FETCH 1 (FLAGS \r\n", d, bad(a, "invalid argument", 19));
    check_err(b"a FETCH 1 (\r\n", d, bad(a, "invalid argument", 13));
    check_err(b"a FETCH 1 FLAGS)\r\n", d, bad(a, "invalid arguments", 18));
    check_err(b"a NOOP )\r\n", d, bad(a, "invalid argument", 10));
    check_err(b"a X (a))\r\n", d, bad(a, "invalid arguments", 10));
    check_err(
        b"a FETCH 1 BODY[HEADER\r\n",
        d,
        bad(a, "unterminated section", 23),
    );
    check_err(
        b"a FETCH 1 (BODY[HEADER.FIELDS (DATE)\r\n",
        d,
        bad(a, "unterminated section", 38),
    );
    check_err(
        b"a FETCH 1 BODY[HEADER.FIELDS {4}\r\nDATE]\r\n",
        d,
        bad(a, "unterminated section", 41),
    );
    // Literal markers.
    check_err(
        b"a LOGIN {4} john\r\n",
        d,
        bad(a, "literal not at end of line", 18),
    );
    check_err(
        b"a LOGIN {4}john\r\n",
        d,
        bad(a, "literal not at end of line", 17),
    );
    check_err(
        b"a LOGIN {4}\rjohn x\r\n",
        d,
        bad(a, "literal not at end of line", 20),
    );
    check_err(
        b"a LOGIN {1}{4}\r\njohn\r\n",
        d,
        bad(a, "literal not at end of line", 22),
    );
    check_err(
        b"a LOGIN x{4}\r\njohn\r\n",
        d,
        bad(a, "invalid arguments", 20),
    );
    for marker in [
        &b"{abc}"[..],
        b"{}",
        b"{+}",
        b"{-1}",
        b"{4++}",
        b"{ 4}",
        b"{4 }",
        b"{0x10}",
        b"{99999999999999999999}",
    ] {
        let input = [&b"a LOGIN "[..], marker, b"\r\n"].concat();
        check_err(&input, d, bad(a, "invalid literal", input.len()));
    }
}

#[test]
fn nul_bytes_are_refused_everywhere_but_in_literals() {
    let d = Limits::default();
    let a: Option<&[u8]> = Some(b"a");
    check_err(b"a LOGIN jo\0hn x\r\n", d, bad(a, "invalid arguments", 17));
    check_err(b"a LOGIN \0 x\r\n", d, bad(a, "invalid argument", 13));
    check_err(b"a NO\0OP\r\n", d, bad(a, "invalid arguments", 9));
    check_err(
        b"a LOGIN \"jo\0hn\" x\r\n",
        d,
        bad(a, "NUL in quoted string", 19),
    );
    check_err(b"a X (\"\0\")\r\n", d, bad(a, "NUL in quoted string", 11));
    check_err(b"a X \x7f\r\n", d, bad(a, "invalid argument", 7));
    check_err(b"a N\xc3\xb6OP\r\n", d, bad(a, "invalid command name", 9));
    // In a literal a NUL is just a byte.
    check(b"a X {1}\r\n\0\r\n", b"a", b"X", &[lit(b"\0")]);
}

#[test]
fn nesting_and_argument_limits() {
    let d = Limits::default();
    assert_eq!(d.max_depth, 8);
    assert_eq!(d.max_args, 1024);
    let nested = |depth: usize| {
        [
            &b"a X "[..],
            &b"(".repeat(depth),
            b"x",
            &b")".repeat(depth),
            b"\r\n",
        ]
        .concat()
    };
    let eight = nested(8);
    let c = parse_one(&eight, d);
    let mut arg = &c.args[0];
    for _ in 0..8 {
        arg = &arg.as_list().unwrap()[0];
    }
    assert_eq!(arg, &atom(b"x"));
    let nine = nested(9);
    check_err(
        &nine,
        d,
        bad(Some(b"a"), "lists nested too deeply", nine.len()),
    );
    let tight = Limits { max_depth: 2, ..d };
    check_err(
        &nested(3),
        tight,
        bad(Some(b"a"), "lists nested too deeply", 13),
    );
    // Arguments count list items and the lists themselves.
    let args = |n: usize| {
        let mut line = b"a X".to_vec();
        for _ in 0..n {
            line.extend_from_slice(b" 1");
        }
        line.extend_from_slice(b"\r\n");
        line
    };
    assert_eq!(parse_one(&args(1024), d).args.len(), 1024);
    let over = args(1025);
    check_err(&over, d, bad(Some(b"a"), "too many arguments", over.len()));
    let three = Limits { max_args: 3, ..d };
    assert_eq!(parse_one(b"a X (1 2)\r\n", three).args.len(), 1);
    check_err(
        b"a X (1 2 3)\r\n",
        three,
        bad(Some(b"a"), "too many arguments", 13),
    );
    check_err(
        b"a X 1 2 3 4\r\n",
        three,
        bad(Some(b"a"), "too many arguments", 13),
    );
}

#[test]
fn tag_limit() {
    let d = Limits::default();
    let tag = [b't'; 64];
    let input = [&tag[..], b" NOOP\r\n"].concat();
    assert_eq!(parse_one(&input, d).tag, &tag[..]);
    let long = [&[b't'; 65][..], b" NOOP\r\n"].concat();
    check_err(&long, d, bad(None, "invalid tag", long.len()));
}

#[test]
fn over_long_lines_are_refused_then_dropped() {
    let limits = Limits {
        max_line: 32,
        ..Limits::default()
    };
    // Exactly the limit, line end included, is fine; one more is not.
    let fits = b"a1 LOGIN xxxxxxxxxxxxxxxxxxxxx\r\n";
    assert_eq!(fits.len(), 32);
    parse_one(fits, limits);
    let over = b"a1 LOGIN xxxxxxxxxxxxxxxxxxxxxx\r\n";
    check_err(over, limits, bad(Some(b"a1"), "line too long", 33));
    let over_lf = b"a1 LOGIN xxxxxxxxxxxxxxxxxxxxxxx\n";
    check_err(over_lf, limits, bad(Some(b"a1"), "line too long", 33));

    // No line end yet: refused as soon as it is too long, then dropped up to its end.
    let mut parser = Parser::new(limits);
    let start = b"a1 LOGIN xxxxxxxxxxxxxxxxxxxxxxxx";
    assert_eq!(parser.parse(&start[..32]), Err(ParseError::Incomplete));
    assert_eq!(
        parser.parse(start),
        Err(bad(Some(b"a1"), "line too long", start.len()))
    );
    assert_eq!(parser.parse(b""), Err(ParseError::Incomplete));
    assert_eq!(
        parser.parse(b"yyyy"),
        Err(ParseError::Discard { consumed: 4 })
    );
    assert_eq!(
        parser.parse(b"yy\r"),
        Err(ParseError::Discard { consumed: 3 })
    );
    assert_eq!(
        parser.parse(b"\nb2 NOOP\r\n"),
        Err(ParseError::Discard { consumed: 1 })
    );
    let (c, used) = parser.parse(b"b2 NOOP\r\n").unwrap();
    assert_eq!((c.tag, used), (&b"b2"[..], 9));
    // The dropped rest is never parsed, whatever it holds.
    let mut parser = Parser::new(limits);
    assert!(matches!(
        parser.parse(&[b'x'; 40]),
        Err(ParseError::Bad { tag: None, .. })
    ));
    assert_eq!(
        parser.parse(b"z NOOP {5}\r\nc3 NOOP\r\n"),
        Err(ParseError::Discard { consumed: 12 })
    );
    let (c, _) = parser.parse(b"c3 NOOP\r\n").unwrap();
    assert_eq!(c.tag, b"c3");
}

#[test]
fn an_over_long_line_after_a_literal_keeps_the_tag() {
    let limits = Limits {
        max_line: 32,
        ..Limits::default()
    };
    let long = [&b"a7 APPEND INBOX {5}\r\nhello "[..], &[b'x'; 40], b"\r\n"].concat();
    // With its line end: refused at once.
    let mut parser = Parser::new(limits);
    assert_eq!(
        parser.parse(&long),
        Err(bad(Some(b"a7"), "line too long", long.len()))
    );
    // Arriving in pieces: the client waited for `+` and must get a tagged BAD, or it would
    // wait for a7's completion for ever.
    let mut parser = Parser::new(limits);
    assert_eq!(
        parser.parse(&long[..21]),
        Err(ParseError::NeedsLiteral { size: 5 })
    );
    assert_eq!(
        parser.parse(&long[..60]),
        Err(bad(Some(b"a7"), "line too long", 60))
    );
    assert_eq!(
        parser.parse(&long[60..]),
        Err(ParseError::Discard {
            consumed: long.len() - 60
        })
    );
}

#[test]
fn literals_over_the_limits() {
    let limits = Limits {
        max_literal: 10,
        max_command: 64,
        ..Limits::default()
    };
    let a7: Option<&[u8]> = Some(b"a7");
    parse_one(b"a7 APPEND INBOX {10}\r\n0123456789\r\n", limits);
    // Synchronizing: the client waits for `+`, so a tagged BAD is enough; the literal
    // never comes and the next command follows the marker line.
    check_err(
        b"a7 APPEND INBOX {11}\r\n",
        limits,
        bad(a7, "literal too big", 22),
    );
    check_err(
        b"a7 LOGIN {3}\r\nabc {11}\r\n",
        limits,
        bad(a7, "literal too big", 24),
    );
    check_err(
        b"a7 APPEND INBOX {9999999999999999999}\r\n",
        limits,
        bad(a7, "literal too big", 39),
    );
    // The whole command is limited too.
    let long_name = [&b"a7 APPEND "[..], &[b'm'; 40], b" {10}\r\n"].concat();
    check_err(
        &long_name,
        limits,
        bad(a7, "literal too big", long_name.len()),
    );
    // Non-synchronizing: its bytes are on their way and cannot be told from commands.
    let mut parser = Parser::new(limits);
    assert_eq!(
        parser.parse(b"a7 APPEND INBOX {11+}\r\n"),
        Err(ParseError::Fatal {
            tag: a7.map(<[u8]>::to_vec),
            message: "literal too big"
        })
    );
    let mut parser = Parser::new(limits);
    assert_eq!(
        parser.parse(b"+x APPEND INBOX {11+}\r\n"),
        Err(ParseError::Fatal {
            tag: None,
            message: "literal too big"
        })
    );
    // A refused literal is never announced.
    let mut parser = Parser::new(limits);
    assert!(matches!(
        parser.parse(b"a7 LOGIN {3}\r\n"),
        Err(ParseError::NeedsLiteral { size: 3 })
    ));
    assert!(matches!(
        parser.parse(b"a7 LOGIN {3}\r\nabc {11}\r\n"),
        Err(ParseError::Bad { .. })
    ));
}

#[test]
fn error_messages_display() {
    assert_eq!(
        bad(Some(b"a"), "missing command", 3).to_string(),
        "bad command: missing command"
    );
    assert_eq!(
        ParseError::NeedsLiteral { size: 5 }.to_string(),
        "literal of 5 bytes announced"
    );
}

// ---------------------------------------------------------------------------------------
// Raw lines.

#[test]
fn raw_lines() {
    assert_eq!(parse_line(b"DONE\r\n", 100), Ok((&b"DONE"[..], 6)));
    assert_eq!(parse_line(b"done\nA1 NOOP\r\n", 100), Ok((&b"done"[..], 5)));
    assert_eq!(parse_line(b"dGVzdA==\r\n", 100), Ok((&b"dGVzdA=="[..], 10)));
    assert_eq!(parse_line(b"*\r\n", 100), Ok((&b"*"[..], 3)));
    assert_eq!(parse_line(b"\r\n", 100), Ok((&b""[..], 2)));
    assert_eq!(parse_line(b"a\rb\r\r\n", 100), Ok((&b"a\rb\r"[..], 6)));
    assert_eq!(parse_line(b"", 100), Err(ParseError::Incomplete));
    assert_eq!(parse_line(b"DON", 100), Err(ParseError::Incomplete));
    assert_eq!(parse_line(b"DONE\r", 100), Err(ParseError::Incomplete));
    // `max` bytes, line end included, at most.
    assert_eq!(parse_line(b"1234\r\n", 6), Ok((&b"1234"[..], 6)));
    assert_eq!(
        parse_line(b"12345\r\n", 6),
        Err(bad(None, "line too long", 7))
    );
    assert_eq!(parse_line(b"12345", 6), Err(ParseError::Incomplete));
    assert_eq!(
        parse_line(b"123456", 6),
        Err(ParseError::Fatal {
            tag: None,
            message: "line too long"
        })
    );
}

// ---------------------------------------------------------------------------------------
// Sequence sets.

fn r(from: u32, to: u32) -> SeqRange {
    SeqRange { from, to }
}

#[test]
fn sequence_sets() {
    const STAR: u32 = u32::MAX;
    let rows: &[(&[u8], &[SeqRange])] = &[
        (b"1", &[r(1, 1)]),
        (b"1:5", &[r(1, 5)]),
        (b"5:1", &[r(1, 5)]),
        (b"*", &[r(STAR, STAR)]),
        (b"1:*", &[r(1, STAR)]),
        (b"*:4", &[r(4, STAR)]),
        (b"1,3,5:7", &[r(1, 1), r(3, 3), r(5, 7)]),
        (b"7:5,1", &[r(5, 7), r(1, 1)]),
        (b"1,1", &[r(1, 1), r(1, 1)]),
        (b"4294967294", &[r(4_294_967_294, 4_294_967_294)]),
        (b"0001", &[r(1, 1)]),
    ];
    for &(text, want) in rows {
        assert_eq!(
            SequenceSet::parse(text),
            Some(SequenceSet(want.to_vec())),
            "{}",
            show(text)
        );
    }
    for text in [
        &b""[..],
        b"0",
        b"0:5",
        b"1:0",
        b"1:",
        b":1",
        b":",
        b"a",
        b"1a",
        b"1,,2",
        b",1",
        b"1,",
        b"1:2:3",
        b"-1",
        b"+1",
        b" 1",
        b"1 ",
        b"**",
        b"1:**",
        b"4294967295",
        b"4294967296",
        b"99999999999",
        b"18446744073709551617",
        b"\xc2\xb9",
    ] {
        assert_eq!(SequenceSet::parse(text), None, "{}", show(text));
    }
}

#[test]
fn sequence_set_membership() {
    let set = |t: &[u8]| SequenceSet::parse(t).unwrap();
    let members = |s: &SequenceSet, largest: u32| -> Vec<u32> {
        (0..=12).filter(|&n| s.contains(n, largest)).collect()
    };
    assert_eq!(members(&set(b"1:*"), 10), (1..=10).collect::<Vec<_>>());
    assert_eq!(members(&set(b"*"), 10), [10]);
    assert_eq!(members(&set(b"*"), 3), [3]);
    assert_eq!(members(&set(b"1,3,5:7"), 10), [1, 3, 5, 6, 7]);
    assert_eq!(members(&set(b"8:*"), 10), [8, 9, 10]);
    // `n:*` with n above the largest is `largest:n` (RFC 3501 6.4.8).
    assert_eq!(members(&set(b"12:*"), 10), [10, 11, 12]);
    assert_eq!(members(&set(b"*:2"), 4), [2, 3, 4]);
    assert_eq!(members(&set(b"2,4:5,*"), 9), [2, 4, 5, 9]);
    assert!(set(b"4294967294").contains(4_294_967_294, 1));
    assert!(!set(b"4294967294").contains(1, 1));
}

// ---------------------------------------------------------------------------------------
// Response encoders.

fn out(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = b"prefix:".to_vec();
    f(&mut buf);
    buf.drain(..7);
    buf
}

#[test]
fn status_lines() {
    assert_eq!(
        out(|o| tagged(o, b"a1", Status::Ok, None, "LOGIN completed")),
        b"a1 OK LOGIN completed\r\n"
    );
    assert_eq!(
        out(|o| tagged(
            o,
            b"A003",
            Status::Ok,
            Some("READ-WRITE"),
            "SELECT completed"
        )),
        b"A003 OK [READ-WRITE] SELECT completed\r\n"
    );
    assert_eq!(
        out(|o| tagged(
            o,
            b"a",
            Status::No,
            Some("AUTHENTICATIONFAILED"),
            "Invalid credentials"
        )),
        b"a NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"
    );
    assert_eq!(
        out(|o| tagged(o, b"*", Status::Bad, None, "missing tag")),
        b"* BAD missing tag\r\n"
    );
    assert_eq!(
        out(|o| tagged(o, b"x", Status::Bad, None, "")),
        b"x BAD \r\n"
    );
    // Neither the text nor the code can end the line early.
    assert_eq!(
        out(|o| tagged(o, b"a1", Status::No, Some("X\r\nY"), "bad\r\nx\0y\n")),
        b"a1 NO [X  Y] bad  x y \r\n"
    );
    assert_eq!(
        out(|o| untagged(
            o,
            "CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID IDLE AUTH=PLAIN"
        )),
        b"* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID IDLE AUTH=PLAIN\r\n"
    );
    assert_eq!(
        out(|o| untagged(o, "BYE\r\n* OK injected")),
        b"* BYE  * OK injected\r\n"
    );
    assert_eq!(out(|o| continuation(o, "")), b"+ \r\n");
    assert_eq!(
        out(|o| continuation(o, "Ready for literal data")),
        b"+ Ready for literal data\r\n"
    );
    assert_eq!(out(|o| continuation(o, "a\nb")), b"+ a b\r\n");
}

#[test]
fn strings() {
    assert_eq!(out(|o| quoted(o, b"")), b"\"\"");
    assert_eq!(out(|o| quoted(o, b"Sent Items")), b"\"Sent Items\"");
    assert_eq!(out(|o| quoted(o, b"a\"b\\c")), b"\"a\\\"b\\\\c\"");
    assert_eq!(out(|o| quoted(o, b"\\\\")), b"\"\\\\\\\\\"");

    assert_eq!(out(|o| string(o, b"")), b"\"\"");
    assert_eq!(out(|o| string(o, b"hello world")), b"\"hello world\"");
    assert_eq!(out(|o| string(o, b"say \"hi\"")), b"\"say \\\"hi\\\"\"");
    assert_eq!(out(|o| string(o, b"a\r\nb")), b"{4}\r\na\r\nb");
    assert_eq!(out(|o| string(o, b"\0")), b"{1}\r\n\0");
    assert_eq!(out(|o| string(o, b"\t")), b"{1}\r\n\t");
    assert_eq!(out(|o| string(o, b"\x7f")), b"{1}\r\n\x7f");
    assert_eq!(
        out(|o| string(o, "h\u{e4}llo".as_bytes())),
        "{6}\r\nh\u{e4}llo".as_bytes()
    );
    // Up to 1024 bytes quoted, longer as a literal.
    let k = vec![b'k'; 1024];
    assert_eq!(out(|o| string(o, &k)), [&b"\""[..], &k, b"\""].concat());
    let k1 = vec![b'k'; 1025];
    assert_eq!(out(|o| string(o, &k1)), [&b"{1025}\r\n"[..], &k1].concat());

    assert_eq!(out(|o| nstring(o, None)), b"NIL");
    assert_eq!(out(|o| nstring(o, Some(b""))), b"\"\"");
    assert_eq!(out(|o| nstring(o, Some(b"NIL"))), b"\"NIL\"");
    assert_eq!(out(|o| nstring(o, Some(b"a\nb"))), b"{3}\r\na\nb");
}

#[test]
fn astrings() {
    let rows: &[(&[u8], &[u8])] = &[
        (b"INBOX", b"INBOX"),
        (b"joe@example.com", b"joe@example.com"),
        (b"Entw&APw-rfe", b"Entw&APw-rfe"),
        (b"+", b"+"),
        (b"a}", b"a}"),
        (b"NILS", b"NILS"),
        (b"", b"\"\""),
        (b"NIL", b"\"NIL\""),
        (b"nil", b"\"nil\""),
        (b"My Folder", b"\"My Folder\""),
        (b"\\Seen", b"\"\\\\Seen\""),
        (b"a\"b", b"\"a\\\"b\""),
        (b"%", b"\"%\""),
        (b"*", b"\"*\""),
        (b"a]", b"\"a]\""),
        (b"(x", b"\"(x\""),
        (b"x)", b"\"x)\""),
        (b"{5}", b"\"{5}\""),
        // A bare `[` would open a section in our own parser.
        (b"a[b", b"\"a[b\""),
        (b"BODY[]", b"\"BODY[]\""),
        (b"a\rb", b"{3}\r\na\rb"),
        (b"\x7f", b"{1}\r\n\x7f"),
    ];
    for &(value, want) in rows {
        assert_eq!(out(|o| astring(o, value)), want, "{}", show(value));
    }
    assert_eq!(
        out(|o| astring(o, "Entw\u{fc}rfe".as_bytes())),
        "{9}\r\nEntw\u{fc}rfe".as_bytes()
    );
}
