//! Requests per second per client address, as Zimbra's DoS filter limits its SOAP port
//! (`zimbraHttpDosFilterMaxRequestsPerSec`, with `zimbraHttpThrottleSafeIPs` exempt):
//! without it `AuthRequest` is an unthrottled password oracle and a flood of it starves
//! real logins of password checks.
//!
//! A token bucket per address, refilled continuously at the rate and holding at most one
//! second's worth. The table is bounded: past [`MAX_TRACKED`] addresses, those whose
//! buckets are full again (idle a second or more) are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use common::cidr::CidrList;

/// Most addresses tracked at once.
pub const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter.
#[derive(Debug)]
pub struct PerAddress {
    rate: f64,
    safe: CidrList,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl PerAddress {
    /// `rate` requests per second per address (0: unlimited), `safe` exempt.
    pub fn new(rate: u32, safe: CidrList) -> Self {
        Self {
            rate: f64::from(rate),
            safe,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request from `ip` may go ahead now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 || self.safe.contains(ip) {
            return true;
        }
        let ip = canonical(ip);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let rate = self.rate;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < rate);
            if buckets.len() >= MAX_TRACKED {
                // Every tracked address is busy: refuse newcomers rather than grow.
                return false;
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.rate,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_second_holds_the_rate_then_refills() {
        let t = PerAddress::new(3, CidrList::default());
        let t0 = Instant::now();
        let allowed = (0..10).filter(|_| t.allow_at(ip("10.0.0.1"), t0)).count();
        assert_eq!(allowed, 3);
        assert!(
            t.allow_at(ip("10.0.0.2"), t0),
            "another address has its own bucket"
        );
        assert!(
            !t.allow_at(ip("::ffff:10.0.0.1"), t0),
            "mapped IPv4 is the same client"
        );
        assert!(t.allow_at(ip("10.0.0.1"), t0 + Duration::from_millis(340)));
        assert!(!t.allow_at(ip("10.0.0.1"), t0 + Duration::from_millis(340)));
        let later = t0 + Duration::from_secs(60);
        let allowed = (0..10)
            .filter(|_| t.allow_at(ip("10.0.0.1"), later))
            .count();
        assert_eq!(
            allowed, 3,
            "the bucket holds one second's worth, not a minute's"
        );
    }

    #[test]
    fn safe_addresses_and_zero_rate_are_never_limited() {
        let safe: CidrList = "127.0.0.0/8,fd00::/8".parse().unwrap();
        let t = PerAddress::new(1, safe);
        let now = Instant::now();
        assert!((0..100).all(|_| t.allow_at(ip("127.0.0.2"), now)));
        assert!((0..100).all(|_| t.allow_at(ip("fd00::1"), now)));
        let off = PerAddress::new(0, CidrList::default());
        assert!((0..100).all(|_| off.allow_at(ip("10.0.0.1"), now)));
    }

    #[test]
    fn the_table_stays_bounded_forgetting_idle_addresses_first() {
        let t = PerAddress::new(1, CidrList::default());
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED as u32 {
            assert!(t.allow_at(IpAddr::from(i.to_be_bytes()), t0));
        }
        // All busy: a newcomer is refused and the table does not grow.
        assert!(!t.allow_at(ip("200.0.0.1"), t0));
        assert_eq!(t.buckets.lock().unwrap().len(), MAX_TRACKED);
        // A second later they are idle again and make room.
        assert!(t.allow_at(ip("200.0.0.1"), t0 + Duration::from_secs(2)));
        assert!(t.buckets.lock().unwrap().len() < MAX_TRACKED);
    }
}
