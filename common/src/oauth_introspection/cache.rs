//! The bounded cache of active introspection answers, keyed by a keyed 128-bit hash of the
//! token so that the token itself is never kept (nor could show up in a dump of the map).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::TokenInfo;

/// A token's cache key: two independently keyed SipHashes, 128 bits, so that a collision
/// (another token's answer) is out of reach even for someone choosing tokens.
pub(super) type Key = u128;

/// Answers that stay valid until their instant.
pub(super) struct Cache {
    entries: Mutex<HashMap<Key, (TokenInfo, Instant)>>,
    max_entries: usize,
    hashers: (RandomState, RandomState),
}

impl Cache {
    /// A cache of at most `max_entries` answers (0: nothing is cached).
    pub(super) fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries,
            hashers: (RandomState::new(), RandomState::new()),
        }
    }

    pub(super) fn key(&self, token: &[u8]) -> Key {
        let high = u128::from(self.hashers.0.hash_one(token));
        let low = u128::from(self.hashers.1.hash_one(token));
        (high << 64) | low
    }

    /// The answer for `key`, if one is cached and still valid.
    pub(super) fn get(&self, key: Key) -> Option<TokenInfo> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(&key) {
            Some((info, until)) if Instant::now() < *until => Some(info.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps `info` for `lifetime`. When full, expired answers go first, then the one that
    /// would expire soonest.
    pub(super) fn insert(&self, key: Key, info: TokenInfo, lifetime: Duration) {
        if self.max_entries == 0 || lifetime.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.max_entries {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| *k);
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, (info, now + lifetime));
    }

    /// Answers held (expired ones included until they are next touched).
    pub(super) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// How long an active answer may be reused: `ttl`, cut to what is left until the token's
/// `exp` (Unix seconds) as of `now_unix`. Zero (do not cache) for a token already past it.
pub(super) fn lifetime(exp: Option<i64>, now_unix: u64, ttl: Duration) -> Duration {
    match exp {
        None => ttl,
        Some(exp) => {
            let left = u64::try_from(exp).unwrap_or(0).saturating_sub(now_unix);
            ttl.min(Duration::from_secs(left))
        }
    }
}
