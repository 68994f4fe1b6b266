//! The route cache's key shapes (Zimbra's), made injection-proof.
//!
//! `route:proto=<imap|imapssl|pop3|pop3ssl>;user=<name>` holds a route (`ip:port`) and
//! `alias:user=<login>;ip=<ip>` an account name. Every byte of a name outside printable
//! ASCII, plus space and `%`, is `%XX`-escaped, so no login can add a space, a line end or
//! a second command to what is sent to memcached (Zimbra's CVE-2022-27924 was exactly that).
//! A key longer than memcached's 250 bytes is sent as the lowercase hex MD5 of the key;
//! the node is still chosen by hashing the full key, as Zimbra does.

use md5::{Digest, Md5};

use crate::memcache::MAX_KEY_LEN;

/// A cache key: the logical text (hashed to pick the node) and what goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    logical: String,
    wire: Option<String>,
}

impl CacheKey {
    fn new(logical: String) -> Self {
        let wire = (logical.len() > MAX_KEY_LEN).then(|| {
            Md5::digest(logical.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        Self { logical, wire }
    }

    /// A key of another shape (throttle counters, …), built by the caller.
    pub fn from_logical(logical: impl Into<String>) -> Self {
        Self::new(escape(&logical.into()))
    }

    /// The key as built; consistent hashing uses this.
    pub fn logical(&self) -> &str {
        &self.logical
    }

    /// The key as sent to memcached: the logical key, or its MD5 hex when too long.
    pub fn wire(&self) -> &str {
        self.wire.as_deref().unwrap_or(&self.logical)
    }
}

/// Escapes a name for a key: bytes outside `!`..=`~`, and `%`, become `%XX`.
pub fn escape(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// The mail protocols a route is cached for.
pub const PROTOCOLS: [&str; 4] = ["imap", "imapssl", "pop3", "pop3ssl"];

/// `route:proto=<proto>;user=<name>`.
pub fn route_key(proto: &str, user: &str) -> CacheKey {
    CacheKey::new(format!("route:proto={proto};user={}", escape(user)))
}

/// `alias:user=<login>;ip=<ip>`.
pub fn alias_key(login: &str, ip: &str) -> CacheKey {
    CacheKey::new(format!("alias:user={};ip={}", escape(login), escape(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memcache::valid_key;

    #[test]
    fn zimbra_shapes() {
        assert_eq!(
            route_key("imap", "ann@example.com").wire(),
            "route:proto=imap;user=ann@example.com"
        );
        assert_eq!(
            alias_key("ann", "10.0.0.5").wire(),
            "alias:user=ann;ip=10.0.0.5"
        );
    }

    #[test]
    fn no_name_can_inject_a_command() {
        let evil = "x 0 0 1\r\nset route:proto=imap;user=victim 0 0 14\r\n10.6.6.6:7143\r\nget";
        let k = route_key("imap", evil);
        assert!(valid_key(k.wire().as_bytes()), "{}", k.wire());
        assert!(!k.wire().contains(' ') && !k.wire().contains('\r'));
        assert_eq!(escape("a b%c\u{e9}\t"), "a%20b%25c%C3%A9%09");
    }

    #[test]
    fn long_keys_become_md5_hex() {
        let long = "a".repeat(300) + "@example.com";
        let k = route_key("pop3", &long);
        assert!(k.logical().len() > 250);
        assert_eq!(k.wire().len(), 32);
        assert!(k
            .wire()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let exact = route_key("imap", &"b".repeat(250 - "route:proto=imap;user=".len()));
        assert_eq!(exact.wire().len(), 250);
        assert_eq!(exact.wire(), exact.logical());
    }
}
