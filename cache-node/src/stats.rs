//! Server-wide counters and the two renderings of all counters: memcached's `stats`
//! reply (names and order as memcached prints them, which scrapers and `memcstat` rely
//! on) and the Prometheus page on the admin endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::listener::ListenerStats;
use common::metrics::PromWriter;

use crate::clock::{Clock, Now};
use crate::storage::StoreStats;

/// The version string `version` reports. Clients such as memccapable read the leading
/// `1.6.x` to decide which protocol behaviours to expect, and we implement 1.6's.
pub const VERSION: &str = concat!("1.6.21 cache-node-", env!("CARGO_PKG_VERSION"));

/// Counters that are not per shard.
#[derive(Debug)]
pub struct ServerStats {
    /// Process clock (uptime, `time`).
    pub clock: Clock,
    /// The memcached listener's connection counters.
    pub connections: Arc<ListenerStats>,
    /// Bytes read from clients.
    pub bytes_read: AtomicU64,
    /// Bytes written to clients.
    pub bytes_written: AtomicU64,
    /// Binary-protocol connections refused.
    pub binary_refused: AtomicU64,
    /// Connections closed at an HTTP request line.
    pub cross_protocol: AtomicU64,
    /// Connections closed for an over-long line.
    pub line_too_long: AtomicU64,
    /// Authenticating `set`s (memcached's `auth_cmds`).
    pub auth_cmds: AtomicU64,
    /// Those that failed (memcached's `auth_errors`).
    pub auth_errors: AtomicU64,
    /// `flush_all` commands refused by `--disable-flush-all`.
    pub flush_refused: AtomicU64,
    /// Static settings echoed by `stats` / `stats settings`.
    pub settings: Settings,
}

/// Settings reported by `stats settings`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--max-connections`.
    pub max_connections: usize,
    /// `--threads`.
    pub threads: usize,
    /// `--max-item-size`.
    pub max_item_size: usize,
    /// `--memory-limit-mb` in bytes.
    pub memory_limit: usize,
    /// The bound port.
    pub port: u16,
    /// Store shards.
    pub shards: usize,
    /// `flush_all` is allowed (no `--disable-flush-all`).
    pub flush_enabled: bool,
    /// `--auth-file`, shown as memcached shows `-Y` (`auth_enabled_ascii`).
    pub auth_file: Option<String>,
}

impl ServerStats {
    /// Fresh counters.
    pub fn new(clock: Clock, connections: Arc<ListenerStats>, settings: Settings) -> Self {
        Self {
            clock,
            connections,
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            binary_refused: AtomicU64::new(0),
            cross_protocol: AtomicU64::new(0),
            line_too_long: AtomicU64::new(0),
            auth_cmds: AtomicU64::new(0),
            auth_errors: AtomicU64::new(0),
            flush_refused: AtomicU64::new(0),
            settings,
        }
    }
}

/// User and system CPU seconds of this process, from /proc (zero where unavailable).
fn rusage() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports in USER_HZ, which is 100 on every mainstream build.
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// Resident memory of this process in bytes, from /proc (zero where unavailable).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn stat(out: &mut Vec<u8>, name: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "STAT {name} {value}\r\n");
}

/// The general `stats` reply, `END` included.
pub fn write_general(out: &mut Vec<u8>, server: &ServerStats, store: &StoreStats, now: Now) {
    let c = &store.counters;
    let (user, system) = rusage();
    let conns = &server.connections;
    stat(out, "pid", std::process::id());
    stat(out, "uptime", now.rel - Now::EPOCH);
    stat(out, "time", now.unix());
    stat(out, "version", VERSION);
    stat(out, "pointer_size", usize::BITS);
    stat(out, "rusage_user", format_args!("{user:.6}"));
    stat(out, "rusage_system", format_args!("{system:.6}"));
    stat(out, "max_connections", server.settings.max_connections);
    stat(out, "curr_connections", conns.active());
    stat(
        out,
        "total_connections",
        conns.accepted.load(Ordering::Relaxed),
    );
    stat(
        out,
        "rejected_connections",
        conns.rejected.load(Ordering::Relaxed),
    );
    stat(out, "cmd_get", c.get_hits + c.get_misses);
    stat(out, "cmd_set", c.cmd_set);
    let flush_refused = server.flush_refused.load(Ordering::Relaxed);
    stat(out, "cmd_flush", store.cmd_flush + flush_refused);
    stat(out, "cmd_touch", c.cmd_touch);
    stat(out, "get_hits", c.get_hits);
    stat(out, "get_misses", c.get_misses);
    stat(out, "get_expired", c.get_expired);
    stat(out, "delete_misses", c.delete_misses);
    stat(out, "delete_hits", c.delete_hits);
    stat(out, "incr_misses", c.incr_misses);
    stat(out, "incr_hits", c.incr_hits);
    stat(out, "decr_misses", c.decr_misses);
    stat(out, "decr_hits", c.decr_hits);
    stat(out, "cas_misses", c.cas_misses);
    stat(out, "cas_hits", c.cas_hits);
    stat(out, "cas_badval", c.cas_badval);
    stat(out, "touch_hits", c.touch_hits);
    stat(out, "touch_misses", c.touch_misses);
    stat(out, "store_no_memory", c.out_of_memory);
    stat(out, "auth_cmds", server.auth_cmds.load(Ordering::Relaxed));
    stat(
        out,
        "auth_errors",
        server.auth_errors.load(Ordering::Relaxed),
    );
    stat(out, "bytes_read", server.bytes_read.load(Ordering::Relaxed));
    stat(
        out,
        "bytes_written",
        server.bytes_written.load(Ordering::Relaxed),
    );
    stat(out, "limit_maxbytes", store.limit_maxbytes);
    stat(out, "accepting_conns", 1);
    stat(out, "threads", server.settings.threads);
    stat(out, "bytes", store.bytes);
    stat(out, "curr_items", store.curr_items);
    stat(out, "total_items", c.total_items);
    stat(out, "expired_unfetched", c.expired_unfetched);
    stat(out, "evicted_unfetched", c.evicted_unfetched);
    stat(out, "evictions", c.evictions);
    stat(out, "reclaimed", c.reclaimed);
    out.extend_from_slice(b"END\r\n");
}

/// The `stats settings` reply, `END` included.
pub fn write_settings(out: &mut Vec<u8>, server: &ServerStats) {
    let s = &server.settings;
    stat(out, "maxbytes", s.memory_limit);
    stat(out, "maxconns", s.max_connections);
    stat(out, "tcpport", s.port);
    stat(out, "udpport", 0);
    stat(out, "evictions", "on");
    stat(out, "num_threads", s.threads);
    stat(out, "cas_enabled", "yes");
    stat(out, "item_size_max", s.max_item_size);
    stat(out, "binding_protocol", "ascii");
    stat(out, "auth_enabled_sasl", "no");
    stat(
        out,
        "auth_enabled_ascii",
        s.auth_file.as_deref().unwrap_or("no"),
    );
    stat(
        out,
        "flush_enabled",
        if s.flush_enabled { "yes" } else { "no" },
    );
    stat(out, "store_shards", s.shards);
    out.extend_from_slice(b"END\r\n");
}

/// The Prometheus page for `/metrics`.
pub fn prometheus(server: &ServerStats, store: &StoreStats) -> String {
    let c = &store.counters;
    let conns = &server.connections;
    let now = server.clock.now();
    let mut w = PromWriter::new();
    w.single(
        "cache_node_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
        now.rel - Now::EPOCH,
    );
    w.single(
        "cache_node_resident_memory_bytes",
        "gauge",
        "Resident set size of the process.",
        resident_bytes(),
    );
    w.single(
        "cache_node_limit_bytes",
        "gauge",
        "Configured memory limit (--memory-limit-mb).",
        store.limit_maxbytes,
    );
    w.single(
        "cache_node_bytes",
        "gauge",
        "Bytes charged for items held (keys, values, overhead).",
        store.bytes,
    );
    w.single("cache_node_items", "gauge", "Items held.", store.curr_items);
    w.single(
        "cache_node_connections",
        "gauge",
        "Open client connections.",
        conns.active(),
    );
    w.single(
        "cache_node_connections_total",
        "counter",
        "Client connections accepted.",
        conns.accepted.load(Ordering::Relaxed),
    );
    w.single(
        "cache_node_connections_rejected_total",
        "counter",
        "Connections refused at --max-connections.",
        conns.rejected.load(Ordering::Relaxed),
    );
    w.single(
        "cache_node_binary_protocol_refused_total",
        "counter",
        "Connections closed for speaking the binary protocol.",
        server.binary_refused.load(Ordering::Relaxed),
    );
    w.single(
        "cache_node_cross_protocol_closed_total",
        "counter",
        "Connections closed at an HTTP request line (another protocol's request sent here).",
        server.cross_protocol.load(Ordering::Relaxed),
    );
    w.single(
        "cache_node_line_too_long_total",
        "counter",
        "Connections closed for an over-long command line.",
        server.line_too_long.load(Ordering::Relaxed),
    );
    w.single(
        "cache_node_read_bytes_total",
        "counter",
        "Bytes read from clients.",
        server.bytes_read.load(Ordering::Relaxed),
    );
    w.single(
        "cache_node_written_bytes_total",
        "counter",
        "Bytes written to clients.",
        server.bytes_written.load(Ordering::Relaxed),
    );
    w.header("cache_node_gets_total", "counter", "Key lookups by result.");
    w.sample("cache_node_gets_total", &[("result", "hit")], c.get_hits);
    w.sample("cache_node_gets_total", &[("result", "miss")], c.get_misses);
    w.single(
        "cache_node_sets_total",
        "counter",
        "Storage commands.",
        c.cmd_set,
    );
    w.single(
        "cache_node_flushes_total",
        "counter",
        "flush_all commands.",
        store.cmd_flush,
    );
    w.single(
        "cache_node_flush_refused_total",
        "counter",
        "flush_all commands refused (--disable-flush-all).",
        server.flush_refused.load(Ordering::Relaxed),
    );
    w.header(
        "cache_node_authentications_total",
        "counter",
        "Authenticating sets (--auth-file) by result.",
    );
    let (auth_cmds, auth_errors) = (
        server.auth_cmds.load(Ordering::Relaxed),
        server.auth_errors.load(Ordering::Relaxed),
    );
    w.sample(
        "cache_node_authentications_total",
        &[("result", "ok")],
        auth_cmds.saturating_sub(auth_errors),
    );
    w.sample(
        "cache_node_authentications_total",
        &[("result", "failure")],
        auth_errors,
    );
    w.header("cache_node_deletes_total", "counter", "Deletes by result.");
    w.sample(
        "cache_node_deletes_total",
        &[("result", "hit")],
        c.delete_hits,
    );
    w.sample(
        "cache_node_deletes_total",
        &[("result", "miss")],
        c.delete_misses,
    );
    w.single(
        "cache_node_evictions_total",
        "counter",
        "Live items evicted to make room.",
        c.evictions,
    );
    w.single(
        "cache_node_reclaimed_total",
        "counter",
        "Expired items whose memory was reclaimed.",
        c.reclaimed,
    );
    w.single(
        "cache_node_out_of_memory_total",
        "counter",
        "Stores refused for lack of memory.",
        c.out_of_memory,
    );
    w.finish()
}
