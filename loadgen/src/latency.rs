//! Latency records and their summary line.

use std::fmt;
use std::time::Duration;

/// Every latency of a run, in nanoseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<u64>,
}

/// What a run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Operations completed.
    pub ops: usize,
    /// Operations per second over the run.
    pub ops_per_sec: f64,
    /// Median latency in microseconds.
    pub p50_us: f64,
    /// 90th percentile in microseconds.
    pub p90_us: f64,
    /// 99th percentile in microseconds.
    pub p99_us: f64,
    /// 99.9th percentile in microseconds.
    pub p999_us: f64,
    /// Slowest in microseconds.
    pub max_us: f64,
}

impl Latencies {
    /// An empty record with room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            samples: Vec::with_capacity(n),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        self.samples
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds another record's samples.
    pub fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    /// Sorts and summarises; `elapsed` is the run's wall time.
    pub fn summary(mut self, elapsed: Duration) -> Summary {
        self.samples.sort_unstable();
        let n = self.samples.len();
        let q = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let i = ((n as f64 * p / 100.0) as usize).min(n - 1);
            self.samples[i] as f64 / 1000.0
        };
        Summary {
            ops: n,
            ops_per_sec: n as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_us: q(50.0),
            p90_us: q(90.0),
            p99_us: q(99.0),
            p999_us: q(99.9),
            max_us: self.samples.last().map_or(0.0, |&m| m as f64 / 1000.0),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ops={} ops_per_sec={:.0} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
            self.ops, self.ops_per_sec, self.p50_us, self.p90_us, self.p99_us, self.p999_us, self.max_us
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_percentiles() {
        let mut l = Latencies::default();
        for us in (1..=100).rev() {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary(Duration::from_secs(2));
        assert_eq!(s.ops, 100);
        assert_eq!(s.ops_per_sec, 50.0);
        assert_eq!(s.p50_us, 51.0);
        assert_eq!(s.p99_us, 100.0);
        assert_eq!(s.max_us, 100.0);
    }
}
