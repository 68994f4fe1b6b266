//! The client side of POP3: a table of status lines with their RFC 2449/3206 codes; a
//! server transcript that parses to the same responses whatever the chunk sizes; the line
//! bound (an over-long line is an error found with no more than the bound buffered, at
//! every chunk size); and the commands, byte-exact, read back by the server-side parser,
//! with every line break or NUL in an argument refused before anything is written.

use codec::pop3::client::{
    auth_plain, parse_response, pass, user, xclient, xclient_addr, EncodeError, Indicator,
    ServerResponse,
};
use codec::pop3::{parse_command, xclient_params, Command, Limits, ResponseError};

#[test]
fn status_lines() {
    type Row = (
        &'static [u8],
        Indicator,
        Option<&'static [u8]>,
        &'static [u8],
    );
    let table: &[Row] = &[
        (
            b"+OK Dovecot ready. <1.2@host>\r\n",
            Indicator::Ok,
            None,
            b"Dovecot ready. <1.2@host>",
        ),
        (b"+OK\r\n", Indicator::Ok, None, b""),
        (b"+OK\n", Indicator::Ok, None, b""),
        (
            b"-ERR [SYS/TEMP] Try again later\r\n",
            Indicator::Err,
            Some(b"SYS/TEMP"),
            b"Try again later",
        ),
        (
            b"-ERR [SYS/PERM] Account disabled\r\n",
            Indicator::Err,
            Some(b"SYS/PERM"),
            b"Account disabled",
        ),
        (
            b"-ERR [AUTH] Authentication failed.\r\n",
            Indicator::Err,
            Some(b"AUTH"),
            b"Authentication failed.",
        ),
        (
            b"-ERR [IN-USE] Mailbox locked\r\n",
            Indicator::Err,
            Some(b"IN-USE"),
            b"Mailbox locked",
        ),
        (
            b"-ERR [LOGIN-DELAY]\r\n",
            Indicator::Err,
            Some(b"LOGIN-DELAY"),
            b"",
        ),
        (
            b"-ERR no code [SYS/TEMP]\r\n",
            Indicator::Err,
            None,
            b"no code [SYS/TEMP]",
        ),
        (
            b"-ERR [two words] x\r\n",
            Indicator::Err,
            None,
            b"[two words] x",
        ),
        (b"-ERR [] x\r\n", Indicator::Err, None, b"[] x"),
        (b"-ERR\r\n", Indicator::Err, None, b""),
        (b"+ \r\n", Indicator::Continuation, None, b""),
        (b"+\r\n", Indicator::Continuation, None, b""),
        (
            b"+ VXNlcm5hbWU6\r\n",
            Indicator::Continuation,
            None,
            b"VXNlcm5hbWU6",
        ),
    ];
    let limits = Limits::default();
    for &(input, indicator, code, text) in table {
        let mut followed = input.to_vec();
        followed.extend_from_slice(b"+OK next\r\n");
        let (r, used) = parse_response(&followed, &limits).unwrap();
        assert_eq!(
            (r.indicator, r.code, r.text, r.raw, used),
            (indicator, code, text, input, input.len()),
            "{input:?}"
        );
    }
    for bad in [
        &b"* OK IMAP4rev1\r\n"[..],
        b"+OKAY\r\n",
        b"-ERROR\r\n",
        b"+ok\r\n",
        b"\r\n",
    ] {
        assert_eq!(
            parse_response(bad, &limits),
            Err(ResponseError::Malformed),
            "{bad:?}"
        );
    }
}

const TRANSCRIPT: &[u8] = b"+OK POP3 ready <123.456@mail>\r\n\
+OK\r\n\
-ERR [AUTH] bad\n\
+ \r\n\
+ dGVzdA==\r\n\
-ERR [SYS/TEMP] later\r\n\
+OK Logged in.\r\n";

/// (indicator, code, text, raw) of each response, owned for comparison.
type Seen = (Indicator, Option<Vec<u8>>, Vec<u8>, Vec<u8>);

fn seen(r: &ServerResponse<'_>) -> Seen {
    (
        r.indicator,
        r.code.map(<[u8]>::to_vec),
        r.text.to_vec(),
        r.raw.to_vec(),
    )
}

fn parse_all(
    input: &[u8],
    chunk: usize,
    limits: &Limits,
) -> (Vec<Seen>, Option<(ResponseError, usize)>) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match parse_response(&buf, limits) {
                Ok((r, used)) => {
                    assert!(used > 0 && used <= buf.len());
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
    let limits = Limits::default();
    let (whole, error) = parse_all(TRANSCRIPT, TRANSCRIPT.len(), &limits);
    assert_eq!(error, None);
    assert_eq!(whole.len(), 7);
    assert_eq!(whole[2].1.as_deref(), Some(&b"AUTH"[..]));
    assert_eq!(whole[4].0, Indicator::Continuation);
    assert_eq!(whole[5].1.as_deref(), Some(&b"SYS/TEMP"[..]));
    for chunk in 1..TRANSCRIPT.len() {
        assert_eq!(
            parse_all(TRANSCRIPT, chunk, &limits),
            (whole.clone(), None),
            "chunk size {chunk}"
        );
    }
}

#[test]
fn an_over_long_line_fails_at_its_bound_at_every_chunk_size() {
    let limits = Limits { max_line: 64 };
    let mut input = b"+OK ready\r\n-ERR ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1000));
    input.extend_from_slice(b"\r\n");
    for chunk in 1..=200 {
        let (responses, error) = parse_all(&input, chunk, &limits);
        assert_eq!(responses.len(), 1);
        let (e, buffered) = error.expect("the long line is an error");
        assert_eq!(e, ResponseError::TooLarge);
        assert!(
            buffered < limits.max_line + chunk,
            "chunk {chunk}: {buffered}"
        );
    }
    // A line of max_line bytes, line end included, is still a line.
    let exact = b"-ERR [SYS/TEMP] 0123456789\r\n";
    let limits = Limits {
        max_line: exact.len(),
    };
    assert_eq!(parse_response(exact, &limits).unwrap().1, exact.len());
    let limits = Limits {
        max_line: exact.len() - 1,
    };
    assert_eq!(parse_response(exact, &limits), Err(ResponseError::TooLarge));
}

fn encode(f: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut out).expect("encodes");
    out
}

/// The server-side parse of one encoded line, which must use all of it.
fn server_reads(wire: &[u8]) -> Command<'_> {
    let parsed = parse_command(wire, &Limits { max_line: 8192 }).expect("parses");
    assert_eq!(parsed.consumed, wire.len());
    parsed.command
}

#[test]
fn commands_read_back_as_sent() {
    assert_eq!(
        encode(|o| user(o, b"ann@example.com")),
        b"USER ann@example.com\r\n"
    );
    assert_eq!(encode(|o| pass(o, b"pa ss")), b"PASS pa ss\r\n");
    assert_eq!(
        encode(|o| auth_plain(o, b"Ym9zcwBhbm4AcHc=")),
        b"AUTH PLAIN Ym9zcwBhbm4AcHc=\r\n"
    );
    let mut out = Vec::new();
    xclient_addr(&mut out, "192.0.2.7".parse().unwrap());
    assert_eq!(out, b"XCLIENT ADDR=192.0.2.7\r\n");

    let names: Vec<Vec<u8>> = [
        &b"ann"[..],
        b"a b ",
        b" lead",
        "\u{fc}".as_bytes(),
        b"\x01\x7f",
    ]
    .iter()
    .map(|v| v.to_vec())
    .chain(
        (1..=255u8)
            .filter(|b| ![b'\r', b'\n'].contains(b))
            .map(|b| vec![b]),
    )
    .collect();
    for name in &names {
        let wire = encode(|o| user(o, name));
        assert_eq!(server_reads(&wire), Command::User(name));
        let wire = encode(|o| pass(o, name));
        assert_eq!(server_reads(&wire), Command::Pass(name));
    }
    let wire = encode(|o| pass(o, b""));
    assert_eq!(server_reads(&wire), Command::Pass(b""));
    let wire = encode(|o| auth_plain(o, b""));
    assert_eq!(
        server_reads(&wire),
        Command::Auth {
            mechanism: Some(b"PLAIN"),
            initial: Some(b"=")
        }
    );

    let params: [(&[u8], &[u8]); 3] = [(b"ADDR", b"2001:db8::1"), (b"PORT", b"110"), (b"TTL", b"")];
    let wire = encode(|o| xclient(o, params));
    assert_eq!(wire, b"XCLIENT ADDR=2001:db8::1 PORT=110 TTL=\r\n");
    let Command::Xclient(args) = server_reads(&wire) else {
        panic!("not XCLIENT")
    };
    assert_eq!(xclient_params(args).collect::<Vec<_>>(), params);
}

#[test]
fn line_breaks_and_nuls_are_refused_before_writing() {
    for bad in [b'\r', b'\n', 0] {
        let arg = [b'a', bad, b'b'];
        let refused = |f: &dyn Fn(&mut Vec<u8>) -> Result<(), EncodeError>| {
            let mut out = b"kept".to_vec();
            assert_eq!(f(&mut out), Err(EncodeError::LineBreak), "{arg:?}");
            assert_eq!(out, b"kept");
        };
        refused(&|o| user(o, &arg));
        refused(&|o| pass(o, &arg));
        refused(&|o| auth_plain(o, &arg));
        refused(&|o| xclient(o, [(&b"ADDR"[..], &b"1"[..]), (b"LOGIN", &arg[..])]));
        refused(&|o| xclient(o, [(&arg[..], &b"1"[..])]));
    }
    let mut out = Vec::new();
    assert_eq!(user(&mut out, b""), Err(EncodeError::Empty));
    assert_eq!(
        xclient(&mut out, [(&b"ADDR"[..], &b"a b"[..])]),
        Err(EncodeError::NotAToken)
    );
    assert_eq!(auth_plain(&mut out, b"AA =="), Err(EncodeError::NotAToken));
    assert!(out.is_empty());
}
