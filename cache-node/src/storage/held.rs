//! An item held under its shard's lock while a meta command reads and adjusts it in the
//! order of its flags, as memcached 1.6 does: in `mg a t T30` the `t` shows the old TTL,
//! in `mg a T30 t` the new one; `R` compares with the expiry as `T` left it; an error met
//! half-way (a too-long opaque) keeps what the earlier flags did.
//!
//! [`Store::fetch_meta`] is meta get's lookup (with `N`'s vivify); `arith` hands out the
//! counter it changed the same way.

use super::shard::{NewItem, Slot, FETCHED, KEY_BINARY, STALE, TOKEN_SENT};
use super::Store;
use crate::clock::Now;

/// How meta get looks an item up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaFetch {
    /// On a miss, create an empty item that never expires (meta `N`; the flag then sets
    /// its expiry where it stands).
    pub vivify: bool,
    /// The request sets a TTL (meta `T`): counted as a touch.
    pub touch: bool,
}

/// A locked item. [`Store::fetch_meta`] bumps it in the LRU (marks it fetched, stamps its
/// access time) once the caller is done with it, unless [`Held::skip_bump`] was called.
pub struct Held<'s> {
    slot: &'s mut Slot,
    now: Now,
    created: bool,
    bump: bool,
}

impl<'s> Held<'s> {
    pub(super) fn new(slot: &'s mut Slot, now: Now, created: bool) -> Self {
        Self {
            slot,
            now,
            created,
            bump: true,
        }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        self.slot.key()
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        self.slot.value()
    }

    /// Client flags.
    pub fn flags(&self) -> u32 {
        self.slot.flags
    }

    /// Cas unique.
    pub fn cas(&self) -> u64 {
        self.slot.cas
    }

    /// Whether the key was stored base64-encoded (meta `b`).
    pub fn key_binary(&self) -> bool {
        self.slot.bits & KEY_BINARY != 0
    }

    /// Whether this request created the item (vivify on a miss).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Sets a new expiry from a client exptime (memcached's rules).
    pub fn set_exptime(&mut self, exptime: i64) {
        self.slot.expiry = self.now.expiry(exptime);
    }

    /// Seconds left, as memcached prints them (`t`): `None` for "never", otherwise the
    /// expiry minus now in 32-bit arithmetic (an expiry set in the past wraps, as there).
    pub fn ttl(&self) -> Option<u32> {
        (self.slot.expiry != 0).then(|| self.slot.expiry.wrapping_sub(self.now.rel))
    }

    /// Whether the item expires before `recache` would (meta `R`): it has an expiry, and
    /// that expiry is earlier than the exptime `recache` read by memcached's rules.
    pub fn expires_before(&self, recache: i64) -> bool {
        self.slot.expiry != 0 && self.slot.expiry < self.now.expiry(recache)
    }

    /// Seconds since the previous access (`l`).
    pub fn idle(&self) -> u32 {
        self.now.rel.wrapping_sub(self.slot.last_access)
    }

    /// Whether it had been fetched before (`h`).
    pub fn fetched_before(&self) -> bool {
        self.slot.bits & FETCHED != 0
    }

    /// Marked stale by an invalidation (`X`).
    pub fn stale(&self) -> bool {
        self.slot.bits & STALE != 0
    }

    /// Someone already holds the recache token (`Z`).
    pub fn token_sent(&self) -> bool {
        self.slot.bits & TOKEN_SENT != 0
    }

    /// Hands out the recache token (`W`): later readers see `Z`.
    pub fn send_token(&mut self) {
        self.slot.bits |= TOKEN_SENT;
    }

    /// Leaves LRU position, access time and fetched mark as they are.
    pub fn skip_bump(&mut self) {
        self.bump = false;
    }
}

impl Store {
    /// Meta get's lookup: hands the item (created if `opts.vivify` and missing), or `None`,
    /// to `f` while its shard is locked.
    pub fn fetch_meta<R>(
        &self,
        key: &[u8],
        now: Now,
        opts: MetaFetch,
        f: impl FnOnce(Option<&mut Held<'_>>) -> R,
    ) -> R {
        let hash = self.hash(key);
        let mut shard = self.shard(hash, now);
        if opts.touch {
            shard.stats.cmd_touch += 1;
        }
        let (idx, created) = match shard.lookup(hash, key, now) {
            Some(idx) => {
                shard.stats.get_hits += 1;
                if opts.touch {
                    shard.stats.touch_hits += 1;
                }
                (idx, false)
            }
            None => {
                shard.stats.get_misses += 1;
                if opts.touch {
                    shard.stats.touch_misses += 1;
                }
                if !opts.vivify {
                    return f(None);
                }
                let item = NewItem {
                    key,
                    value: [&[], &[]],
                    flags: 0,
                    expiry: 0,
                    cas: self.new_cas(),
                    bits: 0,
                };
                match shard.insert(hash, None, item, now) {
                    Ok(idx) => (idx, true),
                    Err(_) => {
                        shard.stats.out_of_memory += 1;
                        return f(None);
                    }
                }
            }
        };
        let mut held = Held::new(shard.slot_mut(idx), now, created);
        let result = f(Some(&mut held));
        let bump = held.bump;
        if bump {
            shard.slot_mut(idx).bits |= FETCHED;
            shard.bump(idx, now);
        }
        result
    }
}
