//! Stale routes when the route source is down (stale-if-error, as HTTP caches do): each
//! proxy keeps the routes it used recently, bounded in number and age. They are consulted
//! only when the route cache has nothing and no lookup URL answers, so a login whose route
//! is known does not fail because route-lookup or the cache is down. A route that proves
//! wrong is forgotten here as in the cache, and the registry watch drops an account's
//! entries when it moves, is locked or is deleted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Recently used routes, keyed by protocol and login name (as typed, lower-cased, with
/// the proxy address for unqualified names, as the route cache keys them).
#[derive(Debug)]
pub struct StaleRoutes {
    max: usize,
    max_age: Duration,
    entries: Mutex<Entries>,
    /// Logins routed from here because nothing else answered.
    pub served: AtomicU64,
}

type Key = (&'static str, String);

/// The routes, and for each account (lower-cased) the logins that led to it, so that
/// forgetting an account costs its own entries, not a scan of all of them.
#[derive(Debug, Default)]
struct Entries {
    by_login: HashMap<Key, Entry>,
    by_account: HashMap<String, Vec<Key>>,
}

impl Entries {
    fn remove(&mut self, key: &Key) {
        let Some(entry) = self.by_login.remove(key) else {
            return;
        };
        let account = entry.account.to_lowercase();
        if let Some(keys) = self.by_account.get_mut(&account) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_account.remove(&account);
            }
        }
    }

    fn insert(&mut self, key: Key, entry: Entry) {
        self.remove(&key);
        self.by_account
            .entry(entry.account.to_lowercase())
            .or_default()
            .push(key.clone());
        self.by_login.insert(key, entry);
    }
}

#[derive(Debug, Clone)]
struct Entry {
    backend: SocketAddr,
    account: String,
    used: Instant,
}

/// A route remembered from an earlier login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// The mailbox server.
    pub backend: SocketAddr,
    /// The account name to log in as.
    pub account: String,
}

impl StaleRoutes {
    /// At most `max` routes (0: none kept), each usable for `max_age` after its last use.
    pub fn new(max: usize, max_age: Duration) -> Self {
        Self {
            max,
            max_age,
            entries: Mutex::new(Entries::default()),
            served: AtomicU64::new(0),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers that `login` went to `backend` as `account`.
    pub fn remember(
        &self,
        protocol: &'static str,
        login: &str,
        backend: SocketAddr,
        account: &str,
    ) {
        if self.max == 0 {
            return;
        }
        let mut entries = self.entries();
        let key = (protocol, login.to_string());
        if entries.by_login.len() >= self.max && !entries.by_login.contains_key(&key) {
            // Full: drop the oldest tenth, so the sort is paid once per max/10 insertions,
            // not a scan per insertion.
            let mut ages: Vec<(Instant, Key)> = entries
                .by_login
                .iter()
                .map(|(k, e)| (e.used, k.clone()))
                .collect();
            ages.sort_unstable_by_key(|(used, _)| *used);
            for (_, old) in ages.into_iter().take((self.max / 10).max(1)) {
                entries.remove(&old);
            }
        }
        entries.insert(
            key,
            Entry {
                backend,
                account: account.to_string(),
                used: Instant::now(),
            },
        );
    }

    /// The route `login` last used, if it is recent enough.
    pub fn recall(&self, protocol: &'static str, login: &str) -> Option<Remembered> {
        let mut entries = self.entries();
        let key = (protocol, login.to_string());
        let entry = entries.by_login.get(&key)?;
        if entry.used.elapsed() > self.max_age {
            entries.remove(&key);
            return None;
        }
        Some(Remembered {
            backend: entry.backend,
            account: entry.account.clone(),
        })
    }

    /// Forgets `login`'s route (it led to a refusal or a dead backend).
    pub fn forget(&self, protocol: &'static str, login: &str) {
        self.entries().remove(&(protocol, login.to_string()));
    }

    /// Forgets every route to `account` (moved, locked or deleted), whatever name led to it.
    pub fn forget_account(&self, account: &str) {
        let mut entries = self.entries();
        for key in entries
            .by_account
            .remove(&account.to_lowercase())
            .unwrap_or_default()
        {
            entries.by_login.remove(&key);
        }
    }

    /// Forgets every route (account events were missed).
    pub fn clear(&self) {
        let mut entries = self.entries();
        entries.by_login.clear();
        entries.by_account.clear();
    }

    /// Routes kept now.
    pub fn len(&self) -> usize {
        self.entries().by_login.len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn remembered_recalled_forgotten() {
        let s = StaleRoutes::new(10, Duration::from_secs(60));
        s.remember("imap", "ann", addr(7143), "ann@example.com");
        s.remember("imap", "sales@example.net", addr(7143), "ann@example.com");
        s.remember("pop3", "bob@example.com", addr(7110), "bob@example.com");
        assert_eq!(
            s.recall("imap", "ann"),
            Some(Remembered {
                backend: addr(7143),
                account: "ann@example.com".into()
            })
        );
        assert_eq!(s.recall("pop3", "ann"), None, "per protocol");
        s.forget_account("ANN@example.com");
        assert_eq!(s.recall("imap", "ann"), None);
        assert_eq!(s.recall("imap", "sales@example.net"), None, "aliases too");
        s.forget("pop3", "bob@example.com");
        assert!(s.is_empty());
    }

    #[test]
    fn bounded_in_number_and_age() {
        let s = StaleRoutes::new(100, Duration::from_millis(50));
        for i in 0..1000 {
            s.remember("imap", &format!("u{i}"), addr(7143), &format!("u{i}@x"));
        }
        assert!(s.len() <= 100);
        assert!(s.recall("imap", "u999").is_some(), "the newest is kept");
        assert!(s.recall("imap", "u0").is_none(), "the oldest went");
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.recall("imap", "u999").is_none(), "too old");
        let none = StaleRoutes::new(0, Duration::from_secs(60));
        none.remember("imap", "ann", addr(7143), "ann@example.com");
        assert!(none.is_empty());
    }

    #[test]
    fn the_account_index_follows_every_change() {
        let s = StaleRoutes::new(10, Duration::from_secs(60));
        s.remember("imap", "ann", addr(7143), "ann@example.com");
        // The login now leads to another account: the old account's index lets go of it.
        s.remember("imap", "ann", addr(7143), "anna@example.com");
        s.forget_account("ann@example.com");
        assert!(s.recall("imap", "ann").is_some());
        s.forget_account("anna@example.com");
        assert!(s.is_empty());
        assert!(s.entries().by_account.is_empty());
    }
}
