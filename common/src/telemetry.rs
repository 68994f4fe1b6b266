//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as text
//! for people or JSON lines for log shippers. Colour only when stderr is a terminal and
//! `NO_COLOR` is unset, so log files, `journalctl` and `docker compose logs` never carry
//! escape codes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, with its spans.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message, fields, and the
    /// current span and span list with their fields.
    Json,
}

/// Installs the global subscriber as text. See [`init_with`].
pub fn init(default_filter: &str) {
    init_with(default_filter, LogFormat::Text);
}

/// Installs the global subscriber. `RUST_LOG` (e.g. `cache_node=debug,info`) overrides
/// `default_filter`. Safe to call more than once (later calls do nothing), so tests that
/// start servers in-process may call it too.
pub fn init_with(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour()).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// Whether to colour text logs: stderr is a terminal and `NO_COLOR` (no-color.org) is
/// unset or empty.
fn colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
