//! Fuzzes the client side of POP3: the response parser a proxy reads mailbox servers with
//! (no input panics; a response stays within its input and its line bound, and agrees with
//! `parse_status_line`; the responses found are the same whether the bytes arrive whole or
//! one at a time) and the command encoders (an argument is either refused for a line break
//! or NUL, or read back unchanged by the server-side parser).
#![no_main]

use codec::pop3::client::{auth_plain, parse_response, pass, user, xclient, Indicator};
use codec::pop3::{
    parse_command, parse_status_line, xclient_params, Command, Limits, ResponseError,
};
use libfuzzer_sys::fuzz_target;

fn lengths(
    data: &[u8],
    chunk: usize,
    limits: &Limits,
) -> Vec<Result<(Indicator, usize), ResponseError>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match parse_response(&buf, limits) {
                Ok((r, used)) => {
                    assert!(used > 0 && used <= buf.len() && used <= limits.max_line);
                    assert_eq!(r.raw, &buf[..used]);
                    assert_eq!(parse_status_line(&buf, limits).map(|s| s.1), Ok(used));
                    if let Some(code) = r.code {
                        assert!(r
                            .raw
                            .windows(code.len() + 2)
                            .any(|w| w[1..=code.len()] == *code));
                    }
                    out.push(Ok((r.indicator, used)));
                    buf.drain(..used);
                }
                Err(ResponseError::Incomplete) => {
                    assert!(buf.len() < limits.max_line);
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

fn unsafe_bytes(arg: &[u8]) -> bool {
    arg.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

/// The server-side parse of one encoded line, which must use all of it.
fn read(wire: &[u8]) -> Command<'_> {
    let parsed =
        parse_command(wire, &Limits { max_line: 8192 }).expect("an encoded command parses");
    assert_eq!(parsed.consumed, wire.len());
    parsed.command
}

fn encoders(arg: &[u8]) {
    let mut out = Vec::new();
    match user(&mut out, arg) {
        Ok(()) => assert_eq!(read(&out), Command::User(arg)),
        Err(_) => assert!(out.is_empty() && (arg.is_empty() || unsafe_bytes(arg))),
    }
    out.clear();
    match pass(&mut out, arg) {
        Ok(()) => assert_eq!(read(&out), Command::Pass(arg)),
        Err(_) => assert!(out.is_empty() && unsafe_bytes(arg)),
    }
    out.clear();
    match auth_plain(&mut out, arg) {
        Ok(()) => assert!(matches!(
            read(&out),
            Command::Auth {
                mechanism: Some(b"PLAIN"),
                initial: Some(_)
            }
        )),
        Err(_) => assert!(out.is_empty() && (unsafe_bytes(arg) || arg.contains(&b' '))),
    }
    out.clear();
    let params: Vec<(&[u8], &[u8])> = arg
        .split(|&b| b == b';')
        .map(|p| match p.iter().position(|&b| b == b':') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[p.len()..]),
        })
        .collect();
    if xclient(&mut out, params.iter().copied()).is_ok() {
        let Command::Xclient(args) = read(&out) else {
            panic!("not XCLIENT")
        };
        assert_eq!(xclient_params(args).collect::<Vec<_>>(), params);
    } else {
        assert!(out.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    // A small bound so that the fuzzer reaches the too-long path easily.
    let limits = Limits { max_line: 128 };
    assert_eq!(
        lengths(data, data.len(), &limits),
        lengths(data, 1, &limits)
    );
    encoders(data);
});
