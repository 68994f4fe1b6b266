//! The command line of `mailbox-stub`. Every flag has a `MAILBOX_*` environment twin.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::listen::ListenAddr;

use common::certs::{CertPair, CertStore};
use common::exit::ConfigError;

use crate::trusted::TrustedProxies;

/// A small but real IMAP4rev1 and POP3 mailbox server with in-memory mail.
///
/// Every account gets a generated INBOX naming the account and this host; passwords are
/// checked with route-lookup (--directory). Logins of accounts whose zimbraMailHost is not
/// --hostname are refused, so a wrong route is visible.
#[derive(Debug, Clone, Parser)]
#[command(name = "mailbox-stub", version, about, long_about = None)]
pub struct Config {
    /// This server's name, as zimbraMailHost names it (also in the greetings and mail).
    #[arg(long, env = "MAILBOX_HOSTNAME")]
    pub hostname: String,

    /// IMAP listener (STARTTLS when a certificate is given), or `off`.
    #[arg(long, env = "MAILBOX_IMAP_LISTEN", default_value = "0.0.0.0:7143")]
    pub imap_listen: ListenAddr,

    /// POP3 listener (STLS when a certificate is given), or `off`.
    #[arg(long, env = "MAILBOX_POP3_LISTEN", default_value = "0.0.0.0:7110")]
    pub pop3_listen: ListenAddr,

    /// IMAPS (implicit TLS) listener, or `off`; needs --tls-cert.
    #[arg(long, env = "MAILBOX_IMAPS_LISTEN", default_value = "0.0.0.0:7993")]
    pub imaps_listen: ListenAddr,

    /// POP3S (implicit TLS) listener, or `off`; needs --tls-cert.
    #[arg(long, env = "MAILBOX_POP3S_LISTEN", default_value = "0.0.0.0:7995")]
    pub pop3s_listen: ListenAddr,

    /// PEM certificate chain for TLS.
    #[arg(
        long,
        env = "MAILBOX_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for TLS.
    #[arg(
        long,
        env = "MAILBOX_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// route-lookup's gRPC URL, for password checks: http://HOST:PORT, or https://HOST:PORT
    /// when route-lookup runs with --tls-cert.
    #[arg(long, env = "MAILBOX_DIRECTORY", value_name = "GRPC_URL")]
    pub directory: String,

    /// PEM CA certificates an https:// --directory and an https://
    /// --oauth-introspection-url are verified against (default: the system's CAs).
    #[arg(long, env = "MAILBOX_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,

    /// Bearer token for route-lookup.
    #[arg(
        long,
        env = "MAILBOX_ADMIN_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// File holding the bearer token (first line), instead of --admin-token.
    #[arg(
        long,
        env = "MAILBOX_ADMIN_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// Seconds a successful password check is remembered (0: never).
    #[arg(
        long,
        env = "MAILBOX_AUTH_CACHE_TTL",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub auth_cache_ttl: u64,

    /// Proxies allowed to forward the client address (ID x-originating-ip, XCLIENT,
    /// XOIP, PROXY header), as CIDR,…; `local` stands for the networks this host (or
    /// container) is attached to.
    #[arg(
        long,
        env = "MAILBOX_TRUSTED_PROXIES",
        default_value = "",
        value_name = "CIDR,…"
    )]
    pub trusted_proxies: String,

    /// Connections from trusted proxies start with a PROXY protocol (v1 or v2) header.
    #[arg(long, env = "MAILBOX_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,

    /// Generated messages per account.
    #[arg(long, env = "MAILBOX_MESSAGES", default_value_t = 3)]
    pub messages: usize,

    /// Seconds a connection may stay silent before login.
    #[arg(
        long,
        env = "MAILBOX_PREAUTH_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub preauth_timeout: u64,

    /// Seconds a logged-in connection may stay silent (IDLE included).
    #[arg(
        long,
        env = "MAILBOX_IDLE_TIMEOUT",
        default_value_t = 1800,
        value_name = "SECONDS"
    )]
    pub idle_timeout: u64,

    /// Invalid commands (and failed logins) per connection before it is closed.
    #[arg(long, env = "MAILBOX_MAX_BAD_COMMANDS", default_value_t = 10)]
    pub max_bad_commands: u32,

    /// Connections per listener.
    #[arg(long, env = "MAILBOX_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Seconds to let sessions finish after SIGTERM.
    #[arg(
        long,
        env = "MAILBOX_GRACE_PERIOD",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub grace_period: u64,
    /// Log lines as `text` (colour only on a terminal without NO_COLOR) or `json` (one
    /// object per line, with the spans' fields).
    #[arg(long, env = "MAILBOX_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: common::telemetry::LogFormat,

    /// OAuth 2.0 token introspection endpoint (RFC 7662; http:// or https://, verified
    /// against --ca). With it, IMAP AUTHENTICATE and POP3 AUTH offer XOAUTH2 and
    /// OAUTHBEARER: the bearer token must be active and the SASL user's.
    #[arg(long, env = "MAILBOX_OAUTH_INTROSPECTION_URL", value_name = "URL")]
    pub oauth_introspection_url: Option<String>,

    /// Milliseconds one token introspection may take before the login fails with a
    /// temporary error.
    #[arg(
        long,
        env = "MAILBOX_OAUTH_INTROSPECTION_TIMEOUT_MS",
        default_value_t = 3000,
        value_name = "MS"
    )]
    pub oauth_introspection_timeout_ms: u64,

    /// OAuth client id sent (HTTP Basic, with --oauth-client-secret-file) to the
    /// introspection endpoint, when it wants its callers authenticated.
    #[arg(long, env = "MAILBOX_OAUTH_CLIENT_ID", value_name = "ID")]
    pub oauth_client_id: Option<String>,

    /// File holding the OAuth client secret (first line) for --oauth-client-id.
    #[arg(long, env = "MAILBOX_OAUTH_CLIENT_SECRET_FILE", value_name = "PATH")]
    pub oauth_client_secret_file: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Trusted proxies.
    pub trusted: TrustedProxies,
    /// TLS, if configured.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The certificate behind it, re-read on SIGHUP.
    pub certs: Option<std::sync::Arc<common::certs::CertStore>>,
    /// Timeouts.
    pub preauth: Duration,
    /// Idle timeout.
    pub idle: Duration,
    /// The bearer token for route-lookup, from --admin-token or its file.
    pub admin_token: Option<String>,
    /// What an https:// --directory is verified against (`None`: the system's CAs).
    pub ca: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Bearer-token checks (XOAUTH2, OAUTHBEARER offered only with them).
    pub oauth: Option<std::sync::Arc<common::oauth_introspection::Introspector>>,
}

impl Config {
    /// Checks the flags that clap cannot.
    pub fn validate(&self) -> Result<RuntimeConfig, ConfigError> {
        if self.hostname.trim().is_empty()
            || self
                .hostname
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("--hostname must be a host name".into());
        }
        if !self.directory.starts_with("http://") && !self.directory.starts_with("https://") {
            return Err(
                "--directory must be route-lookup's gRPC URL (http://HOST:PORT or https://HOST:PORT)"
                    .into(),
            );
        }
        let trusted = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| format!("--trusted-proxies: {e}"))?;
        if self.proxy_protocol && trusted.0.is_empty() {
            return Err("--proxy-protocol needs --trusted-proxies".into());
        }
        if self.max_bad_commands == 0 || self.max_connections == 0 {
            return Err("--max-bad-commands and --max-connections must be at least 1".into());
        }
        let certs = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                CertStore::load(vec![CertPair {
                    cert: cert.clone(),
                    key: key.clone(),
                }])
                .map_err(|e| ConfigError(common::exit::chain(&e)))?,
            ),
            _ => None,
        };
        let tls = certs.as_ref().map(|c| c.server_config(&[b"imap", b"pop3"]));
        let admin_token = common::secret::inline_or_file(
            "--admin-token",
            self.admin_token.as_deref(),
            self.admin_token_file.as_deref(),
        )?;
        let ca = match &self.ca {
            Some(path) => Some(
                common::tls::client_config(Some(path))
                    .map_err(|e| format!("--ca {}: {}", path.display(), common::exit::chain(&e)))?,
            ),
            None => None,
        };
        let oauth = common::oauth_introspection::from_flags(common::oauth_introspection::Flags {
            url: self.oauth_introspection_url.as_deref(),
            timeout_ms: self.oauth_introspection_timeout_ms,
            client_id: self.oauth_client_id.as_deref(),
            client_secret_file: self.oauth_client_secret_file.as_deref(),
            tls: ca.clone(),
        })?;
        Ok(RuntimeConfig {
            oauth,
            admin_token,
            ca,
            trusted,
            tls,
            certs,
            preauth: Duration::from_secs(self.preauth_timeout.max(1)),
            idle: Duration::from_secs(self.idle_timeout.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(extra: &[&str]) -> Result<RuntimeConfig, String> {
        let mut args = vec![
            "mailbox-stub",
            "--hostname",
            "mbx1.example.com",
            "--directory",
            "http://127.0.0.1:7071",
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
            .unwrap()
            .validate()
            .map_err(|e| e.0)
    }

    #[test]
    fn oauth_is_offered_with_an_introspection_url() {
        assert!(validate(&[]).unwrap().oauth.is_none());
        let rt = validate(&[
            "--oauth-introspection-url",
            "http://idp.example.com/introspect",
            "--oauth-introspection-timeout-ms",
            "800",
        ])
        .unwrap();
        let shown = format!("{:?}", rt.oauth.unwrap());
        assert!(
            shown.contains("http://idp.example.com:80/introspect"),
            "{shown}"
        );
        assert!(shown.contains("800ms"), "{shown}");
        assert_eq!(
            validate(&["--oauth-introspection-url", "idp.example.com"]).unwrap_err(),
            "--oauth-introspection-url `idp.example.com` is not an http:// or https:// URL"
        );
        assert_eq!(
            validate(&["--oauth-client-secret-file", "/x"]).unwrap_err(),
            "--oauth-client-id and --oauth-client-secret-file need --oauth-introspection-url"
        );
    }
}
