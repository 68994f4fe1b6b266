//! The Registry's WatchAccounts against the real route-lookup and PostgreSQL: a move, a
//! status change, a lockout by failed passwords and a deletion each reach a watcher with
//! the account's addresses, in order; a watcher that comes back with its last number gets
//! only what it missed; one whose number the server cannot vouch for gets a reset.

mod support;

use std::time::Duration;

use proto::v1::account_event::Kind;
use proto::v1::{
    AccountEvent, AuthenticateRequest, ModifyRequest, NameRequest, WatchAccountsRequest,
};
use route_lookup::testing::Harness;
use support::{directory, provisioning, registry, seed, set};
use tonic::Streaming;

async fn watch(url: &str, after: u64) -> Streaming<AccountEvent> {
    registry(url)
        .await
        .watch_accounts(WatchAccountsRequest { after })
        .await
        .unwrap()
        .into_inner()
}

async fn next(s: &mut Streaming<AccountEvent>) -> AccountEvent {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .expect("the stream stays open")
}

async fn modify(url: &str, account: &str, pairs: &[(&str, &str)]) {
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
async fn changes_that_make_routes_wrong_reach_watchers_in_order() {
    let h = Harness::start(&[]).await;
    let url = h.grpc_url();
    seed(&url).await;
    let mut w = watch(&url, 0).await;
    // The poller has read the log once the stream is open; give it a moment.
    tokio::time::sleep(Duration::from_millis(700)).await;

    modify(
        &url,
        "ann@example.com",
        &[("zimbraMailHost", "mbx2.example.com")],
    )
    .await;
    let moved = next(&mut w).await;
    assert_eq!(moved.kind(), Kind::Moved);
    assert_eq!(moved.addresses, ["ann@example.com", "annie@example.com"]);
    assert_eq!(moved.value, "mbx2.example.com");

    modify(
        &url,
        "bob@example.net",
        &[("zimbraAccountStatus", "locked")],
    )
    .await;
    let locked = next(&mut w).await;
    assert_eq!(
        (locked.kind(), locked.value.as_str()),
        (Kind::Status, "locked")
    );
    assert!(locked.seq > moved.seq);

    // A change that does not touch routing logs nothing.
    modify(&url, "vic@vip.example", &[("displayName", "Vic")]).await;

    // Consecutive wrong passwords lock an account out: the mailbox servers' check.
    modify(
        &url,
        "zoë@example.com",
        &[
            ("zimbraPasswordLockoutEnabled", "TRUE"),
            ("zimbraPasswordLockoutMaxFailures", "2"),
        ],
    )
    .await;
    for _ in 0..2 {
        let r = directory(&url)
            .await
            .authenticate(AuthenticateRequest {
                name: "zoë@example.com".into(),
                password: "wrong".into(),
            })
            .await;
        assert!(r.is_err());
    }
    let lockout = next(&mut w).await;
    assert_eq!(
        (
            lockout.kind(),
            lockout.value.as_str(),
            lockout.addresses.as_slice()
        ),
        (
            Kind::Status,
            "lockout",
            &["zoë@example.com".to_string()][..]
        )
    );

    provisioning(&url)
        .await
        .delete_account(NameRequest {
            name: "dan@example.com".into(),
        })
        .await
        .unwrap();
    let deleted = next(&mut w).await;
    assert_eq!(deleted.kind(), Kind::Deleted);
    assert_eq!(deleted.addresses, ["dan@example.com"]);

    // A watcher coming back with the number of the move gets what followed, once.
    let mut again = watch(&url, moved.seq).await;
    let replay: Vec<u64> = [
        next(&mut again).await,
        next(&mut again).await,
        next(&mut again).await,
    ]
    .iter()
    .map(|e| e.seq)
    .collect();
    assert_eq!(replay, [locked.seq, lockout.seq, deleted.seq]);

    // A number this server cannot vouch for (beyond the newest: another database; the
    // unit tests cover one from before the process started): a reset, then on from there.
    let mut lost = watch(&url, deleted.seq + 1000).await;
    let reset = next(&mut lost).await;
    assert_eq!((reset.kind(), reset.seq), (Kind::Reset, deleted.seq));
    modify(
        &url,
        "fay@example.com",
        &[("zimbraAccountStatus", "closed")],
    )
    .await;
    let after_reset = next(&mut lost).await;
    assert_eq!(after_reset.addresses, ["fay@example.com"]);

    // zmprov kickUser: an event naming the account and its aliases, nothing changed.
    provisioning(&url)
        .await
        .kick_user(NameRequest {
            name: "annie@example.com".into(),
        })
        .await
        .unwrap();
    let kicked = next(&mut lost).await;
    assert_eq!(kicked.kind(), Kind::Kicked);
    assert_eq!(kicked.addresses, ["ann@example.com", "annie@example.com"]);
    let unknown = provisioning(&url)
        .await
        .kick_user(NameRequest {
            name: "nobody@example.com".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    h.stop().await;
}
