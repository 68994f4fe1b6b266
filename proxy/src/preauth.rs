//! `--max-preauth-per-ip`: how many connections one client address may hold before it has
//! logged in. A slow or silent client costs a socket and a session until its timeouts
//! run out; without this cap one address could hold them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Pre-auth connections per client address.
#[derive(Debug, Default)]
pub struct PreauthLimit {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Connections refused for being over the cap.
    pub refused: AtomicU64,
}

/// One pre-auth connection counted against its address; dropping it (at login or close)
/// gives the place back.
#[derive(Debug)]
pub struct PreauthGuard {
    limit: Arc<PreauthLimit>,
    ip: IpAddr,
}

impl PreauthLimit {
    /// A cap of `max` per address (0: unlimited).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            ..Self::default()
        }
    }

    /// Counts a new connection from `ip`; `None` when the address is at its cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PreauthGuard> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            drop(open);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(PreauthGuard {
            limit: self.clone(),
            ip,
        })
    }

    /// Connections from `ip` not yet logged in.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for PreauthGuard {
    fn drop(&mut self) {
        let mut open = self
            .limit
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_per_address_and_places_come_back() {
        let limit = Arc::new(PreauthLimit::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limit.admit(a).unwrap();
        let _second = limit.admit(a).unwrap();
        assert!(limit.admit(a).is_none());
        assert!(limit.admit(b).is_some(), "another address is not affected");
        drop(first);
        assert_eq!(limit.open(a), 1);
        assert!(limit.admit(a).is_some());
        assert_eq!(limit.refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn zero_is_unlimited_and_nothing_is_kept_for_closed_addresses() {
        let limit = Arc::new(PreauthLimit::new(0));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let guards: Vec<_> = (0..100).map(|_| limit.admit(a).unwrap()).collect();
        assert_eq!(limit.open(a), 100);
        drop(guards);
        assert!(limit.open.lock().unwrap().is_empty());
    }
}
