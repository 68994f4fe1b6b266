//! Zimbra's password policy against the real route-lookup and PostgreSQL: consecutive
//! failures lock an account (zimbraAccountStatus lockout) for zimbraPasswordLockoutDuration,
//! a right password resets the count, an admin unlocks with `ma … zimbraAccountStatus
//! active`, the account's own value wins over the global config's, and
//! zimbraPasswordMaxLength bounds new passwords.

mod support;

use std::time::Duration;

use proto::v1::{
    AuthenticateRequest, CreateAccountRequest, ModifyRequest, NameRequest, SetPasswordRequest,
};
use route_lookup::testing::Harness;
use support::{directory, provisioning, seed, set, NginxRequest, PASSWORD};
use tonic::Code;

/// A mailbox server's password check, as the mailbox-stub makes it.
async fn check(url: &str, name: &str, password: &str) -> Result<String, Code> {
    directory(url)
        .await
        .authenticate(AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| s.code())
}

async fn attr(url: &str, account: &str, name: &str) -> Vec<String> {
    let e = provisioning(url)
        .await
        .get_account(NameRequest {
            name: account.into(),
        })
        .await
        .unwrap()
        .into_inner();
    e.attrs
        .into_iter()
        .find(|a| a.name == name)
        .map(|a| a.values)
        .unwrap_or_default()
}

async fn modify_config(url: &str, pairs: &[(&str, &str)]) {
    provisioning(url)
        .await
        .modify_config(ModifyRequest {
            name: String::new(),
            attrs: set(pairs),
        })
        .await
        .unwrap();
}

async fn modify_account(url: &str, account: &str, pairs: &[(&str, &str)]) {
    provisioning(url)
        .await
        .modify_account(ModifyRequest {
            name: account.into(),
            attrs: set(pairs),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn consecutive_failures_lock_until_the_duration_passes_or_an_admin_unlocks() {
    let h = Harness::start(&[]).await;
    let url = h.grpc_url();
    seed(&url).await;
    modify_config(
        &url,
        &[
            ("zimbraPasswordLockoutEnabled", "TRUE"),
            ("zimbraPasswordLockoutMaxFailures", "3"),
            ("zimbraPasswordLockoutDuration", "3s"),
        ],
    )
    .await;
    // The snapshot holding the global config is re-read after the change.
    assert_eq!(
        check(&url, "ann@example.com", PASSWORD).await,
        Ok("active".into())
    );

    // Two failures, a success (the count starts again), two more: still active.
    for pw in ["x1", "x2", PASSWORD, "x3", "x4"] {
        let r = check(&url, "ann@example.com", pw).await;
        match r {
            Ok(_) => assert_eq!(pw, PASSWORD),
            Err(code) => {
                assert_ne!(pw, PASSWORD);
                assert_eq!(code, Code::Unauthenticated, "{pw}");
            }
        }
    }
    assert_eq!(
        attr(&url, "ann@example.com", "zimbraAccountStatus").await,
        ["active"]
    );
    assert_eq!(
        attr(&url, "ann@example.com", "zimbraPasswordLockoutFailureTime")
            .await
            .len(),
        2
    );
    // The third consecutive failure (by an alias: the same account) locks it.
    assert_eq!(
        check(&url, "annie@example.com", "x5").await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(
        attr(&url, "ann@example.com", "zimbraAccountStatus").await,
        ["lockout"]
    );
    assert_eq!(
        attr(&url, "ann@example.com", "zimbraPasswordLockoutLockedTime")
            .await
            .len(),
        1
    );
    // Locked: the right password is refused by every way in.
    assert_eq!(
        check(&url, "ann@example.com", PASSWORD).await,
        Err(Code::Unauthenticated)
    );
    let reply = NginxRequest::new("ann@example.com", "imap")
        .send(h.http)
        .await;
    assert_eq!(reply.status(), "Authentication failed");

    // An admin unlocks: the failures are forgotten with the lock.
    modify_account(
        &url,
        "ann@example.com",
        &[("zimbraAccountStatus", "active")],
    )
    .await;
    assert!(
        attr(&url, "ann@example.com", "zimbraPasswordLockoutFailureTime")
            .await
            .is_empty()
    );
    assert!(
        attr(&url, "ann@example.com", "zimbraPasswordLockoutLockedTime")
            .await
            .is_empty()
    );
    assert_eq!(
        check(&url, "ann@example.com", PASSWORD).await,
        Ok("active".into())
    );

    // Locked again; after the 3 s duration the right password works by itself.
    for pw in ["y1", "y2", "y3"] {
        assert_eq!(
            check(&url, "ann@example.com", pw).await,
            Err(Code::Unauthenticated)
        );
    }
    assert_eq!(
        attr(&url, "ann@example.com", "zimbraAccountStatus").await,
        ["lockout"]
    );
    // Failures while locked neither count nor extend the lock.
    assert_eq!(
        check(&url, "ann@example.com", "y4").await,
        Err(Code::Unauthenticated)
    );
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let reply = NginxRequest::new("ann@example.com", "imap")
        .send(h.http)
        .await;
    assert_eq!(reply.status(), "OK", "routing sees the lock has ended");
    assert_eq!(
        check(&url, "ann@example.com", PASSWORD).await,
        Ok("active".into())
    );
    assert_eq!(
        attr(&url, "ann@example.com", "zimbraAccountStatus").await,
        ["active"]
    );

    // A lockout an admin set by hand has no lock time: it lasts until an admin ends it.
    assert!(check(&url, "lou@example.com", PASSWORD).await.is_err());
    h.stop().await;
}

#[tokio::test]
async fn off_by_default_and_the_accounts_own_policy_wins() {
    let h = Harness::start(&[]).await;
    let url = h.grpc_url();
    seed(&url).await;
    // Zimbra's default: lockout off, however many failures.
    for _ in 0..12 {
        assert_eq!(
            check(&url, "bob@example.net", "wrong").await,
            Err(Code::Unauthenticated)
        );
    }
    assert_eq!(
        attr(&url, "bob@example.net", "zimbraAccountStatus").await,
        ["active"]
    );
    assert!(
        attr(&url, "bob@example.net", "zimbraPasswordLockoutFailureTime")
            .await
            .is_empty()
    );

    // On for one account only (the global config stays off), with a duration of 0: until
    // an admin unlocks.
    modify_account(
        &url,
        "zoë@example.com",
        &[
            ("zimbraPasswordLockoutEnabled", "TRUE"),
            ("zimbraPasswordLockoutMaxFailures", "2"),
            ("zimbraPasswordLockoutDuration", "0"),
        ],
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            check(&url, "zoë@example.com", "wrong").await,
            Err(Code::Unauthenticated)
        );
    }
    assert_eq!(
        attr(&url, "zoë@example.com", "zimbraAccountStatus").await,
        ["lockout"]
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(check(&url, "zoë@example.com", PASSWORD).await.is_err());
    // The global config turning lockout on does not override the account's own values.
    modify_config(&url, &[("zimbraPasswordLockoutMaxFailures", "1")]).await;
    assert!(check(&url, "o'hara@example.com", "wrong").await.is_err());
    assert_eq!(
        attr(&url, "o'hara@example.com", "zimbraAccountStatus").await,
        ["active"]
    );

    // Bad policy values are refused by zmprov's modify.
    let mut p = provisioning(&url).await;
    for (name, value) in [
        ("zimbraPasswordLockoutDuration", "1 week"),
        ("zimbraPasswordLockoutMaxFailures", "-1"),
        ("zimbraPasswordLockoutEnabled", "yes"),
    ] {
        let e = p
            .modify_config(ModifyRequest {
                name: String::new(),
                attrs: set(&[(name, value)]),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name}={value}");
        assert!(e.message().contains(name), "{}", e.message());
    }
    h.stop().await;
}

#[tokio::test]
async fn passwords_longer_than_zimbra_password_max_length_are_refused() {
    let h = Harness::start(&[]).await;
    let url = h.grpc_url();
    seed(&url).await;
    let mut p = provisioning(&url).await;
    let at_max = "p".repeat(64);
    let over = "p".repeat(65);
    let e = p
        .create_account(CreateAccountRequest {
            name: "long@example.com".into(),
            password: over.clone(),
            attrs: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("too long"), "{}", e.message());
    assert!(!e.message().contains(&over), "the password is never echoed");
    p.create_account(CreateAccountRequest {
        name: "long@example.com".into(),
        password: at_max.clone(),
        attrs: vec![],
    })
    .await
    .unwrap();
    assert!(check(&url, "long@example.com", &at_max).await.is_ok());
    // Characters, not bytes: 64 two-byte characters fit.
    p.set_password(SetPasswordRequest {
        account: "long@example.com".into(),
        password: "ü".repeat(64),
    })
    .await
    .unwrap();
    for e in [
        p.set_password(SetPasswordRequest {
            account: "long@example.com".into(),
            password: over.clone(),
        })
        .await
        .unwrap_err(),
        p.modify_account(ModifyRequest {
            name: "long@example.com".into(),
            attrs: set(&[("userPassword", &over)]),
        })
        .await
        .unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::InvalidArgument);
    }
    // The global config lowers it; an account's own value raises it again.
    modify_config(&url, &[("zimbraPasswordMaxLength", "8")]).await;
    let e = p
        .set_password(SetPasswordRequest {
            account: "long@example.com".into(),
            password: "123456789".into(),
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("is 8"), "{}", e.message());
    modify_account(
        &url,
        "long@example.com",
        &[("zimbraPasswordMaxLength", "100")],
    )
    .await;
    p.set_password(SetPasswordRequest {
        account: "long@example.com".into(),
        password: "p".repeat(100),
    })
    .await
    .unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_beyond_the_bound_are_temporary_failures_never_wrong_answers() {
    // One worker, one waiting place, no wait: of 12 concurrent checks some are refused
    // as busy (UNAVAILABLE, which a mailbox server reports as a temporary failure), and
    // every answer that is given is the right one.
    let h = Harness::start(&[
        "--password-checks",
        "1",
        "--password-check-queue",
        "1",
        "--password-check-wait-ms",
        "0",
    ])
    .await;
    let url = h.grpc_url();
    seed(&url).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let pw = if i % 2 == 0 { PASSWORD } else { "wrong" };
            (pw, check(&url, "ann@example.com", pw).await)
        }));
    }
    let (mut busy, mut answered) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (_, Err(Code::Unavailable)) => busy += 1,
            (pw, r) => {
                answered += 1;
                assert_eq!(r.is_ok(), pw == PASSWORD, "{pw}: {r:?}");
            }
        }
    }
    assert!(busy > 0 && answered > 0, "busy {busy}, answered {answered}");
    let metrics = http_get(h.http, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "route_lookup_password_checks_total{{outcome=\"busy\"}} {busy}"
        )),
        "{metrics}"
    );
    h.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
