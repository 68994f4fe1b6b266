//! The Directory service: `Authenticate`, for mailbox servers that check passwords.

use proto::v1::directory_server::Directory;
use proto::v1::{AuthenticateRequest, AuthenticateResponse};
use tonic::{Request, Response, Status};

use crate::authenticate::{Authenticator, Verdict};
use crate::resolve::{check_status, Reason, MAX_PASS, MAX_USER};
use std::sync::Arc;

use crate::directory::DirectoryCache;
use crate::store::{normalize, Store, StoreError};

/// The service.
#[derive(Debug, Clone)]
pub struct DirectoryService {
    store: Store,
    directory: Arc<DirectoryCache>,
    auth: Authenticator,
}

impl DirectoryService {
    /// A service over `store`, checking passwords with `auth`. Its callers are mailbox
    /// servers (holding the admin token), each checking for many users: they are bounded
    /// only by the password-check bound, never throttled per address.
    pub fn new(store: Store, directory: Arc<DirectoryCache>, auth: Authenticator) -> Self {
        Self {
            store,
            directory,
            auth,
        }
    }
}

fn denied() -> Status {
    Status::unauthenticated("authentication failed")
}

#[tonic::async_trait]
impl Directory for DirectoryService {
    async fn authenticate(
        &self,
        r: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let r = r.into_inner();
        if r.name.len() > MAX_USER || r.password.len() > MAX_PASS || r.password.is_empty() {
            return Err(denied());
        }
        let dir = self.directory.get();
        let account = match self.store.resolve(&dir, &normalize(&r.name), "").await {
            Ok(Some(a)) => a,
            Ok(None) => return Err(denied()),
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %common::exit::chain(&e), "authenticate: database unavailable");
                return Err(Status::unavailable("directory unavailable"));
            }
            Err(e) => {
                tracing::warn!(error = %common::exit::chain(&e), "authenticate failed");
                return Err(Status::unavailable("directory unavailable"));
            }
        };
        match self.auth.check(&account, r.password.as_bytes()).await {
            Ok(Verdict::Accepted) => {}
            Ok(Verdict::Rejected) => {
                tracing::info!(login = %r.name, "authenticate: wrong password or no password");
                return Err(denied());
            }
            Ok(Verdict::LockedOut) => {
                tracing::info!(login = %r.name, "authenticate: account locked out");
                return Err(denied());
            }
            Err(e) => {
                tracing::warn!(login = %r.name, error = %common::exit::chain(&e), "authenticate: cannot check the password now");
                return Err(Status::unavailable(
                    "password check temporarily unavailable",
                ));
            }
        }
        match check_status(&account) {
            Ok(()) => {}
            Err(Reason::Maintenance) => {
                return Err(Status::unavailable("account is in maintenance"))
            }
            Err(_) => return Err(denied()),
        }
        Ok(Response::new(AuthenticateResponse {
            account: account.name,
            id: account.id,
            mail_host: account.mail_host,
            status: account.status,
        }))
    }
}
