//! `incr`, `decr` and `ma`: 64-bit unsigned arithmetic on a value read as memcached reads
//! it, the changed (or vivified) counter then held for `ma`'s flags (`T`, `N`, `t`, `c`).

use super::held::Held;
use super::shard::NewItem;
use super::Store;
use crate::clock::Now;

/// An `incr`/`decr`/`ma` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArithRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Add (wrapping) or subtract (saturating at 0).
    pub decrement: bool,
    /// The amount.
    pub delta: u64,
    /// On a miss, create the item with this value, never expiring (meta `N`, `J`; the
    /// `N` flag then sets its expiry).
    pub vivify: Option<u64>,
    /// Only if the cas matches (meta `C`; 0 means no check, as in memcached).
    pub compare_cas: Option<u64>,
    /// Cas for the changed item (meta `E`).
    pub new_cas: Option<u64>,
}

/// How arithmetic ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The number now stored.
    Value(u64),
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

impl Store {
    /// Runs the arithmetic and hands its outcome to `f`, with the counter held (under its
    /// shard's lock) when there is one. The counter is not bumped as a read would be.
    pub fn arith<R>(
        &self,
        req: ArithRequest<'_>,
        now: Now,
        f: impl FnOnce(ArithOutcome, Option<&mut Held<'_>>) -> R,
    ) -> R {
        let hash = self.hash(req.key);
        let mut shard = self.shard(hash, now);
        let mut digits = Vec::with_capacity(MAX_NUMERIC_LEN);
        let (value, idx, created) = match shard.lookup(hash, req.key, now) {
            None => {
                let Some(initial) = req.vivify else {
                    if req.decrement {
                        shard.stats.decr_misses += 1;
                    } else {
                        shard.stats.incr_misses += 1;
                    }
                    return f(ArithOutcome::NotFound, None);
                };
                codec::memcache::push_u64(&mut digits, initial);
                let cas = req.new_cas.unwrap_or_else(|| self.new_cas());
                let item = NewItem {
                    key: req.key,
                    value: [&digits, &[]],
                    flags: 0,
                    expiry: 0,
                    cas,
                    bits: 0,
                };
                match shard.insert(hash, None, item, now) {
                    Ok(idx) => (initial, idx, true),
                    Err(_) => return f(ArithOutcome::OutOfMemory, None),
                }
            }
            Some(idx) => {
                let slot = shard.slot(idx);
                // memcached's order: an empty value, then the cas, then the number.
                if slot.value().is_empty() {
                    return f(ArithOutcome::NonNumeric, None);
                }
                if req.compare_cas.is_some_and(|c| c != 0 && c != slot.cas) {
                    return f(ArithOutcome::Exists, None);
                }
                let Some(current) = codec::memcache::read_u64(slot.value()) else {
                    return f(ArithOutcome::NonNumeric, None);
                };
                let value = if req.decrement {
                    current.saturating_sub(req.delta)
                } else {
                    current.wrapping_add(req.delta)
                };
                codec::memcache::push_u64(&mut digits, value);
                // A number that still fits is rewritten in place in memcached, keeping the
                // item's marks (stale, token, binary key); a longer one is a new item.
                let bits = if digits.len() <= slot.value().len() {
                    slot.bits
                } else {
                    0
                };
                let (flags, expiry) = (slot.flags, slot.expiry);
                if req.decrement {
                    shard.stats.decr_hits += 1;
                } else {
                    shard.stats.incr_hits += 1;
                }
                let cas = req.new_cas.unwrap_or_else(|| self.new_cas());
                let item = NewItem {
                    key: req.key,
                    value: [&digits, &[]],
                    flags,
                    expiry,
                    cas,
                    bits,
                };
                match shard.insert(hash, Some(idx), item, now) {
                    Ok(idx) => (value, idx, false),
                    Err(_) => return f(ArithOutcome::OutOfMemory, None),
                }
            }
        };
        let mut held = Held::new(shard.slot_mut(idx), now, created);
        f(ArithOutcome::Value(value), Some(&mut held))
    }
}
