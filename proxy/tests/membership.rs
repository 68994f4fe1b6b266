//! Following route-lookup's watch: a cache node that registers joins the proxy's cluster
//! and leaves it when it deregisters; mailbox servers become the set of backends a cached
//! route may point at, so a planted route to anywhere else is deleted and looked up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use codec::route_key::route_key;
use common::shutdown::Shutdown;
use proto::v1::{CreateAccountRequest, CreateRequest, LeaseRequest, RegisterRequest, ServiceKind};
use proxy::cache::{CacheCluster, CacheConfig};
use proxy::login::{Decision, Login};
use proxy::lookup::{LookupClient, LookupConfig};
use proxy::membership::{follow, Backends, DirectoryUrl};
use proxy::route::Router;
use route_lookup::testing::{set_attrs, Harness, TOKEN};

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_watch_drives_nodes_and_trusted_backends() {
    let h = Harness::start(&[]).await;
    let mut p = h.provisioning().await;
    let mut r = h.registry().await;
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    p.create_server(CreateRequest {
        name: "mbx1.example.com".into(),
        attrs: set_attrs(&[
            ("zimbraServiceEnabled", "mailbox"),
            ("serviceAddress", "127.0.0.1"),
            ("zimbraImapBindPort", "17143"),
        ]),
    })
    .await
    .unwrap();
    p.create_account(CreateAccountRequest {
        name: "ann@example.com".into(),
        password: "x".into(),
        attrs: set_attrs(&[("zimbraMailHost", "mbx1.example.com")]),
    })
    .await
    .unwrap();

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
    let node_addr = node.local_addr().to_string();
    let (_node_stop, node_watch) = Shutdown::new();
    tokio::spawn(node.run(node_watch));

    let cache = Arc::new(CacheCluster::new(&[], CacheConfig::default()));
    let backends = Arc::new(Backends::default());
    let (stop, watch) = Shutdown::new();
    tokio::spawn(follow(
        DirectoryUrl {
            url: h.grpc_url(),
            ca: None,
        },
        Some(TOKEN.into()),
        Some(cache.clone()),
        vec![],
        backends.clone(),
        watch,
    ));

    let lease = r
        .register(RegisterRequest {
            kind: ServiceKind::CacheNode.into(),
            address: node_addr.clone(),
            ttl_seconds: 60,
        })
        .await
        .unwrap()
        .into_inner();
    until("the node joins", || {
        cache.nodes().iter().any(|n| n.addr() == node_addr)
    })
    .await;
    until("mbx1 is a known backend", || {
        backends.allows("127.0.0.1:17143".parse().unwrap())
    })
    .await;
    assert!(!backends.allows("10.6.6.6:7143".parse().unwrap()));

    // A planted route to an unregistered host is not used.
    let lookup = Arc::new(LookupClient::new(LookupConfig {
        urls: vec![format!("http://{}/service/extension/nginx-lookup", h.http)
            .parse()
            .unwrap()],
        secret: None,
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    }));
    let router = Router::new(Some(cache.clone()), lookup, 3600).with_backends(backends.clone());
    let key = route_key("imap", "ann@example.com");
    assert!(cache.add(&key, b"10.6.6.6:7143", 3600).await);
    let login = Login {
        user: "ann@example.com",
        pass: b"x",
        method: "plain",
        protocol: "imap",
        attempt: 1,
        client_ip: "192.0.2.7".parse().unwrap(),
        proxy_ip: "127.0.0.1".parse().unwrap(),
    };
    match router.route(&login).await {
        Decision::Route(route) => {
            assert_eq!(route.backend.to_string(), "127.0.0.1:17143");
            assert!(!route.cached);
        }
        other => panic!("{other:?}"),
    }
    // The good route is now cached and used, named after the registered server.
    match router.route(&login).await {
        Decision::Route(route) => {
            assert!(route.cached);
            assert_eq!(route.server_name.as_deref(), Some("mbx1.example.com"));
        }
        other => panic!("{other:?}"),
    }

    r.deregister(LeaseRequest {
        lease_id: lease.lease_id,
    })
    .await
    .unwrap();
    until("the node leaves", || cache.nodes().is_empty()).await;
    stop.trigger();
    h.stop().await;
}
