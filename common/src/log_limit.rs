//! At most one log line per interval for events that come in floods (connections refused
//! at the limit, failed cache authentications): a flood must not become a flood of log
//! lines that fills the disk and buries everything else, yet the operator still learns
//! that it happens and how much.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a flooding event may be logged by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Counts events and says when one of them should be logged: the first at once, then at
/// most one per interval, each carrying how many happened since the previous line.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last line was allowed.
    last: Option<Instant>,
    /// Events since then, not yet reported.
    pending: u64,
}

impl LogLimit {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State::default()),
        }
    }

    /// Counts one event now; see [`LogLimit::hit_at`].
    pub fn hit(&self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    /// Counts one event at `now`. `Some(n)` when it is to be logged, `n` being the events
    /// since the last logged one, this one included; `None` while within the interval.
    pub fn hit_at(&self, now: Instant) -> Option<u64> {
        // A few plain fields, consistent after every statement: a panic elsewhere while
        // holding the lock cannot have left them half-written.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.pending += 1;
        let due = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.pending))
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new(DEFAULT_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_since_the_last() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        assert_eq!(limit.hit_at(at(0)), Some(1), "the first is logged at once");
        for ms in 1..1000 {
            assert_eq!(limit.hit_at(at(ms)), None);
        }
        assert_eq!(limit.hit_at(at(9_999)), None);
        assert_eq!(
            limit.hit_at(at(10_000)),
            Some(1001),
            "999 counted silently, the one at 9.999 s and this one"
        );
        assert_eq!(limit.hit_at(at(10_001)), None);
        // A quiet spell: the next one is logged at once, with the one still pending.
        assert_eq!(limit.hit_at(at(60_000)), Some(2));
        assert_eq!(limit.hit_at(at(60_000)), None);
    }

    #[test]
    fn shared_between_threads_nothing_is_lost() {
        let limit = std::sync::Arc::new(LogLimit::new(Duration::from_secs(3600)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                std::thread::spawn(move || (0..1000).filter_map(|_| limit.hit()).sum::<u64>())
            })
            .collect();
        let logged: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(logged, 1, "one line in the hour, for the first event");
        let far = Instant::now() + Duration::from_secs(7200);
        assert_eq!(
            limit.hit_at(far),
            Some(4000),
            "every other event is still counted"
        );
    }
}
