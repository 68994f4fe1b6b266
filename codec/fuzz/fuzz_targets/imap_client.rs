//! Fuzzes the client side of IMAP: the server-response parser a proxy reads mailbox
//! servers with (no input panics; a response stays within its input and its bounds; the
//! responses found are the same whether the bytes arrive whole or one at a time) and the
//! LOGIN encoder (whatever the user name and password, the server-side parser reads them
//! back, asking for a `+` exactly between the pieces).
#![no_main]

use codec::imap::client::{login, parse_response, LoginStyle, ResponseError, ResponseLimits};
use codec::imap::{ParseError, Parser};
use libfuzzer_sys::fuzz_target;

/// Every response's length, parsing as bytes arrive `chunk` at a time; stops at the first
/// error other than "incomplete".
fn lengths(
    data: &[u8],
    chunk: usize,
    limits: &ResponseLimits,
) -> Vec<Result<usize, ResponseError>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match parse_response(&buf, limits) {
                Ok((r, used)) => {
                    assert!(used > 0 && used <= buf.len());
                    assert_eq!(r.raw, &buf[..used]);
                    assert!(used <= limits.max_response);
                    out.push(Ok(used));
                    buf.drain(..used);
                }
                Err(ResponseError::Incomplete) => {
                    // Waiting for more is only ever within the bound.
                    assert!(buf.len() < limits.max_response);
                    break;
                }
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

/// LOGIN with `user` and `pass` in `style`, fed piece by piece to the server's parser.
fn login_round_trip(user: &[u8], pass: &[u8], style: LoginStyle) {
    let pieces = login(b"a1", user, pass, style);
    let mut parser = Parser::default();
    let mut buf = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        let last = i + 1 == pieces.len();
        match parser.parse(&buf) {
            Ok((command, used)) => {
                assert!(last && used == buf.len());
                let args: Vec<_> = command.args.iter().map(|a| a.as_astring()).collect();
                assert_eq!(args, [Some(user), Some(pass)]);
                return;
            }
            Err(ParseError::NeedsLiteral { .. }) => assert!(!last),
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("no command");
}

fuzz_target!(|data: &[u8]| {
    // Small bounds so that the fuzzer reaches the too-large paths easily.
    let limits = ResponseLimits {
        max_line: 128,
        max_response: 512,
    };
    assert_eq!(
        lengths(data, data.len(), &limits),
        lengths(data, 1, &limits)
    );
    if let Some(&first) = data.first() {
        let (user, pass) = data[1..].split_at(usize::from(first).min(data.len() - 1));
        let literal_plus = first & 1 == 1;
        for always_literal in [false, true] {
            login_round_trip(
                user,
                pass,
                LoginStyle {
                    literal_plus,
                    always_literal,
                },
            );
        }
    }
});
