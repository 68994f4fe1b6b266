//! `proxy`: parse flags, set up logging, serve until SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use common::shutdown::{Shutdown, Signals};
use proxy::cache::{CacheCluster, CacheConfig};
use proxy::config::{Config, CountArg};
use proxy::lookup::LookupClient;
use proxy::route::Router;
use proxy::server::{self, Kind};
use proxy::session::{Env, Stats};
use proxy::throttle::{Count, Limits, Throttle};

fn main() {
    let config: Config = common::exit::parse_or_exit("proxy");
    let checked = config
        .validate()
        .unwrap_or_else(|reason| common::exit::config_error("proxy", reason));
    common::telemetry::init("info");
    // Each worker process gets its share of the CPUs; one thread means a single-threaded
    // runtime (no work stealing), nginx's model with --workers N --threads 1.
    let threads = config.threads.unwrap_or_else(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cpus / config.workers).max(1)
    });
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = runtime.unwrap_or_else(|e| {
        eprintln!("proxy: cannot start the runtime: {e}");
        std::process::exit(1)
    });
    runtime.block_on(serve(config, checked));
}

async fn serve(config: Config, checked: proxy::config::Checked) {
    let signals = Signals::install();
    let retry = Duration::from_secs(config.retry_interval);
    let cache = (!config.memcached.is_empty()).then(|| {
        Arc::new(CacheCluster::new(
            &config.memcached,
            CacheConfig {
                fetch_timeout: Duration::from_millis(config.cache_timeout_ms.max(1)),
                retry_interval: retry,
                connections_per_node: 16,
            },
        ))
    });
    let cache = match (&cache, &config.directory) {
        // With a directory and no static nodes, the cluster starts empty and follows the
        // watch.
        (None, Some(_)) => Some(Arc::new(CacheCluster::new(
            &[],
            CacheConfig {
                fetch_timeout: Duration::from_millis(config.cache_timeout_ms.max(1)),
                retry_interval: retry,
                connections_per_node: 16,
            },
        ))),
        _ => cache,
    };
    let backends = Arc::new(proxy::membership::Backends::default());
    let lookup = Arc::new(LookupClient::new(
        checked.urls,
        config.lookup_secret.clone(),
        Duration::from_secs(15),
        retry,
    ));
    let (shutdown, watch) = Shutdown::new();
    let throttle = Throttle::new(
        cache.clone(),
        Limits {
            ip_max: config.ip_login_limit,
            ip_window: config.ip_login_limit_time.max(1),
            user_max: config.user_login_limit,
            user_window: config.user_login_limit_time.max(1),
            count: match config.user_login_limit_counts {
                CountArg::Successful => Count::Successful,
                CountArg::Failed => Count::Failed,
            },
        },
    );
    if cache.is_none() && (config.ip_login_limit > 0 || config.user_login_limit > 0) {
        common::exit::config_error(
            "proxy",
            "login limits are counted in the cache: give --memcached",
        );
    }
    let env = Arc::new(Env {
        throttle,
        router: {
            let router = Router::new(cache.clone(), lookup, config.route_ttl);
            if config.directory.is_some() {
                router.with_backends(backends.clone())
            } else {
                router
            }
        },
        tls: checked.tls.map(tokio_rustls::TlsAcceptor::from),
        starttls: checked.starttls,
        forward: checked.forward,
        preauth_timeout: checked.preauth,
        idle_timeout: checked.idle,
        backend_timeout: Duration::from_secs(10),
        max_bad_commands: config.max_bad_commands,
        stats: Stats::default(),
        shutdown: watch.clone(),
        name: config.name.clone(),
        upstream_tls: checked
            .upstream
            .clone()
            .map(tokio_rustls::TlsConnector::from),
    });
    let worker = proxy::workers::index();
    let shared = config.workers > 1 || worker > 0;
    let mut listeners = Vec::new();
    for (kind, addr) in [
        (Kind::Imap, config.imap_listen),
        (Kind::Imaps, config.imaps_listen),
        (Kind::Pop3, config.pop3_listen),
        (Kind::Pop3s, config.pop3s_listen),
    ] {
        let Some(addr) = addr.addr() else { continue };
        let bound = if shared {
            common::listener::bind_shared(kind_name(kind), addr)
        } else {
            common::listener::bind(kind_name(kind), addr).await
        };
        match bound {
            Ok(l) => listeners.push((kind, l)),
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                std::process::exit(1);
            }
        }
    }
    let admin = match config.admin_listen.addr() {
        Some(a) => match common::listener::bind("admin", a).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                std::process::exit(1);
            }
        },
        None => None,
    };
    if let Some(url) = config.directory.clone() {
        tokio::spawn(proxy::membership::follow(
            url,
            config.admin_token.clone(),
            cache.clone(),
            config.memcached.clone(),
            backends,
            watch.clone(),
        ));
    }
    let supervisor = if config.workers > 1 && worker == 0 {
        let plan = proxy::workers::Plan {
            workers: config.workers,
            listen_flags: listeners
                .iter()
                .filter_map(|(k, l)| Some((listen_flag(*k), l.local_addr().ok()?)))
                .collect(),
            admin: admin.as_ref().and_then(|l| l.local_addr().ok()),
        };
        match proxy::workers::Supervisor::start(plan) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the worker processes");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    let grace = Duration::from_secs(config.grace_period);
    let task = tokio::spawn(server::run(
        env,
        listeners,
        admin,
        config.max_connections,
        grace,
        watch,
    ));
    let why = if worker > 0 {
        tokio::select! {
            name = signals.recv() => name,
            _ = proxy::workers::parent_gone() => "worker 0 closed our input",
        }
    } else {
        signals.recv().await
    };
    tracing::info!(signal = why, worker, "shutting down");
    shutdown.trigger();
    // The other workers drain alongside this one.
    let workers = supervisor
        .map(|s| tokio::task::spawn_blocking(move || s.shutdown(grace + Duration::from_secs(5))));
    let _ = task.await;
    if let Some(w) = workers {
        let _ = w.await;
    }
}

fn listen_flag(kind: Kind) -> &'static str {
    match kind {
        Kind::Imap => "--imap-listen",
        Kind::Imaps => "--imaps-listen",
        Kind::Pop3 => "--pop3-listen",
        Kind::Pop3s => "--pop3s-listen",
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Imap => "imap",
        Kind::Imaps => "imaps",
        Kind::Pop3 => "pop3",
        Kind::Pop3s => "pop3s",
    }
}
