//! `cache-node`: parse flags, set up logging and the runtime, serve until SIGTERM/SIGINT.

use cache_node::config::Config;
use cache_node::server::CacheNode;
use common::shutdown::{Shutdown, Signals};

fn main() {
    let config: Config = common::exit::parse_or_exit("cache-node");
    let runtime_config = config
        .validate()
        .unwrap_or_else(|reason| common::exit::config_error("cache-node", reason));
    common::telemetry::init_with("info", config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime_config.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cache-node: cannot start the runtime: {e}");
            std::process::exit(1)
        });
    let code = runtime.block_on(async move {
        let signals = Signals::install();
        let node = match CacheNode::bind(runtime_config).await {
            Ok(node) => node,
            Err(e) => {
                tracing::error!(error = %common::exit::chain(&e), "cannot start");
                return 1;
            }
        };
        let (shutdown, watch) = Shutdown::new();
        let server = tokio::spawn(node.run(watch));
        let name = signals.recv().await;
        tracing::info!(signal = name, "shutting down");
        shutdown.trigger();
        match server.await {
            Ok(_) => 0,
            Err(e) => {
                tracing::error!(error = %e, "server task failed");
                1
            }
        }
    });
    std::process::exit(code);
}
