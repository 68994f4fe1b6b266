//! Bearer-token logins at nginx-lookup (`Auth-Method: xoauth2 | oauthbearer`) against the
//! real PostgreSQL and a token endpoint on a local port: with --oauth-introspection-url a
//! token must be active and the login's account's (its name or an alias, either side),
//! an active answer is reused from the cache, an endpoint that is down, slow or erring is
//! a temporary failure, a token is never checked as a password nor counted toward the
//! lockout, and no token reaches a log line; without the URL, token logins are routed.

mod support;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::oauth_introspection::testing::{Reply, TokenEndpoint};
use proto::v1::ModifyRequest;
use route_lookup::testing::Harness;
use support::{provisioning, seed, set, NginxRequest, Reply as Answer, PASSWORD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FAILED: &str = "Authentication failed";
const TEMPORARY: &str = "Temporary authentication failure";

/// Every token of these tests starts so; none may be seen in a log line.
const SECRET_PREFIX: &str = "tok-s3cret-";

// --- a log capture: every event and span field of the process, at every level ---

#[derive(Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next_span: AtomicU64,
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Capture {
    fn push(&self, what: &str, record: impl FnOnce(&mut Fields<'_>)) {
        let mut line = what.to_string();
        record(&mut Fields(&mut line));
        line.push('\n');
        self.text
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_str(&line);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.push(span.metadata().name(), |f| span.record(f));
        tracing::span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.push("record", |f| values.record(f));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        self.push(event.metadata().target(), |f| event.record(f));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Everything logged in this test process so far (tests run in parallel: all of them).
fn logs() -> String {
    static TEXT: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    let text = TEXT.get_or_init(|| {
        let capture = Capture::default();
        let text = capture.text.clone();
        tracing::subscriber::set_global_default(capture).expect("the only subscriber");
        text
    });
    text.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn assert_no_token_logged() {
    let logs = logs();
    assert!(
        logs.contains("bearer token refused") || logs.contains("token introspection failed"),
        "the capture works: {logs}"
    );
    assert!(!logs.contains(SECRET_PREFIX), "a token was logged:\n{logs}");
}

// --- requests ---

fn token(name: &str) -> String {
    format!("{SECRET_PREFIX}{name}")
}

async fn login(h: &Harness, method: &str, user: &str, token: &str) -> Answer {
    let mut req = NginxRequest::new(user, "imap");
    req.method = method;
    req.pass = token.as_bytes();
    req.send(h.http).await
}

fn assert_routed(r: &Answer, account: &str, what: &str) {
    assert_eq!(r.status(), "OK", "{what}: {r:?}");
    assert_eq!(r.get("Auth-User").as_deref(), Some(account), "{what}");
    assert!(r.get("Auth-Server").is_some(), "{what}");
}

fn assert_refused(r: &Answer, text: &str, reason: &str, what: &str) {
    assert_eq!(r.status(), text, "{what}: {r:?}");
    assert_eq!(r.get("X-Lookup-Reason").as_deref(), Some(reason), "{what}");
    assert_eq!(r.get("Auth-Wait").as_deref(), Some("10"), "{what}");
    assert_eq!(r.get("Auth-Server"), None, "{what}");
}

async fn metrics(h: &Harness) -> String {
    let mut s = tokio::net::TcpStream::connect(h.http).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

fn count(metrics: &str, outcome: &str) -> u64 {
    let prefix = format!("route_lookup_oauth_introspections_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
        .parse()
        .unwrap()
}

async fn lockout_after_two_failures(h: &Harness, account: &str) {
    provisioning(&h.grpc_url())
        .await
        .modify_account(ModifyRequest {
            name: account.into(),
            attrs: set(&[
                ("zimbraPasswordLockoutEnabled", "TRUE"),
                ("zimbraPasswordLockoutMaxFailures", "2"),
            ]),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn active_tokens_of_the_account_route_others_are_refused() {
    logs();
    let endpoint = TokenEndpoint::start().await;
    let url = endpoint.url();
    // --verify-passwords throughout: no token here is a password, so every route proves
    // the token was not checked as one.
    let h = Harness::start(&["--oauth-introspection-url", &url, "--verify-passwords"]).await;
    seed(&h.grpc_url()).await;
    let ann = token("ann");
    endpoint.token(&ann, Reply::active("ann@example.com"));

    // The account and its alias, with either mechanism; the first asks, the rest reuse.
    let r = login(&h, "xoauth2", "ann@example.com", &ann).await;
    assert_routed(&r, "ann@example.com", "ann's token for ann");
    assert_eq!(endpoint.calls(), 1);
    assert_eq!(
        endpoint.last().unwrap().token.as_deref(),
        Some(ann.as_str())
    );
    let r = login(&h, "XOAUTH2", "annie@example.com", &ann).await;
    assert_routed(&r, "ann@example.com", "ann's token for her alias");
    let r = login(&h, "oauthbearer", "ANN", &ann).await;
    assert_routed(
        &r,
        "ann@example.com",
        "unqualified, other case, oauthbearer",
    );
    assert_eq!(endpoint.calls(), 1, "an active answer is introspected once");

    // The token names the alias, or the account in another case: still ann's.
    for (name, user) in [
        ("alias", "annie@example.com"),
        ("case", "Ann@EXAMPLE.com"),
        ("alias-domain", "ann@alias.example.org"),
    ] {
        let t = token(name);
        endpoint.token(&t, Reply::active(user));
        let r = login(&h, "xoauth2", "ann@example.com", &t).await;
        assert_routed(&r, "ann@example.com", name);
    }
    // No username: email, then sub.
    let t = token("email");
    endpoint.token(
        &t,
        Reply::ok(r#"{"active": true, "email": "ann@example.com", "sub": "x"}"#),
    );
    assert_routed(
        &login(&h, "xoauth2", "ann@example.com", &t).await,
        "ann@example.com",
        "email",
    );
    // A token longer than any password (1 KiB) but within the SASL bound.
    let long = token(&"L".repeat(4000));
    endpoint.token(&long, Reply::active("ann@example.com"));
    assert_routed(
        &login(&h, "xoauth2", "ann@example.com", &long).await,
        "ann@example.com",
        "a 4 KB token",
    );

    // Refusals: the generic text and bad_token, Auth-Wait as for a wrong password.
    let calls = endpoint.calls();
    let r = login(&h, "xoauth2", "bob@example.net", &ann).await;
    assert_refused(&r, FAILED, "bad_token", "ann's token presented for bob");
    assert_eq!(endpoint.calls(), calls, "ann's cached answer refused bob");
    let inactive = token("revoked");
    endpoint.token(&inactive, Reply::inactive());
    for _ in 0..2 {
        let r = login(&h, "xoauth2", "ann@example.com", &inactive).await;
        assert_refused(&r, FAILED, "bad_token", "an inactive token");
    }
    assert_eq!(
        endpoint.calls(),
        calls + 2,
        "inactive answers are asked again"
    );
    let r = login(&h, "oauthbearer", "ann@example.com", &token("never-issued")).await;
    assert_refused(&r, FAILED, "bad_token", "an unknown token");
    for (name, answer) in [
        (
            "nobody",
            r#"{"active": true, "username": "nobody@example.com"}"#,
        ),
        ("no-user", r#"{"active": true, "scope": "mail"}"#),
        ("bob", r#"{"active": true, "sub": "bob@example.net"}"#),
    ] {
        let t = token(name);
        endpoint.token(&t, Reply::ok(answer));
        let r = login(&h, "xoauth2", "ann@example.com", &t).await;
        assert_refused(&r, FAILED, "bad_token", name);
    }
    // Unknown login: refused before any introspection.
    let calls = endpoint.calls();
    let r = login(&h, "xoauth2", "nobody@example.com", &ann).await;
    assert_refused(&r, FAILED, "unknown_user", "unknown login");
    assert_eq!(endpoint.calls(), calls);
    // The password itself is not a token.
    let r = login(&h, "xoauth2", "ann@example.com", PASSWORD).await;
    assert_refused(&r, FAILED, "bad_token", "the password as a token");

    // Refused tokens never count toward the lockout; wrong passwords do (the contrast
    // shows the policy is in force here).
    lockout_after_two_failures(&h, "ann@example.com").await;
    lockout_after_two_failures(&h, "vic@vip.example").await;
    for _ in 0..3 {
        let r = login(&h, "xoauth2", "ann@example.com", &inactive).await;
        assert_refused(&r, FAILED, "bad_token", "inactive, lockout on");
    }
    let mut plain = NginxRequest::new("ann@example.com", "imap");
    plain.pass = PASSWORD.as_bytes();
    assert_routed(
        &plain.send(h.http).await,
        "ann@example.com",
        "ann's password after three refused tokens",
    );
    for _ in 0..2 {
        let mut wrong = NginxRequest::new("vic@vip.example", "imap");
        wrong.pass = b"wrong";
        assert_refused(&wrong.send(h.http).await, FAILED, "bad_password", "vic");
    }
    let mut right = NginxRequest::new("vic@vip.example", "imap");
    right.pass = PASSWORD.as_bytes();
    assert_refused(
        &right.send(h.http).await,
        FAILED,
        "inactive",
        "vic locked out",
    );

    let m = metrics(&h).await;
    // active: ann, alias, case, alias-domain, email, long; cached: annie, ANN.
    for (outcome, n) in [
        ("active", 6),
        ("cached", 2),
        ("inactive", 7),
        ("wrong_user", 4),
        ("error", 0),
    ] {
        assert_eq!(count(&m, outcome), n, "{outcome} in\n{m}");
    }
    assert!(
        m.contains("route_lookup_lookups_total{outcome=\"bad_token\"} 11"),
        "{m}"
    );
    assert_no_token_logged();
    h.stop().await;
}

#[tokio::test]
async fn an_endpoint_down_slow_or_erring_is_a_temporary_failure() {
    logs();
    let endpoint = TokenEndpoint::start().await;
    let url = endpoint.url();
    let h = Harness::start(&[
        "--oauth-introspection-url",
        &url,
        "--oauth-introspection-timeout-ms",
        "300",
    ])
    .await;
    seed(&h.grpc_url()).await;
    let ann = token("ann-2");
    endpoint.token(&ann, Reply::active("ann@example.com"));
    assert_routed(
        &login(&h, "xoauth2", "ann@example.com", &ann).await,
        "ann@example.com",
        "before the trouble",
    );

    endpoint.delay(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let r = login(&h, "xoauth2", "ann@example.com", &token("slow")).await;
    assert_refused(&r, TEMPORARY, "unavailable", "a slow endpoint");
    assert!(started.elapsed() < Duration::from_millis(1500), "bounded");
    endpoint.delay(Duration::ZERO);

    for (what, reply) in [
        (
            "HTTP 500",
            Reply {
                status: 500,
                body: String::new(),
            },
        ),
        ("not JSON", Reply::ok("<html>oops</html>")),
        ("no active", Reply::ok(r#"{"username": "ann"}"#)),
    ] {
        endpoint.answer_all(Some(reply));
        let r = login(&h, "xoauth2", "ann@example.com", &token(what)).await;
        assert_refused(&r, TEMPORARY, "unavailable", what);
    }
    endpoint.answer_all(None);

    drop(endpoint);
    let r = login(&h, "xoauth2", "ann@example.com", &token("down")).await;
    assert_refused(&r, TEMPORARY, "unavailable", "the endpoint down");
    // A token whose active answer is cached still routes through the outage.
    assert_routed(
        &login(&h, "xoauth2", "ann@example.com", &ann).await,
        "ann@example.com",
        "cached, endpoint down",
    );
    let m = metrics(&h).await;
    assert_eq!(count(&m, "error"), 5, "{m}");
    assert_eq!(count(&m, "cached"), 1, "{m}");
    assert_no_token_logged();
    h.stop().await;
}

#[tokio::test]
async fn without_the_url_token_logins_are_routed_unchecked() {
    logs();
    let h = Harness::start(&["--verify-passwords"]).await;
    seed(&h.grpc_url()).await;
    for method in ["xoauth2", "oauthbearer", "XOAuth2"] {
        let r = login(&h, method, "annie@example.com", &token("anything")).await;
        assert_routed(&r, "ann@example.com", method);
    }
    let r = login(&h, "xoauth2", "nobody@example.com", &token("x")).await;
    assert_refused(&r, FAILED, "unknown_user", "unknown login");
    // Still not a password: no lockout from token logins, and the password path unchanged.
    let mut wrong = NginxRequest::new("ann@example.com", "imap");
    wrong.pass = b"wrong";
    assert_refused(
        &wrong.send(h.http).await,
        FAILED,
        "bad_password",
        "plain, wrong",
    );
    let m = metrics(&h).await;
    assert_eq!(
        count(&m, "active") + count(&m, "error"),
        0,
        "nothing introspected"
    );
    assert!(!logs().contains(SECRET_PREFIX));
    h.stop().await;
}
