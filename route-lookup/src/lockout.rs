//! Zimbra's password policy as data: the lockout attributes and the password length bound,
//! with Zimbra's names, defaults and duration syntax, an account's own value winning over
//! the global config's (we have no classes of service).
//!
//! The state (failure times, when the lock began) lives in the accounts table and is
//! changed by [`crate::store`]; [`crate::authenticate`] applies the policy to each check.

use std::collections::HashMap;
use std::time::Duration;

/// `zimbraPasswordLockoutEnabled`.
pub const ENABLED: &str = "zimbraPasswordLockoutEnabled";
/// `zimbraPasswordLockoutMaxFailures`.
pub const MAX_FAILURES: &str = "zimbraPasswordLockoutMaxFailures";
/// `zimbraPasswordLockoutDuration`.
pub const DURATION: &str = "zimbraPasswordLockoutDuration";
/// `zimbraPasswordLockoutFailureLifetime`.
pub const FAILURE_LIFETIME: &str = "zimbraPasswordLockoutFailureLifetime";
/// `zimbraPasswordMaxLength`.
pub const PASSWORD_MAX_LENGTH: &str = "zimbraPasswordMaxLength";

/// Every policy attribute, for the attribute schema and the config snapshot.
pub const ATTRS: [&str; 5] = [
    ENABLED,
    MAX_FAILURES,
    DURATION,
    FAILURE_LIFETIME,
    PASSWORD_MAX_LENGTH,
];

/// Zimbra's default `zimbraPasswordMaxLength`.
pub const DEFAULT_PASSWORD_MAX_LENGTH: usize = 64;

/// The lockout policy in force for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Whether failures are counted and accounts locked at all.
    pub enabled: bool,
    /// Consecutive failures (within the lifetime) that lock the account; 0 never locks.
    pub max_failures: u32,
    /// How long a lock lasts; zero: until an admin sets the account active.
    pub duration: Duration,
    /// Failures older than this are forgotten; zero: never forgotten.
    pub failure_lifetime: Duration,
}

impl Default for LockoutPolicy {
    /// Zimbra's defaults: off, 10 failures, 1 h, 1 h.
    fn default() -> Self {
        Self {
            enabled: false,
            max_failures: 10,
            duration: Duration::from_secs(3600),
            failure_lifetime: Duration::from_secs(3600),
        }
    }
}

/// Where policy values come from: the account's own attributes first, then the global
/// config's; a value that does not parse is skipped (and the next source used), as a
/// malformed value cannot be stored through zmprov in the first place.
#[derive(Debug, Clone, Copy)]
pub struct PolicySources<'a> {
    /// The account's own policy attributes.
    pub account: &'a HashMap<String, String>,
    /// The global config's.
    pub global: &'a HashMap<String, String>,
}

impl PolicySources<'_> {
    fn value<T>(&self, name: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        [self.account, self.global]
            .iter()
            .find_map(|m| m.get(name).and_then(|v| parse(v)))
    }

    /// The lockout policy.
    pub fn lockout(&self) -> LockoutPolicy {
        let d = LockoutPolicy::default();
        LockoutPolicy {
            enabled: self.value(ENABLED, parse_bool).unwrap_or(d.enabled),
            max_failures: self
                .value(MAX_FAILURES, |v| v.parse().ok())
                .unwrap_or(d.max_failures),
            duration: self.value(DURATION, parse_duration).unwrap_or(d.duration),
            failure_lifetime: self
                .value(FAILURE_LIFETIME, parse_duration)
                .unwrap_or(d.failure_lifetime),
        }
    }

    /// `zimbraPasswordMaxLength`, in characters.
    pub fn password_max_length(&self) -> usize {
        self.value(PASSWORD_MAX_LENGTH, |v| v.parse().ok())
            .unwrap_or(DEFAULT_PASSWORD_MAX_LENGTH)
    }
}

/// `TRUE` / `FALSE`, as Zimbra writes booleans.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "TRUE" => Some(true),
        "FALSE" => Some(false),
        _ => None,
    }
}

/// Zimbra's duration syntax: a number with an optional unit `d`, `h`, `m`, `s` or `ms`;
/// without a unit, seconds.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1000)?,
        "ms" => n,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn durations_in_zimbras_syntax() {
        for (text, secs) in [
            ("1h", 3600.0),
            ("30m", 1800.0),
            ("45", 45.0),
            ("45s", 45.0),
            ("1d", 86400.0),
            ("1500ms", 1.5),
            ("0", 0.0),
        ] {
            assert_eq!(parse_duration(text).unwrap().as_secs_f64(), secs, "{text}");
        }
        for bad in ["", "h", "1w", "-1", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_account_wins_over_the_global_config_which_wins_over_the_default() {
        let none = HashMap::new();
        let both = PolicySources {
            account: &none,
            global: &none,
        };
        assert_eq!(both.lockout(), LockoutPolicy::default());
        assert_eq!(both.password_max_length(), 64);

        let global = map(&[(ENABLED, "TRUE"), (MAX_FAILURES, "3"), (DURATION, "10m")]);
        let account = map(&[(MAX_FAILURES, "5"), (DURATION, "bogus")]);
        let p = PolicySources {
            account: &account,
            global: &global,
        }
        .lockout();
        assert!(p.enabled);
        assert_eq!(p.max_failures, 5);
        assert_eq!(
            p.duration,
            Duration::from_secs(600),
            "a bad value falls through"
        );
        assert_eq!(p.failure_lifetime, Duration::from_secs(3600));

        let off = map(&[(ENABLED, "FALSE"), (PASSWORD_MAX_LENGTH, "16")]);
        let s = PolicySources {
            account: &off,
            global: &global,
        };
        assert!(!s.lockout().enabled);
        assert_eq!(s.password_max_length(), 16);
    }
}
