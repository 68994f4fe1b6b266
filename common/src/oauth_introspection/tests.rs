//! The introspection client against the test endpoint (plain and TLS): what it sends, the
//! answers it takes, the cache (active only, bounded, never past `exp`), every failure a
//! temporary error, and no token in any error text or `Debug` output.

use std::time::Duration;

use super::cache::{lifetime, Cache};
use super::http::{form_body, parse_answer};
use super::testing::{now, Reply, TokenEndpoint};
use super::*;

const TOKEN: &str = "ya29.a0Af-secret_token+/=";

fn introspector(url: &str, adjust: impl FnOnce(&mut IntrospectionConfig)) -> Introspector {
    let mut config = IntrospectionConfig::new(url.parse().unwrap());
    adjust(&mut config);
    Introspector::new(config).unwrap()
}

/// No error text, chain or Debug form carries the token.
fn assert_no_token(e: &IntrospectionError) {
    for text in [e.to_string(), crate::exit::chain(e), format!("{e:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("secret_token"), "{text}");
    }
}

#[test]
fn the_body_is_form_encoded() {
    assert_eq!(
        form_body(TOKEN.as_bytes()),
        "token=ya29.a0Af-secret_token%2B%2F%3D&token_type_hint=access_token"
    );
    assert_eq!(
        form_body(b"a b&c"),
        "token=a+b%26c&token_type_hint=access_token"
    );
}

#[test]
fn answers() {
    let info = parse_answer(
        br#"{"active":true,"username":"ann","sub":"u-1","email":"ann@example.com","exp":1900000000,"scope":"mail"}"#,
    )
    .unwrap();
    assert_eq!(
        info,
        TokenInfo {
            active: true,
            username: Some("ann".into()),
            email: Some("ann@example.com".into()),
            sub: Some("u-1".into()),
            exp: Some(1_900_000_000),
        }
    );
    assert_eq!(info.user(), Some("ann"));
    let info = parse_answer(br#"{"active":true,"username":"","email":"e@x","sub":"s"}"#).unwrap();
    assert_eq!(info.user(), Some("e@x"), "an empty username does not count");
    let info = parse_answer(br#"{"active":true,"sub":"s","exp":1.9e9}"#).unwrap();
    assert_eq!((info.user(), info.exp), (Some("s"), Some(1_900_000_000)));
    let info = parse_answer(br#"{"active":false}"#).unwrap();
    assert!(!info.active && info.user().is_none());
    for (body, want) in [
        (&br#"{"username":"ann"}"#[..], "NoActive"),
        (br#"{"active":"true"}"#, "NoActive"),
        (br#"{"active":1}"#, "NoActive"),
        (br#"[{"active":true}]"#, "NotJson"),
        (b"active=true", "NotJson"),
        (b"", "NotJson"),
    ] {
        let e = parse_answer(body).unwrap_err();
        assert_eq!(format!("{e:?}"), want, "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn cached_until_exp_or_the_ttl() {
    let ttl = Duration::from_secs(60);
    assert_eq!(lifetime(None, 1000, ttl), ttl);
    assert_eq!(lifetime(Some(1010), 1000, ttl), Duration::from_secs(10));
    assert_eq!(lifetime(Some(5000), 1000, ttl), ttl);
    assert_eq!(lifetime(Some(999), 1000, ttl), Duration::ZERO);
    assert_eq!(lifetime(Some(-1), 1000, ttl), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_cache_is_bounded_and_expires() {
    let cache = Cache::new(2);
    let info = |u: &str| {
        parse_answer(format!(r#"{{"active":true,"username":"{u}"}}"#).as_bytes()).unwrap()
    };
    let (a, b, c) = (cache.key(b"a"), cache.key(b"b"), cache.key(b"c"));
    assert_ne!(a, b);
    assert_eq!(a, cache.key(b"a"));
    cache.insert(a, info("a"), Duration::from_secs(30));
    cache.insert(b, info("b"), Duration::from_secs(10));
    cache.insert(c, info("c"), Duration::from_secs(20));
    assert_eq!(cache.len(), 2, "bounded");
    assert!(cache.get(b).is_none(), "the soonest to expire made room");
    assert_eq!(cache.get(a).unwrap().user(), Some("a"));
    tokio::time::advance(Duration::from_secs(21)).await;
    assert!(cache.get(c).is_none(), "expired");
    assert!(cache.get(a).is_some());
    cache.insert(b, info("b"), Duration::ZERO);
    assert!(cache.get(b).is_none(), "a zero lifetime is not cached");
    let none = Cache::new(0);
    none.insert(a, info("a"), Duration::from_secs(30));
    assert!(none.get(a).is_none());
}

#[tokio::test]
async fn active_answers_are_cached_inactive_ones_asked_again() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.token(TOKEN, Reply::active("ann@example.com"));
    let client = introspector(&endpoint.url(), |_| {});
    let first = client.introspect(TOKEN.as_bytes()).await.unwrap();
    assert!(first.info.active && !first.cached);
    assert_eq!(first.info.user(), Some("ann@example.com"));
    let seen = endpoint.last().unwrap();
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.token.as_deref(),
        Some(TOKEN),
        "the token arrives whole"
    );
    assert!(seen.body.ends_with("&token_type_hint=access_token"));
    assert_eq!(seen.authorization, None);
    let second = client.introspect(TOKEN.as_bytes()).await.unwrap();
    assert!(second.cached && second.info == first.info);
    assert_eq!(endpoint.calls(), 1, "the second answer came from the cache");

    for n in 2..4 {
        let a = client.introspect(b"unknown-token").await.unwrap();
        assert!(!a.info.active && !a.cached);
        assert_eq!(endpoint.calls(), n, "inactive answers are not cached");
    }
    // Active, but expired by its own exp: used once, not kept.
    endpoint.token(
        "stale",
        Reply::json(serde_json::json!({"active": true, "username": "ann", "exp": now() - 5})),
    );
    client.introspect(b"stale").await.unwrap();
    assert!(!client.introspect(b"stale").await.unwrap().cached);
    assert_eq!(client.cached_answers(), 1);
}

#[tokio::test]
async fn client_credentials_go_as_http_basic() {
    let endpoint = TokenEndpoint::start().await;
    let client = introspector(&endpoint.url(), |c| {
        c.client = Some(ClientCredentials {
            id: "mail proxy".into(),
            secret: "s3cr:et".into(),
        });
    });
    client.introspect(b"t").await.unwrap();
    // base64("mail+proxy:s3cr%3Aet")
    assert_eq!(
        endpoint.last().unwrap().authorization.as_deref(),
        Some("Basic bWFpbCtwcm94eTpzM2NyJTNBZXQ=")
    );
    let shown = format!("{client:?}");
    assert!(
        !shown.contains("s3cr") && shown.contains("client_credentials: true"),
        "{shown}"
    );
}

#[tokio::test]
async fn every_failure_is_an_error_never_an_answer() {
    let endpoint = TokenEndpoint::start().await;
    let client = introspector(&endpoint.url(), |c| c.timeout = Duration::from_millis(300));
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply {
                status: 500,
                body: r#"{"active":true}"#.into(),
            },
            "Status(500)",
        ),
        (
            Reply {
                status: 401,
                body: String::new(),
            },
            "Status(401)",
        ),
        (
            Reply {
                status: 200,
                body: format!(r#"{{"active":true,"pad":"{}"}}"#, "x".repeat(70 * 1024)),
            },
            "Body",
        ),
        (
            Reply {
                status: 200,
                body: format!("<html>{TOKEN}</html>"),
            },
            "NotJson",
        ),
        (
            Reply::json(serde_json::json!({"username": TOKEN})),
            "NoActive",
        ),
    ];
    for (reply, want) in cases {
        endpoint.answer_all(Some(reply));
        let e = client.introspect(TOKEN.as_bytes()).await.unwrap_err();
        assert_eq!(format!("{e:?}"), want);
        assert_no_token(&e);
    }
    endpoint.answer_all(None);
    endpoint.token(TOKEN, Reply::active("ann"));
    endpoint.delay(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let e = client.introspect(TOKEN.as_bytes()).await.unwrap_err();
    assert!(matches!(e, IntrospectionError::Timeout(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "bounded by the timeout"
    );
    assert_no_token(&e);

    let url = endpoint.url();
    drop(endpoint);
    let client = introspector(&url, |_| {});
    let e = client.introspect(TOKEN.as_bytes()).await.unwrap_err();
    assert!(matches!(e, IntrospectionError::Connect(_)), "{e:?}");
    assert_no_token(&e);
}

#[tokio::test]
async fn https_is_verified_against_the_given_cas() {
    let (cert, key) = crate::tls::self_signed(&["localhost"]).unwrap();
    let server = crate::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap();
    let endpoint = TokenEndpoint::start_tls(server).await;
    endpoint.token(TOKEN, Reply::active("ann"));
    let trusting = crate::tls::client_config_from_pem(cert.as_bytes()).unwrap();
    let client = introspector(&endpoint.url(), |c| c.tls = Some(trusting));
    let a = client.introspect(TOKEN.as_bytes()).await.unwrap();
    assert_eq!(a.info.user(), Some("ann"));

    let (other, _) = crate::tls::self_signed(&["localhost"]).unwrap();
    let stranger = crate::tls::client_config_from_pem(other.as_bytes()).unwrap();
    let client = introspector(&endpoint.url(), |c| c.tls = Some(stranger));
    let e = client.introspect(TOKEN.as_bytes()).await.unwrap_err();
    assert!(matches!(e, IntrospectionError::Tls(_)), "{e:?}");
    assert_no_token(&e);
    assert_eq!(
        endpoint.calls(),
        1,
        "no request went to an unverified server"
    );
}

#[test]
fn flags() {
    let dir = std::env::temp_dir().join(format!("oauth-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let flags = |url, id, file| Flags {
        url,
        timeout_ms: 3000,
        client_id: id,
        client_secret_file: file,
        tls: None,
    };
    assert!(from_flags(flags(None, None, None)).unwrap().is_none());
    let i = from_flags(flags(
        Some("http://127.0.0.1:1/i"),
        Some("proxy"),
        Some(&secret),
    ))
    .unwrap()
    .unwrap();
    assert!(format!("{i:?}").contains("client_credentials: true"));
    let err = |f| from_flags(f).unwrap_err().0;
    assert_eq!(
        err(flags(Some("idp/x"), None, None)),
        "--oauth-introspection-url `idp/x` is not an http:// or https:// URL"
    );
    let e = err(flags(Some("https://proxy:pw@idp/"), None, None));
    assert_eq!(
        e,
        "--oauth-introspection-url must not carry credentials; give --oauth-client-id and --oauth-client-secret-file"
    );
    assert_eq!(
        err(flags(None, Some("proxy"), None)),
        "--oauth-client-id and --oauth-client-secret-file need --oauth-introspection-url"
    );
    assert_eq!(
        err(flags(Some("http://idp/"), Some("proxy"), None)),
        "--oauth-client-id and --oauth-client-secret-file come together"
    );
    let missing = std::path::Path::new("/nonexistent/secret");
    assert!(err(flags(Some("http://idp/"), Some("p"), Some(missing)))
        .starts_with("--oauth-client-secret-file /nonexistent/secret: cannot read it"));
    let mut zero = flags(Some("http://idp/"), None, None);
    zero.timeout_ms = 0;
    assert_eq!(
        err(zero),
        "--oauth-introspection-timeout-ms must be at least 1"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn debug_output_hides_the_secret() {
    let c = ClientCredentials {
        id: "proxy".into(),
        secret: "s3cret".into(),
    };
    assert!(!format!("{c:?}").contains("s3cret"));
}
