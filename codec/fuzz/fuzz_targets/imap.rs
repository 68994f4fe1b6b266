//! Fuzzes the IMAP command parser: a session's read loop over arbitrary input (drop what
//! `Ok`/`Bad`/`Discard` consumed, keep going after `NeedsLiteral`, stop on `Fatal` or
//! `Incomplete`) must never panic, never consume more than it has or nothing at all, ask
//! for a literal only once, and give the same commands and errors whether the input comes
//! whole or in pieces (the piece size is taken from the first byte). Every command that
//! parses is re-encoded and must parse back to the same tree.
#![no_main]

use codec::imap::{quoted, Arg, Command, Limits, ParseError, Parser};
use libfuzzer_sys::fuzz_target;

/// Small limits, so that the fuzzer reaches each of them; the tag limit stays below the
/// line limit (a tag is only looked for in the bytes at hand).
const LIMITS: Limits = Limits {
    max_line: 256,
    max_literal: 1024,
    max_command: 4096,
    max_depth: 4,
    max_args: 64,
    max_tag: 16,
};

/// What a session acts on, owned.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Command(Vec<u8>, usize),
    Bad(Option<Vec<u8>>, &'static str),
    Fatal(Option<Vec<u8>>, &'static str),
}

fn encode_arg(arg: &Arg<'_>, out: &mut Vec<u8>) {
    match arg {
        Arg::Atom(a) => out.extend_from_slice(a),
        Arg::Quoted(q) => quoted(out, q),
        Arg::Literal(l) => {
            out.extend_from_slice(format!("{{{}}}\r\n", l.len()).as_bytes());
            out.extend_from_slice(l);
        }
        Arg::List(items) => {
            out.push(b'(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                encode_arg(item, out);
            }
            out.push(b')');
        }
    }
}

fn encode(c: &Command<'_>) -> Vec<u8> {
    let mut out = [c.tag, b" ", c.name].concat();
    for arg in &c.args {
        out.push(b' ');
        encode_arg(arg, &mut out);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Runs the read loop with reads of `chunk` bytes.
fn run(data: &[u8], chunk: usize) -> Vec<Event> {
    let mut parser = Parser::new(LIMITS);
    let mut buf: Vec<u8> = Vec::new();
    let mut base = 0;
    let mut fed = 0;
    let mut events = Vec::new();
    loop {
        loop {
            let used = match parser.parse(&buf) {
                Ok((c, used)) => {
                    assert!(used > 0 && used <= buf.len());
                    let wire = encode(&c);
                    let (again, again_used) = Parser::default()
                        .parse(&wire)
                        .expect("a re-encoded command parses");
                    assert_eq!(again_used, wire.len());
                    assert_eq!(again, c);
                    events.push(Event::Command(wire, base + used));
                    used
                }
                Err(ParseError::Incomplete) => break,
                Err(ParseError::NeedsLiteral { size }) => {
                    assert!(size <= LIMITS.max_literal);
                    // Keep feeding: with the same bytes it is incomplete, never asked twice.
                    assert_eq!(parser.parse(&buf), Err(ParseError::Incomplete));
                    break;
                }
                Err(ParseError::Bad {
                    tag,
                    message,
                    consumed,
                }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    if let Some(tag) = &tag {
                        assert!(!tag.is_empty() && tag.len() <= LIMITS.max_tag);
                        assert!(buf.starts_with(tag));
                    }
                    events.push(Event::Bad(tag, message));
                    consumed
                }
                Err(ParseError::Discard { consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    consumed
                }
                Err(ParseError::Fatal { tag, message }) => {
                    events.push(Event::Fatal(tag, message));
                    return events;
                }
            };
            buf.drain(..used);
            base += used;
        }
        if fed == data.len() {
            return events;
        }
        let end = (fed + chunk).min(data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, data.len().max(1));
    let chunk = usize::from(data.first().copied().unwrap_or(0) % 64) + 1;
    assert_eq!(run(data, chunk), whole);
});
