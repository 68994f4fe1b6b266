//! One introspection round trip on the wire: the endpoint's URL, the form-encoded `POST`
//! over a fresh HTTP/1.1 connection (plain, or rustls for `https://`), and the JSON answer
//! read within the size bound. Time is bounded by the caller.

use std::net::Ipv6Addr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{IntrospectionError, TokenInfo};

/// Largest response head read (hyper's buffer).
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body read: a token's claims, not a document.
pub const MAX_BODY: usize = 64 * 1024;

/// The endpoint, `http://host[:port]/path` or `https://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    /// `https://`.
    pub tls: bool,
    /// The host as the Host header and SNI need it (IPv6 literals in brackets).
    pub host: String,
    /// The port (80 or 443 when not given).
    pub port: u16,
    /// The path and query, as sent in the request line.
    pub path: String,
}

/// Why a URL cannot be an introspection endpoint; the texts quote the URL, except one with
/// credentials in it, which is refused without repeating them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// `user:password@` in the URL: it would show wherever the URL is logged.
    #[error("must not carry credentials; give --oauth-client-id and --oauth-client-secret-file")]
    Credentials,
    /// Neither `http://` nor `https://`.
    #[error("`{0}` is not an http:// or https:// URL")]
    Scheme(String),
    /// No host, or a bad one.
    #[error("`{0}` has no usable host")]
    Host(String),
    /// A port that is not 1..=65535.
    #[error("`{0}` has a bad port")]
    Port(String),
    /// A path that cannot be sent in a request line, or a fragment.
    #[error("`{0}` has a path that cannot be sent")]
    Path(String),
}

impl std::str::FromStr for EndpointUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (tls, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(UrlError::Scheme(s.to_string()));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let bad_host = || UrlError::Host(s.to_string());
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(bad_host)?;
            ip.parse::<Ipv6Addr>().map_err(|_| bad_host())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
            };
            (&authority[..ip.len() + 2], port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|c| c.is_ascii_graphic() && !b"@?#/".contains(&c))
        {
            return Err(bad_host());
        }
        if path.contains('#') || path.parse::<hyper::Uri>().is_err() {
            return Err(UrlError::Path(s.to_string()));
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| UrlError::Port(s.to_string()))?,
        };
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }
}

impl std::fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

impl EndpointUrl {
    /// The Host header: the port only when it is not the scheme's default (RFC 9110).
    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name the certificate must carry (IPv6 literals without brackets).
    fn server_name(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// `application/x-www-form-urlencoded` (the WHATWG byte serializer): unreserved bytes as
/// they are, space as `+`, the rest `%XX`.
pub(super) fn form_encode(out: &mut String, value: &[u8]) {
    for &b in value {
        if b.is_ascii_alphanumeric() || b"*-._".contains(&b) {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The request body for `token` (RFC 7662 section 2.1).
pub(super) fn form_body(token: &[u8]) -> String {
    let mut body = String::with_capacity(token.len() + 40);
    body.push_str("token=");
    form_encode(&mut body, token);
    body.push_str("&token_type_hint=access_token");
    body
}

/// RFC 6749 section 2.3.1: client id and secret are form-encoded, then joined by `:` and
/// base64-encoded for HTTP Basic.
pub(super) fn basic_authorization(id: &str, secret: &str) -> Option<HeaderValue> {
    use base64::Engine as _;
    let mut pair = String::new();
    form_encode(&mut pair, id.as_bytes());
    pair.push(':');
    form_encode(&mut pair, secret.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Posts `body` to `url` on a new connection and returns the answer's claims.
pub(super) async fn post(
    url: &EndpointUrl,
    tls: Option<&tokio_rustls::TlsConnector>,
    authorization: Option<&HeaderValue>,
    body: String,
) -> Result<TokenInfo, IntrospectionError> {
    let tcp = TcpStream::connect((url.server_name(), url.port))
        .await
        .map_err(IntrospectionError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let request = request(url, authorization, body)?;
    if !url.tls {
        return exchange(tcp, request).await;
    }
    let connector = tls.ok_or(IntrospectionError::NoTls)?;
    let name = rustls::pki_types::ServerName::try_from(url.server_name().to_string())
        .map_err(|_| IntrospectionError::NoTls)?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(IntrospectionError::Tls)?;
    exchange(stream, request).await
}

fn request(
    url: &EndpointUrl,
    authorization: Option<&HeaderValue>,
    body: String,
) -> Result<hyper::Request<Full<Bytes>>, IntrospectionError> {
    let mut b = hyper::Request::post(url.path.as_str())
        .header(HOST, url.host_header())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        // One request per connection: no pool to keep, and nothing left open on a timeout.
        .header(CONNECTION, "close");
    if let Some(a) = authorization {
        b = b.header(AUTHORIZATION, a.clone());
    }
    // The path was checked when the URL was parsed and every other value is fixed, so this
    // cannot fail; the error names no value anyway.
    b.body(Full::new(Bytes::from(body)))
        .map_err(|_| IntrospectionError::Request)
}

/// The HTTP/1.1 exchange on `stream`; the connection is driven beside the request and
/// closes when both are done.
async fn exchange<S>(
    stream: S,
    request: hyper::Request<Full<Bytes>>,
) -> Result<TokenInfo, IntrospectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(IntrospectionError::Http)?;
    let ask = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(IntrospectionError::Http)?;
        let (head, body) = response.into_parts();
        if head.status != hyper::StatusCode::OK {
            return Err(IntrospectionError::Status(head.status.as_u16()));
        }
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|_| IntrospectionError::Body)?
            .to_bytes();
        parse_answer(&body)
        // `sender` is dropped here, which lets the connection finish.
    };
    let (answer, _) = tokio::join!(ask, conn);
    answer
}

/// The claims of an RFC 7662 answer: `active` must be a boolean; `username`, `email` and
/// `sub` are taken when they are non-empty strings, `exp` when it is a number. The error
/// never quotes the body: an endpoint may echo what it was sent.
pub(super) fn parse_answer(body: &[u8]) -> Result<TokenInfo, IntrospectionError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| IntrospectionError::NotJson)?;
    let object = value.as_object().ok_or(IntrospectionError::NotJson)?;
    let active = object
        .get("active")
        .and_then(serde_json::Value::as_bool)
        .ok_or(IntrospectionError::NoActive)?;
    let text = |key: &str| {
        object
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let exp = object.get("exp").and_then(|e| {
        e.as_i64()
            // A fractional NumericDate (RFC 7519 allows it); the cast saturates.
            .or_else(|| e.as_f64().map(|f| f as i64))
    });
    Ok(TokenInfo {
        active,
        username: text("username"),
        email: text("email"),
        sub: text("sub"),
        exp,
    })
}
