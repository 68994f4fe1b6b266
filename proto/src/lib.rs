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
