//! Login throttling against a real cache-node: the IP counter allows exactly the limit
//! per window, the user counter counts successes (Zimbra) or only failures, counters are
//! shared by every proxy using the same nodes, and a dead cache allows everything.

use std::time::Duration;

use clap::Parser;
use common::shutdown::Shutdown;
use proxy::cache::{CacheCluster, CacheConfig};
use proxy::throttle::{Count, Limits, Throttle};
use std::sync::Arc;

async fn node() -> (String, Shutdown) {
    let config = cache_node::config::Config::try_parse_from([
        "cache-node",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let n = cache_node::server::CacheNode::bind(config).await.unwrap();
    let addr = n.local_addr().to_string();
    let (shutdown, watch) = Shutdown::new();
    tokio::spawn(n.run(watch));
    (addr, shutdown)
}

fn cluster(addr: &str) -> Arc<CacheCluster> {
    Arc::new(CacheCluster::new(
        &[addr.to_string()],
        CacheConfig {
            fetch_timeout: Duration::from_millis(300),
            probe_interval: Duration::from_secs(60),
            ..CacheConfig::default()
        },
    ))
}

fn limits(ip_max: u64, user_max: u64, count: Count) -> Limits {
    Limits {
        ip_max,
        ip_window: 60,
        user_max,
        user_window: 60,
        count,
    }
}

#[tokio::test]
async fn ip_and_user_limits_are_shared_and_fail_open() {
    let (addr, _node) = node().await;
    let ip = "192.0.2.7".parse().unwrap();
    // Two proxies over the same node share the counters.
    let a = Throttle::new(Some(cluster(&addr)), limits(3, 2, Count::Successful));
    let b = Throttle::new(Some(cluster(&addr)), limits(3, 2, Count::Successful));
    assert!(a.allow_ip(ip).await);
    assert!(b.allow_ip(ip).await);
    assert!(a.allow_ip(ip).await);
    assert!(
        !b.allow_ip(ip).await,
        "the fourth connection from the IP is over a limit of 3"
    );
    assert!(
        a.allow_ip("192.0.2.8".parse().unwrap()).await,
        "other IPs are counted apart"
    );

    for _ in 0..2 {
        assert!(a.allow_user("Ann@Example.com").await);
        a.record("ann@example.com", true).await;
    }
    assert!(
        !b.allow_user("ann@example.com").await,
        "two successful logins used up a limit of 2"
    );
    // Failures do not count in the default mode.
    b.record("bob@example.com", false).await;
    b.record("bob@example.com", false).await;
    assert!(a.allow_user("bob@example.com").await);

    // The failed-only mode: successes never lock a user out, failures do.
    let f = Throttle::new(Some(cluster(&addr)), limits(0, 2, Count::Failed));
    for _ in 0..5 {
        f.record("webmail@example.com", true).await;
    }
    assert!(f.allow_user("webmail@example.com").await);
    f.record("guess@example.com", false).await;
    f.record("guess@example.com", false).await;
    assert!(!f.allow_user("guess@example.com").await);

    // Limits of 0 and a dead cache allow everything.
    let dead = Throttle::new(
        Some(cluster("127.0.0.1:1")),
        limits(1, 1, Count::Successful),
    );
    for _ in 0..3 {
        assert!(dead.allow_ip(ip).await);
        assert!(dead.allow_user("ann@example.com").await);
        dead.record("ann@example.com", true).await;
    }
    let none = Throttle::new(None, limits(1, 1, Count::Successful));
    assert!(none.allow_ip(ip).await && none.allow_ip(ip).await);
}
