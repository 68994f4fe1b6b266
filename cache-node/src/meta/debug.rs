//! `me <key> [b]`: memcached's debug line for one item, `EN` when there is none.

use codec::memcache::MetaKey;

use super::push_key;
use crate::clock::Now;
use crate::storage::Store;

/// Executes `me`, appending its reply to `out`.
pub(crate) fn meta_debug(store: &Store, key: &MetaKey<'_>, now: Now, out: &mut Vec<u8>) {
    match store.debug(key.as_bytes(), now) {
        Some((info, binary)) => {
            out.extend_from_slice(b"ME ");
            push_key(out, key.as_bytes(), binary);
            out.push(b' ');
            out.extend_from_slice(info.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"EN\r\n"),
    }
}
