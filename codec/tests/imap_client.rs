//! The client side of IMAP: a stream of server responses (greeting with capabilities, ID
//! data with literals, continuations, untagged and tagged status lines) parses to the same
//! sequence whatever the chunk sizes it arrives in; a table of single responses; the
//! bounds (an over-long line and an over-big literal are errors found with no more than
//! the bound buffered, at every chunk size); and the commands, byte-exact and read back by
//! the server-side command parser, which must ask for a `+` exactly where the encoder
//! split its pieces.

use codec::imap::client::{
    authenticate_plain, id_forward, login, parse_response, Condition, Kind, LoginStyle,
    ResponseError, ResponseLimits, ServerResponse,
};
use codec::imap::{Arg, ParseError, Parser};

const STREAM: &[u8] = b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID] ready\r\n\
a.id OK ID done\r\n\
* ID (\"name\" {6}\r\nDove\r\n \"v\" {3}\r\n2.3)\r\n\
+ \r\n\
* CAPABILITY IMAP4rev1 IDLE\r\n\
* OK [ALERT] text that ends like a literal {4}\r\n\
* 3 FETCH (BODY[] {0}\r\n)\r\n\
a NO [AUTHENTICATIONFAILED] Authentication failed.\n\
* BYE later\r\n";

/// A response, owned so that runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: String,
    condition: Option<Condition>,
    code: Option<Vec<u8>>,
    text: Vec<u8>,
    raw: Vec<u8>,
}

fn seen(r: &ServerResponse<'_>) -> Seen {
    Seen {
        kind: match r.kind {
            Kind::Tagged(t) => String::from_utf8_lossy(t).into_owned(),
            Kind::Untagged => "*".into(),
            Kind::Continuation => "+".into(),
        },
        condition: r.condition,
        code: r.code.map(<[u8]>::to_vec),
        text: r.text.to_vec(),
        raw: r.raw.to_vec(),
    }
}

/// Every response in `input`, parsing as bytes arrive `chunk` at a time, and the first
/// error other than `Incomplete` with how many bytes were buffered when it came.
fn parse_all(
    input: &[u8],
    chunk: usize,
    limits: &ResponseLimits,
) -> (Vec<Seen>, Option<(ResponseError, usize)>) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match parse_response(&buf, limits) {
                Ok((r, used)) => {
                    assert_eq!(r.raw.len(), used);
                    out.push(seen(&r));
                    buf.drain(..used);
                }
                Err(ResponseError::Incomplete) => break,
                Err(e) => return (out, Some((e, buf.len()))),
            }
        }
    }
    assert!(buf.is_empty(), "chunk {chunk}: left over {buf:?}");
    (out, None)
}

#[test]
fn every_chunk_size_gives_the_same_responses() {
    let limits = ResponseLimits::default();
    let (whole, error) = parse_all(STREAM, STREAM.len(), &limits);
    assert_eq!(error, None);
    assert_eq!(whole.len(), 9);
    assert_eq!(whole[0].condition, Some(Condition::Ok));
    assert_eq!(whole[1].kind, "a.id");
    assert_eq!(
        whole[2].raw, b"* ID (\"name\" {6}\r\nDove\r\n \"v\" {3}\r\n2.3)\r\n",
        "both literals belong to the ID data"
    );
    assert_eq!(whole[2].condition, None, "ID data is no status");
    assert_eq!(whole[3].kind, "+");
    assert_eq!(whole[4].text, b"CAPABILITY IMAP4rev1 IDLE");
    assert_eq!(whole[5].text, b"text that ends like a literal {4}");
    assert_eq!(whole[6].raw, b"* 3 FETCH (BODY[] {0}\r\n)\r\n");
    assert_eq!(
        (whole[7].kind.as_str(), whole[7].condition),
        ("a", Some(Condition::No))
    );
    assert_eq!(whole[7].code.as_deref(), Some(&b"AUTHENTICATIONFAILED"[..]));
    assert_eq!(whole[8].condition, Some(Condition::Bye));
    let total: usize = whole.iter().map(|r| r.raw.len()).sum();
    assert_eq!(total, STREAM.len());
    for chunk in 1..STREAM.len() {
        assert_eq!(
            parse_all(STREAM, chunk, &limits),
            (whole.clone(), None),
            "chunk size {chunk}"
        );
    }
}

#[test]
fn prefixes_are_incomplete_or_whole() {
    let limits = ResponseLimits::default();
    for end in 0..STREAM.len() {
        match parse_response(&STREAM[..end], &limits) {
            Ok((_, used)) => assert!(used <= end),
            Err(ResponseError::Incomplete) => {}
            Err(e) => panic!("prefix {end}: {e}"),
        }
    }
}

#[test]
fn single_responses() {
    type Row = (
        &'static [u8],
        Kind<'static>,
        Option<Condition>,
        Option<&'static [u8]>,
        &'static [u8],
    );
    let table: &[Row] = &[
        (
            b"* OK [CAPABILITY IMAP4rev1 ID] Dovecot ready.\r\n",
            Kind::Untagged,
            Some(Condition::Ok),
            Some(b"CAPABILITY IMAP4rev1 ID"),
            b"Dovecot ready.",
        ),
        (
            b"* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n",
            Kind::Untagged,
            Some(Condition::Preauth),
            Some(b"CAPABILITY IMAP4rev1"),
            b"hi",
        ),
        (
            b"* BYE Too many connections\r\n",
            Kind::Untagged,
            Some(Condition::Bye),
            None,
            b"Too many connections",
        ),
        (
            b"A001 NO [UNAVAILABLE] Mailbox is being moved\r\n",
            Kind::Tagged(b"A001"),
            Some(Condition::No),
            Some(b"UNAVAILABLE"),
            b"Mailbox is being moved",
        ),
        (
            b"a1 bad [CLIENTBUG]\r\n",
            Kind::Tagged(b"a1"),
            Some(Condition::Bad),
            Some(b"CLIENTBUG"),
            b"",
        ),
        (
            b"a1 OK [READ-WRITE] [x] done\n",
            Kind::Tagged(b"a1"),
            Some(Condition::Ok),
            Some(b"READ-WRITE"),
            b"[x] done",
        ),
        (b"* 12 EXISTS\r\n", Kind::Untagged, None, None, b"12 EXISTS"),
        (
            b"* ID (\"name\" \"Dovecot\")\r\n",
            Kind::Untagged,
            None,
            None,
            b"ID (\"name\" \"Dovecot\")",
        ),
        (
            b"+ Ready for literal data\r\n",
            Kind::Continuation,
            None,
            None,
            b"Ready for literal data",
        ),
        (b"+\r\n", Kind::Continuation, None, None, b""),
    ];
    let limits = ResponseLimits::default();
    for &(input, kind, condition, code, text) in table {
        let (r, used) = parse_response(input, &limits).unwrap();
        assert_eq!(used, input.len(), "{input:?}");
        assert_eq!(
            (r.kind, r.condition, r.code, r.text, r.raw),
            (kind, condition, code, text, input),
            "{input:?}"
        );
    }
    let (g, _) = parse_response(table[0].0, &limits).unwrap();
    assert!(g.has_capability(b"id") && !g.has_capability(b"LITERAL+"));
}

#[test]
fn an_over_long_line_fails_at_its_bound_at_every_chunk_size() {
    let limits = ResponseLimits {
        max_line: 64,
        max_response: 256,
    };
    let mut input = b"* OK ready\r\n* CAPABILITY ".to_vec();
    input.extend(std::iter::repeat_n(b'X', 1000));
    input.extend_from_slice(b"\r\n");
    for chunk in 1..=200 {
        let (responses, error) = parse_all(&input, chunk, &limits);
        assert_eq!(responses.len(), 1);
        let (e, buffered) = error.expect("the long line is an error");
        assert_eq!(e, ResponseError::LineTooLong, "chunk {chunk}");
        assert!(
            buffered < limits.max_line + chunk,
            "chunk {chunk}: {buffered}"
        );
    }
}

#[test]
fn an_over_big_literal_fails_when_announced() {
    let limits = ResponseLimits {
        max_line: 64,
        max_response: 256,
    };
    // Announced, never sent: the error must come without waiting for the bytes.
    let input = b"* 1 FETCH (BODY[] {1000000}\r\n";
    for chunk in 1..=input.len() {
        let (responses, error) = parse_all(input, chunk, &limits);
        assert!(responses.is_empty());
        assert_eq!(error, Some((ResponseError::TooLarge, input.len())));
    }
    // Literals within the bound each but over it together.
    let mut two = b"* 1 FETCH (BODY[1] {200}\r\n".to_vec();
    two.extend(std::iter::repeat_n(b'a', 200));
    two.extend_from_slice(b" BODY[2] {200}\r\n");
    let (_, error) = parse_all(&two, two.len(), &limits);
    assert_eq!(error.map(|e| e.0), Some(ResponseError::TooLarge));
    // At the bound exactly is fine.
    let mut fits = b"* 1 FETCH (BODY[] {10}\r\n".to_vec();
    fits.extend_from_slice(b"0123456789)\r\n");
    let exact = ResponseLimits {
        max_line: 64,
        max_response: fits.len(),
    };
    assert_eq!(parse_response(&fits, &exact).unwrap().1, fits.len());
    let under = ResponseLimits {
        max_response: fits.len() - 1,
        ..exact
    };
    assert_eq!(
        parse_response(&fits, &under).unwrap_err(),
        ResponseError::TooLarge
    );
}

/// Feeds `pieces` to the server-side parser in order; each piece but the last must leave
/// it asking for a `+`. Returns the LOGIN arguments it parsed.
fn server_reads(pieces: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut parser = Parser::default();
    let mut buf = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        match parser.parse(&buf) {
            Ok((command, used)) => {
                assert_eq!(i, pieces.len() - 1, "parsed before the last piece");
                assert_eq!(used, buf.len());
                assert!(command.is("LOGIN"));
                return command
                    .args
                    .iter()
                    .map(|a| a.as_astring().expect("an astring").to_vec())
                    .collect();
            }
            Err(ParseError::NeedsLiteral { .. }) => {
                assert!(i < pieces.len() - 1, "the last piece asks for a +");
            }
            Err(e) => panic!("piece {i} of {pieces:?}: {e:?}"),
        }
    }
    panic!("no command in {pieces:?}")
}

#[test]
fn login_reads_back_as_sent_in_every_style() {
    let mut values: Vec<Vec<u8>> = [
        &b"ann"[..],
        b"ann@example.com",
        b"",
        b"NIL",
        b"a b",
        b"\"quoted\\",
        b"p%*[x]",
        b"(){}",
        b"\r\n",
        b"a\0b",
        "\u{fc}ber".as_bytes(),
        b"{5}",
        b"{5+}",
    ]
    .iter()
    .map(|v| v.to_vec())
    .collect();
    values.extend((0..=255u8).map(|b| vec![b]));
    values.push(vec![b'x'; 5000]);
    let styles = [
        LoginStyle::default(),
        LoginStyle {
            literal_plus: true,
            always_literal: false,
        },
        LoginStyle {
            literal_plus: false,
            always_literal: true,
        },
        LoginStyle {
            literal_plus: true,
            always_literal: true,
        },
    ];
    for style in styles {
        for value in &values {
            for (user, pass) in [(&b"ann"[..], &value[..]), (value, b"pw")] {
                let pieces = login(b"a1", user, pass, style);
                if style.literal_plus {
                    assert_eq!(pieces.len(), 1);
                }
                assert_eq!(
                    server_reads(&pieces),
                    [user.to_vec(), pass.to_vec()],
                    "{style:?} {pieces:?}"
                );
            }
        }
    }
}

#[test]
fn login_bytes() {
    let style = |literal_plus, always_literal| LoginStyle {
        literal_plus,
        always_literal,
    };
    assert_eq!(
        login(b"a1", b"ann", b"pw", style(false, false)),
        [b"a1 LOGIN ann pw\r\n".to_vec()]
    );
    assert_eq!(
        login(b"a1", b"ann", b"p w", style(false, false)),
        [b"a1 LOGIN ann \"p w\"\r\n".to_vec()]
    );
    assert_eq!(
        login(b"a1", b"ann", b"p\nw", style(false, false)),
        [b"a1 LOGIN ann {3}\r\n".to_vec(), b"p\nw\r\n".to_vec()]
    );
    assert_eq!(
        login(b"a1", b"ann", b"p\nw", style(true, false)),
        [b"a1 LOGIN ann {3+}\r\np\nw\r\n".to_vec()]
    );
    assert_eq!(
        login(b"a1", b"ann@example.com", b"pw", style(true, true)),
        [b"a1 LOGIN {15+}\r\nann@example.com {2+}\r\npw\r\n".to_vec()]
    );
    assert_eq!(
        login(b"x", b"ann", b"pw", style(false, true)),
        [
            b"x LOGIN {3}\r\n".to_vec(),
            b"ann {2}\r\n".to_vec(),
            b"pw\r\n".to_vec()
        ]
    );
}

#[test]
fn id_and_authenticate_read_back() {
    let mut out = Vec::new();
    let tag = id_forward(&mut out, b"a1", "2001:db8::7".parse().unwrap());
    let (command, used) = Parser::default().parse(&out).unwrap();
    assert_eq!((command.tag, used), (&tag[..], out.len()));
    assert!(command.is("ID"));
    let list: Vec<_> = command.args[0]
        .as_list()
        .unwrap()
        .iter()
        .map(|a| a.as_astring().unwrap().to_vec())
        .collect();
    assert_eq!(
        list,
        [
            &b"x-originating-ip"[..],
            b"2001:db8::7",
            b"X-ORIGINATING-IP",
            b"2001:db8::7"
        ]
    );

    let ir = authenticate_plain(b"t", b"AGFubgBwdw==", true);
    let (command, _) = Parser::default().parse(&ir[0]).unwrap();
    assert!(command.is("AUTHENTICATE"));
    assert_eq!(
        command.args,
        [Arg::Atom(b"PLAIN"), Arg::Atom(b"AGFubgBwdw==")]
    );
    let two = authenticate_plain(b"t", b"AGFubgBwdw==", false);
    let (command, used) = Parser::default().parse(&two[0]).unwrap();
    assert_eq!((command.args.len(), used), (1, two[0].len()));
    assert_eq!(
        codec::imap::parse_line(&two[1], 1024).unwrap(),
        (&b"AGFubgBwdw=="[..], two[1].len())
    );
}
