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

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert(AUTHORIZATION, v.clone());
        }
        Ok(r)
    }
}
