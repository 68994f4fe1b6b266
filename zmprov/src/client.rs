//! The gRPC connection to route-lookup, with the admin token on every call.

use std::time::Duration;

use proto::v1::provisioning_client::ProvisioningClient;
use proto::BearerToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// The connected clients.
#[derive(Debug, Clone)]
pub struct Client {
    /// Provisioning calls.
    pub provisioning: ProvisioningClient<InterceptedService<Channel, BearerToken>>,
}

impl Client {
    /// Connects to `server` (http://HOST:PORT).
    pub async fn connect(server: &str, token: Option<&str>) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(server.to_string())
            .map_err(|e| format!("bad server URL {server}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot reach route-lookup at {server}: {e}"))?;
        let token = BearerToken::new(token)
            .ok_or_else(|| "the admin token must be printable ASCII".to_string())?;
        Ok(Self {
            provisioning: ProvisioningClient::with_interceptor(channel, token),
        })
    }
}
