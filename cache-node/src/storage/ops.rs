//! The operations the protocol needs, each one lock of one shard: fetch (`get`, `gat`),
//! store (six modes, cas, meta's invalidate), delete (meta's stale and tombstone forms),
//! touch and the debug dump. Meta get and arithmetic, which adjust an item in the order
//! of their flags, are in `held` and `arith`.

use super::shard::{NewItem, FETCHED, KEY_BINARY, STALE, TOKEN_SENT};
use super::Store;
use crate::clock::Now;

/// What a fetch may do besides reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Set a new exptime (`gat`).
    pub touch: Option<i64>,
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
    /// With `compare_cas` in set or replace mode: an older cas still stores, but marks
    /// the item stale, keeping its expiry and recache token (meta `I`).
    pub invalidate: bool,
    /// The key came base64-encoded (meta `b`): meta replies show it encoded.
    pub binary_key: bool,
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
        if opts.touch.is_some() {
            shard.stats.cmd_touch += 1;
        }
        let Some(idx) = shard.lookup(hash, key, now) else {
            shard.stats.get_misses += 1;
            if opts.touch.is_some() {
                shard.stats.touch_misses += 1;
            }
            return f(None);
        };
        shard.stats.get_hits += 1;
        if let Some(t) = opts.touch {
            shard.stats.touch_hits += 1;
            shard.slot_mut(idx).expiry = now.expiry(t);
        }
        shard.slot_mut(idx).bits |= FETCHED;
        shard.bump(idx, now);
        let slot = shard.slot(idx);
        f(Some(Fetched {
            key: slot.key(),
            value: slot.value(),
            flags: slot.flags,
            cas: slot.cas,
        }))
    }

    /// Stores an item by `req.mode`.
    pub fn store(&self, req: StoreRequest<'_>, now: Now) -> StoreOutcome {
        let hash = self.hash(req.key);
        let mut shard = self.shard(hash, now);
        shard.stats.cmd_set += 1;
        let existing = shard.lookup(hash, req.key, now);
        let mut bits = if req.binary_key { KEY_BINARY } else { 0 };
        // The old item's expiry, when a stale store keeps it.
        let mut kept_expiry = None;
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
        // memcached's cas command is a set or replace with a cas; append and prepend only
        // check a cas that is not 0.
        let cas_mode = matches!(req.mode, StoreMode::Set | StoreMode::Replace);
        if let Some(want) = req.compare_cas.filter(|&c| cas_mode || c != 0) {
            match existing {
                None if cas_mode => {
                    shard.stats.cas_misses += 1;
                    return StoreOutcome::NotFound;
                }
                Some(idx) => {
                    let old = shard.slot(idx);
                    if old.cas == want {
                        shard.stats.cas_hits += 1;
                    } else if cas_mode && req.invalidate && want < old.cas {
                        // A late write of an older version: stored, but stale, with the
                        // old item's expiry and recache token.
                        bits |= STALE | (old.bits & TOKEN_SENT);
                        kept_expiry = Some(old.expiry);
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
                // memcached builds a new item, without the old one's marks.
                bits = 0;
                (&joined[..], old.flags, old.expiry)
            }
            (StoreMode::Append | StoreMode::Prepend, None) => {
                (req.data, req.flags, now.expiry(req.vivify.unwrap_or(0)))
            }
            _ => (
                req.data,
                req.flags,
                kept_expiry.unwrap_or_else(|| now.expiry(req.exptime)),
            ),
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

    /// `me`: memcached's debug line for an item (`exp= la= cas= fetch= cls= size=`), and
    /// whether its key is binary (shown base64-encoded).
    pub fn debug(&self, key: &[u8], now: Now) -> Option<(String, bool)> {
        let hash = self.hash(key);
        let mut shard = self.shard(hash, now);
        let idx = shard.lookup(hash, key, now)?;
        let s = shard.slot(idx);
        let line = format!(
            "exp={} la={} cas={} fetch={} cls=1 size={}",
            now.remaining(s.expiry),
            now.rel.saturating_sub(s.last_access),
            s.cas,
            if s.bits & FETCHED != 0 { "yes" } else { "no" },
            codec::memcache::item_size(key.len(), s.value().len()),
        );
        Some((line, s.bits & KEY_BINARY != 0))
    }
}
