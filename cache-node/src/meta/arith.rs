//! `ma <key> <flags>*`: `HD` or `VA <len>` and the number (nothing with `q`), `NF` or `EX`.
//! `N` vivifies a missing counter at `J` (0 by default); the counter's flags then act in
//! the order sent (`T` and `N` set its expiry, `t` and `c` show it), as in memcached.

use codec::memcache::{push_u64, MetaFlags, MetaKey, MetaMode};

use super::{echo_key, echo_opaque, echo_request_flags, flag_num, flag_ttl, OPAQUE_TOO_LONG};
use crate::clock::Now;
use crate::storage::{ArithOutcome, ArithRequest, Held, Store};

const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";

/// Executes `ma`, appending its reply to `out`.
pub(crate) fn meta_arith(
    store: &Store,
    key: &MetaKey<'_>,
    flags: &MetaFlags<'_>,
    now: Now,
    out: &mut Vec<u8>,
) {
    let decrement = match flags.arithmetic_mode() {
        Ok(mode) => mode == MetaMode::Decrement,
        Err(reply) => {
            out.extend_from_slice(reply.as_bytes());
            out.extend_from_slice(b"\r\n");
            return;
        }
    };
    let req = ArithRequest {
        key: key.as_bytes(),
        decrement,
        delta: flags.delta.unwrap_or(1),
        vivify: flags.vivify.map(|_| flags.initial.unwrap_or(0)),
        compare_cas: flags.compare_cas,
        new_cas: flags.new_cas,
    };
    store.arith(req, now, |outcome, item| match (outcome, item) {
        (ArithOutcome::Value(value), Some(item)) => counted(out, flags, key, value, item),
        (ArithOutcome::NotFound | ArithOutcome::Exists, _) => {
            let start = out.len();
            out.extend_from_slice(if outcome == ArithOutcome::NotFound {
                b"NF"
            } else {
                b"EX"
            });
            if echo_request_flags(out, flags, key) {
                out.extend_from_slice(b"\r\n");
            } else {
                out.truncate(start);
                out.extend_from_slice(OPAQUE_TOO_LONG);
            }
        }
        (ArithOutcome::NonNumeric, _) => out.extend_from_slice(NON_NUMERIC),
        _ => out.extend_from_slice(b"SERVER_ERROR out of memory\r\n"),
    });
}

/// The reply once the counter changed (or was created).
fn counted(
    out: &mut Vec<u8>,
    flags: &MetaFlags<'_>,
    key: &MetaKey<'_>,
    value: u64,
    item: &mut Held<'_>,
) {
    let start = out.len();
    let mut digits = Vec::with_capacity(20);
    push_u64(&mut digits, value);
    let with_value = flags.has(b'v');
    if with_value {
        out.extend_from_slice(b"VA ");
        push_u64(out, digits.len() as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    for f in flags.iter() {
        match f.letter {
            b'c' => flag_num(out, b'c', item.cas()),
            b't' => flag_ttl(out, item.ttl()),
            b'T' => item.set_exptime(flags.ttl.unwrap_or(0)),
            b'N' if item.created() => item.set_exptime(flags.vivify.unwrap_or(0)),
            b'O' if f.opaque_too_long() => {
                // The counter has changed all the same, as in memcached.
                out.truncate(start);
                out.extend_from_slice(OPAQUE_TOO_LONG);
                return;
            }
            b'O' => echo_opaque(out, f),
            b'k' => echo_key(out, key.as_bytes(), key.is_binary()),
            _ => {}
        }
    }
    if flags.has(b'q') {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b"\r\n");
    if with_value {
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"\r\n");
    }
}
