//! One lock's worth of the cache: a hash index over a slab of item slots, threaded on an
//! LRU list, with its own byte budget.
//!
//! Items live in one allocation each (key bytes then value bytes). The index holds only
//! 32-bit slot numbers and the LRU links are slot numbers too, which keeps the per-item
//! overhead near memcached's (its 48-byte header plus slab rounding).

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::stats::ShardStats;
use crate::clock::Now;

const NIL: u32 = u32::MAX;

/// Bytes charged per item on top of key and value: the slot (48), its index entry and
/// the allocator's header, rounded. Keeps `--memory-limit-mb` close to resident memory.
pub(crate) const ITEM_OVERHEAD: usize = 64;

/// The item has been read since it was stored (meta `h`, and memcached's
/// `expired_unfetched`/`evicted_unfetched`).
pub(crate) const FETCHED: u8 = 1;
/// Marked stale by `md … I`; readers see `X`.
pub(crate) const STALE: u8 = 2;
/// A recache token (`W`) was handed out; later readers see `Z`.
pub(crate) const TOKEN_SENT: u8 = 4;
/// The key was stored base64-encoded (meta `b`); meta replies show it encoded.
pub(crate) const KEY_BINARY: u8 = 8;

#[derive(Debug)]
pub(crate) struct Slot {
    /// Key bytes followed by value bytes; empty when the slot is free.
    data: Box<[u8]>,
    pub(crate) cas: u64,
    pub(crate) expiry: u32,
    pub(crate) flags: u32,
    pub(crate) last_access: u32,
    prev: u32,
    next: u32,
    key_len: u8,
    pub(crate) bits: u8,
}

impl Slot {
    pub(crate) fn key(&self) -> &[u8] {
        &self.data[..usize::from(self.key_len)]
    }

    pub(crate) fn value(&self) -> &[u8] {
        &self.data[usize::from(self.key_len)..]
    }

    fn charge(&self) -> usize {
        self.data.len() + ITEM_OVERHEAD
    }
}

/// The fields of a new item.
pub(crate) struct NewItem<'a> {
    pub(crate) key: &'a [u8],
    /// The value, as up to two pieces (append/prepend join old and new without a copy).
    pub(crate) value: [&'a [u8]; 2],
    pub(crate) flags: u32,
    pub(crate) expiry: u32,
    pub(crate) cas: u64,
    pub(crate) bits: u8,
}

/// Why an item could not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfMemory;

#[derive(Debug)]
pub(crate) struct Shard {
    table: HashTable<u32>,
    slots: Vec<Slot>,
    free_head: u32,
    lru_head: u32,
    lru_tail: u32,
    hasher: DefaultHashBuilder,
    pub(crate) bytes: usize,
    pub(crate) items: usize,
    limit: usize,
    pub(crate) applied_flush: u32,
    sweep_cursor: usize,
    pub(crate) stats: ShardStats,
}

impl Shard {
    pub(crate) fn new(limit: usize, hasher: DefaultHashBuilder) -> Self {
        Self {
            table: HashTable::new(),
            slots: Vec::new(),
            free_head: NIL,
            lru_head: NIL,
            lru_tail: NIL,
            hasher,
            bytes: 0,
            items: 0,
            limit,
            applied_flush: 0,
            sweep_cursor: 0,
            stats: ShardStats::default(),
        }
    }

    pub(crate) fn slot(&self, idx: u32) -> &Slot {
        &self.slots[idx as usize]
    }

    pub(crate) fn slot_mut(&mut self, idx: u32) -> &mut Slot {
        &mut self.slots[idx as usize]
    }

    /// The live item under `key`, removing it first if it has expired.
    pub(crate) fn lookup(&mut self, hash: u64, key: &[u8], now: Now) -> Option<u32> {
        let slots = &self.slots;
        let idx = *self.table.find(hash, |&i| slots[i as usize].key() == key)?;
        let slot = &self.slots[idx as usize];
        if now.is_expired(slot.expiry) {
            if slot.bits & FETCHED == 0 {
                self.stats.expired_unfetched += 1;
            }
            self.stats.reclaimed += 1;
            self.remove(hash, idx);
            return None;
        }
        Some(idx)
    }

    /// Moves the item to the head of the LRU list and stamps its access time.
    pub(crate) fn bump(&mut self, idx: u32, now: Now) {
        self.slots[idx as usize].last_access = now.rel;
        if self.lru_head != idx {
            self.lru_unlink(idx);
            self.lru_push_front(idx);
        }
    }

    /// Stores a new item under `hash`, replacing `existing` (the current item under the
    /// same key, if any) and evicting from the LRU tail until it fits.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        existing: Option<u32>,
        item: NewItem<'_>,
        now: Now,
    ) -> Result<u32, OutOfMemory> {
        let key_len = u8::try_from(item.key.len()).map_err(|_| OutOfMemory)?;
        let len = item.key.len() + item.value[0].len() + item.value[1].len();
        let charge = len + ITEM_OVERHEAD;
        if charge > self.limit {
            return Err(OutOfMemory);
        }
        let mut data = Vec::with_capacity(len);
        data.extend_from_slice(item.key);
        data.extend_from_slice(item.value[0]);
        data.extend_from_slice(item.value[1]);
        if let Some(old) = existing {
            self.remove(hash, old);
        }
        while self.bytes + charge > self.limit {
            let victim = self.lru_tail;
            if victim == NIL {
                break;
            }
            let slot = &self.slots[victim as usize];
            if now.is_expired(slot.expiry) {
                self.stats.reclaimed += 1;
            } else {
                self.stats.evictions += 1;
                if slot.bits & FETCHED == 0 {
                    self.stats.evicted_unfetched += 1;
                }
            }
            let victim_hash = self.hasher.hash_one(slot.key());
            self.remove(victim_hash, victim);
        }
        let slot = Slot {
            data: data.into_boxed_slice(),
            cas: item.cas,
            expiry: item.expiry,
            flags: item.flags,
            last_access: now.rel,
            prev: NIL,
            next: NIL,
            key_len,
            bits: item.bits,
        };
        let idx = if self.free_head != NIL {
            let idx = self.free_head;
            self.free_head = self.slots[idx as usize].next;
            self.slots[idx as usize] = slot;
            idx
        } else {
            let idx = u32::try_from(self.slots.len()).map_err(|_| OutOfMemory)?;
            self.slots.push(slot);
            idx
        };
        let (table, slots, hasher) = (&mut self.table, &self.slots, &self.hasher);
        table.insert_unique(hash, idx, |&i| hasher.hash_one(slots[i as usize].key()));
        self.lru_push_front(idx);
        self.bytes += charge;
        self.items += 1;
        self.stats.total_items += 1;
        Ok(idx)
    }

    /// Unlinks and frees one item.
    pub(crate) fn remove(&mut self, hash: u64, idx: u32) {
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        self.lru_unlink(idx);
        let slot = &mut self.slots[idx as usize];
        self.bytes -= slot.charge();
        self.items -= 1;
        slot.data = Box::default();
        slot.next = self.free_head;
        slot.prev = NIL;
        self.free_head = idx;
    }

    /// Drops every item and gives the memory back.
    pub(crate) fn clear(&mut self) {
        self.table = HashTable::new();
        self.slots = Vec::new();
        self.free_head = NIL;
        self.lru_head = NIL;
        self.lru_tail = NIL;
        self.bytes = 0;
        self.items = 0;
        self.sweep_cursor = 0;
    }

    /// Removes expired items among the next `budget` slots; returns how many it removed.
    /// Called by the background sweeper so expired memory comes back even if never read.
    pub(crate) fn sweep(&mut self, now: Now, budget: usize) -> usize {
        let mut removed = 0;
        let end = (self.sweep_cursor + budget).min(self.slots.len());
        for i in self.sweep_cursor..end {
            let slot = &self.slots[i];
            if !slot.data.is_empty() && now.is_expired(slot.expiry) {
                if slot.bits & FETCHED == 0 {
                    self.stats.expired_unfetched += 1;
                }
                let hash = self.hasher.hash_one(slot.key());
                self.remove(hash, i as u32);
                self.stats.reclaimed += 1;
                removed += 1;
            }
        }
        self.sweep_cursor = if end >= self.slots.len() { 0 } else { end };
        removed
    }

    fn lru_unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else if self.lru_head == idx {
            self.lru_head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else if self.lru_tail == idx {
            self.lru_tail = prev;
        }
        let s = &mut self.slots[idx as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn lru_push_front(&mut self, idx: u32) {
        let old_head = self.lru_head;
        {
            let s = &mut self.slots[idx as usize];
            s.prev = NIL;
            s.next = old_head;
        }
        if old_head != NIL {
            self.slots[old_head as usize].prev = idx;
        }
        self.lru_head = idx;
        if self.lru_tail == NIL {
            self.lru_tail = idx;
        }
    }

    /// Keys from most to least recently used (tests check LRU order with it).
    #[cfg(test)]
    pub(crate) fn lru_keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = self.lru_head;
        while i != NIL {
            out.push(self.slots[i as usize].key().to_vec());
            i = self.slots[i as usize].next;
        }
        out
    }
}
