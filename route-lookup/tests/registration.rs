//! Self-registration, with real processes' code in-process: a route-lookup registers its
//! own lookup URL (garpu lists it while it runs and drops it when it stops), and a
//! cache-node started with --register joins the membership, heartbeats, deregisters at
//! shutdown, and, when its lease is lost, empties its store before it registers again.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use common::shutdown::Shutdown;
use proto::v1::Empty;
use route_lookup::testing::{Harness, TOKEN};
use support::provisioning;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn garpu(url: &str) -> Vec<String> {
    provisioning(url)
        .await
        .get_all_reverse_proxy_urls(Empty {})
        .await
        .unwrap()
        .into_inner()
        .names
}

async fn gamcs(url: &str) -> Vec<String> {
    provisioning(url)
        .await
        .get_all_memcached_servers(Empty {})
        .await
        .unwrap()
        .into_inner()
        .names
}

/// Polls `probe` until it returns true, for at most `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn command(addr: SocketAddr, cmd: &str) -> String {
    let mut s = BufReader::new(TcpStream::connect(addr).await.unwrap());
    s.get_mut().write_all(cmd.as_bytes()).await.unwrap();
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    line
}

#[tokio::test]
async fn route_lookup_registers_its_lookup_url_while_it_runs() {
    let h = Harness::start(&["--advertise", "lookup-a.test:7072"]).await;
    let url = h.grpc_url();
    eventually(10, "the first instance in garpu", || async {
        garpu(&url).await == ["lookup-a.test:7072/service/extension/nginx-lookup"]
    })
    .await;

    // A second instance on the same database, advertising itself by its listen address.
    let config = route_lookup::config::Config::try_parse_from([
        "route-lookup",
        "--database-url",
        &h.db.url,
        "--http-listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "off",
        "--grace-period",
        "1",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let second = route_lookup::server::RouteLookup::bind(config, Duration::from_secs(10))
        .await
        .unwrap();
    let second_url = format!(
        "{}/service/extension/nginx-lookup",
        second.http_addr().unwrap()
    );
    let (stop, watch) = Shutdown::new();
    let task = tokio::spawn(second.run(watch));
    eventually(10, "both instances in garpu", || async {
        let urls = garpu(&url).await;
        urls.len() == 2 && urls.contains(&second_url)
    })
    .await;

    // Stopped, it deregisters at once (no waiting for the lease).
    stop.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        garpu(&url).await,
        ["lookup-a.test:7072/service/extension/nginx-lookup"]
    );
    h.stop().await;
}

#[tokio::test]
async fn cache_node_joins_heartbeats_leaves_and_rejoins_empty() {
    let h = Harness::start(&[]).await;
    let url = h.grpc_url();
    let config = cache_node::config::Config::try_parse_from([
        "cache-node",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
        "--register",
        &url,
        "--admin-token",
        TOKEN,
        "--lease-ttl",
        "3",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let node = cache_node::server::CacheNode::bind(config).await.unwrap();
    let addr = node.local_addr();
    let (stop, watch) = Shutdown::new();
    let task = tokio::spawn(node.run(watch));
    // No --advertise: the address it reaches route-lookup from (127.0.0.1) and its port.
    let me = addr.to_string();
    eventually(10, "the node in gamcs", || async {
        gamcs(&url).await == [me.clone()]
    })
    .await;

    // Heartbeats keep it there well past its 3 s lease.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        gamcs(&url).await,
        vec![me.clone()],
        "heartbeats keep the lease"
    );

    // The lease is lost behind its back (as when route-lookup or the network was away for
    // longer than the lease): at its next heartbeat it empties its store, then rejoins.
    assert_eq!(
        command(addr, "set route:probe 0 0 5\r\nstale\r\n").await,
        "STORED\r\n"
    );
    let (db, conn) = tokio_postgres::connect(&h.db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let gone = db
        .execute("DELETE FROM registrations WHERE address = $1", &[&me])
        .await
        .unwrap();
    assert_eq!(gone, 1);
    eventually(10, "the store emptied before rejoining", || async {
        command(addr, "get route:probe\r\n").await == "END\r\n"
    })
    .await;
    eventually(10, "the node back in gamcs", || async {
        gamcs(&url).await == [me.clone()]
    })
    .await;

    // Stopped, it deregisters at once.
    stop.trigger();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap();
    assert!(gamcs(&url).await.is_empty(), "deregistered at shutdown");
    h.stop().await;
}

async fn readyz(admin: SocketAddr) -> String {
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out)
        .await
        .unwrap();
    out.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_registering_cache_node_is_ready_only_while_registered() {
    let h = Harness::start(&[]).await;
    // First pointed at a route-lookup that is not there: alive, not ready.
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", spare.local_addr().unwrap());
    drop(spare);
    for (url, ready) in [(dead, false), (h.grpc_url(), true)] {
        let config = cache_node::config::Config::try_parse_from([
            "cache-node",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--register",
            &url,
            "--admin-token",
            TOKEN,
        ])
        .unwrap()
        .validate()
        .unwrap();
        let node = cache_node::server::CacheNode::bind(config).await.unwrap();
        let admin = node.admin_addr().expect("admin listener");
        let (stop, watch) = Shutdown::new();
        let task = tokio::spawn(node.run(watch));
        if ready {
            eventually(10, "ready once registered", || async {
                readyz(admin).await.contains(" 200 ")
            })
            .await;
        } else {
            tokio::time::sleep(Duration::from_millis(800)).await;
            assert!(
                readyz(admin).await.contains(" 503 "),
                "not ready unregistered"
            );
        }
        stop.trigger();
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .unwrap()
            .unwrap();
    }
    h.stop().await;
}
