//! Route purges against closed cache nodes (cache-node `--auth-file`): with
//! `--memcached-auth-file` each connection authenticates before its deletes; wrong
//! credentials make that node fail the purge (its routes stay, the change still succeeds);
//! a node without authentication is purged all the same and keeps nothing readable of
//! the credentials.
//!
//! Its own test binary: the purge credentials are process-wide.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use codec::route_key::route_key;
use common::shutdown::Shutdown;
use proto::v1::{ModifyRequest, RegisterRequest, ServiceKind};
use route_lookup::testing::Harness;
use support::{provisioning, registry, seed, set};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A file in the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, content: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn start_cache_node(extra: &[&str]) -> (SocketAddr, Shutdown) {
    let mut args = vec![
        "cache-node",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
    ];
    args.extend_from_slice(extra);
    let config = cache_node::config::Config::try_parse_from(args)
        .unwrap()
        .validate()
        .unwrap();
    let node = cache_node::server::CacheNode::bind(config).await.unwrap();
    let addr = node.local_addr();
    let (shutdown, watch) = Shutdown::new();
    tokio::spawn(node.run(watch));
    (addr, shutdown)
}

/// The node's own authenticating set for the tests' direct reads and writes.
const AUTH: &str = "set probe 0 0 10\r\ncache s3cr\r\n";

/// Authenticates, sends one command and returns its first reply line.
async fn command(addr: SocketAddr, cmd: &str) -> String {
    let mut s = BufReader::new(TcpStream::connect(addr).await.unwrap());
    s.get_mut()
        .write_all(format!("{AUTH}{cmd}").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    assert_eq!(line, "STORED\r\n", "the test's own authentication");
    line.clear();
    s.read_line(&mut line).await.unwrap();
    line
}

async fn put(addr: SocketAddr, key: &str) {
    let reply = command(addr, &format!("set {key} 0 3600 14\r\n127.0.0.1:7143\r\n")).await;
    assert_eq!(reply, "STORED\r\n");
}

async fn present(addr: SocketAddr, key: &str) -> bool {
    command(addr, &format!("get {key}\r\n"))
        .await
        .starts_with("VALUE ")
}

#[tokio::test]
async fn purges_authenticate_and_wrong_credentials_fail_the_node() {
    let node_file = Scratch::new("purge-auth-node", "cache:s3cr\n");
    let right = Scratch::new("purge-auth-right", "cache:s3cr\n");
    let wrong = Scratch::new("purge-auth-wrong", "cache:guess\n");
    let h = Harness::start(&["--memcached-auth-file", right.arg()]).await;
    seed(&h.grpc_url()).await;
    let (closed, _c) = start_cache_node(&["--auth-file", node_file.arg()]).await;
    let (open, _o) = start_cache_node(&[]).await;
    let mut r = registry(&h.grpc_url()).await;
    for node in [closed, open] {
        r.register(RegisterRequest {
            kind: ServiceKind::CacheNode.into(),
            address: node.to_string(),
            ttl_seconds: 60,
        })
        .await
        .unwrap();
    }
    let ann = route_key("imap", "ann@example.com").wire().to_string();
    let mut p = provisioning(&h.grpc_url()).await;
    let move_ann = |host: &str| ModifyRequest {
        name: "ann@example.com".into(),
        attrs: set(&[("zimbraMailHost", host)]),
    };

    for node in [closed, open] {
        put(node, &ann).await;
    }
    p.modify_account(move_ann("mbx2.example.com"))
        .await
        .unwrap();
    for node in [closed, open] {
        assert!(!present(node, &ann).await, "ann's route still on {node}");
    }
    assert_eq!(
        command(open, "get auth\r\n").await,
        "END\r\n",
        "a node without authentication kept nothing of the credentials"
    );

    route_lookup::purge::authenticate_with(Some(&wrong.0)).unwrap();
    for node in [closed, open] {
        put(node, &ann).await;
    }
    p.modify_account(move_ann("mbx1.example.com"))
        .await
        .unwrap();
    assert!(
        present(closed, &ann).await,
        "the closed node refused the wrong credentials: nothing deleted there"
    );
    assert!(!present(open, &ann).await, "the open node was purged");
    h.stop().await;
}
