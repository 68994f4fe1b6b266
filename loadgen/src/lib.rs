//! Load generators for the benchmark scripts under `bench/`: closed loops (one request in
//! flight per connection) that record every latency, so percentiles are exact rather than
//! read off histogram buckets.
//!
//! # Layout
//! - [`latency`]: the latency record and its summary (ops/s, p50/p90/p99/p99.9/max).
//! - [`rng`]: a small deterministic generator, so runs are repeatable.
//! - [`tls`]: the TLS client configuration a run shares (with or without session
//!   resumption) and the tally of full and resumed handshakes.
//! - `bin/mc-loadgen`: memcached get/set mix against any memcached-protocol server.
//! - `bin/imap-loadgen`: IMAP sessions, bulk FETCH and idle sessions, in plaintext, over
//!   implicit TLS (`--tls`) or after STARTTLS (`--starttls`).

pub mod latency;
pub mod rng;
pub mod tls;
