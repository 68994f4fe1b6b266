//! Stale routes: when the route cache has nothing and no lookup URL answers, the route a
//! login used last time on this proxy serves it; a route that proved wrong, a refusal or
//! an account's move forgets it; without an earlier login there is nothing to serve.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proxy::login::{Decision, Login};
use proxy::lookup::{LookupClient, LookupConfig};
use proxy::route::Router;
use proxy::stale::StaleRoutes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// While set, the stand-in answers every login with route-lookup's temporary failure (what
/// it says while its database is down).
static DEGRADED: AtomicBool = AtomicBool::new(false);

/// A route-lookup stand-in that routes every login to 10.0.0.5:7143 while `up`, and
/// refuses `eve`; while down it closes every connection unanswered.
async fn lookup_service(up: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let up = up.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    if !up.load(Ordering::SeqCst) {
                        return;
                    }
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if !up.load(Ordering::SeqCst) {
                        return;
                    }
                    let request = String::from_utf8_lossy(&buf).to_lowercase();
                    buf.clear();
                    let head = if DEGRADED.load(Ordering::SeqCst) {
                        "Auth-Status: Temporary authentication failure\r\n".to_string()
                    } else if request.contains("auth-user: eve") {
                        "Auth-Status: Authentication failed\r\nAuth-Wait: 0\r\n".to_string()
                    } else {
                        "Auth-Status: OK\r\nAuth-Server: 10.0.0.5\r\nAuth-Port: 7143\r\n"
                            .to_string()
                    };
                    let reply = format!("HTTP/1.1 200 OK\r\n{head}Content-Length: 0\r\n\r\n");
                    if s.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/service/extension/nginx-lookup")
}

fn login(user: &str) -> Login<'_> {
    Login {
        user,
        pass: b"secret",
        method: "plain",
        protocol: "imap",
        attempt: 1,
        client_ip: "192.0.2.7".parse().unwrap(),
        proxy_ip: "127.0.0.1".parse().unwrap(),
    }
}

#[tokio::test]
async fn a_known_route_survives_the_route_source_going_down() {
    let up = Arc::new(AtomicBool::new(true));
    let url = lookup_service(up.clone()).await;
    let lookup = Arc::new(LookupClient::new(LookupConfig {
        urls: vec![url.parse().unwrap()],
        secret: None,
        timeout: Duration::from_secs(2),
        retry_interval: Duration::from_millis(10),
        idle_timeout: Duration::from_secs(10),
        retry_budget: Duration::ZERO,
        tls: None,
    }));
    let stale = Arc::new(StaleRoutes::new(100, Duration::from_secs(60)));
    let router = Router::new(None, lookup, 3600).with_stale(stale.clone());

    let fresh = match router.route(&login("ann@example.com")).await {
        Decision::Route(r) => r,
        other => panic!("{other:?}"),
    };
    assert!(!fresh.cached);
    assert_eq!(fresh.backend.to_string(), "10.0.0.5:7143");

    up.store(false, Ordering::SeqCst);
    // Known: served from the kept route.
    match router.route(&login("ann@example.com")).await {
        Decision::Route(r) => {
            assert_eq!(r.backend, fresh.backend);
            assert_eq!(r.user, "ann@example.com");
            assert!(
                r.cached,
                "treated as cached: a dead backend makes it forgotten"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stale.served.load(Ordering::Relaxed), 1);
    // Never seen: nothing to serve.
    assert_eq!(
        router.route(&login("bob@example.com")).await,
        Decision::Unavailable
    );
    // A route that proved wrong is gone.
    router.forget(&fresh).await;
    assert_eq!(
        router.route(&login("ann@example.com")).await,
        Decision::Unavailable
    );

    // A refusal while the source is up forgets too.
    up.store(true, Ordering::SeqCst);
    assert!(matches!(
        router.route(&login("carl@example.com")).await,
        Decision::Route(_)
    ));
    stale.forget_account("carl@example.com");
    up.store(false, Ordering::SeqCst);
    assert_eq!(
        router.route(&login("carl@example.com")).await,
        Decision::Unavailable,
        "an account's move forgets its kept routes"
    );
    up.store(true, Ordering::SeqCst);
    assert!(matches!(
        router.route(&login("eve")).await,
        Decision::Refused { .. }
    ));
    up.store(false, Ordering::SeqCst);
    assert_eq!(router.route(&login("eve")).await, Decision::Unavailable);

    // route-lookup up but its database down: its temporary failure makes a known route
    // serve as well; an unknown login gets the temporary failure.
    up.store(true, Ordering::SeqCst);
    assert!(matches!(
        router.route(&login("dave@example.com")).await,
        Decision::Route(_)
    ));
    DEGRADED.store(true, Ordering::SeqCst);
    match router.route(&login("dave@example.com")).await {
        Decision::Route(r) => assert!(r.cached),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        router.route(&login("frank@example.com")).await,
        Decision::Refused { .. }
    ));
    DEGRADED.store(false, Ordering::SeqCst);
}
