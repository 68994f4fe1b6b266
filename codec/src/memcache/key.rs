//! The key of a meta command: the bytes as sent, or, with the `b` flag, the bytes its
//! base64 text decodes to (binary keys: any bytes, spaces and control bytes included).

use super::base64;
use super::MAX_KEY_LEN;

/// Longest binary key: what the longest key text (250 bytes) decodes to.
pub const MAX_BINARY_KEY_LEN: usize = MAX_KEY_LEN / 4 * 3;

/// A meta command's key. Two keys are equal when their bytes and their binary-ness are.
#[derive(Clone, Copy)]
pub struct MetaKey<'a> {
    repr: Repr<'a>,
}

#[derive(Clone, Copy)]
enum Repr<'a> {
    Text(&'a [u8]),
    Binary {
        buf: [u8; MAX_BINARY_KEY_LEN],
        len: u8,
    },
}

impl<'a> MetaKey<'a> {
    /// A key used as sent (no `b` flag).
    pub fn text(key: &'a [u8]) -> Self {
        Self {
            repr: Repr::Text(key),
        }
    }

    /// A binary key (sent base64-encoded with the `b` flag); `None` when empty or longer
    /// than [`MAX_BINARY_KEY_LEN`]. A request carrying it must have `b` among its flags.
    pub fn binary(key: &[u8]) -> Option<Self> {
        if key.is_empty() || key.len() > MAX_BINARY_KEY_LEN {
            return None;
        }
        let mut buf = [0; MAX_BINARY_KEY_LEN];
        buf[..key.len()].copy_from_slice(key);
        Some(Self {
            repr: Repr::Binary {
                buf,
                len: key.len() as u8,
            },
        })
    }

    /// Decodes the base64 text of a `b` key by memcached's rules ([`base64`]); `None` where
    /// memcached refuses it. `text` is a valid key, so at most 250 bytes.
    pub(crate) fn decode(text: &[u8]) -> Option<Self> {
        if text.len() > MAX_KEY_LEN {
            return None;
        }
        let mut buf = [0; MAX_BINARY_KEY_LEN];
        let len = base64::decode_into(text, &mut buf)?;
        Some(Self {
            repr: Repr::Binary {
                buf,
                len: len as u8,
            },
        })
    }

    /// The key's bytes (decoded, for a binary key).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Text(key) => key,
            Repr::Binary { buf, len } => &buf[..usize::from(*len)],
        }
    }

    /// Whether it came base64-encoded (`b`).
    pub fn is_binary(&self) -> bool {
        matches!(self.repr, Repr::Binary { .. })
    }

    /// Appends the key's wire form: as is, or base64 for a binary key.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.repr {
            Repr::Text(key) => out.extend_from_slice(key),
            Repr::Binary { .. } => base64::encode(self.as_bytes(), out),
        }
    }
}

impl PartialEq for MetaKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.is_binary() == other.is_binary() && self.as_bytes() == other.as_bytes()
    }
}

impl Eq for MetaKey<'_> {}

impl std::fmt::Debug for MetaKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_binary() { "binary" } else { "text" };
        write!(f, "MetaKey::{kind}(\"{}\")", self.as_bytes().escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_binary_and_wire_forms() {
        let text = MetaKey::text(b"Zm9v");
        let decoded = MetaKey::decode(b"Zm9v").unwrap();
        assert_eq!(decoded, MetaKey::binary(b"foo").unwrap());
        assert_ne!(decoded, MetaKey::text(b"foo"));
        assert_eq!(decoded.as_bytes(), b"foo");
        let mut wire = Vec::new();
        text.encode(&mut wire);
        wire.push(b' ');
        // A lenient spelling re-encodes canonically.
        MetaKey::decode(b"!Zm9v!").unwrap().encode(&mut wire);
        assert_eq!(wire, b"Zm9v Zm9v");
        assert!(MetaKey::decode(b"abc").is_none());
        assert!(MetaKey::binary(b"").is_none());
        assert!(MetaKey::binary(&[7; MAX_BINARY_KEY_LEN]).is_some());
        assert!(MetaKey::binary(&[7; MAX_BINARY_KEY_LEN + 1]).is_none());
        let longest = MetaKey::binary(&[0xff; MAX_BINARY_KEY_LEN]).unwrap();
        let mut wire = Vec::new();
        longest.encode(&mut wire);
        assert!(wire.len() <= MAX_KEY_LEN);
        assert_eq!(MetaKey::decode(&wire), Some(longest));
    }
}
