//! Bearer-token check for every gRPC call (`authorization: Bearer T`).

use proto::AUTHORIZATION;
use tonic::{Request, Status};

use crate::config::AdminAuth;
use common::secret::constant_time_eq;

/// The interceptor; cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminCheck {
    expected: Option<Vec<u8>>,
}

impl AdminCheck {
    /// A check for `auth`.
    pub fn new(auth: &AdminAuth) -> Self {
        Self {
            expected: match auth {
                AdminAuth::Token(t) => Some(format!("Bearer {t}").into_bytes()),
                AdminAuth::Insecure => None,
            },
        }
    }
}

impl tonic::service::Interceptor for AdminCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        match request.metadata().get(AUTHORIZATION) {
            Some(v) if constant_time_eq(v.as_bytes(), expected) => Ok(request),
            Some(_) => Err(Status::unauthenticated("invalid admin token")),
            None => Err(Status::unauthenticated(
                "missing admin token (authorization: Bearer T)",
            )),
        }
    }
}
