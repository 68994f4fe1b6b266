//! Fuzzes the client side of IMAP (the server-response parser a proxy reads mailbox
//! servers with): no input panics, a response stays within its input and its bounds, and
//! the responses found are the same whether the bytes arrive whole or one at a time.
#![no_main]

use codec::imap::client::{parse_response, ResponseError, ResponseLimits};
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
                    assert_eq!(r.raw.len(), used);
                    assert!(used <= limits.max_response + limits.max_line);
                    out.push(Ok(used));
                    buf.drain(..used);
                }
                Err(ResponseError::Incomplete) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
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
});
