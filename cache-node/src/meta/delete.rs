//! `md <key> <flags>*`: `HD` (nothing with `q`), `NF` or `EX`, echoing `O` and `k`. With `I`
//! the item is not removed but marked stale, its recache token taken back (the next `mg`
//! wins it) and its cas renewed; `T` then sets its expiry.

use codec::memcache::{MetaFlags, MetaKey};

use super::echo_request_flags;
use crate::clock::Now;
use crate::storage::{DeleteOutcome, DeleteRequest, Store};

/// Executes `md`, appending its reply to `out`.
pub(crate) fn meta_delete(
    store: &Store,
    key: &MetaKey<'_>,
    flags: &MetaFlags<'_>,
    now: Now,
    out: &mut Vec<u8>,
) {
    let outcome = store.delete(
        key.as_bytes(),
        now,
        DeleteRequest {
            compare_cas: flags.compare_cas,
            invalidate: flags.has(b'I'),
            ttl: flags.ttl,
            remove_value: flags.has(b'x'),
            flags: flags.client_flags.unwrap_or(0),
            new_cas: flags.new_cas,
        },
    );
    let code: &[u8] = match outcome {
        DeleteOutcome::Deleted if flags.has(b'q') => return,
        DeleteOutcome::Deleted => b"HD",
        DeleteOutcome::NotFound => b"NF",
        DeleteOutcome::Exists => b"EX",
    };
    out.extend_from_slice(code);
    // The parser refused a too-long opaque before anything was deleted.
    echo_request_flags(out, flags, key);
    out.extend_from_slice(b"\r\n");
}
