//! Helpers for route-lookup's integration tests: a raw HTTP/1 client that sends exactly the
//! bytes nginx sends, gRPC clients with the admin token, and the seed data.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use codec::auth_http::escape;
use proto::v1::directory_client::DirectoryClient;
use proto::v1::provisioning_client::ProvisioningClient;
use proto::v1::registry_client::RegistryClient;
use proto::v1::{
    AliasRequest, CreateAccountRequest, CreateAliasDomainRequest, CreateRequest, ModifyRequest,
};
use route_lookup::testing::TOKEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A parsed auth_http response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status_line: String,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes of the status line and header block, final blank line included.
    pub head_len: usize,
}

impl Reply {
    pub fn get(&self, name: &str) -> Option<String> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        let first = found.next();
        assert!(found.next().is_none(), "header {name} repeated");
        first
    }

    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn status(&self) -> String {
        self.get("Auth-Status")
            .expect("every answer carries Auth-Status")
    }
}

/// Parses one response head from the front of `buf`; returns it and its length.
pub fn parse_head(buf: &[u8]) -> Option<Reply> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..end - 4];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = String::from_utf8_lossy(lines.next()?).into_owned();
    let headers = lines
        .map(|l| {
            let colon = l
                .iter()
                .position(|&b| b == b':')
                .expect("header has a colon");
            let name = String::from_utf8(l[..colon].to_vec()).expect("ASCII header name");
            let value = l[colon + 1..].trim_ascii().to_vec();
            (name, value)
        })
        .collect();
    Some(Reply {
        status_line,
        headers,
        head_len: end,
    })
}

/// Sends `request` on a fresh connection and reads until the server closes (what nginx
/// relies on for HTTP/1.0).
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("server closes an HTTP/1.0 connection after the answer")
        .expect("read");
    parse_head(&buf)
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&buf)))
}

/// The request nginx 1.22 writes, headers in its order, values escaped as it escapes them.
pub struct NginxRequest<'a> {
    pub method: &'a str,
    pub user: &'a [u8],
    pub pass: &'a [u8],
    pub protocol: &'a str,
    pub attempt: &'a str,
    pub extra: Vec<(&'a str, &'a [u8])>,
    pub version: &'a str,
}

impl<'a> NginxRequest<'a> {
    pub fn new(user: &'a str, protocol: &'a str) -> Self {
        Self {
            method: "plain",
            user: user.as_bytes(),
            pass: b"secret",
            protocol,
            attempt: "1",
            extra: Vec::new(),
            version: "HTTP/1.0",
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut r = format!(
            "GET /service/extension/nginx-lookup {}\r\nHost: localhost\r\n",
            self.version
        )
        .into_bytes();
        r.extend_from_slice(format!("Auth-Method: {}\r\n", self.method).as_bytes());
        r.extend_from_slice(b"Auth-User: ");
        r.extend_from_slice(&escape(self.user));
        r.extend_from_slice(b"\r\nAuth-Pass: ");
        r.extend_from_slice(&escape(self.pass));
        r.extend_from_slice(
            format!(
                "\r\nAuth-Protocol: {}\r\nAuth-Login-Attempt: {}\r\nClient-IP: 192.0.2.7\r\n",
                self.protocol, self.attempt
            )
            .as_bytes(),
        );
        for (n, v) in &self.extra {
            r.extend_from_slice(n.as_bytes());
            r.extend_from_slice(b": ");
            r.extend_from_slice(v);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"\r\n");
        r
    }

    pub async fn send(&self, addr: SocketAddr) -> Reply {
        send_raw(addr, &self.bytes()).await
    }
}

pub type Token = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

pub fn with_token(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("ascii"),
    );
    Ok(r)
}

pub async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("grpc connects")
}

pub async fn provisioning(url: &str) -> ProvisioningClient<InterceptedService<Channel, Token>> {
    ProvisioningClient::with_interceptor(channel(url).await, with_token as Token)
}

pub async fn directory(url: &str) -> DirectoryClient<InterceptedService<Channel, Token>> {
    DirectoryClient::with_interceptor(channel(url).await, with_token as Token)
}

pub async fn registry(url: &str) -> RegistryClient<InterceptedService<Channel, Token>> {
    RegistryClient::with_interceptor(channel(url).await, with_token as Token)
}

pub use route_lookup::testing::set_attrs as set;

/// The password of every seeded account: space, `+`, `%` and UTF-8, the characters that
/// break form-decoding lookup services.
pub const PASSWORD: &str = "pa ss+ü%";

/// Domains example.com (default), example.net, alias domain alias.example.org → example.com,
/// vip.example (virtual IP 10.9.9.9); mailbox servers mbx1 (127.0.0.1, default ports), mbx2
/// (127.0.0.2, 8xxx ports), localhost (no serviceAddress: resolved) and nonexistent.invalid
/// (no serviceAddress and a name that never resolves: no route); accounts in every status.
pub async fn seed(grpc_url: &str) {
    let mut p = provisioning(grpc_url).await;
    for d in ["example.com", "example.net"] {
        p.create_domain(CreateRequest {
            name: d.into(),
            attrs: vec![],
        })
        .await
        .unwrap();
    }
    p.create_domain(CreateRequest {
        name: "vip.example".into(),
        attrs: set(&[("zimbraVirtualIPAddress", "10.9.9.9")]),
    })
    .await
    .unwrap();
    p.create_alias_domain(CreateAliasDomainRequest {
        alias: "alias.example.org".into(),
        target: "example.com".into(),
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
            ("zimbraServiceEnabled", "mailbox"),
        ]),
    })
    .await
    .unwrap();
    p.create_server(CreateRequest {
        name: "mbx2.example.com".into(),
        attrs: set(&[
            ("serviceAddress", "127.0.0.2"),
            ("zimbraServiceEnabled", "mailbox"),
            ("zimbraImapBindPort", "8143"),
            ("zimbraImapSSLBindPort", "8993"),
            ("zimbraPop3BindPort", "8110"),
            ("zimbraPop3SSLBindPort", "8995"),
        ]),
    })
    .await
    .unwrap();
    // A mail host must be a mailbox server, so these two are servers too; neither has a
    // serviceAddress, so their routes come from resolving the name.
    for name in ["localhost", "nonexistent.invalid"] {
        p.create_server(CreateRequest {
            name: name.into(),
            attrs: set(&[("zimbraServiceEnabled", "mailbox")]),
        })
        .await
        .unwrap();
    }
    let accounts: &[(&str, &str, &str)] = &[
        ("ann@example.com", "mbx1.example.com", "active"),
        ("bob@example.net", "mbx2.example.com", "active"),
        ("vic@vip.example", "mbx2.example.com", "active"),
        ("carl@example.com", "mbx1.example.com", "locked"),
        ("dan@example.com", "mbx1.example.com", "closed"),
        ("eve@example.com", "mbx1.example.com", "maintenance"),
        ("lou@example.com", "mbx1.example.com", "lockout"),
        ("fay@example.com", "localhost", "active"),
        ("gus@example.com", "nonexistent.invalid", "active"),
        ("hal@example.com", "", "active"),
        ("o'hara@example.com", "mbx2.example.com", "active"),
        ("zoë@example.com", "mbx2.example.com", "active"),
    ];
    for (name, host, status) in accounts {
        p.create_account(CreateAccountRequest {
            name: name.to_string(),
            password: PASSWORD.into(),
            attrs: set(&[("zimbraMailHost", host), ("zimbraAccountStatus", status)]),
        })
        .await
        .unwrap();
    }
    p.create_account(CreateAccountRequest {
        name: "nopass@example.com".into(),
        password: String::new(),
        attrs: set(&[("zimbraMailHost", "mbx1.example.com")]),
    })
    .await
    .unwrap();
    p.add_account_alias(AliasRequest {
        account: "ann@example.com".into(),
        alias: "annie@example.com".into(),
    })
    .await
    .unwrap();
}
