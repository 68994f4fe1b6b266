//! The operations the protocol needs, each one lock of one shard: fetch (with meta get's
//! touch / vivify / recache), store (six modes, cas, meta's invalidate), delete (meta's
//! stale and tombstone forms), arithmetic, touch and the debug dump.

use super::shard::{NewItem, FETCHED, STALE, TOKEN_SENT};
use super::Store;
use crate::clock::Now;

/// What a fetch may do besides reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Set a new exptime (`gat`, meta `T`).
    pub touch: Option<i64>,
    /// On a miss, create an empty item with this exptime and hand out the win (meta `N`).
    pub vivify: Option<i64>,
    /// Hand out the win if fewer than this many seconds are left (meta `R`).
    pub recache: Option<i64>,
    /// Leave LRU position, access time and fetched bit alone (meta `u`).
    pub no_bump: bool,
}

/// An item as a fetch saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// Cas unique.
    pub cas: u64,
    /// Seconds left, -1 for none.
    pub ttl: i64,
    /// Seconds since the previous access.
    pub idle: u32,
    /// Whether it had been fetched before this fetch.
    pub hit_before: bool,
    /// This caller won the right to recache (meta `W`).
    pub won: bool,
    /// Marked stale by an invalidation (meta `X`).
    pub stale: bool,
    /// Someone else already holds the recache token (meta `Z`).
    pub token_taken: bool,
}

/// The storage command modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Always store (with `compare_cas`: the `cas` command).
    Set,
    /// Only if absent.
    Add,
    /// Only if present.
    Replace,
    /// Append to the present value.
    Append,
    /// Prepend to the present value.
    Prepend,
}

/// A store request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreRequest<'a> {
    /// The mode.
    pub mode: StoreMode,
    /// The key.
    pub key: &'a [u8],
    /// The value (the piece to add, for append/prepend).
    pub data: &'a [u8],
    /// Client flags (ignored by append/prepend).
    pub flags: u32,
    /// Client exptime (ignored by append/prepend unless they vivify).
    pub exptime: i64,
    /// Store only if the item's cas equals this.
    pub compare_cas: Option<u64>,
    /// Use this cas for the new item instead of a fresh one (meta `E`).
    pub new_cas: Option<u64>,
    /// Append/prepend on a miss create the item with this exptime (meta `N`).
    pub vivify: Option<i64>,
    /// With `compare_cas`: an older cas still stores, but marks the item stale (meta `I`).
    pub invalidate: bool,
}

/// How a store ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored; the new item's cas and value length.
    Stored {
        /// New cas.
        cas: u64,
        /// Final value length (after append/prepend).
        len: usize,
    },
    /// The mode's condition failed.
    NotStored,
    /// Cas mismatch.
    Exists,
    /// Cas given but no item.
    NotFound,
    /// No room even after evicting everything evictable.
    OutOfMemory,
}

/// A delete request (classic `delete` is the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Delete only if the cas matches (meta `C`).
    pub compare_cas: Option<u64>,
    /// Mark stale instead of removing (meta `I`).
    pub invalidate: bool,
    /// New exptime for an invalidated or tombstoned item (meta `T`).
    pub ttl: Option<i64>,
    /// Replace the value with an empty one, keeping the item (meta `x`).
    pub remove_value: bool,
    /// Client flags for the tombstone (meta `F`).
    pub flags: u32,
    /// Cas for the changed item (meta `E`).
    pub new_cas: Option<u64>,
}

/// How a delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Removed (or marked).
    Deleted,
    /// No such item.
    NotFound,
    /// Cas mismatch.
    Exists,
}

/// An `incr`/`decr`/`ma` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArithRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Add (wrapping) or subtract (saturating at 0).
    pub decrement: bool,
    /// The amount.
    pub delta: u64,
    /// On a miss, create the item with this exptime and initial value (meta `N`, `J`).
    pub vivify: Option<(i64, u64)>,
    /// Only if the cas matches (meta `C`).
    pub compare_cas: Option<u64>,
    /// Cas for the changed item (meta `E`).
    pub new_cas: Option<u64>,
    /// New exptime (meta `T`).
    pub touch: Option<i64>,
}

/// How arithmetic ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The new value.
    Value {
        /// The number now stored.
        value: u64,
        /// The item's cas.
        cas: u64,
        /// Seconds left, -1 for none.
        ttl: i64,
    },
    /// No such item.
    NotFound,
    /// The stored value is not a decimal number.
    NonNumeric,
    /// Cas mismatch.
    Exists,
    /// No room for the new item.
    OutOfMemory,
}

/// Longest decimal of a u64.
const MAX_NUMERIC_LEN: usize = 20;

/// A stored value read as a counter: digits, optionally followed by spaces (memcached pads
/// shrunken counters with spaces and reads them back).
fn as_counter(value: &[u8]) -> Option<u64> {
    let digits = value.len() - value.iter().rev().take_while(|&&b| b == b' ').count();
    if value.len() > MAX_NUMERIC_LEN + 2 {
        return None;
    }
    codec::memcache::parse_u64(&value[..digits])
}

impl Store {
    /// Looks `key` up and hands the item (or `None`) to `f` while the shard is locked.
    pub fn fetch<R>(
        &self,
        key: &[u8],
        now: Now,
        opts: FetchOptions,
        f: impl FnOnce(Option<Fetched<'_>>) -> R,
    ) -> R {
        let hash = self.hash(key);
        let mut shard = self.shard(hash, now);
        let mut created = false;
        let idx = match shard.lookup(hash, key, now) {
            Some(idx) => idx,
            None => {
                if opts.touch.is_some() {
                    shard.stats.touch_misses += 1;
                    shard.stats.cmd_touch += 1;
                }
                shard.stats.get_misses += 1;
                let Some(ttl) = opts.vivify else {
                    return f(None);
                };
                let item = NewItem {
                    key,
                    value: [&[], &[]],
                    flags: 0,
                    expiry: now.expiry(ttl),
                    cas: self.new_cas(),
                    bits: 0,
                };
                match shard.insert(hash, None, item, now) {
                    Ok(idx) => {
                        created = true;
                        idx
                    }
                    Err(_) => {
                        shard.stats.out_of_memory += 1;
                        return f(None);
                    }
                }
            }
        };
        if !created {
            shard.stats.get_hits += 1;
            if opts.touch.is_some() {
                shard.stats.touch_hits += 1;
                shard.stats.cmd_touch += 1;
            }
        }
        let slot = shard.slot_mut(idx);
        if let Some(t) = opts.touch {
            slot.expiry = now.expiry(t);
        }
        let bits = slot.bits;
        let token_taken = bits & TOKEN_SENT != 0;
        let stale = bits & STALE != 0;
        let recache_due = opts.recache.is_some_and(|r| {
            !created && slot.expiry != 0 && i64::from(slot.expiry) < i64::from(now.rel) + r
        });
        let won = !token_taken && (created || recache_due || stale);
        if won {
            slot.bits |= TOKEN_SENT;
        }
        let idle = now.rel.saturating_sub(slot.last_access);
        let hit_before = bits & FETCHED != 0;
        if !opts.no_bump {
            slot.bits |= FETCHED;
            shard.bump(idx, now);
        }
        let slot = shard.slot(idx);
        f(Some(Fetched {
            key: slot.key(),
            value: slot.value(),
            flags: slot.flags,
            cas: slot.cas,
            ttl: now.remaining(slot.expiry),
            idle,
            hit_before,
            won,
            stale,
            token_taken,
        }))
    }

    /// Stores an item by `req.mode`.
    pub fn store(&self, req: StoreRequest<'_>, now: Now) -> StoreOutcome {
        let hash = self.hash(req.key);
        let mut shard = self.shard(hash, now);
        shard.stats.cmd_set += 1;
        let existing = shard.lookup(hash, req.key, now);
        let mut bits = 0;
        match (req.mode, existing) {
            (StoreMode::Add, Some(idx)) => {
                // memcached refreshes an item that an `add` collided with.
                shard.bump(idx, now);
                return StoreOutcome::NotStored;
            }
            (StoreMode::Replace, None) if req.compare_cas.is_none() => {
                return StoreOutcome::NotStored
            }
            (StoreMode::Append | StoreMode::Prepend, None) if req.vivify.is_none() => {
                return StoreOutcome::NotStored
            }
            _ => {}
        }
        if let Some(want) = req.compare_cas {
            match existing {
                None if matches!(req.mode, StoreMode::Set | StoreMode::Replace) => {
                    shard.stats.cas_misses += 1;
                    return StoreOutcome::NotFound;
                }
                Some(idx) => {
                    let have = shard.slot(idx).cas;
                    if have == want {
                        shard.stats.cas_hits += 1;
                    } else if req.invalidate && want < have {
                        bits |= STALE;
                        shard.stats.cas_hits += 1;
                    } else {
                        shard.stats.cas_badval += 1;
                        return StoreOutcome::Exists;
                    }
                }
                None => {}
            }
        }
        let cas = req.new_cas.unwrap_or_else(|| self.new_cas());
        let joined;
        let (value, flags, expiry) = match (req.mode, existing) {
            (StoreMode::Append | StoreMode::Prepend, Some(idx)) => {
                let old = shard.slot(idx);
                let len = old.value().len() + req.data.len();
                if codec::memcache::item_size(req.key.len(), len) > self.config.max_item_size {
                    return StoreOutcome::NotStored;
                }
                let mut v = Vec::with_capacity(len);
                if req.mode == StoreMode::Append {
                    v.extend_from_slice(old.value());
                    v.extend_from_slice(req.data);
                } else {
                    v.extend_from_slice(req.data);
                    v.extend_from_slice(old.value());
                }
                joined = v;
                (&joined[..], old.flags, old.expiry)
            }
            (StoreMode::Append | StoreMode::Prepend, None) => {
                (req.data, req.flags, now.expiry(req.vivify.unwrap_or(0)))
            }
            _ => (req.data, req.flags, now.expiry(req.exptime)),
        };
        let len = value.len();
        let item = NewItem {
            key: req.key,
            value: [value, &[]],
            flags,
            expiry,
            cas,
            bits,
        };
        match shard.insert(hash, existing, item, now) {
            Ok(_) => StoreOutcome::Stored { cas, len },
            Err(_) => {
                shard.stats.out_of_memory += 1;
                StoreOutcome::OutOfMemory
            }
        }
    }

    /// Drops the item under `key`, if any (what a refused oversized `set` does).
    pub fn remove(&self, key: &[u8], now: Now) {
        let hash = self.hash(key);
        let mut shard = self.shard(hash, now);
        if let Some(idx) = shard.lookup(hash, key, now) {
            shard.remove(hash, idx);
        }
    }

    /// Deletes (or invalidates, or tombstones) the item under `key`.
    pub fn delete(&self, key: &[u8], now: Now, req: DeleteRequest) -> DeleteOutcome {
        let hash = self.hash(key);
        let mut shard = self.shard(hash, now);
        let Some(idx) = shard.lookup(hash, key, now) else {
            shard.stats.delete_misses += 1;
            return DeleteOutcome::NotFound;
        };
        if req.compare_cas.is_some_and(|c| c != shard.slot(idx).cas) {
            shard.stats.delete_misses += 1;
            return DeleteOutcome::Exists;
        }
        let idx = if req.remove_value {
            let slot = shard.slot(idx);
            let item = NewItem {
                key,
                value: [&[], &[]],
                flags: req.flags,
                expiry: now.expiry(req.ttl.unwrap_or(0)),
                cas: req.new_cas.unwrap_or(slot.cas),
                bits: 0,
            };
            match shard.insert(hash, Some(idx), item, now) {
                Ok(idx) => idx,
                Err(_) => return DeleteOutcome::NotFound,
            }
        } else {
            idx
        };
        if req.invalidate {
            let cas = req.new_cas.unwrap_or_else(|| self.new_cas());
            let slot = shard.slot_mut(idx);
            if let Some(t) = req.ttl {
                slot.expiry = now.expiry(t);
            }
            slot.bits = (slot.bits | STALE) & !TOKEN_SENT;
            slot.cas = cas;
        } else if !req.remove_value {
            shard.stats.delete_hits += 1;
            shard.remove(hash, idx);
        }
        DeleteOutcome::Deleted
    }

    /// `incr`/`decr`/`ma`: 64-bit unsigned arithmetic on a decimal value.
    pub fn arith(&self, req: ArithRequest<'_>, now: Now) -> ArithOutcome {
        let hash = self.hash(req.key);
        let mut shard = self.shard(hash, now);
        let Some(idx) = shard.lookup(hash, req.key, now) else {
            let Some((ttl, initial)) = req.vivify else {
                if req.decrement {
                    shard.stats.decr_misses += 1;
                } else {
                    shard.stats.incr_misses += 1;
                }
                return ArithOutcome::NotFound;
            };
            let mut digits = Vec::with_capacity(MAX_NUMERIC_LEN);
            codec::memcache::push_u64(&mut digits, initial);
            let cas = req.new_cas.unwrap_or_else(|| self.new_cas());
            let expiry = now.expiry(req.touch.unwrap_or(ttl));
            let item = NewItem {
                key: req.key,
                value: [&digits, &[]],
                flags: 0,
                expiry,
                cas,
                bits: 0,
            };
            return match shard.insert(hash, None, item, now) {
                Ok(_) => ArithOutcome::Value {
                    value: initial,
                    cas,
                    ttl: now.remaining(expiry),
                },
                Err(_) => ArithOutcome::OutOfMemory,
            };
        };
        let slot = shard.slot(idx);
        if req.compare_cas.is_some_and(|c| c != slot.cas) {
            return ArithOutcome::Exists;
        }
        let Some(current) = as_counter(slot.value()) else {
            return ArithOutcome::NonNumeric;
        };
        let value = if req.decrement {
            shard.stats.decr_hits += 1;
            current.saturating_sub(req.delta)
        } else {
            shard.stats.incr_hits += 1;
            current.wrapping_add(req.delta)
        };
        let slot = shard.slot(idx);
        let (flags, bits) = (slot.flags, slot.bits);
        let expiry = match req.touch {
            Some(t) => now.expiry(t),
            None => slot.expiry,
        };
        let cas = req.new_cas.unwrap_or_else(|| self.new_cas());
        let mut digits = Vec::with_capacity(MAX_NUMERIC_LEN);
        codec::memcache::push_u64(&mut digits, value);
        let item = NewItem {
            key: req.key,
            value: [&digits, &[]],
            flags,
            expiry,
            cas,
            bits,
        };
        match shard.insert(hash, Some(idx), item, now) {
            Ok(_) => ArithOutcome::Value {
                value,
                cas,
                ttl: now.remaining(expiry),
            },
            Err(_) => ArithOutcome::OutOfMemory,
        }
    }

    /// `touch`: sets a new exptime; false when there is no item.
    pub fn touch(&self, key: &[u8], now: Now, exptime: i64) -> bool {
        let hash = self.hash(key);
        let mut shard = self.shard(hash, now);
        shard.stats.cmd_touch += 1;
        match shard.lookup(hash, key, now) {
            Some(idx) => {
                shard.stats.touch_hits += 1;
                shard.slot_mut(idx).expiry = now.expiry(exptime);
                shard.bump(idx, now);
                true
            }
            None => {
                shard.stats.touch_misses += 1;
                false
            }
        }
    }

    /// `me`: memcached's debug line for an item (`exp= la= cas= fetch= cls= size=`).
    pub fn debug(&self, key: &[u8], now: Now) -> Option<String> {
        let hash = self.hash(key);
        let mut shard = self.shard(hash, now);
        let idx = shard.lookup(hash, key, now)?;
        let s = shard.slot(idx);
        Some(format!(
            "exp={} la={} cas={} fetch={} cls=1 size={}",
            now.remaining(s.expiry),
            now.rel.saturating_sub(s.last_access),
            s.cas,
            if s.bits & FETCHED != 0 { "yes" } else { "no" },
            codec::memcache::item_size(key.len(), s.value().len()),
        ))
    }
}
