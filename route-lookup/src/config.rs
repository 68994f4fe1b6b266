//! The command line of `route-lookup`. Every flag has a `LOOKUP_*` environment twin
//! (the database URL also reads the conventional `DATABASE_URL`).

use std::time::Duration;

use clap::Parser;
use common::exit::ConfigError;
use common::listen::ListenAddr;

use crate::password_checks::ChecksConfig;

/// The route lookup service of the mail proxy.
///
/// Answers nginx's auth_http protocol at /service/extension/nginx-lookup (so both our proxy
/// and a stock nginx mail proxy can use it), serves Zimbra's admin SOAP AuthRequest for MTA
/// authentication, and the gRPC provisioning, authentication and registry services that
/// zmprov, mailbox servers, cache nodes and proxies use. PostgreSQL holds all state; the
/// schema is migrated at start.
#[derive(Debug, Clone, Parser)]
#[command(name = "route-lookup", version, about, long_about = None)]
pub struct Config {
    /// PostgreSQL connection URL (postgres://user@host:port/db).
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: String,

    /// Address of the HTTP listener (nginx-lookup, admin SOAP, /healthz, /metrics).
    #[arg(long, env = "LOOKUP_HTTP_LISTEN", default_value = "0.0.0.0:7072")]
    pub http_listen: ListenAddr,

    /// Address of the gRPC listener (provisioning, Authenticate, registry); TLS when
    /// --tls-cert is given.
    #[arg(long, env = "LOOKUP_GRPC_LISTEN", default_value = "0.0.0.0:7071")]
    pub grpc_listen: ListenAddr,

    /// Address of the HTTP-over-TLS listener (the same endpoints as --http-listen), or
    /// `off`; needs --tls-cert. --http-listen stays plaintext for stock nginx, whose
    /// auth_http cannot speak TLS.
    #[arg(long, env = "LOOKUP_HTTPS_LISTEN", default_value = "off")]
    pub https_listen: ListenAddr,

    /// PEM certificate chain for the gRPC and --https-listen listeners; repeat with
    /// --tls-key for several, chosen by the client's SNI (the first pair otherwise).
    /// Re-read on SIGHUP.
    #[arg(
        long,
        env = "LOOKUP_TLS_CERT",
        value_name = "PEM",
        value_delimiter = ','
    )]
    pub tls_cert: Vec<std::path::PathBuf>,

    /// PEM private key of the --tls-cert in the same position.
    #[arg(
        long,
        env = "LOOKUP_TLS_KEY",
        value_name = "PEM",
        value_delimiter = ','
    )]
    pub tls_key: Vec<std::path::PathBuf>,

    /// Bearer token every gRPC call must carry (`authorization: Bearer T`).
    #[arg(
        long,
        env = "LOOKUP_ADMIN_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// File holding the bearer token (first line), instead of --admin-token.
    #[arg(
        long,
        env = "LOOKUP_ADMIN_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// Accept gRPC calls without a token. Local development only; logged as a warning.
    #[arg(long, env = "LOOKUP_INSECURE_ADMIN")]
    pub insecure_admin: bool,

    /// Seconds a client should wait after a failed lookup (the Auth-Wait header).
    #[arg(
        long,
        env = "LOOKUP_AUTH_WAIT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub auth_wait: u64,

    /// Send Auth-Wait only while Auth-Login-Attempt is at most this; beyond it nginx
    /// closes the connection instead of letting the client retry forever.
    #[arg(long, env = "LOOKUP_AUTH_WAIT_MAX_ATTEMPTS", default_value_t = 10)]
    pub auth_wait_max_attempts: u32,

    /// Check the password against the account's argon2id hash (off, as in Zimbra, where
    /// the mailbox server checks it).
    #[arg(long, env = "LOOKUP_VERIFY_PASSWORDS")]
    pub verify_passwords: bool,

    /// Password checks (argon2id, ~19 MiB each) computed at once; each keeps its memory for
    /// the next. Default: one per CPU.
    #[arg(long, env = "LOOKUP_PASSWORD_CHECKS", value_name = "N")]
    pub password_checks: Option<usize>,

    /// Password checks that may wait for one of those; further ones fail at once with a
    /// temporary error. Default: 64 per password check worker.
    #[arg(long, env = "LOOKUP_PASSWORD_CHECK_QUEUE", value_name = "N")]
    pub password_check_queue: Option<usize>,

    /// Milliseconds a password check may wait to start before it fails with a temporary
    /// error (a wrong-password flood slows logins down instead of piling up hashes).
    #[arg(
        long,
        env = "LOOKUP_PASSWORD_CHECK_WAIT_MS",
        default_value_t = 3000,
        value_name = "MS"
    )]
    pub password_check_wait_ms: u64,

    /// Admin SOAP requests per second from one client address (Zimbra's DoS filter,
    /// zimbraHttpDosFilterMaxRequestsPerSec); more get HTTP 429. 0: unlimited.
    #[arg(long, env = "LOOKUP_SOAP_MAX_REQUESTS_PER_SEC", default_value_t = 30)]
    pub soap_max_requests_per_sec: u32,

    /// Client addresses (CIDR list, comma-separated) the SOAP limit does not apply to
    /// (zimbraHttpThrottleSafeIPs): the MTAs, say.
    #[arg(
        long,
        env = "LOOKUP_SOAP_SAFE_IPS",
        value_name = "CIDRS",
        default_value = ""
    )]
    pub soap_safe_ips: common::cidr::CidrList,

    /// When set, nginx-lookup requests must carry `X-Lookup-Secret: S`.
    #[arg(
        long,
        env = "LOOKUP_LOOKUP_SECRET",
        value_name = "S",
        hide_env_values = true
    )]
    pub lookup_secret: Option<String>,

    /// File holding the lookup secret (first line), instead of --lookup-secret.
    #[arg(
        long,
        env = "LOOKUP_LOOKUP_SECRET_FILE",
        value_name = "PATH",
        conflicts_with = "lookup_secret"
    )]
    pub lookup_secret_file: Option<std::path::PathBuf>,

    /// Most database connections in the pool.
    #[arg(long, env = "LOOKUP_DB_POOL_SIZE", default_value_t = 32)]
    pub db_pool_size: usize,

    /// Long-lived database connections shared by all lookups (their queries are pipelined),
    /// on top of the pool. Two keep a 2-core database busy; raise it with the database's
    /// cores.
    #[arg(long, env = "LOOKUP_DB_LOOKUP_CONNECTIONS", default_value_t = 2)]
    pub db_lookup_connections: usize,

    /// Milliseconds a database operation (waiting for a connection, connecting, one query)
    /// may take before the request fails with a temporary error.
    #[arg(
        long,
        env = "LOOKUP_DB_TIMEOUT_MS",
        default_value_t = 2000,
        value_name = "MS"
    )]
    pub db_timeout_ms: u64,

    /// Most HTTP connections at once.
    #[arg(long, env = "LOOKUP_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Seconds an HTTP connection may take to send a request's headers (and may sit idle
    /// between keep-alive requests).
    #[arg(
        long,
        env = "LOOKUP_HTTP_TIMEOUT",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub http_timeout: u64,

    /// Default lease of a registration when the registrant asks for none, in seconds.
    #[arg(
        long,
        env = "LOOKUP_LEASE_TTL",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub lease_ttl: u32,

    /// HOST:PORT at which proxies and nginx reach this instance's HTTP listener; it is
    /// registered (as http://HOST:PORT/service/extension/nginx-lookup) so `zmprov garpu`
    /// lists the live instances. Default: the --http-listen address, or this machine's
    /// host name when that is a wildcard. `off` registers nothing.
    #[arg(long, env = "LOOKUP_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,

    /// Seconds to wait at start for the database to accept connections (and the schema
    /// migration to succeed) before giving up.
    #[arg(
        long,
        env = "LOOKUP_DB_WAIT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub db_wait: u64,

    /// Seconds to let open requests and watch streams finish after SIGTERM.
    #[arg(
        long,
        env = "LOOKUP_GRACE_PERIOD",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub grace_period: u64,
    /// Log lines as `text` (colour only on a terminal without NO_COLOR) or `json` (one
    /// object per line, with the spans' fields).
    #[arg(long, env = "LOOKUP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: common::telemetry::LogFormat,

    /// OAuth 2.0 token introspection endpoint (RFC 7662; http:// or https://, verified
    /// against the system's CAs). With it, nginx-lookup checks the bearer token of an
    /// xoauth2 / oauthbearer login: active, and the login's account's (by name or alias).
    /// Without it such logins are only routed and the mailbox server checks the token.
    #[arg(long, env = "LOOKUP_OAUTH_INTROSPECTION_URL", value_name = "URL")]
    pub oauth_introspection_url: Option<String>,

    /// Milliseconds one token introspection may take before the login fails with a
    /// temporary error.
    #[arg(
        long,
        env = "LOOKUP_OAUTH_INTROSPECTION_TIMEOUT_MS",
        default_value_t = 3000,
        value_name = "MS"
    )]
    pub oauth_introspection_timeout_ms: u64,

    /// OAuth client id sent (HTTP Basic, with --oauth-client-secret-file) to the
    /// introspection endpoint, when it wants its callers authenticated.
    #[arg(long, env = "LOOKUP_OAUTH_CLIENT_ID", value_name = "ID")]
    pub oauth_client_id: Option<String>,

    /// File holding the OAuth client secret (first line) for --oauth-client-id.
    #[arg(long, env = "LOOKUP_OAUTH_CLIENT_SECRET_FILE", value_name = "PATH")]
    pub oauth_client_secret_file: Option<std::path::PathBuf>,

    /// File whose first line is `user:password` (memcached's -Y format): route purges
    /// authenticate with it on every cache node (the nodes' --auth-file).
    // Read by `purge::authenticate_with` at start (main, test harness), not by `validate`.
    #[arg(long, env = "LOOKUP_MEMCACHED_AUTH_FILE", value_name = "PATH")]
    pub memcached_auth_file: Option<std::path::PathBuf>,
}

/// How gRPC callers are authenticated.
#[derive(Debug, Clone)]
pub enum AdminAuth {
    /// Calls must carry this bearer token.
    Token(String),
    /// No check (`--insecure-admin`).
    Insecure,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// HTTP listener, unless off.
    pub http_listen: Option<std::net::SocketAddr>,
    /// gRPC listener, unless off.
    pub grpc_listen: Option<std::net::SocketAddr>,
    /// HTTP-over-TLS listener, unless off.
    pub https_listen: Option<std::net::SocketAddr>,
    /// The certificates of the gRPC and HTTPS listeners (`None`: gRPC is plaintext),
    /// reloaded on SIGHUP.
    pub certs: Option<std::sync::Arc<common::certs::CertStore>>,
    /// gRPC caller check.
    pub admin_auth: AdminAuth,
    /// Lookup behaviour.
    pub lookup: LookupPolicy,
    /// Database pool size.
    pub db_pool_size: usize,
    /// Shared lookup connections.
    pub db_lookup_connections: usize,
    /// Bound on every database operation.
    pub db_timeout: Duration,
    /// Most HTTP connections at once.
    pub max_connections: usize,
    /// HTTP header/idle timeout.
    pub http_timeout: Duration,
    /// Default lease length.
    pub lease_ttl: u32,
    /// What to register: `None` for the default, `Some(None)` for nothing.
    pub advertise: Option<Option<String>>,
    /// Drain bound at shutdown.
    pub grace_period: Duration,
    /// The bound on password hashing.
    pub password_checks: ChecksConfig,
    /// Admin SOAP requests per second per address (0: unlimited).
    pub soap_rate: u32,
    /// Addresses exempt from the SOAP limit.
    pub soap_safe_ips: common::cidr::CidrList,
}

/// What the nginx-lookup endpoint does beyond resolving.
#[derive(Debug, Clone)]
pub struct LookupPolicy {
    /// Auth-Wait seconds on failure.
    pub auth_wait: u64,
    /// Attempt cap for Auth-Wait.
    pub auth_wait_max_attempts: u32,
    /// Check passwords.
    pub verify_passwords: bool,
    /// Required X-Lookup-Secret.
    pub secret: Option<String>,
    /// Bearer-token checks for xoauth2 / oauthbearer logins (`None`: routed unchecked).
    pub oauth: Option<std::sync::Arc<common::oauth_introspection::Introspector>>,
}

impl Config {
    /// The --tls-cert/--tls-key pairs, loaded (a bad file stops the start, naming it).
    fn certs(&self) -> Result<Option<std::sync::Arc<common::certs::CertStore>>, ConfigError> {
        if self.tls_cert.len() != self.tls_key.len() {
            return Err(format!(
                "--tls-cert and --tls-key come in pairs ({} certificates, {} keys)",
                self.tls_cert.len(),
                self.tls_key.len()
            )
            .into());
        }
        if self.tls_cert.is_empty() {
            return Ok(None);
        }
        let pairs = self
            .tls_cert
            .iter()
            .zip(&self.tls_key)
            .map(|(cert, key)| common::certs::CertPair {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect();
        common::certs::CertStore::load(pairs)
            .map(Some)
            .map_err(|e| ConfigError(common::exit::chain(&e)))
    }

    /// Checks the combination of flags.
    pub fn validate(self) -> Result<RuntimeConfig, ConfigError> {
        let admin_token = common::secret::inline_or_file(
            "--admin-token",
            self.admin_token.as_deref(),
            self.admin_token_file.as_deref(),
        )?;
        let lookup_secret = common::secret::inline_or_file(
            "--lookup-secret",
            self.lookup_secret.as_deref(),
            self.lookup_secret_file.as_deref(),
        )?;
        let admin_auth = match (admin_token, self.insecure_admin) {
            (Some(_), true) => {
                return Err("--admin-token and --insecure-admin exclude each other".into())
            }
            (Some(t), false) if t.trim().is_empty() => return Err("--admin-token is empty".into()),
            (Some(t), false) => AdminAuth::Token(t),
            (None, true) => AdminAuth::Insecure,
            (None, false) if self.grpc_listen == ListenAddr::Off => AdminAuth::Insecure,
            (None, false) => {
                return Err(
                    "gRPC needs --admin-token T (or --insecure-admin for local development)".into(),
                )
            }
        };
        let certs = self.certs()?;
        if certs.is_none() && self.https_listen != ListenAddr::Off {
            return Err("--https-listen needs --tls-cert and --tls-key".into());
        }
        if certs.is_some()
            && self.https_listen == ListenAddr::Off
            && self.grpc_listen == ListenAddr::Off
        {
            return Err(
                "--tls-cert: nothing to serve it on (turn on --grpc-listen or --https-listen)"
                    .into(),
            );
        }
        if self.db_pool_size == 0 {
            return Err("--db-pool-size must be at least 1".into());
        }
        if self.db_lookup_connections == 0 {
            return Err("--db-lookup-connections must be at least 1".into());
        }
        if self.db_timeout_ms == 0 {
            return Err("--db-timeout-ms must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.lease_ttl == 0 {
            return Err("--lease-ttl must be at least 1".into());
        }
        let advertise = match self.advertise.as_deref() {
            None => None,
            Some("off") => Some(None),
            Some(a) => {
                let ok = a
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok
                    || a.chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
                {
                    return Err(format!("--advertise {a} is not HOST:PORT (or off)").into());
                }
                Some(Some(a.to_string()))
            }
        };
        if !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
            && !self.database_url.contains('=')
        {
            return Err("--database-url must be postgres://… or a key=value string".into());
        }
        if self.password_checks == Some(0) {
            return Err("--password-checks must be at least 1".into());
        }
        if self.password_check_queue == Some(0) {
            return Err("--password-check-queue must be at least 1".into());
        }
        let oauth = common::oauth_introspection::from_flags(common::oauth_introspection::Flags {
            url: self.oauth_introspection_url.as_deref(),
            timeout_ms: self.oauth_introspection_timeout_ms,
            client_id: self.oauth_client_id.as_deref(),
            client_secret_file: self.oauth_client_secret_file.as_deref(),
            tls: None,
        })?;
        let machine = ChecksConfig::for_this_machine();
        let workers = self.password_checks.unwrap_or(machine.workers);
        let password_checks = ChecksConfig {
            workers,
            queue: self.password_check_queue.unwrap_or(64 * workers),
            wait: Duration::from_millis(self.password_check_wait_ms),
        };
        Ok(RuntimeConfig {
            database_url: self.database_url,
            http_listen: self.http_listen.addr(),
            advertise,
            grpc_listen: self.grpc_listen.addr(),
            https_listen: self.https_listen.addr(),
            certs,
            admin_auth,
            lookup: LookupPolicy {
                auth_wait: self.auth_wait,
                auth_wait_max_attempts: self.auth_wait_max_attempts,
                verify_passwords: self.verify_passwords,
                secret: lookup_secret,
                oauth,
            },
            db_pool_size: self.db_pool_size,
            db_lookup_connections: self.db_lookup_connections,
            db_timeout: Duration::from_millis(self.db_timeout_ms),
            max_connections: self.max_connections,
            http_timeout: Duration::from_secs(self.http_timeout.max(1)),
            lease_ttl: self.lease_ttl,
            grace_period: Duration::from_secs(self.grace_period),
            password_checks,
            soap_rate: self.soap_max_requests_per_sec,
            soap_safe_ips: self.soap_safe_ips,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(extra: &[&str]) -> Result<RuntimeConfig, String> {
        let mut args = vec![
            "route-lookup",
            "--database-url",
            "postgres://x@127.0.0.1/db",
            "--insecure-admin",
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
            .unwrap()
            .validate()
            .map_err(|e| e.0)
    }

    #[test]
    fn tls_flags_come_in_pairs_and_need_a_listener() {
        let dir = std::env::temp_dir().join(format!("lookup-tls-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        let (c, k) = (c.to_str().unwrap(), k.to_str().unwrap());

        let plain = validate(&[]).unwrap();
        assert!(plain.certs.is_none() && plain.https_listen.is_none());
        let tls = validate(&[
            "--tls-cert",
            c,
            "--tls-key",
            k,
            "--https-listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert!(tls.certs.is_some() && tls.https_listen.is_some());
        assert!(
            validate(&["--tls-cert", c, "--tls-key", k]).is_ok(),
            "gRPC alone"
        );
        assert_eq!(
            validate(&["--https-listen", "127.0.0.1:0"]).unwrap_err(),
            "--https-listen needs --tls-cert and --tls-key"
        );
        assert_eq!(
            validate(&["--tls-cert", c]).unwrap_err(),
            "--tls-cert and --tls-key come in pairs (1 certificates, 0 keys)"
        );
        assert!(
            validate(&["--tls-cert", c, "--tls-key", k, "--grpc-listen", "off"])
                .unwrap_err()
                .starts_with("--tls-cert: nothing to serve it on")
        );
        let e = validate(&["--tls-cert", c, "--tls-key", "/nonexistent/k.pem"]).unwrap_err();
        assert!(e.starts_with("cannot read /nonexistent/k.pem"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn oauth_introspection_flags() {
        assert!(validate(&[]).unwrap().lookup.oauth.is_none());
        let rt = validate(&[
            "--oauth-introspection-url",
            "http://127.0.0.1:9/introspect",
            "--oauth-introspection-timeout-ms",
            "500",
        ])
        .unwrap();
        let shown = format!("{:?}", rt.lookup.oauth.unwrap());
        assert!(shown.contains("http://127.0.0.1:9/introspect"), "{shown}");
        assert!(shown.contains("500ms"), "{shown}");
        assert_eq!(
            validate(&["--oauth-introspection-url", "idp.example.com"]).unwrap_err(),
            "--oauth-introspection-url `idp.example.com` is not an http:// or https:// URL"
        );
        assert_eq!(
            validate(&["--oauth-client-id", "lookup"]).unwrap_err(),
            "--oauth-client-id and --oauth-client-secret-file need --oauth-introspection-url"
        );
    }

    #[test]
    fn the_token_and_the_secret_come_from_files() {
        let dir = std::env::temp_dir().join(format!("lookup-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (token, secret) = (dir.join("token"), dir.join("secret"));
        std::fs::write(&token, "tok-from-file\n").unwrap();
        std::fs::write(&secret, "sec-from-file\n").unwrap();
        let rt = Config::try_parse_from([
            "route-lookup",
            "--database-url",
            "postgres://x@127.0.0.1/db",
            "--admin-token-file",
            token.to_str().unwrap(),
            "--lookup-secret-file",
            secret.to_str().unwrap(),
        ])
        .unwrap()
        .validate()
        .unwrap();
        assert!(matches!(rt.admin_auth, AdminAuth::Token(t) if t == "tok-from-file"));
        assert_eq!(rt.lookup.secret.as_deref(), Some("sec-from-file"));
        let e = Config::try_parse_from([
            "route-lookup",
            "--database-url",
            "postgres://x@127.0.0.1/db",
            "--admin-token-file",
            "/nonexistent/t",
        ])
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(
            e.0.starts_with("--admin-token-file /nonexistent/t: cannot read it"),
            "{}",
            e.0
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
