//! Fuzzes the memcached request and response parsers: no input may panic, every parse
//! must stay within its input, and a request that parses must re-encode to bytes that
//! parse back to the same request. A meta key is binary exactly when its flags hold `b`
//! (`me`: when it was sent with `b`), a binary key is 1..=186 bytes, and no refused data
//! block is skipped beyond memcached's largest length (`INT_MAX - 2`, plus its CRLF).
#![no_main]

use codec::memcache::{
    parse_request, parse_response, Limits, MetaFlags, MetaKey, ParseError, Request,
    MAX_BINARY_KEY_LEN,
};
use libfuzzer_sys::fuzz_target;

/// The most a refused or over-large data block can make the server skip.
const MAX_SWALLOW: usize = i32::MAX as usize;

fn check_key(key: &MetaKey<'_>, flags: Option<&MetaFlags<'_>>) {
    if let Some(flags) = flags {
        assert_eq!(key.is_binary(), flags.has(b'b'));
    }
    if key.is_binary() {
        assert!((1..=MAX_BINARY_KEY_LEN).contains(&key.as_bytes().len()));
    }
}

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
                assert!(parsed.swallow <= MAX_SWALLOW);
                match &parsed.request {
                    Request::MetaGet { key, flags }
                    | Request::MetaSet { key, flags, .. }
                    | Request::MetaSetTooLarge { key, flags }
                    | Request::MetaDelete { key, flags }
                    | Request::MetaArithmetic { key, flags } => check_key(key, Some(flags)),
                    Request::MetaDebug { key } => check_key(key, None),
                    _ => {}
                }
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
                assert!(swallow <= MAX_SWALLOW);
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
