//! One introspection round trip on the wire: the form-encoded `POST`
//! over a fresh HTTP/1.1 connection (plain, or rustls for `https://`), and the JSON answer
//! read within the size bound. Time is bounded by the caller.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{IntrospectionError, TokenInfo};
use crate::http_url::HttpUrl;

/// Largest response head read (hyper's buffer).
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body read: a token's claims, not a document.
pub const MAX_BODY: usize = 64 * 1024;

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
    url: &HttpUrl,
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
    url: &HttpUrl,
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
