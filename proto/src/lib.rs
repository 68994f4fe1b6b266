//! The gRPC contract of the product, package `zproxy.v1`: provisioning (what zmprov
//! needs), the `Authenticate` call mailbox servers use to check passwords, and the
//! registry (leases for cache nodes and route-lookup instances, and the membership watch
//! the proxy follows). The code is generated at build time from `proto/zproxy.proto`.

#![allow(missing_docs, unreachable_pub, clippy::all)]

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
            ClientError::Unreachable { url, source } => {
                write!(f, "cannot reach route-lookup at {url}: {source}")?;
                // tonic's own text is "transport error"; the cause is what helps.
                let mut cause = std::error::Error::source(source);
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Url { source, .. } => Some(source),
            ClientError::Token => None,
            ClientError::Unreachable { .. } => None,
        }
    }
}

/// An endpoint for route-lookup's gRPC at `url` with `connect` and per-call timeouts, and
/// the bearer interceptor for `token`: what every client of it (zmprov, cache-node,
/// mailbox-stub, proxy) starts from.
pub fn endpoint(
    url: &str,
    token: Option<&str>,
    connect: std::time::Duration,
    call: Option<std::time::Duration>,
) -> Result<(tonic::transport::Endpoint, BearerToken), ClientError> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|source| ClientError::Url {
            url: url.to_string(),
            source,
        })?
        .connect_timeout(connect);
    if let Some(call) = call {
        endpoint = endpoint.timeout(call);
    }
    let token = BearerToken::new(token).ok_or(ClientError::Token)?;
    Ok((endpoint, token))
}

/// Connects `endpoint` now (for clients that must know at once, as zmprov).
pub async fn connect(
    endpoint: &tonic::transport::Endpoint,
) -> Result<tonic::transport::Channel, ClientError> {
    endpoint
        .connect()
        .await
        .map_err(|source| ClientError::Unreachable {
            url: endpoint.uri().to_string(),
            source,
        })
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert(AUTHORIZATION, v.clone());
        }
        Ok(r)
    }
}
