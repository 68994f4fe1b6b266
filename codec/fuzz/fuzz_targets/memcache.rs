//! Fuzzes the memcached request and response parsers: no input may panic, every parse
//! must stay within its input, and a request that parses must re-encode to bytes that
//! parse back to the same request.
#![no_main]

use codec::memcache::{parse_request, parse_response, Limits, ParseError, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_line: 2048,
        max_get_line: 64 * 1024,
        max_item_size: 4096,
    };
    let mut rest = data;
    while !rest.is_empty() {
        match parse_request(rest, &limits) {
            Ok(parsed) => {
                assert!(parsed.consumed > 0 && parsed.consumed <= rest.len());
                if !matches!(
                    parsed.request,
                    Request::StoreTooLarge { .. } | Request::MetaSetTooLarge { .. }
                ) {
                    let mut wire = Vec::new();
                    parsed.request.encode(&mut wire);
                    let again = parse_request(&wire, &limits).expect("re-encoded request parses");
                    assert_eq!(again.request, parsed.request);
                }
                rest = &rest[(parsed.consumed + parsed.swallow).min(rest.len())..];
            }
            Err(ParseError::Invalid {
                consumed, swallow, ..
            }) => {
                assert!(consumed > 0 && consumed <= rest.len());
                rest = &rest[(consumed + swallow).min(rest.len())..];
            }
            Err(_) => break,
        }
    }
    let mut rest = data;
    while let Ok((_, used)) = parse_response(rest) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
    }
});
