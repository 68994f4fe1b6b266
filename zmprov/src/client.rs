//! The gRPC connection to route-lookup, with the admin token on every call.

use std::time::Duration;

use proto::v1::provisioning_client::ProvisioningClient;
use proto::BearerToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The connected clients.
#[derive(Debug, Clone)]
pub struct Client {
    /// Provisioning calls.
    pub provisioning: ProvisioningClient<InterceptedService<Channel, BearerToken>>,
}

impl Client {
    /// Connects to `server` (http://HOST:PORT, or https://HOST:PORT verified against `ca`,
    /// else the system's CAs).
    pub async fn connect(
        server: &str,
        token: Option<&str>,
        ca: Option<&std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Self, proto::ClientError> {
        let (endpoint, token) = proto::endpoint(
            server,
            token,
            ca,
            Duration::from_secs(5),
            Some(Duration::from_secs(30)),
        )?;
        let channel = proto::connect(&endpoint).await?;
        Ok(Self {
            provisioning: ProvisioningClient::with_interceptor(channel, token),
        })
    }
}
