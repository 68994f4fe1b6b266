//! The auth_http client against a real route-lookup (in-process, real PostgreSQL): routes
//! and refusals, nginx's escaping of odd logins and passwords, one keep-alive connection
//! for many lookups, failover past a dead lookup URL (skipped for the retry interval), the
//! shared secret, and "unavailable" when no URL answers.

use std::net::IpAddr;
use std::time::Duration;

use proto::v1::attr_change::Op;
use proto::v1::provisioning_client::ProvisioningClient;
use proto::v1::{AttrChange, CreateAccountRequest, CreateRequest, ModifyRequest};
use proxy::lookup::{
    LookupAnswer, LookupClient, LookupConfig, LookupError, LookupRequest, LookupUrl,
};
use route_lookup::testing::{Harness, TOKEN};
use std::sync::atomic::Ordering;

fn set(pairs: &[(&str, &str)]) -> Vec<AttrChange> {
    pairs
        .iter()
        .map(|(n, v)| AttrChange {
            name: n.to_string(),
            value: v.to_string(),
            op: Op::Replace.into(),
        })
        .collect()
}

async fn seed(h: &Harness) {
    let channel = tonic::transport::Channel::from_shared(h.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut p = ProvisioningClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        Ok(r)
    });
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    p.modify_config(ModifyRequest {
        name: String::new(),
        attrs: set(&[("zimbraDefaultDomainName", "example.com")]),
    })
    .await
    .unwrap();
    p.create_server(CreateRequest {
        name: "mbx1.example.com".into(),
        attrs: set(&[
            ("serviceAddress", "127.0.0.1"),
            ("zimbraImapBindPort", "17143"),
        ]),
    })
    .await
    .unwrap();
    p.create_account(CreateAccountRequest {
        name: "ann@example.com".into(),
        password: "pa ss+%ü".into(),
        attrs: set(&[("zimbraMailHost", "mbx1.example.com")]),
    })
    .await
    .unwrap();
}

fn url(h: &Harness) -> LookupUrl {
    format!("http://{}/service/extension/nginx-lookup", h.http)
        .parse()
        .unwrap()
}

fn req<'a>(user: &'a str, pass: &'a str) -> LookupRequest<'a> {
    LookupRequest {
        user: user.as_bytes(),
        pass: pass.as_bytes(),
        protocol: "imap",
        attempt: 1,
        client_ip: "192.0.2.7".parse::<IpAddr>().unwrap(),
        proxy_ip: None,
    }
}

#[tokio::test]
async fn routes_refusals_and_keep_alive() {
    let h = Harness::start(&["--verify-passwords"]).await;
    seed(&h).await;
    let client = LookupClient::new(LookupConfig {
        urls: vec![url(&h)],
        secret: None,
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    });
    let route = LookupAnswer::Route {
        server: "127.0.0.1".parse().unwrap(),
        port: 17143,
        user: "ann@example.com".into(),
        pass: None,
        cache_alias: true,
    };
    for _ in 0..5 {
        assert_eq!(
            client.lookup(&req("ann", "pa ss+%ü")).await,
            Ok(route.clone())
        );
    }
    assert_eq!(
        client.lookup(&req("ann@example.com", "pa ss %ü")).await,
        Ok(LookupAnswer::Failed {
            status: "Authentication failed".into(),
            wait: Some(10)
        })
    );
    assert_eq!(
        client.lookup(&req("x\r\nAuth-Status: OK", "y")).await,
        Ok(LookupAnswer::Failed {
            status: "Authentication failed".into(),
            wait: Some(10)
        })
    );
    assert_eq!(client.stats.requests.load(Ordering::Relaxed), 7);
    assert_eq!(
        client.stats.connections.load(Ordering::Relaxed),
        1,
        "one keep-alive connection"
    );
    h.stop().await;
}

#[tokio::test]
async fn failover_secret_and_outage() {
    let h = Harness::start(&["--lookup-secret", "s3"]).await;
    seed(&h).await;
    let dead: LookupUrl = "http://127.0.0.1:1/service/extension/nginx-lookup"
        .parse()
        .unwrap();
    let client = LookupClient::new(LookupConfig {
        urls: vec![dead.clone(), url(&h)],
        secret: Some("s3".into()),
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    });
    for _ in 0..6 {
        assert!(matches!(
            client.lookup(&req("ann", "x")).await,
            Ok(LookupAnswer::Route { port: 17143, .. })
        ));
    }
    assert_eq!(
        client.stats.failovers.load(Ordering::Relaxed),
        1,
        "the dead URL is skipped after one failure"
    );
    let no_secret = LookupClient::new(LookupConfig {
        urls: vec![url(&h)],
        secret: None,
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    });
    assert!(matches!(
        no_secret.lookup(&req("ann", "x")).await,
        Ok(LookupAnswer::Failed { .. })
    ));
    h.stop().await;
    let none = LookupClient::new(LookupConfig {
        urls: vec![dead],
        secret: None,
        timeout: Duration::from_secs(2),
        retry_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    });
    assert_eq!(
        none.lookup(&req("ann", "x")).await,
        Err(LookupError::Unavailable)
    );
}
