//! Fuzzes the POP3 command and response parsers: no input may panic, every parse must stay
//! within its input, an over-long line is discarded through its LF, a command that parses
//! must re-encode to bytes that parse back to the same command, and a multi-line block
//! that parses must come back unchanged through `dot_stuff` and the parser again.
#![no_main]

use codec::pop3::{
    dot_stuff, multiline_end, parse_command, parse_line, parse_multiline, parse_status_line,
    skip_line, Limits, ParseError, Status,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small limit so that the fuzzer reaches the too-long path easily.
    let limits = Limits { max_line: 256 };
    // Re-encoding may add up to two bytes: a bare LF becomes CRLF, a bare `PASS` gains its
    // space.
    let roomy = Limits { max_line: 1024 };
    let mut rest = data;
    while !rest.is_empty() {
        match parse_command(rest, &limits) {
            Ok(parsed) => {
                assert!(parsed.consumed > 0 && parsed.consumed <= rest.len());
                let mut wire = Vec::new();
                parsed.command.encode(&mut wire);
                assert!(wire.len() <= parsed.consumed + 2);
                let again = parse_command(&wire, &roomy).expect("re-encoded command parses");
                assert_eq!(again.command, parsed.command);
                assert_eq!(again.consumed, wire.len());
                rest = &rest[parsed.consumed..];
            }
            Err(ParseError::Invalid { consumed, .. }) => {
                assert!(consumed > 0 && consumed <= rest.len());
                rest = &rest[consumed..];
            }
            Err(ParseError::LineTooLong) => {
                assert!(rest.len() >= limits.max_line);
                match skip_line(rest) {
                    Some(n) => {
                        assert!(n > limits.max_line && n <= rest.len());
                        rest = &rest[n..];
                    }
                    None => break,
                }
            }
            Err(ParseError::Incomplete) => {
                assert!(!rest.contains(&b'\n'));
                break;
            }
        }
    }

    let mut rest = data;
    while let Ok(parsed) = parse_line(rest, &limits) {
        assert!(parsed.consumed > 0 && parsed.consumed <= rest.len());
        rest = &rest[parsed.consumed..];
    }

    let mut rest = data;
    while let Ok((status, used)) = parse_status_line(rest, &limits) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
        if !matches!(status, Status::Ok(_)) {
            continue;
        }
        let Ok((body, used)) = parse_multiline(rest, 4096) else {
            break;
        };
        assert!(used > 0 && used <= rest.len());
        let mut wire = Vec::new();
        dot_stuff(&mut wire, &body);
        multiline_end(&mut wire);
        let (again, again_used) = parse_multiline(&wire, usize::MAX).expect("restuffed block");
        assert_eq!(again, body);
        assert_eq!(again_used, wire.len());
        rest = &rest[used..];
    }
});
