//! Moving, locking or deleting an account deletes its cached routes on every cache node
//! (a real cache-node here), under the escaped key shapes the proxy uses; other users'
//! routes stay, and a dead node neither blocks nor fails the change.

mod support;

use std::net::SocketAddr;

use clap::Parser;
use codec::route_key::route_key;
use common::shutdown::Shutdown;
use proto::v1::{ModifyRequest, NameRequest, RegisterRequest, ServiceKind};
use route_lookup::testing::Harness;
use support::{provisioning, registry, seed, set};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn start_cache_node() -> (SocketAddr, Shutdown) {
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
    let node = cache_node::server::CacheNode::bind(config).await.unwrap();
    let addr = node.local_addr();
    let (shutdown, watch) = Shutdown::new();
    tokio::spawn(node.run(watch));
    (addr, shutdown)
}

/// Sends one command and returns the first reply line.
async fn command(addr: SocketAddr, cmd: &str) -> String {
    let mut s = BufReader::new(TcpStream::connect(addr).await.unwrap());
    s.get_mut().write_all(cmd.as_bytes()).await.unwrap();
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    line
}

async fn put(addr: SocketAddr, key: &str, value: &str) {
    let reply = command(
        addr,
        &format!("add {key} 0 3600 {}\r\n{value}\r\n", value.len()),
    )
    .await;
    assert_eq!(reply, "STORED\r\n");
}

async fn present(addr: SocketAddr, key: &str) -> bool {
    command(addr, &format!("get {key}\r\n"))
        .await
        .starts_with("VALUE ")
}

#[tokio::test]
async fn account_changes_purge_cached_routes_on_every_node() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let (a, _a) = start_cache_node().await;
    let (b, _b) = start_cache_node().await;
    let mut r = registry(&h.grpc_url()).await;
    for node in [a.to_string(), b.to_string(), "127.0.0.1:1".to_string()] {
        r.register(RegisterRequest {
            kind: ServiceKind::CacheNode.into(),
            address: node,
            ttl_seconds: 60,
        })
        .await
        .unwrap();
    }
    let ann: Vec<String> = ["imap", "pop3ssl"]
        .iter()
        .flat_map(|p| {
            [
                route_key(p, "ann@example.com"),
                route_key(p, "annie@example.com"),
            ]
        })
        .map(|k| k.wire().to_string())
        .collect();
    let bob = route_key("imap", "bob@example.net").wire().to_string();
    let zoe = route_key("imap", "zoë@example.com").wire().to_string();
    assert_eq!(zoe, "route:proto=imap;user=zo%C3%AB@example.com");
    for node in [a, b] {
        for key in ann.iter().chain([&bob, &zoe]) {
            put(node, key, "127.0.0.1:7143").await;
        }
    }
    let mut p = provisioning(&h.grpc_url()).await;
    let started = std::time::Instant::now();
    p.modify_account(ModifyRequest {
        name: "annie@example.com".into(),
        attrs: set(&[("zimbraMailHost", "mbx2.example.com")]),
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a dead node does not stall the change"
    );
    for node in [a, b] {
        for key in &ann {
            assert!(!present(node, key).await, "{key} still cached on {node}");
        }
        assert!(present(node, &bob).await, "other users' routes stay");
    }
    // A change that does not touch routing purges nothing.
    for node in [a, b] {
        put(node, &ann[0], "127.0.0.2:8143").await;
    }
    p.modify_account(ModifyRequest {
        name: "ann@example.com".into(),
        attrs: set(&[("displayName", "Ann")]),
    })
    .await
    .unwrap();
    assert!(present(a, &ann[0]).await);
    // Locking and deleting do.
    p.modify_account(ModifyRequest {
        name: "ann@example.com".into(),
        attrs: set(&[("zimbraAccountStatus", "locked")]),
    })
    .await
    .unwrap();
    assert!(!present(a, &ann[0]).await && !present(b, &ann[0]).await);
    p.delete_account(NameRequest {
        name: "zoë@example.com".into(),
    })
    .await
    .unwrap();
    assert!(!present(a, &zoe).await && !present(b, &zoe).await);
    assert!(present(b, &bob).await);
    h.stop().await;
}

#[tokio::test]
async fn a_configured_cache_server_is_purged_at_its_service_address() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let (node, _node) = start_cache_node().await;
    let mut p = provisioning(&h.grpc_url()).await;
    // Its name does not resolve: only serviceAddress reaches it.
    p.create_server(proto::v1::CreateRequest {
        name: "memcached-1.invalid".into(),
        attrs: set(&[
            ("zimbraServiceEnabled", "memcached"),
            ("serviceAddress", &node.ip().to_string()),
            ("zimbraMemcachedBindPort", &node.port().to_string()),
        ]),
    })
    .await
    .unwrap();
    let key = route_key("imap", "bob@example.net").wire().to_string();
    put(node, &key, "127.0.0.2:8143").await;
    p.modify_account(ModifyRequest {
        name: "bob@example.net".into(),
        attrs: set(&[("zimbraMailHost", "mbx1.example.com")]),
    })
    .await
    .unwrap();
    assert!(!present(node, &key).await, "purged through serviceAddress");
    // gamcs still lists it by name, as Zimbra does.
    let listed = p
        .get_all_memcached_servers(proto::v1::Empty {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert!(
        listed.contains(&format!("memcached-1.invalid:{}", node.port())),
        "{listed:?}"
    );
    h.stop().await;
}
