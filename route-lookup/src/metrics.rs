//! Counters and the latency histogram of the lookup endpoint, rendered for Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::metrics::PromWriter;

use crate::resolve::Reason;
use crate::store::PoolState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Lookup counters; shared by all requests.
#[derive(Debug, Default)]
pub struct LookupMetrics {
    ok: AtomicU64,
    failed: [AtomicU64; Reason::ALL.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    soap_ok: AtomicU64,
    soap_failed: AtomicU64,
}

impl LookupMetrics {
    /// Records one lookup.
    pub fn record(&self, outcome: Result<(), Reason>, took: Duration) {
        match outcome {
            Ok(()) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(r) => {
                let i = Reason::ALL.iter().position(|&x| x == r).unwrap_or(0);
                self.failed[i].fetch_add(1, Ordering::Relaxed)
            }
        };
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Records one SOAP AuthRequest.
    pub fn record_soap(&self, ok: bool) {
        if ok { &self.soap_ok } else { &self.soap_failed }.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus page.
    pub fn render(&self, pool: PoolState) -> String {
        let mut w = PromWriter::new();
        w.header(
            "route_lookup_lookups_total",
            "counter",
            "nginx-lookup requests by outcome",
        );
        w.sample(
            "route_lookup_lookups_total",
            &[("outcome", "ok")],
            self.ok.load(Ordering::Relaxed),
        );
        for (r, c) in Reason::ALL.iter().zip(&self.failed) {
            w.sample(
                "route_lookup_lookups_total",
                &[("outcome", r.label())],
                c.load(Ordering::Relaxed),
            );
        }
        w.header(
            "route_lookup_lookup_duration_seconds",
            "histogram",
            "nginx-lookup latency",
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            w.sample(
                "route_lookup_lookup_duration_seconds_bucket",
                &[("le", &bound.to_string())],
                bucket.load(Ordering::Relaxed),
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        w.sample(
            "route_lookup_lookup_duration_seconds_bucket",
            &[("le", "+Inf")],
            count,
        );
        w.sample(
            "route_lookup_lookup_duration_seconds_sum",
            &[],
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
        w.sample("route_lookup_lookup_duration_seconds_count", &[], count);
        w.header(
            "route_lookup_soap_auth_total",
            "counter",
            "admin SOAP AuthRequests (MTA auth) by outcome",
        );
        w.sample(
            "route_lookup_soap_auth_total",
            &[("outcome", "ok")],
            self.soap_ok.load(Ordering::Relaxed),
        );
        w.sample(
            "route_lookup_soap_auth_total",
            &[("outcome", "failed")],
            self.soap_failed.load(Ordering::Relaxed),
        );
        w.single(
            "route_lookup_db_pool_connections",
            "gauge",
            "database connections open",
            pool.size,
        );
        w.single(
            "route_lookup_db_pool_idle",
            "gauge",
            "database connections idle in the pool",
            pool.available,
        );
        w.single(
            "route_lookup_db_pool_waiting",
            "gauge",
            "requests waiting for a database connection",
            pool.waiting,
        );
        w.single(
            "route_lookup_db_pool_max",
            "gauge",
            "configured pool size",
            pool.max_size,
        );
        w.finish()
    }
}
