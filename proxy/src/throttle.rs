//! Login throttling with Zimbra's semantics (ngx_mail_throttle_module): counters in the
//! cache cluster, so every proxy shares them. The per-IP counter is checked and bumped at
//! connect; the per-user counter is read before a login and bumped after a successful
//! one (or, in the failed-only mode, after a failed one, so a busy webmail is never locked
//! out by its own successes). A counter is allowed while it is at most the limit. When the
//! cache is down, logins are allowed (fail open).

use std::net::IpAddr;
use std::sync::Arc;

use codec::route_key::CacheKey;

use crate::cache::CacheCluster;

/// What is counted per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Every successful login (Zimbra).
    Successful,
    /// Only failed logins.
    Failed,
}

/// The limits; 0 means unlimited.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections per client IP per window.
    pub ip_max: u64,
    /// The IP window, seconds.
    pub ip_window: u32,
    /// Logins per user per window.
    pub user_max: u64,
    /// The user window, seconds.
    pub user_window: u32,
    /// What the user counter counts.
    pub count: Count,
}

/// The throttle.
#[derive(Debug)]
pub struct Throttle {
    cache: Option<Arc<CacheCluster>>,
    limits: Limits,
}

fn ip_key(ip: IpAddr) -> CacheKey {
    CacheKey::from_logical(format!("throttle:ip={ip}"))
}

fn user_key(user: &str) -> CacheKey {
    CacheKey::from_logical(format!("throttle:user={}", user.to_lowercase()))
}

impl Throttle {
    /// A throttle over `cache` (none: nothing is throttled).
    pub fn new(cache: Option<Arc<CacheCluster>>, limits: Limits) -> Self {
        Self { cache, limits }
    }

    /// At connect: counts the connection; false when the IP is over its limit.
    pub async fn allow_ip(&self, ip: IpAddr) -> bool {
        let (Some(cache), max) = (&self.cache, self.limits.ip_max) else {
            return true;
        };
        if max == 0 {
            return true;
        }
        match cache.incr(&ip_key(ip), self.limits.ip_window).await {
            Some(n) => n <= max,
            None => true,
        }
    }

    /// Before a login: false when the user is over the limit (the counter is only read).
    pub async fn allow_user(&self, user: &str) -> bool {
        let (Some(cache), max) = (&self.cache, self.limits.user_max) else {
            return true;
        };
        if max == 0 {
            return true;
        }
        match cache.get(&user_key(user)).await {
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_none_or(|n| n < max),
            None => true,
        }
    }

    /// After a login: counts it when the mode says so.
    pub async fn record(&self, user: &str, success: bool) {
        let counts = match self.limits.count {
            Count::Successful => success,
            Count::Failed => !success,
        };
        if let (Some(cache), true) = (&self.cache, counts && self.limits.user_max > 0) {
            cache.incr(&user_key(user), self.limits.user_window).await;
        }
    }
}
