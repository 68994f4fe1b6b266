//! nginx auth_http value decoding, the answer parser and the route-cache key builder:
//! arbitrary bytes never panic, decoding inverts encoding, an answer is only a route when
//! every status is OK and there is a server and a port (a later OK never clears a failure),
//! and no name yields a key memcached would misparse.
#![no_main]

use codec::auth_http::{answer, escape, unescape, Answer, AnswerError};
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
    // Fail closed: a route only when there is a status and every status is OK.
    let statuses: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("auth-status"))
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
        .collect();
    match answer(fields.iter().copied()) {
        Ok(Answer::Route { port, .. }) => {
            assert!(port > 0);
            assert!(!statuses.is_empty() && statuses.iter().all(|s| s == "OK"));
        }
        Ok(Answer::Failed { status, .. }) => {
            assert_ne!(status, "OK");
            assert!(statuses.contains(&status));
        }
        Err(AnswerError::NoStatus) => assert!(statuses.is_empty()),
        Err(_) => assert!(statuses.iter().all(|s| s == "OK")),
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
