//! Load generators for the benchmark scripts under `bench/`: closed loops (one request in
//! flight per connection) that record every latency, so percentiles are exact rather than
//! read off histogram buckets.
//!
//! # Layout
//! - [`latency`]: the latency record and its summary (ops/s, p50/p90/p99/p99.9/max).
//! - [`rng`]: a small deterministic generator, so runs are repeatable.
//! - `bin/mc-loadgen`: memcached get/set mix against any memcached-protocol server.

pub mod latency;
pub mod rng;
