//! The route-cache cluster client against real cache-nodes (in-process): placement as
//! libmemcached's ketama, add/get/delete/incr, escaped keys reaching the node as sent,
//! a dead or stalled node ejected (nothing blocks past the fetch timeout; its keys go to
//! the next node on the ring while it is out, and back when it returns), and membership
//! changes that keep the other nodes' connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use codec::route_key::{alias_key, route_key, CacheKey};
use common::shutdown::Shutdown;
use proxy::cache::{CacheCluster, CacheConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

async fn node() -> (SocketAddr, Shutdown) {
    node_at("127.0.0.1:0").await
}

/// A cache-node listening on `listen` (an address a node had before: a restart).
async fn node_at(listen: &str) -> (SocketAddr, Shutdown) {
    let config = cache_node::config::Config::try_parse_from([
        "cache-node",
        "--listen",
        listen,
        "--admin-listen",
        "off",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let n = cache_node::server::CacheNode::bind(config).await.unwrap();
    let addr = n.local_addr();
    let (shutdown, watch) = Shutdown::new();
    tokio::spawn(n.run(watch));
    (addr, shutdown)
}

/// Reads `key` straight from a node with the text protocol.
async fn raw_get(addr: SocketAddr, key: &str) -> Option<String> {
    let mut s = BufReader::new(TcpStream::connect(addr).await.unwrap());
    s.get_mut()
        .write_all(format!("get {key}\r\n").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    if line == "END\r\n" {
        return None;
    }
    let mut value = String::new();
    s.read_line(&mut value).await.unwrap();
    Some(value.trim_end().to_string())
}

fn config() -> CacheConfig {
    CacheConfig {
        fetch_timeout: Duration::from_millis(300),
        probe_interval: Duration::from_secs(60),
        retry_interval: Duration::from_secs(60),
        connections_per_node: 2,
    }
}

#[tokio::test]
async fn routes_are_stored_where_ketama_says() {
    let (a, _sa) = node().await;
    let (b, _sb) = node().await;
    let (c, _sc) = node().await;
    let nodes = vec![a.to_string(), b.to_string(), c.to_string()];
    let cluster = CacheCluster::new(&nodes, config());
    let mut per_node = std::collections::HashMap::new();
    for i in 0..60 {
        let key = route_key("imap", &format!("user{i}@example.com"));
        assert!(
            cluster
                .add(&key, format!("10.0.0.{i}:7143").as_bytes(), 3600)
                .await
        );
        assert!(
            !cluster.add(&key, b"10.9.9.9:7143", 3600).await,
            "add never overwrites"
        );
        let owner = cluster.node_for(&key).unwrap();
        *per_node.entry(owner.addr().to_string()).or_insert(0) += 1;
        // The value is on that node and only there.
        for n in [a, b, c] {
            let here = raw_get(n, key.wire()).await;
            assert_eq!(
                here.is_some(),
                n.to_string() == owner.addr(),
                "{} on {n}",
                key.wire()
            );
        }
        assert_eq!(
            cluster.get(&key).await.unwrap(),
            format!("10.0.0.{i}:7143").into_bytes()
        );
    }
    assert_eq!(
        per_node.len(),
        3,
        "keys spread over every node: {per_node:?}"
    );
    let key = route_key("imap", "user1@example.com");
    assert!(cluster.delete(&key).await);
    assert_eq!(cluster.get(&key).await, None);
    assert!(!cluster.delete(&key).await);
    // Counters (throttling): created at 1 with a TTL, then incremented.
    let counter = CacheKey::from_logical("throttle:ip=192.0.2.7");
    assert_eq!(cluster.incr(&counter, 60).await, Some(1));
    assert_eq!(cluster.incr(&counter, 60).await, Some(2));
}

#[tokio::test]
async fn hostile_names_stay_one_key() {
    let (a, _sa) = node().await;
    let cluster = CacheCluster::new(&[a.to_string()], config());
    let evil = "x 0 0 1\r\nset route:proto=imap;user=victim 0 0 14\r\n10.6.6.6:7143\r\nget";
    let key = route_key("imap", evil);
    assert!(cluster.add(&key, b"10.0.0.1:7143", 60).await);
    assert_eq!(
        raw_get(a, "route:proto=imap;user=victim").await,
        None,
        "no second command reached the node"
    );
    assert_eq!(
        raw_get(a, key.wire()).await.as_deref(),
        Some("10.0.0.1:7143")
    );
    let long = route_key("pop3", &"a".repeat(400));
    assert!(cluster.add(&long, b"10.0.0.2:7110", 60).await);
    assert_eq!(
        raw_get(a, long.wire()).await.as_deref(),
        Some("10.0.0.2:7110")
    );
}

#[tokio::test]
async fn a_failing_node_is_ejected_and_never_blocks() {
    let (a, _sa) = node().await;
    // A "node" that accepts and never answers.
    let stall = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall_addr = stall.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stall.accept().await {
            held.push(s);
        }
    });
    let dead = "127.0.0.1:1".to_string();
    let cluster = CacheCluster::new(
        &[a.to_string(), stall_addr.to_string(), dead.clone()],
        config(),
    );
    let keys: Vec<CacheKey> = (0..40)
        .map(|i| route_key("imap", &format!("u{i}@example.com")))
        .collect();
    let started = Instant::now();
    let mut stored = 0;
    for k in &keys {
        if cluster.add(k, b"10.0.0.1:7143", 60).await {
            stored += 1;
        }
    }
    // Only the first request to each bad node waits (at most the fetch timeout) and is
    // lost; then the node is ejected and its keys go to the next node on the ring.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stored, keys.len() - 2, "one lost write per bad node");
    for n in cluster.nodes() {
        assert_eq!(n.is_ejected(), n.addr() != a.to_string(), "{}", n.addr());
    }
    let mut hits = 0;
    for k in &keys {
        assert_eq!(cluster.node_for(k).unwrap().addr(), a.to_string());
        if cluster.get(k).await.is_some() {
            hits += 1;
        }
    }
    assert_eq!(hits, stored, "every stored route is found again");
}

#[tokio::test]
async fn an_ejected_nodes_keys_go_to_the_next_node_and_come_back() {
    let (a, _sa) = node().await;
    let (b, stop_b) = node().await;
    let cluster = CacheCluster::new(
        &[a.to_string(), b.to_string()],
        CacheConfig {
            probe_interval: Duration::from_millis(500),
            retry_interval: Duration::from_secs(5),
            ..config()
        },
    );
    let on_b: Vec<CacheKey> = (0..200)
        .map(|i| route_key("imap", &format!("u{i}@example.com")))
        .filter(|k| cluster.node_for(k).unwrap().addr() == b.to_string())
        .take(10)
        .collect();
    assert_eq!(on_b.len(), 10);
    stop_b.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The first request finds b dead and ejects it; every later one goes to a.
    let first = cluster.add(&on_b[0], b"10.0.0.1:7143", 60).await;
    assert!(!first, "the write to the dead node is lost");
    for k in &on_b[1..] {
        assert!(
            cluster.add(k, b"10.0.0.1:7143", 60).await,
            "cached on a at once"
        );
        assert_eq!(raw_get(a, k.wire()).await.as_deref(), Some("10.0.0.1:7143"));
        assert_eq!(cluster.get(k).await.as_deref(), Some(&b"10.0.0.1:7143"[..]));
    }
    // b comes back on its address; after the retry interval its keys go back to it
    // (empty, so a miss: the route is looked up and cached there again).
    let (_, _restarted) = node_at(&b.to_string()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let k = &on_b[1];
    assert_eq!(cluster.node_for(k).unwrap().addr(), b.to_string());
    assert_eq!(cluster.get(k).await, None, "b is back and empty");
    assert!(cluster.add(k, b"10.0.0.9:7143", 60).await);
    assert_eq!(raw_get(b, k.wire()).await.as_deref(), Some("10.0.0.9:7143"));
}

#[tokio::test]
async fn membership_changes_move_few_keys() {
    let (a, _sa) = node().await;
    let (b, _sb) = node().await;
    let (c, _sc) = node().await;
    let cluster = CacheCluster::new(&[a.to_string(), b.to_string()], config());
    let keys: Vec<CacheKey> = (0..300)
        .map(|i| route_key("imap", &format!("u{i}@example.com")))
        .collect();
    let before: Vec<String> = keys
        .iter()
        .map(|k| cluster.node_for(k).unwrap().addr().to_string())
        .collect();
    let kept = cluster.nodes()[0].clone();
    cluster.set_nodes(&[a.to_string(), b.to_string(), c.to_string()]);
    assert!(
        std::sync::Arc::ptr_eq(&kept, &cluster.nodes()[0]),
        "nodes that stay are the same objects"
    );
    let after: Vec<String> = keys
        .iter()
        .map(|k| cluster.node_for(k).unwrap().addr().to_string())
        .collect();
    let moved: Vec<usize> = (0..keys.len()).filter(|&i| before[i] != after[i]).collect();
    assert!(
        moved.iter().all(|&i| after[i] == c.to_string()),
        "keys only move to the new node"
    );
    assert!(
        (60..=140).contains(&moved.len()),
        "about a third move: {}",
        moved.len()
    );
}

#[tokio::test]
async fn a_restarted_node_is_used_again_at_once() {
    let (a, stop) = node().await;
    let cluster = CacheCluster::new(&[a.to_string()], config());
    let key = route_key("imap", "ann@example.com");
    assert!(
        cluster.add(&key, b"10.0.0.1:7143", 60).await,
        "connections are open now"
    );
    // Restart the node on the same address: every kept-open connection is dead.
    stop.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, _restarted) = node_at(&a.to_string()).await;
    // The first requests find dead connections, retry on fresh ones, and succeed.
    for i in 0..4 {
        let k = route_key("imap", &format!("u{i}@example.com"));
        assert!(
            cluster.add(&k, b"10.0.0.2:7143", 60).await,
            "request {i} after the restart"
        );
    }
    assert!(!cluster.nodes()[0].is_ejected());
    assert_eq!(
        cluster.nodes()[0]
            .stats
            .errors
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// A node that records each request line and answers every get with the keys it knows,
/// in reverse order (memcached promises no order in a multi-key reply).
async fn recording_node(
    known: &'static [(&'static str, &'static str)],
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut s = BufReader::new(s);
                let mut line = String::new();
                while s.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let request = line.trim_end().to_string();
                    line.clear();
                    let mut reply = String::new();
                    if let Some(keys) = request.strip_prefix("get ") {
                        for key in keys.split(' ').rev() {
                            if let Some((k, v)) = known.iter().find(|(k, _)| *k == key) {
                                reply.push_str(&format!("VALUE {k} 0 {}\r\n{v}\r\n", v.len()));
                            }
                        }
                    }
                    reply.push_str("END\r\n");
                    let _ = tx.send(request);
                    if s.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn two_keys_on_one_node_take_one_request() {
    let alias = alias_key("sales@example.net", "10.0.0.1");
    let route = route_key("imap", "sales@example.net");
    let missing = route_key("imap", "nobody@example.net");
    static KNOWN: &[(&str, &str)] = &[
        (
            "alias:user=sales@example.net;ip=10.0.0.1",
            "ann@example.com",
        ),
        ("route:proto=imap;user=sales@example.net", "10.0.0.7:7143"),
    ];
    assert_eq!(alias.wire(), KNOWN[0].0);
    assert_eq!(route.wire(), KNOWN[1].0);
    let (addr, mut requests) = recording_node(KNOWN).await;
    let cluster = CacheCluster::new(&[addr.to_string()], config());

    // Both found: one request, values matched to their keys whatever the reply's order.
    let (a, r) = cluster.get_two(&alias, &route).await;
    assert_eq!(a.as_deref(), Some(&b"ann@example.com"[..]));
    assert_eq!(r.as_deref(), Some(&b"10.0.0.7:7143"[..]));
    assert_eq!(
        requests.recv().await.unwrap(),
        format!("get {} {}", alias.wire(), route.wire())
    );
    // One found: the other is a miss.
    let (m, r) = cluster.get_two(&missing, &route).await;
    assert_eq!(m, None);
    assert_eq!(r.as_deref(), Some(&b"10.0.0.7:7143"[..]));
    assert_eq!(
        requests.recv().await.unwrap(),
        format!("get {} {}", missing.wire(), route.wire())
    );
    assert!(requests.try_recv().is_err(), "one request per pair");
    let node = &cluster.nodes()[0];
    assert_eq!(
        node.stats.hits.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        node.stats.misses.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn two_keys_on_two_nodes_ask_both() {
    let (a, _sa) = node().await;
    let (b, _sb) = node().await;
    let cluster = CacheCluster::new(&[a.to_string(), b.to_string()], config());
    let first = route_key("imap", "user0@example.com");
    let owner = cluster.node_for(&first).unwrap();
    let second = (1..100)
        .map(|i| route_key("imap", &format!("user{i}@example.com")))
        .find(|k| !std::sync::Arc::ptr_eq(&cluster.node_for(k).unwrap(), &owner))
        .expect("some key lands on the other node");
    assert!(cluster.add(&first, b"10.0.0.1:143", 60).await);
    assert!(cluster.add(&second, b"10.0.0.2:143", 60).await);
    let (x, y) = cluster.get_two(&first, &second).await;
    assert_eq!(x.as_deref(), Some(&b"10.0.0.1:143"[..]));
    assert_eq!(y.as_deref(), Some(&b"10.0.0.2:143"[..]));
    let (y, none) = cluster
        .get_two(&second, &route_key("pop3", "user0@example.com"))
        .await;
    assert_eq!(y.as_deref(), Some(&b"10.0.0.2:143"[..]));
    assert_eq!(none, None);
}
