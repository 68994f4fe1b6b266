//! One failover gate for every target the proxy may skip after a failure: cache nodes and
//! lookup URLs. A failure takes the target out for an interval; each failure in a row
//! doubles the interval up to a cap; a success puts it back. Once the interval has passed
//! the target is tried again (that request probes it). Lookup URLs use a fixed interval
//! (Zimbra's `zm_lookup_handler_retry_interval`); cache nodes start near a second, so a
//! node that blinked is used again at once and one that stays down is not hammered.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether a target is out, and until when.
#[derive(Debug)]
pub struct Ejection {
    first: Duration,
    max: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Out until then (in the past once the interval is over).
    until: Option<Instant>,
    /// The interval of the last failure (doubled at the next failure in a row).
    last: Option<Duration>,
    /// When the last failure was recorded.
    failed_at: Option<Instant>,
}

impl Ejection {
    /// Out for `first` after a failure, doubling on each failure in a row up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
            state: Mutex::new(State::default()),
        }
    }

    /// Out for `interval` after each failure.
    pub fn fixed(interval: Duration) -> Self {
        Self::new(interval, interval)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few plain fields, consistent after any statement: a panic
        // elsewhere while holding the lock cannot have left it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the target is to be skipped now.
    pub fn is_out(&self) -> bool {
        self.state().until.is_some_and(|t| Instant::now() < t)
    }

    /// Records a failure; returns the interval the target is out for, and whether it was in
    /// until now (so callers log the ejection once, not at every failed request).
    pub fn fail(&self) -> (Duration, bool) {
        let now = Instant::now();
        let mut state = self.state();
        let was_in = state.until.is_none_or(|t| now >= t);
        let interval = match state.last {
            // Requests that were already under way when it went out: not a new failure
            // in a row, so the interval does not grow (it restarts from now).
            Some(last) if !was_in => last,
            // The probe after the interval failed too.
            Some(last) => (last * 2).min(self.max),
            None => self.first,
        };
        state.last = Some(interval);
        state.until = Some(now + interval);
        state.failed_at = Some(now);
        (interval, was_in)
    }

    /// Records a success of a request that started at `started`: the target is back in and
    /// its next failure starts from the first interval again. A request that was already
    /// under way when the last failure was recorded proves nothing about the target since
    /// then, so its success changes nothing.
    pub fn succeed(&self, started: Instant) {
        let mut state = self.state();
        if state.failed_at.is_none_or(|f| started >= f) {
            *state = State::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_grow_while_failing_and_reset_on_success() {
        let e = Ejection::new(Duration::from_millis(20), Duration::from_millis(70));
        assert!(!e.is_out());
        assert_eq!(e.fail(), (Duration::from_millis(20), true));
        assert!(e.is_out());
        // More failures while out (requests already in flight) do not grow it.
        assert_eq!(e.fail(), (Duration::from_millis(20), false));
        std::thread::sleep(Duration::from_millis(25));
        assert!(!e.is_out(), "probed after the interval");
        assert_eq!(
            e.fail(),
            (Duration::from_millis(40), true),
            "the probe failed"
        );
        std::thread::sleep(Duration::from_millis(45));
        assert!(!e.is_out());
        assert_eq!(e.fail().0, Duration::from_millis(70), "capped");
        std::thread::sleep(Duration::from_millis(75));
        assert_eq!(e.fail().0, Duration::from_millis(70), "still capped");
        e.succeed(Instant::now());
        assert!(!e.is_out());
        assert_eq!(e.fail().0, Duration::from_millis(20), "back to the first");
        let fixed = Ejection::fixed(Duration::from_secs(30));
        assert_eq!(fixed.fail().0, Duration::from_secs(30));
        assert_eq!(fixed.fail().0, Duration::from_secs(30));
    }

    #[test]
    fn only_a_request_started_after_the_failure_puts_the_target_back() {
        let e = Ejection::fixed(Duration::from_secs(60));
        let before = Instant::now();
        e.fail();
        e.succeed(before);
        assert!(e.is_out(), "under way when it failed: proves nothing");
        // One tried anyway while out (every other target was out too) and answered.
        e.succeed(Instant::now());
        assert!(!e.is_out());
        assert_eq!(e.fail(), (Duration::from_secs(60), true));
    }
}
