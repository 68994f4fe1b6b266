//! Bearer-token logins with the real route-lookup (PostgreSQL) as the directory: the
//! account a token login lands on is found with `GetAccount` (by name, alias, in any case),
//! an unknown or closed account is refused, and a token naming an alias of the SASL user's
//! account logs that account in, through the IMAP dialogue.

use std::sync::Arc;
use std::time::Duration;

use common::oauth_introspection::testing::{Reply, TokenEndpoint};
use common::oauth_introspection::{IntrospectionConfig, Introspector};
use mailbox_stub::auth::{AuthResult, Authenticator, DirectoryAuth};
use mailbox_stub::server::{Kind, MailboxStub};
use proto::v1::provisioning_client::ProvisioningClient;
use proto::v1::{AliasRequest, CreateAccountRequest, CreateRequest};
use route_lookup::testing::{set_attrs, Harness, TOKEN};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn seed(grpc_url: &str) {
    let (endpoint, token) =
        proto::endpoint(grpc_url, Some(TOKEN), None, Duration::from_secs(3), None).unwrap();
    let mut p = ProvisioningClient::with_interceptor(endpoint.connect_lazy(), token);
    p.create_domain(CreateRequest {
        name: "example.com".into(),
        attrs: vec![],
    })
    .await
    .unwrap();
    for server in ["mbx1.example.com", "mbx2.example.com"] {
        p.create_server(CreateRequest {
            name: server.into(),
            attrs: set_attrs(&[("zimbraServiceEnabled", "mailbox")]),
        })
        .await
        .unwrap();
    }
    for (name, host, status) in [
        ("ann@example.com", "mbx1.example.com", "active"),
        ("bob@example.com", "mbx2.example.com", "active"),
        ("dan@example.com", "mbx1.example.com", "closed"),
        ("eve@example.com", "mbx1.example.com", "maintenance"),
    ] {
        p.create_account(CreateAccountRequest {
            name: name.into(),
            password: "pw".into(),
            attrs: set_attrs(&[("zimbraMailHost", host), ("zimbraAccountStatus", status)]),
        })
        .await
        .unwrap();
    }
    p.add_account_alias(AliasRequest {
        account: "ann@example.com".into(),
        alias: "annie@example.com".into(),
    })
    .await
    .unwrap();
}

fn ok(account: &str, host: &str) -> AuthResult {
    AuthResult::Ok {
        account: account.into(),
        mail_host: host.into(),
    }
}

#[tokio::test]
async fn token_logins_find_their_account_in_route_lookup() {
    let h = Harness::start(&[]).await;
    let url = h.grpc_url();
    seed(&url).await;
    let dir = DirectoryAuth::new(&url, Some(TOKEN), None, Duration::from_secs(60)).unwrap();
    for (user, want) in [
        ("ann@example.com", ok("ann@example.com", "mbx1.example.com")),
        (
            "annie@example.com",
            ok("ann@example.com", "mbx1.example.com"),
        ),
        ("ANN@Example.COM", ok("ann@example.com", "mbx1.example.com")),
        ("bob@example.com", ok("bob@example.com", "mbx2.example.com")),
        ("nobody@example.com", AuthResult::Denied),
        ("dan@example.com", AuthResult::Denied),
        ("eve@example.com", AuthResult::Unavailable),
    ] {
        assert_eq!(dir.account(user).await, want, "{user}");
    }
    let wrong = DirectoryAuth::new(&url, Some("not-the-token"), None, Duration::ZERO).unwrap();
    assert_eq!(
        wrong.account("ann@example.com").await,
        AuthResult::Unavailable,
        "a refused admin token is a setup problem, not a wrong login"
    );

    // Through IMAP: the token names the alias, the SASL user the account (and back).
    let endpoint = TokenEndpoint::start().await;
    endpoint.token("tok-alias", Reply::active("annie@example.com"));
    endpoint.token("tok-bob", Reply::active("bob@example.com"));
    let mut config = IntrospectionConfig::new(endpoint.url().parse().unwrap());
    config.timeout = Duration::from_millis(500);
    let stub = MailboxStub::builder("mbx1.example.com")
        .authenticator(Arc::new(dir))
        .oauth(Arc::new(Introspector::new(config).unwrap()))
        .spawn()
        .await
        .unwrap();
    for (user, token, want) in [
        ("ann@example.com", "tok-alias", "a OK"),
        ("annie@example.com", "tok-alias", "a OK"),
        ("ann@example.com", "tok-bob", "+ "),
    ] {
        let tcp = tokio::net::TcpStream::connect(stub.addr(Kind::Imap))
            .await
            .unwrap();
        let mut c = BufReader::new(tcp);
        let mut line = String::new();
        c.read_line(&mut line).await.unwrap();
        let message = format!("user={user}\x01auth=Bearer {token}\x01\x01");
        // The response line of that message, as the codec writes one for a replay.
        let ir = codec::sasl::OAuth {
            mechanism: codec::sasl::OAuthMechanism::XOAuth2,
            user: Vec::new(),
            token: Vec::new(),
            message: message.into_bytes(),
        }
        .response();
        c.get_mut()
            .write_all(format!("a AUTHENTICATE XOAUTH2 {ir}\r\n").as_bytes())
            .await
            .unwrap();
        line.clear();
        tokio::time::timeout(Duration::from_secs(5), c.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(line.starts_with(want), "{user} with {token}: {line}");
    }
    let logins = stub.logins();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(logins.iter().all(|l| l.account == "ann@example.com"));
    stub.stop().await;
    h.stop().await;
}
