//! Password checks, behind the [`Authenticator`] seam: route-lookup's `Authenticate` over
//! gRPC with a short positive cache (as Dovecot's auth cache), or a fixed user table for
//! tests. The same seam finds the account of a login whose credentials were checked
//! elsewhere (an OAuth bearer token, [`crate::oauth`]).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proto::v1::directory_client::DirectoryClient;
use proto::v1::provisioning_client::ProvisioningClient;
use proto::v1::{AuthenticateRequest, NameRequest};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// Right password, active account.
    Ok {
        /// The canonical account name.
        account: String,
        /// Its zimbraMailHost.
        mail_host: String,
    },
    /// Wrong password, unknown or inactive account.
    Denied,
    /// The directory could not answer (or the account is in maintenance).
    Unavailable,
}

/// A boxed future, so the trait stays object-safe.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = AuthResult> + Send + 'a>>;

/// Checks a login.
pub trait Authenticator: Send + Sync + 'static {
    /// Checks `user` / `password`.
    fn authenticate<'a>(&'a self, user: &'a str, password: &'a str) -> AuthFuture<'a>;

    /// The active account `user` names (its canonical name and mail host), without a
    /// password: for logins whose credentials were checked otherwise (a bearer token).
    /// [`AuthResult::Denied`] for an unknown or inactive account.
    fn account<'a>(&'a self, user: &'a str) -> AuthFuture<'a>;
}

/// A fixed table of users, all with the same mail host (the server's own by default).
#[derive(Debug, Clone, Default)]
pub struct StaticUsers {
    users: HashMap<String, (String, String)>,
}

impl StaticUsers {
    /// Adds `account` with `password` living on `mail_host`.
    pub fn add(&mut self, account: &str, password: &str, mail_host: &str) {
        self.users.insert(
            account.to_lowercase(),
            (password.to_string(), mail_host.to_string()),
        );
    }
}

impl Authenticator for StaticUsers {
    fn authenticate<'a>(&'a self, user: &'a str, password: &'a str) -> AuthFuture<'a> {
        let result = match self.users.get(&user.to_lowercase()) {
            Some((p, host)) if p == password => AuthResult::Ok {
                account: user.to_lowercase(),
                mail_host: host.clone(),
            },
            _ => AuthResult::Denied,
        };
        Box::pin(async move { result })
    }

    fn account<'a>(&'a self, user: &'a str) -> AuthFuture<'a> {
        let result = match self.users.get(&user.to_lowercase()) {
            Some((_, host)) => AuthResult::Ok {
                account: user.to_lowercase(),
                mail_host: host.clone(),
            },
            None => AuthResult::Denied,
        };
        Box::pin(async move { result })
    }
}

/// route-lookup's Directory service with a positive cache.
pub struct DirectoryAuth {
    client: DirectoryClient<InterceptedService<Channel, proto::BearerToken>>,
    /// `GetAccount`, for bearer-token logins (the admin token covers it).
    provisioning: ProvisioningClient<InterceptedService<Channel, proto::BearerToken>>,
    ttl: Duration,
    /// (user, keyed hash of the password) → answer and when it was cached. The password
    /// itself is never kept.
    cache: Mutex<HashMap<(String, u64), (AuthResult, Instant)>>,
    hasher: RandomState,
}

impl std::fmt::Debug for DirectoryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryAuth")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl DirectoryAuth {
    /// A client of route-lookup's gRPC at `url` (`https://` verified against `ca`, else the
    /// system's CAs); connects lazily, so a directory that is down now only fails logins
    /// until it is back.
    pub fn new(
        url: &str,
        token: Option<&str>,
        ca: Option<&std::sync::Arc<rustls::ClientConfig>>,
        ttl: Duration,
    ) -> Result<Self, proto::ClientError> {
        let (endpoint, token) = proto::endpoint(
            url,
            token,
            ca,
            Duration::from_secs(3),
            Some(Duration::from_secs(5)),
        )?;
        let channel = endpoint.connect_lazy();
        Ok(Self {
            provisioning: ProvisioningClient::with_interceptor(channel.clone(), token.clone()),
            client: DirectoryClient::with_interceptor(channel, token),
            ttl,
            cache: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        })
    }

    fn key(&self, user: &str, password: &str) -> (String, u64) {
        (user.to_lowercase(), self.hasher.hash_one(password))
    }

    fn cached(&self, key: &(String, u64)) -> Option<AuthResult> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match cache.get(key) {
            Some((r, at)) if at.elapsed() < self.ttl => Some(r.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }
}

impl Authenticator for DirectoryAuth {
    fn authenticate<'a>(&'a self, user: &'a str, password: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let key = self.key(user, password);
            if let Some(hit) = self.cached(&key) {
                return hit;
            }
            let mut client = self.client.clone();
            let answer = client
                .authenticate(AuthenticateRequest {
                    name: user.to_string(),
                    password: password.to_string(),
                })
                .await;
            let result = match answer {
                Ok(r) => {
                    let r = r.into_inner();
                    AuthResult::Ok {
                        account: r.account,
                        mail_host: r.mail_host,
                    }
                }
                Err(s) if s.code() == tonic::Code::Unauthenticated => AuthResult::Denied,
                Err(s) => {
                    // The status's causes name a certificate problem, say.
                    tracing::warn!(code = ?s.code(), error = %proto::status_text(&s), "directory unavailable");
                    AuthResult::Unavailable
                }
            };
            if matches!(result, AuthResult::Ok { .. }) && !self.ttl.is_zero() {
                let mut cache = self
                    .cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if cache.len() > 100_000 {
                    cache.clear();
                }
                cache.insert(key, (result.clone(), Instant::now()));
            }
            result
        })
    }

    fn account<'a>(&'a self, user: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let mut client = self.provisioning.clone();
            let answer = client
                .get_account(NameRequest {
                    name: user.to_string(),
                })
                .await;
            match answer {
                Ok(r) => {
                    let entry = r.into_inner();
                    let attr = |name: &str| {
                        entry
                            .attrs
                            .iter()
                            .find(|a| a.name.eq_ignore_ascii_case(name))
                            .and_then(|a| a.values.first().cloned())
                            .unwrap_or_default()
                    };
                    // As Authenticate answers: only an active account logs in, one in
                    // maintenance is "try again later".
                    match attr("zimbraAccountStatus").as_str() {
                        "active" | "" => AuthResult::Ok {
                            mail_host: attr("zimbraMailHost"),
                            account: entry.name,
                        },
                        "maintenance" => AuthResult::Unavailable,
                        _ => AuthResult::Denied,
                    }
                }
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::NotFound | tonic::Code::InvalidArgument
                    ) =>
                {
                    AuthResult::Denied
                }
                Err(s) => {
                    tracing::warn!(code = ?s.code(), error = %proto::status_text(&s), "directory unavailable");
                    AuthResult::Unavailable
                }
            }
        })
    }
}
