//! The relayed sessions of this process, by account, so that a change that makes a
//! session wrong (the account moved to another mailbox server, was locked, closed or
//! deleted: route-lookup's account events) ends it. Zimbra's mailbox server ends an
//! account's sessions itself on a move; a proxy in front of servers that do not must.
//!
//! Ending a session closes both connections: the proxy cannot know where the backend is
//! in a response, so it cannot insert a `* BYE` safely. The client reconnects and is
//! routed afresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The registry.
#[derive(Debug, Default)]
pub struct Sessions {
    by_account: Mutex<HashMap<String, HashMap<u64, oneshot::Sender<()>>>>,
    next: AtomicU64,
    /// Sessions ended because their account changed.
    pub ended: AtomicU64,
}

/// A session's place in the registry; leaving it (drop) removes the session.
#[derive(Debug)]
pub struct Registered {
    sessions: Arc<Sessions>,
    account: String,
    id: u64,
    /// Resolves when the session must end.
    pub end: oneshot::Receiver<()>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut map = self.sessions.map();
        if let Some(ids) = map.get_mut(&self.account) {
            ids.remove(&self.id);
            if ids.is_empty() {
                map.remove(&self.account);
            }
        }
    }
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, oneshot::Sender<()>>>> {
        self.by_account
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a session of `account` (the canonical name route-lookup answered).
    pub fn register(self: &Arc<Self>, account: &str) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let account = account.to_lowercase();
        self.map()
            .entry(account.clone())
            .or_default()
            .insert(id, tx);
        Registered {
            sessions: self.clone(),
            account,
            id,
            end: rx,
        }
    }

    /// Ends every session of `account`; returns how many.
    pub fn end_account(&self, account: &str) -> usize {
        let ids = self
            .map()
            .remove(&account.to_lowercase())
            .unwrap_or_default();
        let n = ids.len();
        for (_, tx) in ids {
            let _ = tx.send(());
        }
        self.ended.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Accounts with sessions now.
    pub fn accounts(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ending_an_account_ends_its_sessions_only() {
        let s = Arc::new(Sessions::default());
        let mut a1 = s.register("Ann@example.com");
        let mut a2 = s.register("ann@example.com");
        let mut b = s.register("bob@example.com");
        assert_eq!(s.accounts(), 2);
        assert_eq!(s.end_account("ANN@example.com"), 2);
        assert!((&mut a1.end).await.is_ok());
        assert!((&mut a2.end).await.is_ok());
        assert!(b.end.try_recv().is_err(), "bob's session goes on");
        drop((a1, a2));
        assert_eq!(s.accounts(), 1);
        drop(b);
        assert_eq!(s.accounts(), 0, "a session that ends leaves the registry");
        assert_eq!(s.end_account("bob@example.com"), 0);
        assert_eq!(s.ended.load(Ordering::Relaxed), 2);
    }
}
