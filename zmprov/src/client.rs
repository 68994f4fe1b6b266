//! The gRPC connection to route-lookup, with the admin token on every call.

use std::time::Duration;

use proto::v1::provisioning_client::ProvisioningClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Adds `authorization: Bearer T` when a token is configured.
#[derive(Debug, Clone)]
pub struct Token(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request
                .metadata_mut()
                .insert(proto::AUTHORIZATION, v.clone());
        }
        Ok(request)
    }
}

/// The connected clients.
#[derive(Debug, Clone)]
pub struct Client {
    /// Provisioning calls.
    pub provisioning: ProvisioningClient<InterceptedService<Channel, Token>>,
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
        let token = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| "the admin token must be printable ASCII".to_string())?,
            ),
            None => None,
        };
        Ok(Self {
            provisioning: ProvisioningClient::with_interceptor(channel, Token(token)),
        })
    }
}
