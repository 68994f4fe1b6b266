//! `route-lookup`: parse flags, set up logging, migrate, serve until SIGTERM/SIGINT.

use std::time::Duration;

use common::shutdown::{Shutdown, Signals};
use route_lookup::config::Config;
use route_lookup::server::RouteLookup;

#[tokio::main]
async fn main() {
    let config: Config = common::exit::parse_or_exit("route-lookup");
    let log_format = config.log_format;
    let db_wait = Duration::from_secs(config.db_wait);
    route_lookup::purge::authenticate_with(config.memcached_auth_file.as_deref())
        .unwrap_or_else(|e| common::exit::config_error("route-lookup", common::exit::chain(&e)));
    let config = config
        .validate()
        .unwrap_or_else(|reason| common::exit::config_error("route-lookup", reason));
    common::telemetry::init_with("info", log_format);
    let signals = Signals::install();
    let service = match RouteLookup::bind(config, db_wait).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %common::exit::chain(&e), "cannot start");
            std::process::exit(1);
        }
    };
    let (shutdown, watch) = Shutdown::new();
    let server = tokio::spawn(service.run(watch));
    let name = signals.recv().await;
    tracing::info!(signal = name, "shutting down");
    shutdown.trigger();
    let code = match server.await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "server task failed");
            1
        }
    };
    std::process::exit(code);
}
