//! nginx auth_http value decoding, the answer parser and the route-cache key builder:
//! arbitrary bytes never panic, decoding inverts encoding, an answer is only a route with
//! an OK status, a server and a port, and no name yields a key memcached would misparse.
#![no_main]

use codec::auth_http::{answer, escape, unescape, Answer};
use codec::memcache::valid_key;
use codec::route_key::{alias_key, route_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The input as header lines "name: value".
    let fields: Vec<(&str, &[u8])> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((
                std::str::from_utf8(&line[..colon]).ok()?,
                &line[colon + 1..],
            ))
        })
        .collect();
    if let Ok(Answer::Route { port, .. }) = answer(fields.iter().copied()) {
        assert!(port > 0);
        assert!(fields
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("auth-status")
                && String::from_utf8_lossy(v).trim() == "OK"));
    }
    if let Ok(decoded) = unescape(data) {
        assert_eq!(unescape(&escape(&decoded)).as_deref(), Ok(&decoded[..]));
        let name = String::from_utf8_lossy(&decoded);
        for key in [route_key("imap", &name), alias_key(&name, "192.0.2.1")] {
            assert!(valid_key(key.wire().as_bytes()), "{:?}", key.wire());
        }
    }
    assert_eq!(unescape(&escape(data)).as_deref(), Ok(data));
});
