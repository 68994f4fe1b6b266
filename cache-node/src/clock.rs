//! Server time as memcached keeps it: whole seconds since the process started, so that
//! expiry times fit in 32 bits and tests can set the clock to any second they like.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Longest relative expiry; larger exptimes are absolute Unix times (memcached's rule).
pub const RELATIVE_EXPIRY_MAX: i64 = 60 * 60 * 24 * 30;

/// The wall clock of a running server.
#[derive(Debug, Clone)]
pub struct Clock {
    started: Instant,
    started_unix: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            started: Instant::now(),
            started_unix,
        }
    }

    /// The current second.
    pub fn now(&self) -> Now {
        let elapsed = u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX - 2);
        Now {
            rel: elapsed + Now::EPOCH,
            started_unix: self.started_unix,
        }
    }
}

/// One reading of the clock. Item expiry times are kept in the same unit as `rel`:
/// 0 means "never", 1 means "already expired", and real times start at [`Now::EPOCH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Seconds since start, offset by [`Now::EPOCH`].
    pub rel: u32,
    /// Unix time at which `rel` was [`Now::EPOCH`].
    pub started_unix: u64,
}

impl Now {
    /// The first real relative time.
    pub const EPOCH: u32 = 2;
    /// The expiry value that is always in the past.
    pub const EXPIRED: u32 = 1;

    /// A reading for tests: `rel` seconds, process started at `started_unix`.
    pub fn at(rel: u32, started_unix: u64) -> Self {
        Self { rel, started_unix }
    }

    /// Converts a client's exptime into an item expiry, by memcached's rules: 0 never,
    /// negative already expired, up to 30 days relative, beyond that an absolute Unix time.
    pub fn expiry(&self, exptime: i64) -> u32 {
        match exptime {
            0 => 0,
            e if e < 0 => Self::EXPIRED,
            e if e <= RELATIVE_EXPIRY_MAX => self.rel.saturating_add(e as u32),
            e => {
                let e = e as u64;
                if e <= self.started_unix {
                    Self::EXPIRED
                } else {
                    let rel = (e - self.started_unix).saturating_add(u64::from(Self::EPOCH));
                    u32::try_from(rel).unwrap_or(u32::MAX)
                }
            }
        }
    }

    /// Whether an item with this expiry is dead now.
    pub fn is_expired(&self, expiry: u32) -> bool {
        expiry != 0 && expiry <= self.rel
    }

    /// Seconds an item with this expiry has left; -1 for "never expires".
    pub fn remaining(&self, expiry: u32) -> i64 {
        if expiry == 0 {
            -1
        } else {
            i64::from(expiry) - i64::from(self.rel)
        }
    }

    /// Current Unix time.
    pub fn unix(&self) -> u64 {
        self.started_unix + u64::from(self.rel - Self::EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_rules() {
        let now = Now::at(100, 1_700_000_000);
        assert_eq!(now.expiry(0), 0);
        assert_eq!(now.expiry(-1), Now::EXPIRED);
        assert_eq!(now.expiry(10), 110);
        assert_eq!(
            now.expiry(RELATIVE_EXPIRY_MAX),
            100 + RELATIVE_EXPIRY_MAX as u32
        );
        // Just past 30 days is an absolute time long gone: expired at once.
        assert_eq!(now.expiry(RELATIVE_EXPIRY_MAX + 1), Now::EXPIRED);
        // An absolute time 50 s after start.
        assert_eq!(now.expiry(1_700_000_050), 52);
        assert!(now.is_expired(Now::EXPIRED));
        assert!(now.is_expired(100));
        assert!(!now.is_expired(101));
        assert!(!now.is_expired(0));
        assert_eq!(now.remaining(0), -1);
        assert_eq!(now.remaining(160), 60);
        assert_eq!(now.unix(), 1_700_000_098);
    }
}
