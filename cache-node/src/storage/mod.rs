//! The cache's data: items with flags, expiry and cas, bounded in memory with LRU eviction.
//!
//! The store is split into shards, each behind its own mutex, chosen by the key's hash.
//! Each shard has its own LRU list and an equal share of the memory limit (memcached
//! keeps one LRU per slab class; this is the same approximation of a global LRU). The shard
//! count is chosen so that every shard can hold at least a few maximum-size items.
//!
//! Every operation takes the current time as an argument ([`Now`]) rather than reading a
//! clock, so expiry is tested by passing times, without sleeping.
//!
//! The operations are in `ops` (fetch, store, delete, touch, the debug line), `held`
//! (meta get, which holds an item while its flags act on it in order) and `arith`.

mod arith;
mod held;
mod ops;
mod shard;
mod stats;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use hashbrown::DefaultHashBuilder;

pub use arith::{ArithOutcome, ArithRequest};
pub use held::{Held, MetaFetch};
pub use ops::{
    DeleteOutcome, DeleteRequest, FetchOptions, Fetched, StoreMode, StoreOutcome, StoreRequest,
};
pub use stats::{ShardStats, StoreStats};

use crate::clock::Now;
use shard::Shard;

/// How big the store may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Bytes of keys, values and per-item overhead held at most.
    pub memory_limit: usize,
    /// Largest item (memcached's accounting: see [`codec::memcache::item_size`]).
    pub max_item_size: usize,
}

/// The sharded in-memory store.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    hasher: DefaultHashBuilder,
    shard_mask: u64,
    next_cas: AtomicU64,
    /// Pending `flush_all`: generation in the low 32 bits, effective time in the high 32.
    flush: AtomicU64,
    cmd_flush: AtomicU64,
    config: StoreConfig,
}

fn shard_count(config: &StoreConfig) -> usize {
    // At least four maximum-size items per shard, at most 64 shards.
    let per = config.max_item_size.max(1) * 4;
    let n = (config.memory_limit / per).clamp(1, 64);
    1 << (usize::BITS - 1 - n.leading_zeros())
}

impl Store {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        let n = shard_count(&config);
        let hasher = DefaultHashBuilder::default();
        let shards = (0..n)
            .map(|_| Mutex::new(Shard::new(config.memory_limit / n, hasher)))
            .collect();
        Self {
            shards,
            hasher,
            shard_mask: n as u64 - 1,
            next_cas: AtomicU64::new(1),
            flush: AtomicU64::new(0),
            cmd_flush: AtomicU64::new(0),
            config,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Locks the shard for `hash`, applying a pending delayed flush first if it is due.
    fn shard(&self, hash: u64, now: Now) -> MutexGuard<'_, Shard> {
        let idx = ((hash >> 32) & self.shard_mask) as usize;
        let mut shard = lock(&self.shards[idx]);
        self.apply_flush(&mut shard, now);
        shard
    }

    fn apply_flush(&self, shard: &mut Shard, now: Now) {
        let flush = self.flush.load(Ordering::Acquire);
        let generation = flush as u32;
        let at = (flush >> 32) as u32;
        if generation != shard.applied_flush && now.rel >= at {
            shard.clear();
            shard.applied_flush = generation;
        }
    }

    fn new_cas(&self) -> u64 {
        self.next_cas.fetch_add(1, Ordering::Relaxed)
    }

    /// `flush_all [delay]`: every item stored before the flush time disappears.
    pub fn flush_all(&self, now: Now, delay: i64) {
        self.cmd_flush.fetch_add(1, Ordering::Relaxed);
        let at = if delay > 0 {
            now.expiry(delay)
        } else {
            now.rel
        };
        let mut current = self.flush.load(Ordering::Acquire);
        loop {
            let generation = (current as u32).wrapping_add(1).max(1);
            let next = (u64::from(at) << 32) | u64::from(generation);
            match self
                .flush
                .compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        if at <= now.rel {
            for shard in self.shards.iter() {
                self.apply_flush(&mut lock(shard), now);
            }
        }
    }

    /// Removes expired items, visiting at most `budget` slots per shard; returns the count.
    pub fn sweep(&self, now: Now, budget: usize) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let mut shard = lock(s);
                self.apply_flush(&mut shard, now);
                shard.sweep(now, budget)
            })
            .sum()
    }

    /// Sums the shards' counters.
    pub fn stats(&self) -> StoreStats {
        let mut out = StoreStats {
            limit_maxbytes: self.config.memory_limit as u64,
            cmd_flush: self.cmd_flush.load(Ordering::Relaxed),
            ..Default::default()
        };
        for s in self.shards.iter() {
            let shard = lock(s);
            out.counters += shard.stats;
            out.curr_items += shard.items as u64;
            out.bytes += shard.bytes as u64;
        }
        out
    }

    /// Zeroes the event counters (`stats reset`).
    pub fn reset_stats(&self) {
        for s in self.shards.iter() {
            let mut shard = lock(s);
            let total_items = shard.stats.total_items;
            shard.stats = ShardStats {
                total_items,
                ..Default::default()
            };
        }
        self.cmd_flush.store(0, Ordering::Relaxed);
    }

    /// Number of shards (reported in `stats settings`).
    pub fn shards(&self) -> usize {
        self.shards.len()
    }
}

/// A poisoned shard lock means a panic mid-operation; the shard's invariants are kept by
/// code that does not panic, so keep serving rather than take the node down.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
