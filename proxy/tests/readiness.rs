//! `/readyz` on the proxy's admin listener: not ready while no lookup URL answers (the
//! reason names them), ready as soon as one accepts connections, and ready on the
//! strength of a recent answer; `/healthz` stays 200 throughout (the process is alive).

use std::time::Duration;

use clap::Parser;
use common::shutdown::Shutdown;
use proxy::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_string())
}

#[tokio::test]
async fn ready_only_while_route_lookup_can_be_reached() {
    // A port that was free: nothing listens there until the test binds it.
    let spare = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = spare.local_addr().unwrap();
    drop(spare);
    let url = format!("http://{addr}/service/extension/nginx-lookup");
    let config = Config::try_parse_from([
        "proxy",
        "--lookup-url",
        &url,
        "--imap-listen",
        "127.0.0.1:0",
        "--imaps-listen",
        "off",
        "--pop3-listen",
        "off",
        "--pop3s-listen",
        "off",
        "--starttls",
        "off",
        "--admin-listen",
        "127.0.0.1:0",
        "--grace-period",
        "1",
    ])
    .unwrap()
    .validate()
    .unwrap();
    let bound = proxy::Proxy::bind(config).await.unwrap();
    let admin = bound.admin_addr().unwrap();
    let (_stop, watch) = Shutdown::new();
    tokio::spawn(bound.run(watch));

    let (status, body) = get(admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("not ready: no lookup URL answers") && body.contains(&addr.to_string()),
        "{body}"
    );
    assert_eq!(get(admin, "/healthz").await.0, 200, "alive all the same");

    let lookup = TcpListener::bind(addr).await.unwrap();
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    drop(lookup);
    assert_eq!(get(admin, "/readyz").await.0, 503, "gone again");
}
