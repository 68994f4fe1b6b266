//! Counters kept per shard, under the shard's lock (so counting costs no atomics), and
//! summed on demand for `stats` and `/metrics`.

use std::ops::AddAssign;

/// Event counters of one shard; memcached's names.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ShardStats {
    pub get_hits: u64,
    pub get_misses: u64,
    pub get_expired: u64,
    pub cmd_set: u64,
    pub cmd_touch: u64,
    pub touch_hits: u64,
    pub touch_misses: u64,
    pub delete_hits: u64,
    pub delete_misses: u64,
    pub incr_hits: u64,
    pub incr_misses: u64,
    pub decr_hits: u64,
    pub decr_misses: u64,
    pub cas_hits: u64,
    pub cas_misses: u64,
    pub cas_badval: u64,
    pub evictions: u64,
    pub evicted_unfetched: u64,
    pub expired_unfetched: u64,
    pub reclaimed: u64,
    pub total_items: u64,
    pub out_of_memory: u64,
}

impl AddAssign for ShardStats {
    fn add_assign(&mut self, o: Self) {
        self.get_hits += o.get_hits;
        self.get_misses += o.get_misses;
        self.get_expired += o.get_expired;
        self.cmd_set += o.cmd_set;
        self.cmd_touch += o.cmd_touch;
        self.touch_hits += o.touch_hits;
        self.touch_misses += o.touch_misses;
        self.delete_hits += o.delete_hits;
        self.delete_misses += o.delete_misses;
        self.incr_hits += o.incr_hits;
        self.incr_misses += o.incr_misses;
        self.decr_hits += o.decr_hits;
        self.decr_misses += o.decr_misses;
        self.cas_hits += o.cas_hits;
        self.cas_misses += o.cas_misses;
        self.cas_badval += o.cas_badval;
        self.evictions += o.evictions;
        self.evicted_unfetched += o.evicted_unfetched;
        self.expired_unfetched += o.expired_unfetched;
        self.reclaimed += o.reclaimed;
        self.total_items += o.total_items;
        self.out_of_memory += o.out_of_memory;
    }
}

/// A snapshot of the whole store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Summed event counters.
    pub counters: ShardStats,
    /// Items held now.
    pub curr_items: u64,
    /// Bytes charged now (keys, values, per-item overhead).
    pub bytes: u64,
    /// The configured memory limit in bytes.
    pub limit_maxbytes: u64,
    /// `flush_all` commands received.
    pub cmd_flush: u64,
}
