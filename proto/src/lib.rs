//! The gRPC contract of the product, package `zproxy.v1`: provisioning (what zmprov
//! needs), the `Authenticate` call mailbox servers use to check passwords, and the
//! registry (leases for cache nodes and route-lookup instances, and the membership watch
//! the proxy follows). The code is generated at build time from `proto/zproxy.proto`.
//!
//! Every client of route-lookup's gRPC starts from [`endpoint`]: `http://` URLs are
//! plaintext, `https://` ones TLS verified against the caller's `--ca` or the system's CAs
//! ([`tls`]).

#![allow(missing_docs, unreachable_pub, clippy::all)]

pub mod tls;

use std::sync::Arc;

/// Generated messages, clients and servers of `zproxy.v1`.
pub mod v1 {
    tonic::include_proto!("zproxy.v1");
}

/// The metadata key that carries the admin bearer token (`authorization: Bearer T`).
pub const AUTHORIZATION: &str = "authorization";

/// A client interceptor that sends `authorization: Bearer T` on every call when a token
/// is configured (a server run with `--insecure-admin` needs none).
#[derive(Debug, Clone)]
pub struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl BearerToken {
    /// `None` when the token cannot be sent as an HTTP/2 header value.
    pub fn new(token: Option<&str>) -> Option<Self> {
        match token {
            None => Some(Self(None)),
            Some(t) => format!("Bearer {t}").parse().ok().map(|v| Self(Some(v))),
        }
    }
}

/// Why a client of route-lookup's gRPC could not be set up.
#[derive(Debug)]
pub enum ClientError {
    /// The URL does not parse.
    Url {
        /// The URL given.
        url: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The token cannot be sent as a header value.
    Token,
    /// Neither `http://` nor `https://`.
    Scheme {
        /// The URL given.
        url: String,
    },
    /// An `https://` URL without `--ca`, and the system's CA bundle is unusable.
    SystemCas {
        /// The URL given.
        url: String,
        /// Why.
        source: common::tls::TlsError,
    },
    /// Nothing answered at the URL (connect refused, timed out, TLS failed).
    Unreachable {
        /// The URL given.
        url: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Url { url, source } => write!(f, "bad URL {url}: {source}"),
            ClientError::Token => f.write_str("the admin token must be printable ASCII"),
            ClientError::Scheme { url } => {
                write!(f, "bad URL {url}: give http://HOST:PORT or https://HOST:PORT")
            }
            ClientError::SystemCas { url, source } => write!(
                f,
                "{url} needs CA certificates to verify route-lookup (give --ca PEM); the system's: {source}"
            ),
            // tonic's own text is "transport error"; the causes are what helps.
            ClientError::Unreachable { url, source } => write!(
                f,
                "cannot reach route-lookup at {url}: {}",
                common::exit::chain(source)
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Url { source, .. } => Some(source),
            ClientError::Token | ClientError::Scheme { .. } => None,
            ClientError::SystemCas { source, .. } => Some(source),
            ClientError::Unreachable { .. } => None,
        }
    }
}

/// route-lookup's gRPC as a client reaches it: plaintext for `http://`, TLS for `https://`.
#[derive(Clone)]
pub struct Endpoint {
    inner: tonic::transport::Endpoint,
    tls: Option<tls::TlsConnector>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("uri", self.inner.uri())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// The URL.
    pub fn uri(&self) -> &tonic::transport::Uri {
        self.inner.uri()
    }

    /// A channel that connects at its first call (and again after a failure): for
    /// long-running clients that must start while route-lookup is down.
    pub fn connect_lazy(&self) -> tonic::transport::Channel {
        match &self.tls {
            Some(tls) => self.inner.connect_with_connector_lazy(tls.clone()),
            None => self.inner.connect_lazy(),
        }
    }

    /// Connects now (for clients that must know at once, as zmprov).
    pub async fn connect(&self) -> Result<tonic::transport::Channel, ClientError> {
        let connected = match &self.tls {
            Some(tls) => self.inner.connect_with_connector(tls.clone()).await,
            None => self.inner.connect().await,
        };
        connected.map_err(|source| ClientError::Unreachable {
            url: self.inner.uri().to_string(),
            source,
        })
    }
}

/// An endpoint for route-lookup's gRPC at `url` with `connect` and per-call timeouts, and
/// the bearer interceptor for `token`: what every client of it (zmprov, cache-node,
/// mailbox-stub, proxy) starts from. An `https://` URL is verified against `ca` (the
/// client's `--ca`), else the system's CAs; `ca` is not used for `http://`.
pub fn endpoint(
    url: &str,
    token: Option<&str>,
    ca: Option<&Arc<rustls::ClientConfig>>,
    connect: std::time::Duration,
    call: Option<std::time::Duration>,
) -> Result<(Endpoint, BearerToken), ClientError> {
    let https = match url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()) {
        Some(s) if s == "http" => false,
        Some(s) if s == "https" => true,
        _ => return Err(ClientError::Scheme { url: url.into() }),
    };
    let mut inner = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|source| ClientError::Url {
            url: url.to_string(),
            source,
        })?
        .connect_timeout(connect);
    if let Some(call) = call {
        inner = inner.timeout(call);
    }
    let tls = match (https, ca) {
        (false, _) => None,
        (true, Some(ca)) => Some(tls::TlsConnector::new(ca)),
        (true, None) => {
            let system =
                common::tls::system_client_config().map_err(|source| ClientError::SystemCas {
                    url: url.to_string(),
                    source,
                })?;
            Some(tls::TlsConnector::new(&system))
        }
    };
    let token = BearerToken::new(token).ok_or(ClientError::Token)?;
    Ok((Endpoint { inner, tls }, token))
}

/// A failed call's status in words: its message, and for a channel that could not connect
/// the causes behind it (tonic's message alone may say only "transport error"), once.
pub fn status_text(status: &tonic::Status) -> String {
    match std::error::Error::source(status) {
        Some(cause) => {
            let causes = common::exit::chain(cause);
            if causes.contains(status.message()) {
                causes
            } else {
                format!("{}: {causes}", status.message())
            }
        }
        None => status.message().to_string(),
    }
}

/// Connects `endpoint` now (for clients that must know at once, as zmprov).
pub async fn connect(endpoint: &Endpoint) -> Result<tonic::transport::Channel, ClientError> {
    endpoint.connect().await
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert(AUTHORIZATION, v.clone());
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_and_only_https_takes_the_ca() {
        let (cert, _) = common::tls::self_signed(&["localhost"]).unwrap();
        let ca = common::tls::client_config_from_pem(cert.as_bytes()).unwrap();
        let d = std::time::Duration::from_secs(1);
        let (plain, _) = endpoint("http://127.0.0.1:7071", None, Some(&ca), d, None).unwrap();
        assert!(plain.tls.is_none(), "the CA is for https:// only");
        let (tls, _) = endpoint("HTTPS://localhost:7071", None, Some(&ca), d, None).unwrap();
        assert!(tls.tls.is_some());
        for bad in ["ftp://x:1", "localhost:7071", ""] {
            let e = endpoint(bad, None, None, d, None).unwrap_err().to_string();
            assert!(e.starts_with(&format!("bad URL {bad}")), "{e}");
        }
        assert!(matches!(
            endpoint("http://x:1", Some("a\nb"), None, d, None),
            Err(ClientError::Token)
        ));
    }

    #[test]
    fn a_status_names_its_causes_once() {
        assert_eq!(
            status_text(&tonic::Status::unauthenticated("bad token")),
            "bad token"
        );
        #[derive(Debug)]
        struct Cause;
        impl std::fmt::Display for Cause {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("invalid peer certificate: UnknownIssuer")
            }
        }
        impl std::error::Error for Cause {}
        let s = tonic::Status::from_error(Box::new(Cause));
        assert_eq!(status_text(&s), "invalid peer certificate: UnknownIssuer");
    }
}
