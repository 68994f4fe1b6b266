//! SASL responses: arbitrary lines never panic; a decoded OAuth message re-encodes to a
//! line that decodes to the same message (and, for another user, to that user with the
//! same token), with a non-empty user and a bounded token that
//! is part of the message; a decoded PLAIN response splits back into what it came from.
#![no_main]

use base64::Engine;
use codec::sasl::{decode_oauth, decode_plain, OAuthMechanism, MAX_TOKEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b64 = base64::engine::general_purpose::STANDARD;
    // Both as a raw line and as the base64 of arbitrary bytes, so the decoders' insides are
    // reached and not only the base64 check.
    let encoded = b64.encode(data);
    for line in [data, encoded.as_bytes()] {
        for m in [OAuthMechanism::XOAuth2, OAuthMechanism::OAuthBearer] {
            if let Ok(o) = decode_oauth(m, line) {
                assert!(!o.user.is_empty());
                assert!(!o.token.is_empty() && o.token.len() <= MAX_TOKEN);
                assert!(o.message.windows(o.token.len()).any(|w| w == o.token));
                assert_eq!(decode_oauth(m, o.response().as_bytes()).as_ref(), Ok(&o));
                assert_eq!(o.response_as(&o.user), o.response());
                let moved = decode_oauth(m, o.response_as(b"a,b=c@d").as_bytes()).unwrap();
                assert_eq!((&moved.user[..], &moved.token), (&b"a,b=c@d"[..], &o.token));
            }
        }
        if let Ok(p) = decode_plain(line) {
            let joined = [&p.authzid[..], &p.authcid[..], &p.password[..]].join(&0u8);
            let again = b64.encode(&joined);
            let again = if again.is_empty() {
                "=".to_string()
            } else {
                again
            };
            assert_eq!(decode_plain(again.as_bytes()).as_ref(), Ok(&p));
        }
    }
});
