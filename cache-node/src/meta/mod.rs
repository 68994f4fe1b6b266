//! The meta commands against the store, one file each (`mg`, `ms`, `md`, `ma`, `me`),
//! replies byte for byte as memcached 1.6.18 writes them (`proto_text.c`).
//!
//! `mg` and `ma` act on their flags in the order sent: `T` and `N` set the expiry where
//! they stand, so a `t` before them shows the old TTL; a too-long opaque met on the way
//! is answered `CLIENT_ERROR opaque token too long` after what came before it took
//! effect (a vivified item stays, an `ma` has counted). The parser has refused every
//! other malformed flag.
//!
//! Keys sent base64-encoded (`b`) are echoed by `k` base64-encoded and followed by ` b`;
//! an `mg` hit and `me` echo the key as the item was stored (`ms … b` marks it binary).

mod arith;
mod debug;
mod delete;
mod get;
mod set;

pub(crate) use arith::meta_arith;
pub(crate) use debug::meta_debug;
pub(crate) use delete::meta_delete;
pub(crate) use get::meta_get;
pub(crate) use set::{meta_set, meta_set_too_large};

use codec::memcache::{push_u64, MetaFlag, MetaFlags, MetaKey};

const OPAQUE_TOO_LONG: &[u8] = b"CLIENT_ERROR opaque token too long\r\n";

/// Appends ` <letter><value>`.
fn flag_num(out: &mut Vec<u8>, letter: u8, value: u64) {
    out.push(b' ');
    out.push(letter);
    push_u64(out, value);
}

/// Appends ` t<seconds left>`, `-1` for an item that never expires.
fn flag_ttl(out: &mut Vec<u8>, ttl: Option<u32>) {
    match ttl {
        Some(ttl) => flag_num(out, b't', u64::from(ttl)),
        None => out.extend_from_slice(b" t-1"),
    }
}

/// Appends the opaque token as sent (` O…`).
fn echo_opaque(out: &mut Vec<u8>, flag: MetaFlag<'_>) {
    out.extend_from_slice(b" O");
    out.extend_from_slice(flag.arg);
}

/// Appends the key (` k…`), base64-encoded and followed by ` b` for a binary key.
fn echo_key(out: &mut Vec<u8>, key: &[u8], binary: bool) {
    out.extend_from_slice(b" k");
    push_key(out, key, binary);
    if binary {
        out.extend_from_slice(b" b");
    }
}

/// Appends a key as memcached shows it: base64-encoded when binary.
fn push_key(out: &mut Vec<u8>, key: &[u8], binary: bool) {
    match MetaKey::binary(key).filter(|_| binary) {
        Some(key) => key.encode(out),
        None => out.extend_from_slice(key),
    }
}

/// Appends the `O` and `k` flags a reply without an item carries (a miss, `NF`, `EX`,
/// `md`'s replies), in the order sent; false (nothing written) when the opaque is too
/// long, which the caller answers instead.
fn echo_request_flags(out: &mut Vec<u8>, flags: &MetaFlags<'_>, key: &MetaKey<'_>) -> bool {
    let start = out.len();
    for f in flags.iter() {
        match f.letter {
            b'O' if f.opaque_too_long() => {
                out.truncate(start);
                return false;
            }
            b'O' => echo_opaque(out, f),
            b'k' => echo_key(out, key.as_bytes(), key.is_binary()),
            _ => {}
        }
    }
    true
}
