//! `proxy`: parse flags, set up logging and the worker processes, run [`proxy::Proxy`]
//! until SIGTERM/SIGINT.

use std::time::Duration;

use common::shutdown::{Shutdown, Signals};
use proxy::config::Config;
use proxy::workers;

fn main() {
    let config: Config = common::exit::parse_or_exit("proxy");
    let mut runtime_config = config
        .validate()
        .unwrap_or_else(|reason| common::exit::config_error("proxy", reason));
    let worker = workers::index();
    runtime_config.shared_listeners |= worker > 0;
    runtime_config.worker = worker;
    let grace = runtime_config.grace;
    common::telemetry::init_with("info", config.log_format);
    if let (0, Some(certs)) = (worker, &runtime_config.certs) {
        // The default order depends on the CPU: say which one this machine got.
        tracing::info!(ciphers = %certs.ciphers(), "TLS cipher suites");
    }
    let runtime = workers::runtime(config.threads, config.workers).unwrap_or_else(|e| {
        eprintln!("proxy: cannot start the runtime: {e}");
        std::process::exit(1)
    });
    runtime.block_on(async move {
        let signals = Signals::install();
        let proxy = proxy::Proxy::bind(runtime_config)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot start");
                std::process::exit(1)
            });
        let supervisor = workers::start_others(&proxy, config.workers).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot start the worker processes");
            std::process::exit(1)
        });
        let (shutdown, watch) = Shutdown::new();
        let task = tokio::spawn(proxy.run(watch));
        let why = workers::stop_reason(signals).await;
        tracing::info!(signal = why, worker, "shutting down");
        shutdown.trigger();
        // The other workers drain alongside this one.
        let others = supervisor.map(|s| {
            tokio::task::spawn_blocking(move || s.shutdown(grace + Duration::from_secs(5)))
        });
        let _ = task.await;
        if let Some(others) = others {
            let _ = others.await;
        }
    });
}
