//! `mg <key> <flags>*`: a hit is `VA <len> <flags>` and the value (with `v`) or `HD <flags>`;
//! a miss is `EN` (nothing with `q`). Then, in this order: ` Z` when the recache token is
//! already out, ` X` when the item is stale, ` W` when this request wins the token: the
//! first reader of a stale item, of an item `N` created, or of one expiring sooner than
//! `R` asks for.

use codec::memcache::{push_u64, MetaFlags, MetaKey};

use super::{echo_key, echo_opaque, echo_request_flags, flag_num, flag_ttl, OPAQUE_TOO_LONG};
use crate::clock::Now;
use crate::storage::{Held, MetaFetch, Store};

/// Executes `mg`, appending its reply to `out`.
pub(crate) fn meta_get(
    store: &Store,
    key: &MetaKey<'_>,
    flags: &MetaFlags<'_>,
    now: Now,
    out: &mut Vec<u8>,
) {
    let opts = MetaFetch {
        vivify: flags.vivify.is_some(),
        touch: flags.ttl.is_some(),
    };
    store.fetch_meta(key.as_bytes(), now, opts, |item| match item {
        Some(item) => hit(out, flags, item),
        None => miss(out, flags, key),
    });
}

fn miss(out: &mut Vec<u8>, flags: &MetaFlags<'_>, key: &MetaKey<'_>) {
    let start = out.len();
    out.extend_from_slice(b"EN");
    if !echo_request_flags(out, flags, key) {
        out.truncate(start);
        out.extend_from_slice(OPAQUE_TOO_LONG);
        return;
    }
    if flags.has(b'q') {
        out.truncate(start);
        return;
    }
    out.extend_from_slice(b"\r\n");
}

fn hit(out: &mut Vec<u8>, flags: &MetaFlags<'_>, item: &mut Held<'_>) {
    let start = out.len();
    let with_value = flags.has(b'v');
    if with_value {
        out.extend_from_slice(b"VA ");
        push_u64(out, item.value().len() as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    let mut won = false;
    for f in flags.iter() {
        match f.letter {
            b'T' => item.set_exptime(flags.ttl.unwrap_or(0)),
            b'N' if item.created() => {
                item.set_exptime(flags.vivify.unwrap_or(0));
                won = true;
            }
            b'R' => {
                let recache = flags.recache.unwrap_or(0);
                if !item.token_sent() && !item.created() && item.expires_before(recache) {
                    won = true;
                }
            }
            b's' => flag_num(out, b's', item.value().len() as u64),
            b't' => flag_ttl(out, item.ttl()),
            b'c' => flag_num(out, b'c', item.cas()),
            b'f' => flag_num(out, b'f', u64::from(item.flags())),
            b'l' => flag_num(out, b'l', u64::from(item.idle())),
            b'h' => flag_num(out, b'h', u64::from(item.fetched_before())),
            b'O' if f.opaque_too_long() => {
                out.truncate(start);
                out.extend_from_slice(OPAQUE_TOO_LONG);
                // memcached bumps an item it did not lock as it fetches it; one it locked
                // (for N, T, R, l or h) only after a successful answer.
                if flags_lock(flags) || flags.has(b'u') {
                    item.skip_bump();
                }
                return;
            }
            b'O' => echo_opaque(out, f),
            b'k' => echo_key(out, item.key(), item.key_binary()),
            _ => {}
        }
    }
    if item.token_sent() {
        out.extend_from_slice(b" Z");
    }
    if item.stale() {
        out.extend_from_slice(b" X");
        if !item.token_sent() {
            won = true;
        }
    }
    if won {
        out.extend_from_slice(b" W");
        item.send_token();
    }
    out.extend_from_slice(b"\r\n");
    if with_value {
        out.extend_from_slice(item.value());
        out.extend_from_slice(b"\r\n");
    }
    if flags.has(b'u') {
        item.skip_bump();
    }
}

/// Whether memcached fetches the item locked, delaying its LRU bump.
fn flags_lock(flags: &MetaFlags<'_>) -> bool {
    [b'N', b'T', b'R', b'l', b'h'].iter().any(|&l| flags.has(l))
}
