//! nginx auth_http value decoding and the route-cache key builder: arbitrary bytes never
//! panic, decoding inverts encoding, and no name yields a key memcached would misparse.
#![no_main]

use codec::auth_http::{escape, unescape};
use codec::memcache::valid_key;
use codec::route_key::{alias_key, route_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = unescape(data) {
        assert_eq!(unescape(&escape(&decoded)).as_deref(), Ok(&decoded[..]));
        let name = String::from_utf8_lossy(&decoded);
        for key in [route_key("imap", &name), alias_key(&name, "192.0.2.1")] {
            assert!(valid_key(key.wire().as_bytes()), "{:?}", key.wire());
        }
    }
    assert_eq!(unescape(&escape(data)).as_deref(), Ok(data));
});
