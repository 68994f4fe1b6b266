//! zimbraMailHost must name a mailbox server, as in Zimbra: createAccount and
//! modifyAccount refuse an unknown host and a server without the mailbox service, with
//! Zimbra's messages; a mailbox server (named in any case) and the empty value are
//! accepted; a host is checked only when it is set or changed; and a server deleted
//! while the check runs cannot slip past it.

mod support;

use std::time::Duration;

use proto::v1::{CreateAccountRequest, CreateRequest, ModifyRequest, NameRequest};
use route_lookup::testing::Harness;
use support::{provisioning, seed, set};
use tonic::Code;

const UNKNOWN: &str =
    "specified zimbraMailHost does not correspond to a valid server service hostname: ";
const NO_MAILBOX: &str =
    "specified zimbraMailHost does not correspond to a valid server with the mailbox service enabled: ";

fn ca(name: &str, host: &str) -> CreateAccountRequest {
    CreateAccountRequest {
        name: name.into(),
        password: "x".into(),
        attrs: set(&[("zimbraMailHost", host)]),
    }
}

fn ma(name: &str, pairs: &[(&str, &str)]) -> ModifyRequest {
    ModifyRequest {
        name: name.into(),
        attrs: set(pairs),
    }
}

fn mail_host(e: &proto::v1::Entry) -> Option<&str> {
    e.attrs
        .iter()
        .find(|a| a.name == "zimbraMailHost")
        .map(|a| a.values[0].as_str())
}

#[tokio::test]
async fn create_and_modify_accept_only_mailbox_servers() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let mut p = provisioning(&h.grpc_url()).await;
    p.create_server(CreateRequest {
        name: "mta1.example.com".into(),
        attrs: set(&[("zimbraServiceEnabled", "mta")]),
    })
    .await
    .unwrap();
    let get = |name: &str| NameRequest { name: name.into() };

    // createAccount: refused, and nothing is left behind.
    for (host, want) in [
        ("nosuch.example.com", format!("{UNKNOWN}nosuch.example.com")),
        ("mta1.example.com", format!("{NO_MAILBOX}mta1.example.com")),
        ("MTA1.Example.com", format!("{NO_MAILBOX}MTA1.Example.com")),
    ] {
        let e = p
            .create_account(ca("new@example.com", host))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::InvalidArgument, want.as_str())
        );
        let e = p.get_account(get("new@example.com")).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{host}: the account was created");
    }
    // A mailbox server, named in any case, is stored by its normalised name.
    let e = p
        .create_account(ca("new@example.com", "MBX2.Example.COM"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mail_host(&e), Some("mbx2.example.com"));
    // No mail host at all is still allowed (such an account routes nowhere).
    let e = p
        .create_account(ca("nohost@example.com", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mail_host(&e), None);

    // modifyAccount: refused, and the account keeps its host.
    for (host, want) in [
        ("nosuch.example.com", format!("{UNKNOWN}nosuch.example.com")),
        ("mta1.example.com", format!("{NO_MAILBOX}mta1.example.com")),
    ] {
        let e = p
            .modify_account(ma("new@example.com", &[("zimbraMailHost", host)]))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::InvalidArgument, want.as_str())
        );
        let e = p
            .get_account(get("new@example.com"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(mail_host(&e), Some("mbx2.example.com"));
    }
    // The whole change is refused, not only the host.
    let e = p
        .modify_account(ma(
            "new@example.com",
            &[
                ("displayName", "New"),
                ("zimbraMailHost", "mta1.example.com"),
            ],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = p
        .get_account(get("new@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert!(!e.attrs.iter().any(|a| a.name == "displayName"), "{e:?}");
    // To another mailbox server, and to nothing: accepted.
    let e = p
        .modify_account(ma(
            "new@example.com",
            &[("zimbraMailHost", "mbx1.example.com")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mail_host(&e), Some("mbx1.example.com"));
    let e = p
        .modify_account(ma("new@example.com", &[("zimbraMailHost", "")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mail_host(&e), None);
    let e = p
        .modify_account(ma("nohost@example.com", &[("zimbraMailHost", "localhost")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mail_host(&e), Some("localhost"));

    // Only a host being set or changed is checked: once mbx2 loses its mailbox service,
    // its accounts can still be modified, and even given the same host again.
    p.modify_server(ma("mbx2.example.com", &[("zimbraServiceEnabled", "mta")]))
        .await
        .unwrap();
    p.modify_account(ma("bob@example.net", &[("displayName", "Bob")]))
        .await
        .unwrap();
    p.modify_account(ma(
        "bob@example.net",
        &[("zimbraMailHost", "MBX2.example.com")],
    ))
    .await
    .unwrap();
    // But no account can be moved there any more.
    let e = p
        .modify_account(ma(
            "ann@example.com",
            &[("zimbraMailHost", "mbx2.example.com")],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.message(), format!("{NO_MAILBOX}mbx2.example.com"));
    h.stop().await;
}

#[tokio::test]
async fn a_server_deleted_during_the_check_refuses_the_account() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    // Another session deletes mbx2 and holds its transaction open.
    let (db, conn) = tokio_postgres::connect(&h.db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.batch_execute("BEGIN; DELETE FROM servers WHERE name = 'mbx2.example.com'")
        .await
        .unwrap();
    let url = h.grpc_url();
    let create = tokio::spawn(async move {
        provisioning(&url)
            .await
            .create_account(ca("late@example.com", "mbx2.example.com"))
            .await
    });
    // Without the row lock the check would see the server (the delete is not yet
    // committed) and create the account at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !create.is_finished(),
        "the check waits for the deleting transaction"
    );
    db.batch_execute("COMMIT").await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), create)
        .await
        .expect("answered once the delete commits")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.message(), format!("{UNKNOWN}mbx2.example.com"));
    h.stop().await;
}
