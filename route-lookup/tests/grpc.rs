//! The gRPC services against a real PostgreSQL: the admin token, provisioning rules
//! (case-insensitive uniqueness, aliases vs. names, domains in use), `Authenticate`, and the
//! registry's leases and membership watch.

mod support;

use std::time::Duration;

use proto::v1::provisioning_client::ProvisioningClient;
use proto::v1::{
    AliasRequest, AuthenticateRequest, CreateAccountRequest, CreateRequest, Empty, LeaseRequest,
    ListAccountsRequest, ModifyRequest, NameRequest, RegisterRequest, ServiceKind, WatchRequest,
};
use route_lookup::testing::Harness;
use support::{directory, provisioning, registry, seed, set, PASSWORD};
use tonic::Code;

#[tokio::test]
async fn every_call_needs_the_admin_token() {
    let h = Harness::start(&[]).await;
    let channel = support::channel(&h.grpc_url()).await;
    let mut bare = ProvisioningClient::new(channel.clone());
    let e = bare.get_all_domains(Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut wrong = ProvisioningClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
        r.metadata_mut()
            .insert("authorization", "Bearer nope".parse().unwrap());
        Ok(r)
    });
    let e = wrong.get_all_domains(Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(!e.message().contains(route_lookup::testing::TOKEN));
    let mut d =
        proto::v1::directory_client::DirectoryClient::new(support::channel(&h.grpc_url()).await);
    let e = d
        .authenticate(AuthenticateRequest {
            name: "a".into(),
            password: "b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(provisioning(&h.grpc_url())
        .await
        .get_all_domains(Empty {})
        .await
        .is_ok());
    h.stop().await;
}

#[tokio::test]
async fn provisioning_rules() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let mut p = provisioning(&h.grpc_url()).await;
    let code = |r: Result<tonic::Response<proto::v1::Entry>, tonic::Status>| r.unwrap_err().code();

    // Names are case-insensitive and share one space with aliases.
    let ca = |name: &str| CreateAccountRequest {
        name: name.into(),
        password: "x".into(),
        attrs: vec![],
    };
    assert_eq!(
        code(p.create_account(ca("ANN@example.com")).await),
        Code::AlreadyExists
    );
    assert_eq!(
        code(p.create_account(ca("annie@EXAMPLE.com")).await),
        Code::AlreadyExists
    );
    let e = p
        .add_account_alias(AliasRequest {
            account: "bob@example.net".into(),
            alias: "Ann@Example.com".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert_eq!(
        code(p.create_account(ca("x@nosuch.example")).await),
        Code::NotFound
    );
    assert_eq!(
        code(p.create_account(ca("x@alias.example.org")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(p.create_account(ca("no-at-sign")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            p.create_domain(CreateRequest {
                name: "EXAMPLE.com".into(),
                attrs: vec![]
            })
            .await
        ),
        Code::AlreadyExists
    );
    assert_eq!(
        code(
            p.create_server(CreateRequest {
                name: "mbx1.example.com".into(),
                attrs: vec![]
            })
            .await
        ),
        Code::AlreadyExists
    );
    // Bad attributes name the problem.
    let e = p
        .create_server(CreateRequest {
            name: "mbx9.example.com".into(),
            attrs: set(&[("zimbraImapBindPort", "99999")]),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("zimbraImapBindPort"),
        "{}",
        e.message()
    );
    let e = p
        .modify_account(ModifyRequest {
            name: "ann@example.com".into(),
            attrs: set(&[("zimbraBogus", "1")]),
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "invalid attr name: zimbraBogus");
    // A domain with accounts cannot go; an empty one can.
    let e = p
        .delete_domain(NameRequest {
            name: "example.net".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("not empty"));
    p.delete_account(NameRequest {
        name: "bob@example.net".into(),
    })
    .await
    .unwrap();
    p.delete_domain(NameRequest {
        name: "example.net".into(),
    })
    .await
    .unwrap();
    let e = p
        .get_account(NameRequest {
            name: "bob@example.net".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "no such account: bob@example.net");

    // Reading an account never shows its password or hash.
    let a = p
        .get_account(NameRequest {
            name: "annie@example.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.name, "ann@example.com");
    for attr in &a.attrs {
        for v in &attr.values {
            assert!(
                !v.contains(PASSWORD) && !v.contains("argon2"),
                "{}: {v}",
                attr.name
            );
        }
        assert_ne!(attr.name, "userPassword");
    }
    // An injection-looking name is plain data.
    p.create_account(ca("robert');drop_table_accounts;--@example.com"))
        .await
        .unwrap();
    let all = p
        .get_all_accounts(ListAccountsRequest {
            domain: "example.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(all
        .names
        .contains(&"robert');drop_table_accounts;--@example.com".to_string()));
    assert!(all.names.contains(&"ann@example.com".to_string()));
    let e = p
        .get_all_accounts(ListAccountsRequest {
            domain: "nosuch.example".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    h.stop().await;
}

#[tokio::test]
async fn authenticate_checks_password_and_status() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let mut d = directory(&h.grpc_url()).await;
    let auth = |name: &str, password: &str| AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    };
    for login in [
        "ann@example.com",
        "ANN@example.com",
        "annie@example.com",
        "ann",
        "ann@alias.example.org",
    ] {
        let r = d
            .authenticate(auth(login, PASSWORD))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.account, "ann@example.com", "{login}");
        assert_eq!(r.mail_host, "mbx1.example.com");
        assert_eq!(r.status, "active");
        assert!(!r.id.is_empty());
    }
    for (login, password, code) in [
        ("ann@example.com", "pa ss ü%", Code::Unauthenticated),
        ("ann@example.com", "", Code::Unauthenticated),
        ("nobody@example.com", PASSWORD, Code::Unauthenticated),
        ("nopass@example.com", "", Code::Unauthenticated),
        ("carl@example.com", PASSWORD, Code::Unauthenticated),
        ("dan@example.com", PASSWORD, Code::Unauthenticated),
        ("eve@example.com", PASSWORD, Code::Unavailable),
        ("eve@example.com", "wrong", Code::Unauthenticated),
    ] {
        let e = d.authenticate(auth(login, password)).await.unwrap_err();
        assert_eq!(e.code(), code, "{login}/{password}");
        assert!(!e.message().contains("argon2"));
    }
    // The same answer for an unknown user and a wrong password: nothing to probe with.
    let unknown = d
        .authenticate(auth("nobody@example.com", "x"))
        .await
        .unwrap_err();
    let wrong = d
        .authenticate(auth("ann@example.com", "x"))
        .await
        .unwrap_err();
    assert_eq!(unknown.message(), wrong.message());
    // setPassword takes effect at once.
    let mut p = provisioning(&h.grpc_url()).await;
    p.set_password(proto::v1::SetPasswordRequest {
        account: "annie@example.com".into(),
        password: "n3w+pw".into(),
    })
    .await
    .unwrap();
    assert!(d
        .authenticate(auth("ann@example.com", "n3w+pw"))
        .await
        .is_ok());
    assert!(d
        .authenticate(auth("ann@example.com", PASSWORD))
        .await
        .is_err());
    h.stop().await;
}

#[tokio::test]
async fn leases_expire_and_the_watch_follows_membership() {
    let h = Harness::start(&[]).await;
    // Before the seed, so that the first snapshot with the seeded servers has it too.
    provisioning(&h.grpc_url())
        .await
        .create_server(CreateRequest {
            name: "mta1.example.com".into(),
            attrs: set(&[
                ("serviceAddress", "127.0.0.3"),
                ("zimbraServiceEnabled", "mta"),
            ]),
        })
        .await
        .unwrap();
    seed(&h.grpc_url()).await;
    let mut r = registry(&h.grpc_url()).await;
    let mut stream = r.watch(WatchRequest {}).await.unwrap().into_inner();
    // The poller may still hold the snapshot from before the seed: wait for the seeded one.
    let mut first = next(&mut stream).await;
    while first.mailbox_servers.is_empty() {
        first = next(&mut stream).await;
    }
    assert!(first.cache_nodes.is_empty());
    let mbx1 = first
        .mailbox_servers
        .iter()
        .find(|s| s.hostname == "mbx1.example.com")
        .expect("mailbox server");
    assert_eq!(
        (mbx1.address.as_str(), mbx1.imap_port, mbx1.pop3s_port),
        ("127.0.0.1", 7143, 7995)
    );
    assert!(
        !first
            .mailbox_servers
            .iter()
            .any(|s| s.hostname == "mta1.example.com"),
        "mta1 has no mailbox service"
    );

    let reg = |address: &str, ttl| RegisterRequest {
        kind: ServiceKind::CacheNode.into(),
        address: address.into(),
        ttl_seconds: ttl,
    };
    // The long lease first; the short one (3 s, three poll intervals) must then be seen
    // in the membership before it runs out.
    let long = r
        .register(reg("127.0.0.1:21002", 60))
        .await
        .unwrap()
        .into_inner();
    let short = r
        .register(reg("127.0.0.1:21001", 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(short.ttl_seconds, 3);
    let mut snap = next(&mut stream).await;
    while snap.cache_nodes.len() < 2 {
        snap = next(&mut stream).await;
    }
    assert_eq!(snap.cache_nodes, ["127.0.0.1:21001", "127.0.0.1:21002"]);
    // The short lease is not renewed: it leaves the membership.
    while snap.cache_nodes.len() != 1 {
        snap = next(&mut stream).await;
    }
    assert_eq!(snap.cache_nodes, ["127.0.0.1:21002"]);
    let e = r
        .heartbeat(LeaseRequest {
            lease_id: short.lease_id,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(r
        .heartbeat(LeaseRequest {
            lease_id: long.lease_id.clone()
        })
        .await
        .is_ok());
    // A route-lookup instance shows up as a lookup URL and in garpu.
    r.register(RegisterRequest {
        kind: ServiceKind::RouteLookup.into(),
        address: "http://10.0.0.7:7072/service/extension/nginx-lookup".into(),
        ttl_seconds: 60,
    })
    .await
    .unwrap();
    while snap.lookup_urls.is_empty() {
        snap = next(&mut stream).await;
    }
    assert_eq!(
        snap.lookup_urls,
        ["http://10.0.0.7:7072/service/extension/nginx-lookup"]
    );
    let mut p = provisioning(&h.grpc_url()).await;
    let garpu = p
        .get_all_reverse_proxy_urls(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        garpu.names,
        ["10.0.0.7:7072/service/extension/nginx-lookup"]
    );
    let gamcs = p
        .get_all_memcached_servers(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gamcs.names, ["127.0.0.1:21002"]);
    // Deregistering is immediate.
    r.deregister(LeaseRequest {
        lease_id: long.lease_id,
    })
    .await
    .unwrap();
    while !snap.cache_nodes.is_empty() {
        snap = next(&mut stream).await;
    }
    assert!(snap.revision > first.revision);
    // Bad registrations are refused.
    for (kind, address) in [
        (ServiceKind::CacheNode, "no-port"),
        (ServiceKind::CacheNode, "host:0"),
        (ServiceKind::CacheNode, "host: 1"),
        (ServiceKind::RouteLookup, "10.0.0.7:7072"),
        (ServiceKind::Unspecified, "127.0.0.1:1"),
    ] {
        let e = r
            .register(RegisterRequest {
                kind: kind.into(),
                address: address.into(),
                ttl_seconds: 5,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{address}");
    }
    h.stop().await;
}

async fn next(s: &mut tonic::Streaming<proto::v1::Membership>) -> proto::v1::Membership {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("a snapshot within 10 s")
        .unwrap()
        .expect("stream open")
}

#[tokio::test]
async fn errors_quote_at_most_a_bounded_prefix_of_the_input() {
    let h = Harness::start(&[]).await;
    let mut p = support::provisioning(&h.grpc_url()).await;
    let huge = format!("{}@example.com", "a".repeat(200 * 1024));
    for e in [
        p.create_account(proto::v1::CreateAccountRequest {
            name: huge.clone(),
            password: String::new(),
            attrs: vec![],
        })
        .await
        .unwrap_err(),
        p.get_account(proto::v1::NameRequest { name: huge.clone() })
            .await
            .unwrap_err(),
    ] {
        assert!(
            e.message().len() < 300,
            "{} bytes echoed",
            e.message().len()
        );
        assert!(e.message().ends_with('…'), "{}", &e.message()[..40]);
    }
    h.stop().await;
}
