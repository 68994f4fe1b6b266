//! A minimal Prometheus text-format (0.0.4) writer: enough for counters, gauges and
//! latency histograms with labels, without a metrics registry crate.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with fixed buckets from 0.5 ms to 2.5 s, lock-free to record.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            // Buckets are stored non-cumulative and summed when rendered.
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Builds one `/metrics` page.
#[derive(Debug, Default)]
pub struct PromWriter {
    out: String,
}

impl PromWriter {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a metric with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, kind, help);
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// Writes the `# HELP` / `# TYPE` lines of a metric whose samples follow.
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// Writes one sample with labels; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// Writes a histogram metric (`name` without the `_bucket`/`_sum`/`_count` suffix).
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, b) in BUCKETS.iter().zip(&h.buckets) {
            cumulative += b.load(Ordering::Relaxed);
            self.sample(&bucket, &[("le", &bound.to_string())], cumulative);
        }
        let count = h.count.load(Ordering::Relaxed);
        self.sample(&bucket, &[("le", "+Inf")], count);
        self.sample(
            &format!("{name}_sum"),
            &[],
            h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
        self.sample(&format!("{name}_count"), &[], count);
    }

    /// The finished page.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(10));
        let mut w = PromWriter::new();
        w.histogram("lat_seconds", "Latency.", &h);
        let page = w.finish();
        assert!(page.contains("# TYPE lat_seconds histogram\n"));
        assert!(page.contains("lat_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(page.contains("lat_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(page.contains("lat_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(page.contains("lat_seconds_bucket{le=\"2.5\"} 2\n"));
        assert!(page.contains("lat_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(page.contains("lat_seconds_sum 10.0033\n"), "{page}");
        assert!(page.contains("lat_seconds_count 3\n"));
    }

    #[test]
    fn writes_text_format() {
        let mut w = PromWriter::new();
        w.single("up", "gauge", "Whether it runs.", 1);
        w.header("hits_total", "counter", "Hits.");
        w.sample("hits_total", &[("node", "a\"b")], 3);
        assert_eq!(
            w.finish(),
            "# HELP up Whether it runs.\n# TYPE up gauge\nup 1\n\
             # HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total{node=\"a\\\"b\"} 3\n"
        );
    }
}
