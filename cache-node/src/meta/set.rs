//! `ms <key> <datalen> <flags>*` and its data block: `HD` (nothing with `q`), `NS`, `EX` or
//! `NF`, echoing `O`, `k` and `c` (and 1.6.21's `s`) in the order sent.

use codec::memcache::{MetaFlags, MetaKey, MetaMode};

use super::{echo_key, echo_opaque, flag_num};
use crate::clock::Now;
use crate::storage::{Store, StoreMode, StoreOutcome, StoreRequest};

const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";

/// Executes `ms`, appending its reply to `out`.
pub(crate) fn meta_set(
    store: &Store,
    key: &MetaKey<'_>,
    data: &[u8],
    flags: &MetaFlags<'_>,
    now: Now,
    out: &mut Vec<u8>,
) {
    // The parser refused any other mode (skipping the data block).
    let mode = match flags.set_mode() {
        Ok(MetaMode::Add) => StoreMode::Add,
        Ok(MetaMode::Append) => StoreMode::Append,
        Ok(MetaMode::Prepend) => StoreMode::Prepend,
        Ok(MetaMode::Replace) => StoreMode::Replace,
        _ => StoreMode::Set,
    };
    let outcome = store.store(
        StoreRequest {
            mode,
            key: key.as_bytes(),
            data,
            flags: flags.client_flags.unwrap_or(0),
            exptime: flags.ttl.unwrap_or(0),
            compare_cas: flags.compare_cas,
            new_cas: flags.new_cas,
            vivify: flags.vivify,
            invalidate: flags.has(b'I'),
            binary_key: key.is_binary(),
        },
        now,
    );
    let (code, cas, len): (&[u8], u64, usize) = match outcome {
        StoreOutcome::Stored { cas, len } => {
            if flags.has(b'q') {
                return;
            }
            (b"HD", cas, len)
        }
        StoreOutcome::NotStored => (b"NS", 0, data.len()),
        StoreOutcome::Exists => (b"EX", 0, data.len()),
        StoreOutcome::NotFound => (b"NF", 0, data.len()),
        StoreOutcome::OutOfMemory => {
            out.extend_from_slice(NO_MEMORY);
            return;
        }
    };
    out.extend_from_slice(code);
    for f in flags.iter() {
        match f.letter {
            b'O' => echo_opaque(out, f),
            b'k' => echo_key(out, key.as_bytes(), key.is_binary()),
            b'c' => flag_num(out, b'c', cas),
            b's' => flag_num(out, b's', len as u64),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// An `ms` over the item size limit: refused, and (as memcached does) the old value is
/// dropped so that it cannot be read as current.
pub(crate) fn meta_set_too_large(store: &Store, key: &MetaKey<'_>, now: Now, out: &mut Vec<u8>) {
    store.remove(key.as_bytes(), now);
    out.extend_from_slice(TOO_LARGE);
}
