//! Store semantics with a hand-set clock: expiry, eviction, flush, cas, arithmetic and the
//! meta recache protocol, all without sleeping.

use super::*;

const START: u64 = 1_700_000_000;

fn store(limit: usize) -> Store {
    Store::new(StoreConfig {
        memory_limit: limit,
        max_item_size: 1 << 20,
    })
}

fn at(rel: u32) -> Now {
    Now::at(rel, START)
}

fn set(s: &Store, key: &[u8], value: &[u8], exptime: i64, now: Now) -> StoreOutcome {
    s.store(
        StoreRequest {
            mode: StoreMode::Set,
            key,
            data: value,
            flags: 0,
            exptime,
            compare_cas: None,
            new_cas: None,
            vivify: None,
            invalidate: false,
            binary_key: false,
        },
        now,
    )
}

fn get(s: &Store, key: &[u8], now: Now) -> Option<Vec<u8>> {
    s.fetch(key, now, FetchOptions::default(), |f| {
        f.map(|f| f.value.to_vec())
    })
}

#[test]
fn relative_expiry() {
    let s = store(64 << 20);
    set(&s, b"k", b"v", 10, at(100));
    assert_eq!(get(&s, b"k", at(109)), Some(b"v".to_vec()));
    assert_eq!(get(&s, b"k", at(110)), None);
    assert_eq!(s.stats().curr_items, 0, "expired item reclaimed on access");
}

#[test]
fn absolute_and_negative_expiry() {
    let s = store(64 << 20);
    // Absolute Unix time 20 s after start = rel 22.
    set(&s, b"abs", b"v", (START + 20) as i64, at(2));
    assert!(get(&s, b"abs", at(21)).is_some());
    assert!(get(&s, b"abs", at(22)).is_none());
    // Just over 30 days reads as an absolute time in 1970: gone at once.
    set(&s, b"old", b"v", 2_592_001, at(2));
    assert!(get(&s, b"old", at(2)).is_none());
    set(&s, b"neg", b"v", -1, at(2));
    assert!(get(&s, b"neg", at(2)).is_none());
    set(&s, b"never", b"v", 0, at(2));
    assert!(get(&s, b"never", at(u32::MAX - 1)).is_some());
}

#[test]
fn evicts_least_recently_used_within_limit() {
    // One shard (limit / 4 MiB max items < 2), 100 KB budget.
    let s = Store::new(StoreConfig {
        memory_limit: 100_000,
        max_item_size: 50_000,
    });
    assert_eq!(s.shards(), 1);
    let value = vec![b'x'; 1000];
    for i in 0..50 {
        set(&s, format!("k{i}").as_bytes(), &value, 0, at(2));
    }
    // Touch k0 so it becomes most recent; k1 is now the oldest.
    assert!(get(&s, b"k0", at(3)).is_some());
    for i in 50..150 {
        set(&s, format!("k{i}").as_bytes(), &value, 0, at(4));
    }
    let st = s.stats();
    assert!(st.bytes <= 100_000, "bytes {} over limit", st.bytes);
    assert!(st.counters.evictions > 0);
    assert!(get(&s, b"k149", at(5)).is_some(), "newest present");
    assert!(get(&s, b"k1", at(5)).is_none(), "oldest evicted");
}

#[test]
fn lru_order_follows_access() {
    let s = Store::new(StoreConfig {
        memory_limit: 1 << 20,
        max_item_size: 1 << 20,
    });
    for k in [b"a", b"b", b"c"] {
        set(&s, k, b"1", 0, at(2));
    }
    get(&s, b"a", at(3));
    let order = lock(&s.shards[0]).lru_keys();
    assert_eq!(order, vec![b"a".to_vec(), b"c".to_vec(), b"b".to_vec()]);
}

#[test]
fn item_bigger_than_shard_is_refused() {
    let s = Store::new(StoreConfig {
        memory_limit: 10_000,
        max_item_size: 1 << 20,
    });
    assert_eq!(
        set(&s, b"k", &[0; 20_000], 0, at(2)),
        StoreOutcome::OutOfMemory
    );
}

#[test]
fn flush_now_and_delayed() {
    let s = store(64 << 20);
    set(&s, b"a", b"1", 0, at(10));
    s.flush_all(at(10), 0);
    assert!(get(&s, b"a", at(10)).is_none());
    set(&s, b"b", b"1", 0, at(10));
    assert!(
        get(&s, b"b", at(10)).is_some(),
        "stored after the flush survives"
    );
    s.flush_all(at(10), 5);
    set(&s, b"c", b"1", 0, at(12));
    assert!(get(&s, b"b", at(14)).is_some());
    assert!(
        get(&s, b"c", at(15)).is_none(),
        "delayed flush hides older items"
    );
    assert!(get(&s, b"b", at(15)).is_none());
    set(&s, b"d", b"1", 0, at(16));
    assert!(get(&s, b"d", at(16)).is_some());
}

#[test]
fn cas_semantics() {
    let s = store(64 << 20);
    let cas = |s: &Store, value: &[u8], want| {
        s.store(
            StoreRequest {
                mode: StoreMode::Set,
                key: b"k",
                data: value,
                flags: 0,
                exptime: 0,
                compare_cas: Some(want),
                new_cas: None,
                vivify: None,
                invalidate: false,
                binary_key: false,
            },
            at(2),
        )
    };
    assert_eq!(cas(&s, b"x", 1), StoreOutcome::NotFound);
    let StoreOutcome::Stored { cas: c, .. } = set(&s, b"k", b"v", 0, at(2)) else {
        panic!()
    };
    assert!(matches!(cas(&s, b"w", c), StoreOutcome::Stored { .. }));
    assert_eq!(cas(&s, b"z", c), StoreOutcome::Exists);
    assert_eq!(get(&s, b"k", at(2)), Some(b"w".to_vec()));
}

#[test]
fn append_prepend_keep_flags() {
    let s = store(64 << 20);
    let req = |mode, data| StoreRequest {
        mode,
        key: b"k",
        data,
        flags: 99,
        exptime: 0,
        compare_cas: None,
        new_cas: None,
        vivify: None,
        invalidate: false,
        binary_key: false,
    };
    assert_eq!(
        s.store(req(StoreMode::Append, b"x"), at(2)),
        StoreOutcome::NotStored
    );
    s.store(
        StoreRequest {
            flags: 5,
            ..req(StoreMode::Set, b"mid")
        },
        at(2),
    );
    s.store(req(StoreMode::Append, b">"), at(2));
    s.store(req(StoreMode::Prepend, b"<"), at(2));
    let flags = s.fetch(b"k", at(2), FetchOptions::default(), |f| {
        let f = f.unwrap();
        assert_eq!(f.value, b"<mid>");
        f.flags
    });
    assert_eq!(flags, 5);
}

#[test]
fn arithmetic_wraps_and_saturates() {
    let s = store(64 << 20);
    let arith = |s: &Store, decrement, delta| {
        s.arith(
            ArithRequest {
                key: b"n",
                decrement,
                delta,
                vivify: None,
                compare_cas: None,
                new_cas: None,
            },
            at(2),
            |outcome, _| outcome,
        )
    };
    assert_eq!(arith(&s, false, 1), ArithOutcome::NotFound);
    set(&s, b"n", b"18446744073709551615", 0, at(2));
    assert!(matches!(arith(&s, false, 2), ArithOutcome::Value(1)));
    assert!(matches!(arith(&s, true, 5), ArithOutcome::Value(0)));
    set(&s, b"n", b"10  ", 0, at(2));
    assert!(matches!(arith(&s, true, 1), ArithOutcome::Value(9)));
    assert_eq!(get(&s, b"n", at(2)), Some(b"9".to_vec()));
    set(&s, b"n", b"abc", 0, at(2));
    assert_eq!(arith(&s, false, 1), ArithOutcome::NonNumeric);
    set(&s, b"n", b"", 0, at(2));
    assert_eq!(arith(&s, false, 1), ArithOutcome::NonNumeric);
}

/// One meta get: `(won, token already out, stale, ttl)` as `mg` would compute them for
/// the flags `N<vivify>` and `R<recache>`.
fn meta_get(
    s: &Store,
    key: &[u8],
    now: Now,
    vivify: Option<i64>,
    recache: Option<i64>,
) -> Option<(bool, bool, bool, Option<u32>)> {
    let opts = MetaFetch {
        vivify: vivify.is_some(),
        touch: false,
    };
    s.fetch_meta(key, now, opts, |item| {
        let item = item?;
        let mut won = false;
        if let Some(ttl) = vivify.filter(|_| item.created()) {
            item.set_exptime(ttl);
            won = true;
        }
        if recache.is_some_and(|r| !item.token_sent() && !item.created() && item.expires_before(r))
        {
            won = true;
        }
        let seen = (won, item.token_sent(), item.stale(), item.ttl());
        if won || (item.stale() && !item.token_sent()) {
            item.send_token();
        }
        Some(seen)
    })
}

#[test]
fn vivify_hands_out_one_win() {
    let s = store(64 << 20);
    assert_eq!(
        meta_get(&s, b"hot", at(2), Some(30), None),
        Some((true, false, false, Some(30)))
    );
    assert_eq!(
        meta_get(&s, b"hot", at(3), Some(30), None),
        Some((false, true, false, Some(29)))
    );
    assert_eq!(meta_get(&s, b"cold", at(3), None, None), None);
}

#[test]
fn recache_and_invalidate() {
    let s = store(64 << 20);
    set(&s, b"k", b"v", 100, at(2));
    // Expiry 102: R30 wins once fewer than 30 s are left.
    assert!(!meta_get(&s, b"k", at(10), None, Some(30)).unwrap().0);
    assert!(meta_get(&s, b"k", at(80), None, Some(30)).unwrap().0);
    assert_eq!(
        meta_get(&s, b"k", at(81), None, Some(30)),
        Some((false, true, false, Some(21)))
    );
    // Invalidation clears the token and marks stale; the next reader wins.
    let out = s.delete(
        b"k",
        at(82),
        DeleteRequest {
            invalidate: true,
            ..Default::default()
        },
    );
    assert_eq!(out, DeleteOutcome::Deleted);
    assert_eq!(
        meta_get(&s, b"k", at(83), None, None),
        Some((false, false, true, Some(19)))
    );
    assert_eq!(
        meta_get(&s, b"k", at(84), None, None),
        Some((false, true, true, Some(18)))
    );
}

#[test]
fn a_late_stale_write_keeps_expiry_and_token() {
    let s = store(64 << 20);
    let StoreOutcome::Stored { cas: old, .. } = set(&s, b"k", b"v1", 100, at(2)) else {
        panic!("stored")
    };
    set(&s, b"k", b"v2", 50, at(2));
    meta_get(&s, b"k", at(2), None, Some(60));
    let late = |mode| StoreRequest {
        mode,
        key: b"k",
        data: b"v0",
        flags: 0,
        exptime: 500,
        compare_cas: Some(old),
        new_cas: None,
        vivify: None,
        invalidate: true,
        binary_key: false,
    };
    // Append and prepend never store a stale item.
    assert_eq!(
        s.store(late(StoreMode::Append), at(3)),
        StoreOutcome::Exists
    );
    assert!(matches!(
        s.store(late(StoreMode::Set), at(3)),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(
        meta_get(&s, b"k", at(4), None, None),
        Some((false, true, true, Some(48)))
    );
    assert_eq!(get(&s, b"k", at(4)), Some(b"v0".to_vec()));
}

#[test]
fn sweep_reclaims_expired_memory() {
    let s = store(64 << 20);
    for i in 0..1000 {
        set(&s, format!("k{i}").as_bytes(), b"value", 5, at(2));
    }
    assert_eq!(s.stats().curr_items, 1000);
    let mut removed = 0;
    for _ in 0..100 {
        removed += s.sweep(at(10), 64);
    }
    assert_eq!(removed, 1000);
    let st = s.stats();
    assert_eq!((st.curr_items, st.bytes), (0, 0));
    assert_eq!(st.counters.expired_unfetched, 1000);
}

#[test]
fn remove_value_keeps_a_tombstone() {
    let s = store(64 << 20);
    set(&s, b"k", b"value", 0, at(2));
    let out = s.delete(
        b"k",
        at(2),
        DeleteRequest {
            remove_value: true,
            flags: 3,
            ..Default::default()
        },
    );
    assert_eq!(out, DeleteOutcome::Deleted);
    let seen = s.fetch(b"k", at(2), FetchOptions::default(), |f| {
        f.map(|f| (f.value.len(), f.flags))
    });
    assert_eq!(seen, Some((0, 3)));
}
