//! OAuth 2.0 token introspection (RFC 7662): the one client route-lookup (nginx-lookup with
//! `Auth-Method: xoauth2 | oauthbearer`) and mailbox-stub (AUTHENTICATE / AUTH XOAUTH2 and
//! OAUTHBEARER) ask whether a bearer token is active and whose it is.
//!
//! It owns the `--oauth-introspection-url` family of flags' meaning: the endpoint is
//! `POST`ed `token=…&token_type_hint=access_token` (HTTP Basic with the client credentials
//! when given), within a timeout, the answer read within 64 KiB. Active answers are cached,
//! keyed by a keyed hash of the token, until the token's `exp` or the cache TTL, whichever
//! comes first, in a bounded map; inactive answers are not cached, so a token revoked and
//! then presented again is asked about again. Any failure to get an answer (no connection,
//! TLS, timeout, a status other than 200, a body over the bound, not JSON, no boolean
//! `active`) is an [`IntrospectionError`], which callers turn into a temporary failure:
//! an outage must never look like a wrong token.
//!
//! Tokens are secrets: no error, log line or `Debug` output here carries one, and the cache
//! keeps only the hash.
//!
//! # Layout
//! - [`http`]: the endpoint URL, the request and its answer on the wire.
//! - `cache`: the bounded cache of active answers.
//! - [`testing`]: a token endpoint for tests (knows tokens, counts calls, can be slow).

mod cache;
pub mod http;
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::HeaderValue;

use crate::exit::ConfigError;
pub use crate::http_url::{HttpUrl, UrlError};

/// Default bound on one introspection (connect, TLS, request, answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
/// How long an active answer is reused at most (the token's `exp` may cut it shorter).
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most answers cached.
pub const CACHE_ENTRIES: usize = 10_000;

/// What the endpoint said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Whether the token is active (valid, not expired, not revoked).
    pub active: bool,
    /// `username`: the resource owner's user name.
    pub username: Option<String>,
    /// `email` (not in RFC 7662, but what many providers name the user by).
    pub email: Option<String>,
    /// `sub`: the subject.
    pub sub: Option<String>,
    /// `exp`: when the token expires, Unix seconds.
    pub exp: Option<i64>,
}

impl TokenInfo {
    /// The user the token belongs to: `username`, else `email`, else `sub`.
    pub fn user(&self) -> Option<&str> {
        self.username
            .as_deref()
            .or(self.email.as_deref())
            .or(self.sub.as_deref())
    }
}

/// An answer and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The claims.
    pub info: TokenInfo,
    /// Whether it came from the cache (the endpoint was not asked).
    pub cached: bool,
}

/// Why there is no answer; never a statement about the token.
#[derive(Debug, thiserror::Error)]
pub enum IntrospectionError {
    /// No TCP connection.
    #[error("cannot connect to the introspection endpoint")]
    Connect(#[source] std::io::Error),
    /// An https:// endpoint without a usable TLS client configuration or server name.
    #[error("no TLS client configuration for the https:// introspection endpoint")]
    NoTls,
    /// The TLS handshake failed (a certificate the CAs do not vouch for, say).
    #[error("TLS with the introspection endpoint failed")]
    Tls(#[source] std::io::Error),
    /// The request could not be built.
    #[error("cannot build the introspection request")]
    Request,
    /// HTTP failed (connection closed, malformed answer, head too large).
    #[error("HTTP with the introspection endpoint failed")]
    Http(#[source] hyper::Error),
    /// An HTTP status other than 200.
    #[error("the introspection endpoint answered HTTP {0}")]
    Status(u16),
    /// The body was over the bound or cut short.
    #[error("the introspection answer is over 64 KiB or cut short")]
    Body,
    /// The body is not a JSON object.
    #[error("the introspection answer is not a JSON object")]
    NotJson,
    /// The JSON has no boolean `active`.
    #[error("the introspection answer has no boolean `active`")]
    NoActive,
    /// No complete answer within the timeout.
    #[error("no introspection answer within {0:?}")]
    Timeout(Duration),
}

/// The client credentials sent as HTTP Basic (RFC 6749 section 2.3.1).
#[derive(Clone)]
pub struct ClientCredentials {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How an [`Introspector`] behaves.
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    /// The endpoint.
    pub url: HttpUrl,
    /// Bound on one introspection.
    pub timeout: Duration,
    /// HTTP Basic credentials, if the endpoint wants them.
    pub client: Option<ClientCredentials>,
    /// TLS for an https:// endpoint (`None`: the system's CAs, loaded when needed).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Longest reuse of an active answer.
    pub cache_ttl: Duration,
    /// Most answers cached (0: none).
    pub cache_entries: usize,
}

impl IntrospectionConfig {
    /// The defaults for `url`: [`DEFAULT_TIMEOUT`], no client credentials, the system's CAs,
    /// [`CACHE_TTL`], [`CACHE_ENTRIES`].
    pub fn new(url: HttpUrl) -> Self {
        Self {
            url,
            timeout: DEFAULT_TIMEOUT,
            client: None,
            tls: None,
            cache_ttl: CACHE_TTL,
            cache_entries: CACHE_ENTRIES,
        }
    }
}

/// Why an [`Introspector`] cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An https:// endpoint, no TLS configuration given, and the system's CAs unusable.
    #[error("an https:// introspection endpoint needs CA certificates; the system's")]
    SystemCas(#[source] crate::tls::TlsError),
    /// Client credentials that cannot be sent in a header.
    #[error("the OAuth client id or secret cannot be sent in an HTTP header")]
    Credentials,
}

/// The introspection client with its cache; share one per process.
pub struct Introspector {
    url: HttpUrl,
    timeout: Duration,
    authorization: Option<HeaderValue>,
    tls: Option<tokio_rustls::TlsConnector>,
    cache_ttl: Duration,
    cache: cache::Cache,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("url", &self.url.to_string())
            .field("timeout", &self.timeout)
            .field("client_credentials", &self.authorization.is_some())
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// A client as `config` says; an https:// endpoint without a TLS configuration loads
    /// the system's CAs now, so that a missing bundle stops the start, not every login.
    pub fn new(config: IntrospectionConfig) -> Result<Self, SetupError> {
        let tls = match (config.url.tls, config.tls) {
            (false, _) => None,
            (true, Some(c)) => Some(c),
            (true, None) => {
                Some(crate::tls::system_client_config().map_err(SetupError::SystemCas)?)
            }
        };
        let authorization = match &config.client {
            Some(c) => {
                Some(http::basic_authorization(&c.id, &c.secret).ok_or(SetupError::Credentials)?)
            }
            None => None,
        };
        Ok(Self {
            url: config.url,
            timeout: config.timeout,
            authorization,
            tls: tls.map(tokio_rustls::TlsConnector::from),
            cache_ttl: config.cache_ttl,
            cache: cache::Cache::new(config.cache_entries),
        })
    }

    /// The endpoint (for logs).
    pub fn url(&self) -> &HttpUrl {
        &self.url
    }

    /// What the endpoint says about `token`, from the cache when an active answer for it is
    /// still fresh.
    pub async fn introspect(&self, token: &[u8]) -> Result<Answer, IntrospectionError> {
        let key = self.cache.key(token);
        if let Some(info) = self.cache.get(key) {
            return Ok(Answer { info, cached: true });
        }
        let ask = http::post(
            &self.url,
            self.tls.as_ref(),
            self.authorization.as_ref(),
            http::form_body(token),
        );
        let info = tokio::time::timeout(self.timeout, ask)
            .await
            .map_err(|_| IntrospectionError::Timeout(self.timeout))??;
        if info.active {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let lifetime = cache::lifetime(info.exp, now, self.cache_ttl);
            self.cache.insert(key, info.clone(), lifetime);
        }
        Ok(Answer {
            info,
            cached: false,
        })
    }

    /// Answers held in the cache (for tests and metrics).
    pub fn cached_answers(&self) -> usize {
        self.cache.len()
    }
}

/// The `--oauth-*` flags as a binary has them (the environment prefix differs, so each
/// binary declares its own and hands them over here).
#[derive(Debug, Clone, Default)]
pub struct Flags<'a> {
    /// `--oauth-introspection-url`.
    pub url: Option<&'a str>,
    /// `--oauth-introspection-timeout-ms`.
    pub timeout_ms: u64,
    /// `--oauth-client-id`.
    pub client_id: Option<&'a str>,
    /// `--oauth-client-secret-file`.
    pub client_secret_file: Option<&'a Path>,
    /// TLS for an https:// URL (the binary's `--ca`, if it has one; else the system's).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The introspector the flags describe (`None` without a URL), or a one-line reason naming
/// the flag at fault.
pub fn from_flags(flags: Flags<'_>) -> Result<Option<Arc<Introspector>>, ConfigError> {
    let Some(url) = flags.url else {
        if flags.client_id.is_some() || flags.client_secret_file.is_some() {
            return Err(
                "--oauth-client-id and --oauth-client-secret-file need --oauth-introspection-url"
                    .into(),
            );
        }
        return Ok(None);
    };
    let url: HttpUrl = url.parse().map_err(|e: UrlError| match e {
        UrlError::Credentials => format!(
            "--oauth-introspection-url {e}; give --oauth-client-id and --oauth-client-secret-file"
        ),
        e => format!("--oauth-introspection-url {e}"),
    })?;
    if flags.timeout_ms == 0 {
        return Err("--oauth-introspection-timeout-ms must be at least 1".into());
    }
    let client = match (flags.client_id, flags.client_secret_file) {
        (None, None) => None,
        (Some(id), Some(path)) => {
            if id.trim().is_empty() {
                return Err("--oauth-client-id is empty".into());
            }
            let secret = crate::secret::inline_or_file("--oauth-client-secret", None, Some(path))?
                .unwrap_or_default();
            Some(ClientCredentials {
                id: id.to_string(),
                secret,
            })
        }
        _ => return Err("--oauth-client-id and --oauth-client-secret-file come together".into()),
    };
    let mut config = IntrospectionConfig::new(url);
    config.timeout = Duration::from_millis(flags.timeout_ms);
    config.client = client;
    config.tls = flags.tls;
    let introspector = Introspector::new(config).map_err(|e| {
        ConfigError(format!(
            "--oauth-introspection-url: {}",
            crate::exit::chain(&e)
        ))
    })?;
    Ok(Some(Arc::new(introspector)))
}
