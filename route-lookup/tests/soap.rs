//! MTA authentication: the URLs `zmprov gamau` prints really authenticate. A SOAP 1.2
//! `AuthRequest` (as Zimbra's saslauthd sends it) posted to the URL gamau lists gets an
//! `AuthResponse` for a right password and an `account.AUTH_FAILED` fault otherwise.

mod support;

use proto::v1::{CreateRequest, Empty};
use route_lookup::testing::Harness;
use support::{provisioning, seed, set, PASSWORD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Posts `body` to `url` (http://HOST:PORT/path) with HTTP/1.1 and returns status and body.
async fn post(url: &str, body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (hostport, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = tokio::net::TcpStream::connect(hostport).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_string(&mut resp),
    )
    .await
    .unwrap()
    .unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn auth_request(account_element: &str, name: &str, password: &str) -> String {
    let account = match account_element {
        "account" => format!("<account by=\"name\">{}</account>", xml_escape(name)),
        _ => format!("<name>{}</name>", xml_escape(name)),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\">\
         <soap:Header><context xmlns=\"urn:zimbra\"><nosession/></context></soap:Header><soap:Body>\
         <AuthRequest xmlns=\"urn:zimbraAdmin\">{account}<password>{}</password></AuthRequest>\
         </soap:Body></soap:Envelope>",
        xml_escape(password)
    )
}

#[tokio::test]
async fn gamau_urls_authenticate() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let mut p = provisioning(&h.grpc_url()).await;
    p.create_server(CreateRequest {
        name: "127.0.0.1".into(),
        attrs: set(&[
            ("zimbraMtaAuthTarget", "TRUE"),
            ("zimbraMtaAuthPort", &h.http.port().to_string()),
        ]),
    })
    .await
    .unwrap();
    let urls = p
        .get_all_mta_auth_urls(Empty {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(
        urls,
        [format!(
            "http://127.0.0.1:{}/service/admin/soap/",
            h.http.port()
        )]
    );
    let url = &urls[0];

    for (element, name) in [
        ("account", "ann@example.com"),
        ("name", "annie@example.com"),
        ("account", "ANN"),
    ] {
        let (status, body) = post(url, &auth_request(element, name, PASSWORD)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(
            body.contains("<AuthResponse") && body.contains("<authToken>"),
            "{body}"
        );
    }
    for (name, password) in [
        ("ann@example.com", "wrong"),
        ("ann@example.com", ""),
        ("nobody@example.com", PASSWORD),
        ("carl@example.com", PASSWORD), // locked
        ("nopass@example.com", ""),
    ] {
        let (status, body) = post(url, &auth_request("account", name, password)).await;
        assert_eq!(status, 500, "{name}");
        assert!(
            body.contains("<soap:Fault>") && body.contains("account.AUTH_FAILED"),
            "{body}"
        );
        assert!(!body.contains(PASSWORD) && !body.contains("argon2"));
    }
    // Not an AuthRequest, or not XML at all: a sender fault, never a crash.
    for body in [
        "<soap:Envelope><soap:Body><GetInfoRequest/></soap:Body></soap:Envelope>",
        "garbage",
        "",
    ] {
        let (status, reply) = post(url, body).await;
        assert_eq!(status, 500);
        assert!(reply.contains("soap:Sender"), "{reply}");
    }
    // A body over the 64 KiB bound is refused, not buffered.
    let (status, reply) = post(url, &"x".repeat(70 * 1024)).await;
    assert_eq!(status, 500);
    assert!(reply.contains("too large"), "{reply}");
    h.stop().await;
}

#[tokio::test]
async fn requests_over_the_per_address_rate_get_429_and_safe_addresses_are_exempt() {
    let h = Harness::start(&["--soap-max-requests-per-sec", "5"]).await;
    let url = format!("http://{}/service/admin/soap/", h.http);
    let started = std::time::Instant::now();
    let mut throttled = 0;
    let mut answered = 0;
    for _ in 0..30 {
        let (status, body) = post(&url, &auth_request("account", "nobody@example.com", "x")).await;
        match status {
            429 => {
                throttled += 1;
                assert!(body.contains("service.TEMPORARILY_UNAVAILABLE"), "{body}");
            }
            500 => answered += 1,
            other => panic!("status {other}: {body}"),
        }
    }
    // Five at once, then five per second: whatever the machine's speed, no more than the
    // bucket plus its refill over the time taken got through.
    let refill = (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    assert!(
        answered >= 5 && answered <= 5 + refill,
        "answered {answered}, refill {refill}"
    );
    assert_eq!(throttled, 30 - answered);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _) = post(&url, &auth_request("account", "nobody@example.com", "x")).await;
    assert_eq!(status, 500, "a second later the address may ask again");
    h.stop().await;

    let h = Harness::start(&[
        "--soap-max-requests-per-sec",
        "5",
        "--soap-safe-ips",
        "10.0.0.0/8, 127.0.0.0/8",
    ])
    .await;
    let url = format!("http://{}/service/admin/soap/", h.http);
    for _ in 0..30 {
        let (status, _) = post(&url, &auth_request("account", "nobody@example.com", "x")).await;
        assert_eq!(status, 500);
    }
    h.stop().await;
}

#[tokio::test]
async fn soap_failures_count_towards_lockout_like_any_other() {
    let h = Harness::start(&[]).await;
    seed(&h.grpc_url()).await;
    let mut p = provisioning(&h.grpc_url()).await;
    p.modify_config(proto::v1::ModifyRequest {
        name: String::new(),
        attrs: set(&[
            ("zimbraPasswordLockoutEnabled", "TRUE"),
            ("zimbraPasswordLockoutMaxFailures", "2"),
        ]),
    })
    .await
    .unwrap();
    let url = format!("http://{}/service/admin/soap/", h.http);
    for pw in ["wrong1", "wrong2", PASSWORD] {
        let (status, body) = post(&url, &auth_request("account", "ann@example.com", pw)).await;
        assert_eq!(status, 500, "{pw}");
        assert!(body.contains("account.AUTH_FAILED"), "{body}");
    }
    let ann = p
        .get_account(proto::v1::NameRequest {
            name: "ann@example.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let status = ann
        .attrs
        .iter()
        .find(|a| a.name == "zimbraAccountStatus")
        .unwrap();
    assert_eq!(status.values, ["lockout"]);
    h.stop().await;
}
