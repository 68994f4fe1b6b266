//! One failover gate for every target the proxy may skip after a failure: cache nodes and
//! lookup URLs. A failure takes the target out for an interval; each failure in a row
//! doubles the interval up to a cap; a success (or the first request after the interval,
//! which probes) puts it back. Lookup URLs use a fixed interval (Zimbra's
//! `zm_lookup_handler_retry_interval`); cache nodes start near a second, so a node that
//! blinked is used again at once and one that stays down is not hammered.

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
    /// Out until then.
    until: Option<Instant>,
    /// The interval of the last failure (doubled at the next).
    last: Option<Duration>,
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
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the target is to be skipped now. Once the interval has passed it is not (the
    /// next request probes it), but a failure of that probe doubles the next interval.
    pub fn is_out(&self) -> bool {
        let mut state = self.state();
        match state.until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                state.until = None;
                false
            }
            None => false,
        }
    }

    /// Records a failure; returns the interval the target is out for, and whether it was in
    /// until now (so callers log the ejection once, not at every failed request).
    pub fn fail(&self) -> (Duration, bool) {
        let mut state = self.state();
        let was_in = state.until.is_none();
        let interval = match state.last {
            Some(last) if !was_in => last,
            Some(last) => (last * 2).min(self.max),
            None => self.first,
        };
        state.last = Some(interval);
        state.until = Some(Instant::now() + interval);
        (interval, was_in)
    }

    /// Records a success: the next failure starts from the first interval again.
    pub fn succeed(&self) {
        let mut state = self.state();
        if state.until.is_none() {
            state.last = None;
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
        assert_eq!(e.fail().0, Duration::from_millis(40));
        std::thread::sleep(Duration::from_millis(45));
        assert!(!e.is_out());
        assert_eq!(e.fail().0, Duration::from_millis(70), "capped");
        std::thread::sleep(Duration::from_millis(75));
        assert!(!e.is_out());
        e.succeed();
        assert_eq!(e.fail().0, Duration::from_millis(20), "back to the first");
        let fixed = Ejection::fixed(Duration::from_secs(30));
        assert_eq!(fixed.fail().0, Duration::from_secs(30));
    }
}
