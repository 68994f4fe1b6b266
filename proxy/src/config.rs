//! The command line of `proxy`. Every flag has a `PROXY_*` environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use common::exit::ConfigError;
use common::listen::ListenAddr;

use crate::lookup::LookupUrl;
use crate::session::{Forward, StartTls};
use crate::throttle::{Count, Limits};

/// `--starttls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartTlsArg {
    /// Not offered.
    Off,
    /// Offered, login allowed without.
    On,
    /// Offered, login refused before it.
    Only,
}

/// `--tls-cipher-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CipherOrderArg {
    /// Ours (--tls-ciphers' order).
    Server,
    /// The client's.
    Client,
}

/// `--sasl-mechanisms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaslArg {
    /// PLAIN (RFC 4616).
    Plain,
    /// LOGIN (IMAP only; POP3 has USER/PASS).
    Login,
    /// XOAUTH2 (Google's and Microsoft's OAuth 2.0 mechanism).
    Xoauth2,
    /// OAUTHBEARER (RFC 7628).
    Oauthbearer,
}

/// `--user-login-limit-counts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CountArg {
    /// Successful logins.
    Successful,
    /// Failed logins.
    Failed,
}

/// `--upstream-tls-name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsNameArg {
    /// The mailbox server's host name (route-lookup's Auth-Server-Name), as Dovecot does.
    Host,
    /// Its IP address (the certificate must name the IP).
    Ip,
}

/// `--forward-client-ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardArg {
    /// IMAP ID x-originating-ip, POP3 XCLIENT.
    Id,
    /// PROXY protocol v2 header.
    ProxyV2,
    /// Not forwarded.
    Off,
}

/// The IMAP/POP3 front door of the mail platform.
///
/// Finds each user's mailbox server through the memcached route cache and route-lookup
/// (nginx's auth_http protocol), replays the login there and relays the session.
#[derive(Debug, Clone, Parser)]
// A repeated flag takes its last value: worker processes are started with the parent's
// arguments plus the concrete listen addresses.
#[command(name = "proxy", version, about, long_about = None, args_override_self = true)]
pub struct Config {
    /// IMAP listener (STARTTLS as --starttls says), or `off`.
    #[arg(long, env = "PROXY_IMAP_LISTEN", default_value = "0.0.0.0:143")]
    pub imap_listen: ListenAddr,
    /// IMAPS listener (implicit TLS; needs --tls-cert), or `off`.
    #[arg(long, env = "PROXY_IMAPS_LISTEN", default_value = "0.0.0.0:993")]
    pub imaps_listen: ListenAddr,
    /// POP3 listener, or `off`.
    #[arg(long, env = "PROXY_POP3_LISTEN", default_value = "0.0.0.0:110")]
    pub pop3_listen: ListenAddr,
    /// POP3S listener (implicit TLS; needs --tls-cert), or `off`.
    #[arg(long, env = "PROXY_POP3S_LISTEN", default_value = "0.0.0.0:995")]
    pub pop3s_listen: ListenAddr,
    /// PEM certificate chain; repeat with --tls-key for several certificates, chosen by the
    /// client's SNI (the first pair for clients without SNI or a name no certificate has).
    /// Re-read on SIGHUP.
    #[arg(
        long,
        env = "PROXY_TLS_CERT",
        value_name = "PEM",
        value_delimiter = ','
    )]
    pub tls_cert: Vec<PathBuf>,
    /// PEM private key of the --tls-cert in the same position.
    #[arg(long, env = "PROXY_TLS_KEY", value_name = "PEM", value_delimiter = ',')]
    pub tls_key: Vec<PathBuf>,
    /// File holding the TLS session ticket secret, 64 hex digits (`openssl rand -hex 32`):
    /// proxies given the same file resume each other's sessions (behind one load
    /// balancer). Without it the workers of this proxy share a random one. Re-read on
    /// SIGHUP.
    #[arg(long, env = "PROXY_TLS_TICKET_KEY_FILE", value_name = "PATH")]
    pub tls_ticket_key_file: Option<PathBuf>,
    /// Seconds each TLS ticket key issues tickets (1..=604800); a ticket resumes for one
    /// to two of them. The same on every proxy sharing a key file.
    #[arg(
        long,
        env = "PROXY_TLS_TICKET_ROTATION",
        default_value_t = common::tls_tickets::DEFAULT_ROTATION.as_secs()
    )]
    pub tls_ticket_rotation: u64,
    /// TLS cipher suites offered, in order of preference: IANA or OpenSSL names separated by
    /// `:` or `,`; at least one TLS 1.3 suite, and TLS 1.2 only with a TLS 1.2 suite.
    /// With TLS 1.2 on, each certificate's key type needs a TLS 1.2 suite of its own (ECDSA
    /// or RSA). Default: AES-128-GCM, ChaCha20-Poly1305, AES-256-GCM for TLS 1.3 and then
    /// for TLS 1.2 (ECDSA, then RSA), with ChaCha20 first on a CPU without AES
    /// instructions. Needs --tls-cert.
    #[arg(long, env = "PROXY_TLS_CIPHERS", value_name = "LIST")]
    pub tls_ciphers: Option<String>,
    /// Whose order of cipher suites picks the one a TLS handshake uses: `server` (ours, as
    /// nginx's `ssl_prefer_server_ciphers on`) or `client`. Default: server. Needs
    /// --tls-cert.
    #[arg(long, env = "PROXY_TLS_CIPHER_ORDER", value_enum)]
    pub tls_cipher_order: Option<CipherOrderArg>,
    /// STARTTLS/STLS: off, on, or only (no login before TLS). Default: only with a
    /// certificate; without one, plaintext listeners need an explicit `off`.
    #[arg(long, env = "PROXY_STARTTLS", value_enum)]
    pub starttls: Option<StartTlsArg>,
    /// SASL mechanisms offered (AUTHENTICATE / AUTH), comma-separated: plain, login,
    /// xoauth2, oauthbearer. The OAuth ones send the bearer token to route-lookup as
    /// Auth-Pass (Auth-Method xoauth2/oauthbearer) and replay the same message upstream.
    #[arg(
        long,
        env = "PROXY_SASL_MECHANISMS",
        value_enum,
        value_delimiter = ',',
        ignore_case = true,
        default_value = "plain,login"
    )]
    pub sasl_mechanisms: Vec<SaslArg>,
    /// route-lookup's nginx-lookup URL; repeat for failover.
    #[arg(
        long = "lookup-url",
        env = "PROXY_LOOKUP_URL",
        value_delimiter = ',',
        required = true
    )]
    pub lookup_urls: Vec<String>,
    /// PEM CA certificates that https:// lookup URLs and an https:// --directory are
    /// verified against (default: the system's CA bundle).
    #[arg(long, env = "PROXY_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Milliseconds a kept-alive connection to route-lookup may sit idle and still be
    /// used (keep it under route-lookup's own idle timeout; older ones are closed).
    #[arg(long, env = "PROXY_LOOKUP_IDLE_TIMEOUT_MS", default_value_t = 10000)]
    pub lookup_idle_timeout_ms: u64,
    /// Milliseconds to keep trying the lookup URLs again (short, growing pauses) when all
    /// of them failed, before the login gets a temporary failure: a route-lookup restart
    /// is waited out (0: no retries; never past --lookup-timeout-ms).
    #[arg(long, env = "PROXY_LOOKUP_RETRY_MS", default_value_t = 3000)]
    pub lookup_retry_ms: u64,
    /// Shared secret sent as X-Lookup-Secret.
    #[arg(long, env = "PROXY_LOOKUP_SECRET", hide_env_values = true)]
    pub lookup_secret: Option<String>,
    /// File holding the lookup secret (first line), instead of --lookup-secret.
    #[arg(
        long,
        env = "PROXY_LOOKUP_SECRET_FILE",
        value_name = "PATH",
        conflicts_with = "lookup_secret"
    )]
    pub lookup_secret_file: Option<PathBuf>,
    /// Cache nodes, HOST:PORT,…
    #[arg(long, env = "PROXY_MEMCACHED", value_delimiter = ',')]
    pub memcached: Vec<String>,
    /// File whose first line is `user:password` (memcached's -Y format): every connection to
    /// a cache node authenticates with it first (the nodes' --auth-file). A node that refuses
    /// it counts as down.
    #[arg(long, env = "PROXY_MEMCACHED_AUTH_FILE", value_name = "PATH")]
    pub memcached_auth_file: Option<PathBuf>,
    /// route-lookup's gRPC URL (http://HOST:PORT, or https:// when it runs with
    /// --tls-cert): follow the live cache-node membership and the registered mailbox servers
    /// (a cached route elsewhere is not used).
    #[arg(long, env = "PROXY_DIRECTORY", value_name = "GRPC_URL")]
    pub directory: Option<String>,
    /// Bearer token for --directory.
    #[arg(long, env = "PROXY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the bearer token (first line), instead of --admin-token.
    #[arg(
        long,
        env = "PROXY_ADMIN_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<PathBuf>,
    /// Reach the mailbox servers over TLS (their imapssl/pop3ssl ports), verifying their
    /// certificates against --upstream-ca.
    #[arg(long, env = "PROXY_UPSTREAM_TLS", requires = "upstream_ca")]
    pub upstream_tls: bool,
    /// PEM CA certificates for --upstream-tls.
    #[arg(long, env = "PROXY_UPSTREAM_CA", value_name = "PEM")]
    pub upstream_ca: Option<PathBuf>,
    /// What a mailbox server's certificate must name with --upstream-tls: its host name
    /// (route-lookup's Auth-Server-Name; the IP when an answer has none) or its IP address.
    #[arg(
        long,
        env = "PROXY_UPSTREAM_TLS_NAME",
        value_enum,
        default_value = "host"
    )]
    pub upstream_tls_name: TlsNameArg,
    /// Seconds a route stays cached.
    #[arg(long, env = "PROXY_ROUTE_TTL", default_value_t = 3600)]
    pub route_ttl: u32,
    /// Admin HTTP listener (/healthz, /metrics), or `off`.
    #[arg(long, env = "PROXY_ADMIN_LISTEN", default_value = "127.0.0.1:9143")]
    pub admin_listen: ListenAddr,
    /// How the client's address reaches the mailbox server.
    #[arg(
        long,
        env = "PROXY_FORWARD_CLIENT_IP",
        value_enum,
        default_value = "id"
    )]
    pub forward_client_ip: ForwardArg,
    /// Connections per client IP per --ip-login-limit-time (0: unlimited).
    #[arg(long, env = "PROXY_IP_LOGIN_LIMIT", default_value_t = 0)]
    pub ip_login_limit: u64,
    /// The IP window, seconds.
    #[arg(long, env = "PROXY_IP_LOGIN_LIMIT_TIME", default_value_t = 3600)]
    pub ip_login_limit_time: u32,
    /// Logins per user per --user-login-limit-time (0: unlimited).
    #[arg(long, env = "PROXY_USER_LOGIN_LIMIT", default_value_t = 0)]
    pub user_login_limit: u64,
    /// The user window, seconds.
    #[arg(long, env = "PROXY_USER_LOGIN_LIMIT_TIME", default_value_t = 3600)]
    pub user_login_limit_time: u32,
    /// What the user limit counts: successful logins (Zimbra) or only failed ones.
    #[arg(
        long,
        env = "PROXY_USER_LOGIN_LIMIT_COUNTS",
        value_enum,
        default_value = "successful"
    )]
    pub user_login_limit_counts: CountArg,

    /// Seconds a client may stay silent before login.
    #[arg(long, env = "PROXY_PREAUTH_TIMEOUT", default_value_t = 60)]
    pub preauth_timeout: u64,
    /// Seconds a relayed session may stay silent both ways (IMAP IDLE included).
    #[arg(long, env = "PROXY_IDLE_TIMEOUT", default_value_t = 1800)]
    pub idle_timeout: u64,
    /// Milliseconds for a cache request before the node is ejected.
    #[arg(long, env = "PROXY_CACHE_TIMEOUT_MS", default_value_t = 500)]
    pub cache_timeout_ms: u64,
    /// Connections kept open to each cache node.
    #[arg(long, env = "PROXY_CACHE_CONNECTIONS_PER_NODE", default_value_t = 16)]
    pub cache_connections_per_node: usize,
    /// Milliseconds for a route-lookup request (connect, send, answer) before the URL
    /// counts as failed.
    #[arg(long, env = "PROXY_LOOKUP_TIMEOUT_MS", default_value_t = 15000)]
    pub lookup_timeout_ms: u64,
    /// Milliseconds for each step of reaching a mailbox server: connect, TLS handshake,
    /// the login dialogue.
    #[arg(long, env = "PROXY_BACKEND_TIMEOUT_MS", default_value_t = 10000)]
    pub backend_timeout_ms: u64,
    /// Load balancers whose connections start with a PROXY protocol header (v1 or v2)
    /// naming the real client, `ADDR[/LEN],…`; from them a connection without a valid
    /// header is closed, from anyone else one that sends a header is refused.
    #[arg(
        long,
        env = "PROXY_PROXY_PROTOCOL_FROM",
        value_name = "CIDR,…",
        default_value = ""
    )]
    pub proxy_protocol_from: common::cidr::CidrList,
    /// Connections one client address may hold before they have logged in (0: unlimited).
    #[arg(long, env = "PROXY_MAX_PREAUTH_PER_IP", default_value_t = 50)]
    pub max_preauth_per_ip: usize,
    /// Relayed sessions per account and client address, across all workers (0: no cap),
    /// as Dovecot's mail_max_userip_connections: the next login gets NO [LIMIT] /
    /// -ERR [IN-USE] before any mailbox server is asked.
    #[arg(long, env = "PROXY_MAX_SESSIONS_PER_USER", default_value_t = 0)]
    pub max_sessions_per_user: u32,
    /// Routes this proxy keeps from recent logins, used only when neither the cache nor any
    /// lookup URL answers (0: none).
    #[arg(long, env = "PROXY_STALE_ROUTES_MAX", default_value_t = 100_000)]
    pub stale_routes_max: usize,
    /// Seconds a kept route stays usable after its last login.
    #[arg(long, env = "PROXY_STALE_ROUTES_MAX_AGE", default_value_t = 86_400)]
    pub stale_routes_max_age: u64,
    /// Seconds from accept to logged in upstream, in total (the pre-auth timeout bounds
    /// each read; this bounds the whole dialogue).
    #[arg(long, env = "PROXY_LOGIN_DEADLINE", default_value_t = 120)]
    pub login_deadline: u64,
    /// Milliseconds an ejected cache node is skipped at first (its keys go to the next node
    /// meanwhile); each failed probe doubles it, up to --retry-interval.
    #[arg(long, env = "PROXY_CACHE_PROBE_INTERVAL_MS", default_value_t = 1000)]
    pub cache_probe_interval_ms: u64,
    /// Seconds a failed lookup URL is skipped, and the longest an ejected cache node is.
    #[arg(long, env = "PROXY_RETRY_INTERVAL", default_value_t = 30)]
    pub retry_interval: u64,
    /// Invalid commands and failed logins per connection before it is closed.
    #[arg(long, env = "PROXY_MAX_BAD_COMMANDS", default_value_t = 5)]
    pub max_bad_commands: u32,
    /// Connections per listener.
    #[arg(long, env = "PROXY_MAX_CONNECTIONS", default_value_t = 20000)]
    pub max_connections: usize,
    /// Seconds to let relayed sessions finish after SIGTERM.
    #[arg(long, env = "PROXY_GRACE_PERIOD", default_value_t = 30)]
    pub grace_period: u64,
    /// The name in greetings.
    #[arg(long, env = "PROXY_NAME", default_value = "zproxy")]
    pub name: String,
    /// Worker processes sharing the listeners (SO_REUSEPORT), as nginx's workers do: each
    /// has its own open-files limit (a relayed session holds two sockets) and its own
    /// caches and connections. The first process is worker 0 and supervises the others
    /// (restarting one that dies; SIGTERM drains them all). Worker i serves /metrics on the
    /// admin port + i.
    #[arg(long, env = "PROXY_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Log lines as `text` (colour only on a terminal without NO_COLOR) or `json` (one
    /// object per line, with the session's span fields).
    #[arg(long, env = "PROXY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: common::telemetry::LogFormat,
    /// Threads per worker process (default: the CPUs divided among the workers; 1 runs a
    /// single-threaded event loop).
    #[arg(long, env = "PROXY_THREADS")]
    pub threads: Option<usize>,
}

/// The validated configuration: everything [`crate::Proxy::bind`] needs, typed.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Listeners, in the order IMAP, IMAPS, POP3, POP3S (absent: off).
    pub listen: Listen,
    /// The admin listener (/healthz, /metrics).
    pub admin_listen: Option<SocketAddr>,
    /// Whether the listeners are shared with other worker processes (SO_REUSEPORT); a worker
    /// process started by worker 0 sets it too.
    pub shared_listeners: bool,
    /// The bearer token of the admin endpoints that act (`/sessions`), from --admin-token.
    pub admin_token: Option<String>,
    /// This process's index among the workers (0: the first, which supervises).
    pub worker: usize,
    /// How many workers in all (known to worker 0).
    pub workers: usize,
    /// Lookup URLs.
    pub urls: Vec<LookupUrl>,
    /// X-Lookup-Secret.
    pub lookup_secret: Option<String>,
    /// route-lookup request bound.
    pub lookup_timeout: Duration,
    /// How long a pooled connection to route-lookup may idle and still be used.
    pub lookup_idle_timeout: Duration,
    /// How long to keep retrying when every lookup URL failed.
    pub lookup_retry: Duration,
    /// CA certificates for https:// lookup URLs.
    pub ca: Option<Arc<rustls::ClientConfig>>,
    /// Cache nodes given on the command line.
    pub memcached: Vec<String>,
    /// What connections to cache nodes authenticate with.
    pub memcached_auth: Option<codec::memcache::Credentials>,
    /// Cache request bound.
    pub cache_timeout: Duration,
    /// First interval an ejected cache node is skipped.
    pub cache_probe_interval: Duration,
    /// Connections per cache node.
    pub cache_connections_per_node: usize,
    /// How long a failed cache node or lookup URL is skipped.
    pub retry_interval: Duration,
    /// route-lookup's gRPC URL and token, to follow the membership watch.
    pub directory: Option<(crate::membership::DirectoryUrl, Option<String>)>,
    /// Route TTL in the cache, seconds.
    pub route_ttl: u32,
    /// Routes kept for when the route source is down (0: none).
    pub stale_routes_max: usize,
    /// How long a kept route stays usable.
    pub stale_routes_max_age: Duration,
    /// Login limits.
    pub limits: Limits,
    /// Client TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The certificates behind it, reloaded on SIGHUP.
    pub certs: Option<Arc<common::certs::CertStore>>,
    /// The TLS ticket keys, shared by the workers (and by proxies with one key file).
    pub tickets: Option<Arc<common::tls_tickets::TicketKeys>>,
    /// STARTTLS mode.
    pub starttls: StartTls,
    /// SASL mechanisms offered.
    pub sasl: crate::session::Mechanisms,
    /// Forwarding of the client address.
    pub forward: Forward,
    /// TLS to the backends.
    pub upstream: Option<Arc<rustls::ClientConfig>>,
    /// What the backends' certificates are verified against.
    pub upstream_tls_name: crate::login::TlsName,
    /// Bound on each backend step.
    pub backend_timeout: Duration,
    /// Silence allowed between reads before login.
    pub preauth: Duration,
    /// From accept to logged in.
    pub login_deadline: Duration,
    /// Relay idle timeout.
    pub idle: Duration,
    /// Bad commands and failed logins per connection.
    pub max_bad_commands: u32,
    /// Pre-auth connections per client address (0: unlimited).
    pub max_preauth_per_ip: usize,
    /// Relayed sessions per account and client address (0: no cap).
    pub max_sessions_per_user: u32,
    /// Peers that must send a PROXY protocol header.
    pub proxy_protocol_from: common::cidr::CidrList,
    /// Connections per listener.
    pub max_connections: usize,
    /// Drain time after SIGTERM.
    pub grace: Duration,
    /// The name in greetings.
    pub name: String,
}

impl RuntimeConfig {
    /// Whether routes must name their mailbox server: upstream TLS verified by host name.
    pub fn routes_need_names(&self) -> bool {
        self.upstream.is_some() && self.upstream_tls_name == crate::login::TlsName::Host
    }
}

/// The client listeners' addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listen {
    /// IMAP (STARTTLS per --starttls).
    pub imap: Option<SocketAddr>,
    /// IMAPS.
    pub imaps: Option<SocketAddr>,
    /// POP3.
    pub pop3: Option<SocketAddr>,
    /// POP3S.
    pub pop3s: Option<SocketAddr>,
}

impl Config {
    /// Checks what clap cannot and types the result.
    pub fn validate(&self) -> Result<RuntimeConfig, ConfigError> {
        if !(1..=64).contains(&self.workers) {
            return Err(format!("--workers {} is outside 1..=64", self.workers).into());
        }
        if matches!(self.threads, Some(t) if !(1..=1024).contains(&t)) {
            return Err("--threads must be in 1..=1024".into());
        }
        let urls = self
            .lookup_urls
            .iter()
            .map(|u| u.parse::<LookupUrl>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError(format!("--lookup-url {e}")))?;
        if self.tls_cert.len() != self.tls_key.len() {
            return Err(format!(
                "--tls-cert and --tls-key come in pairs ({} certificates, {} keys)",
                self.tls_cert.len(),
                self.tls_key.len()
            )
            .into());
        }
        let ciphers = self.cipher_policy()?;
        let certs = if self.tls_cert.is_empty() {
            None
        } else {
            let pairs = self
                .tls_cert
                .iter()
                .zip(&self.tls_key)
                .map(|(cert, key)| common::certs::CertPair {
                    cert: cert.clone(),
                    key: key.clone(),
                })
                .collect();
            Some(
                common::certs::CertStore::load_for(pairs, ciphers).map_err(|e| match e {
                    common::certs::CertError::Ciphers { .. } => {
                        ConfigError(format!("--tls-ciphers: {e}"))
                    }
                    e => ConfigError(e.to_string()),
                })?,
            )
        };
        if certs.is_none() {
            let given: Vec<&str> = [
                ("--tls-ciphers", self.tls_ciphers.is_some()),
                ("--tls-cipher-order", self.tls_cipher_order.is_some()),
            ]
            .into_iter()
            .filter_map(|(flag, given)| given.then_some(flag))
            .collect();
            if !given.is_empty() {
                let verb = if given.len() == 1 { "needs" } else { "need" };
                return Err(
                    format!("{} {verb} --tls-cert and --tls-key", given.join(" and ")).into(),
                );
            }
        }
        let tickets = self.ticket_keys(certs.is_some())?;
        let tls = certs
            .as_ref()
            .zip(tickets.clone())
            .map(|(c, t)| c.server_config_with_tickets(&[b"imap", b"pop3"], t));
        let starttls = match (self.starttls, tls.is_some()) {
            (Some(StartTlsArg::Off), _) => StartTls::Off,
            (Some(StartTlsArg::On), true) => StartTls::On,
            (Some(StartTlsArg::Only), true) | (None, true) => StartTls::Only,
            (Some(_), false) => {
                return Err("--starttls on|only needs --tls-cert and --tls-key".into())
            }
            (None, false) => {
                let plaintext =
                    self.imap_listen.addr().is_some() || self.pop3_listen.addr().is_some();
                if plaintext {
                    return Err("no certificate: plaintext logins need an explicit --starttls off (or give --tls-cert/--tls-key)".into());
                }
                StartTls::Off
            }
        };
        if tls.is_none()
            && (self.imaps_listen.addr().is_some() || self.pop3s_listen.addr().is_some())
        {
            return Err(
                "--imaps-listen/--pop3s-listen need --tls-cert and --tls-key (or set them to off)"
                    .into(),
            );
        }
        if self.max_bad_commands == 0 || self.max_connections == 0 || self.route_ttl == 0 {
            return Err(
                "--max-bad-commands, --max-connections and --route-ttl must be at least 1".into(),
            );
        }
        if !(1..=1024).contains(&self.cache_connections_per_node) {
            return Err("--cache-connections-per-node must be in 1..=1024".into());
        }
        if self.lookup_timeout_ms == 0 || self.backend_timeout_ms == 0 || self.login_deadline == 0 {
            return Err(
                "--lookup-timeout-ms, --backend-timeout-ms and --login-deadline must be at least 1"
                    .into(),
            );
        }
        let cached = !self.memcached.is_empty() || self.directory.is_some();
        if !cached && (self.ip_login_limit > 0 || self.user_login_limit > 0) {
            return Err("login limits are counted in the cache: give --memcached".into());
        }
        let ca = match &self.ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Some(
                    common::tls::client_config_from_pem(&pem)
                        .map_err(|e| ConfigError(format!("--ca {}: {e}", path.display())))?,
                )
            }
            None => None,
        };
        let upstream = match (&self.upstream_tls, &self.upstream_ca) {
            (true, Some(ca)) => {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
                Some(
                    common::tls::client_config_from_pem(&pem)
                        .map_err(|e| ConfigError(e.to_string()))?,
                )
            }
            _ => None,
        };
        let admin_token = common::secret::inline_or_file(
            "--admin-token",
            self.admin_token.as_deref(),
            self.admin_token_file.as_deref(),
        )?;
        let directory = match &self.directory {
            Some(url) => {
                let url = crate::membership::DirectoryUrl {
                    url: url.clone(),
                    ca: ca.clone(),
                };
                // The URL, the token and (for https:// without --ca) the system's CAs are
                // checked now, so a mistake stops the start rather than every watch.
                url.endpoint(admin_token.as_deref())
                    .map_err(|e| format!("--directory: {e}"))?;
                Some((url, admin_token.clone()))
            }
            None => None,
        };
        Ok(RuntimeConfig {
            listen: Listen {
                imap: self.imap_listen.addr(),
                imaps: self.imaps_listen.addr(),
                pop3: self.pop3_listen.addr(),
                pop3s: self.pop3s_listen.addr(),
            },
            admin_listen: self.admin_listen.addr(),
            shared_listeners: self.workers > 1,
            admin_token: admin_token.clone(),
            worker: 0,
            workers: self.workers,
            urls,
            lookup_secret: common::secret::inline_or_file(
                "--lookup-secret",
                self.lookup_secret.as_deref(),
                self.lookup_secret_file.as_deref(),
            )?,
            lookup_timeout: Duration::from_millis(self.lookup_timeout_ms),
            lookup_idle_timeout: Duration::from_millis(self.lookup_idle_timeout_ms),
            lookup_retry: Duration::from_millis(self.lookup_retry_ms),
            ca,
            memcached: self.memcached.clone(),
            memcached_auth: match &self.memcached_auth_file {
                Some(path) => Some(common::secret::memcached_credentials(path)?),
                None => None,
            },
            cache_timeout: Duration::from_millis(self.cache_timeout_ms.max(1)),
            cache_probe_interval: Duration::from_millis(self.cache_probe_interval_ms.max(1)),
            cache_connections_per_node: self.cache_connections_per_node,
            retry_interval: Duration::from_secs(self.retry_interval),
            directory,
            route_ttl: self.route_ttl,
            stale_routes_max: self.stale_routes_max,
            stale_routes_max_age: Duration::from_secs(self.stale_routes_max_age),
            limits: Limits {
                ip_max: self.ip_login_limit,
                ip_window: self.ip_login_limit_time.max(1),
                user_max: self.user_login_limit,
                user_window: self.user_login_limit_time.max(1),
                count: match self.user_login_limit_counts {
                    CountArg::Successful => Count::Successful,
                    CountArg::Failed => Count::Failed,
                },
            },
            tls,
            certs,
            tickets,
            starttls,
            sasl: crate::session::Mechanisms {
                plain: self.sasl_mechanisms.contains(&SaslArg::Plain),
                login: self.sasl_mechanisms.contains(&SaslArg::Login),
                xoauth2: self.sasl_mechanisms.contains(&SaslArg::Xoauth2),
                oauthbearer: self.sasl_mechanisms.contains(&SaslArg::Oauthbearer),
            },
            forward: match self.forward_client_ip {
                ForwardArg::Id => Forward::Id,
                ForwardArg::ProxyV2 => Forward::ProxyV2,
                ForwardArg::Off => Forward::Off,
            },
            upstream,
            upstream_tls_name: match self.upstream_tls_name {
                TlsNameArg::Host => crate::login::TlsName::Host,
                TlsNameArg::Ip => crate::login::TlsName::Ip,
            },
            backend_timeout: Duration::from_millis(self.backend_timeout_ms),
            preauth: Duration::from_secs(self.preauth_timeout.max(1)),
            login_deadline: Duration::from_secs(self.login_deadline),
            idle: Duration::from_secs(self.idle_timeout.max(1)),
            max_bad_commands: self.max_bad_commands,
            max_preauth_per_ip: self.max_preauth_per_ip,
            max_sessions_per_user: self.max_sessions_per_user,
            proxy_protocol_from: self.proxy_protocol_from.clone(),
            max_connections: self.max_connections,
            grace: Duration::from_secs(self.grace_period),
            name: self.name.clone(),
        })
    }
}

impl Config {
    /// --tls-ciphers and --tls-cipher-order, parsed in `validate` so that a bad list stops
    /// the start instead of failing handshakes.
    fn cipher_policy(&self) -> Result<common::tls_ciphers::CipherPolicy, ConfigError> {
        use common::tls_ciphers::CipherPolicy;
        let server_order = self.tls_cipher_order != Some(CipherOrderArg::Client);
        match &self.tls_ciphers {
            None => Ok(CipherPolicy::recommended().with_server_order(server_order)),
            Some(list) => CipherPolicy::parse(list, server_order)
                .map_err(|e| ConfigError(format!("--tls-ciphers: {e}"))),
        }
    }

    /// The TLS ticket keys (with a certificate): from --tls-ticket-key-file, else from
    /// the secret worker 0 shares with its workers.
    fn ticket_keys(
        &self,
        tls: bool,
    ) -> Result<Option<Arc<common::tls_tickets::TicketKeys>>, ConfigError> {
        use common::tls_tickets::{TicketKeys, MAX_ROTATION};
        if !(1..=MAX_ROTATION.as_secs()).contains(&self.tls_ticket_rotation) {
            return Err(format!(
                "--tls-ticket-rotation must be in 1..={} seconds (a TLS ticket lives at most 7 days)",
                MAX_ROTATION.as_secs()
            )
            .into());
        }
        let rotation = Duration::from_secs(self.tls_ticket_rotation);
        match (&self.tls_ticket_key_file, tls) {
            (Some(_), false) => Err("--tls-ticket-key-file needs --tls-cert and --tls-key".into()),
            (None, false) => Ok(None),
            (Some(path), true) => Ok(Some(TicketKeys::from_file(
                "--tls-ticket-key-file",
                path,
                rotation,
            )?)),
            (None, true) => Ok(Some(TicketKeys::new(
                crate::workers::ticket_secret()?,
                rotation,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec![
            "proxy",
            "--lookup-url",
            "http://127.0.0.1:7072/service/extension/nginx-lookup",
            "--starttls",
            "off",
            "--imaps-listen",
            "off",
            "--pop3s-listen",
            "off",
        ];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).map_err(|e| e.to_string())
    }

    #[test]
    fn secrets_come_from_files_with_their_flags_named_in_errors() {
        let dir = std::env::temp_dir().join(format!("proxy-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (token, secret) = (dir.join("token"), dir.join("secret"));
        std::fs::write(&token, "tok-from-file\n").unwrap();
        std::fs::write(&secret, "sec-from-file\r\n").unwrap();
        let rt = parse(&[
            "--directory",
            "http://127.0.0.1:7071",
            "--admin-token-file",
            token.to_str().unwrap(),
            "--lookup-secret-file",
            secret.to_str().unwrap(),
        ])
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(rt.lookup_secret.as_deref(), Some("sec-from-file"));
        assert_eq!(
            rt.directory.as_ref().and_then(|(_, t)| t.as_deref()),
            Some("tok-from-file")
        );
        let e = parse(&["--lookup-secret-file", "/nonexistent/s"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            e.0.starts_with("--lookup-secret-file /nonexistent/s: cannot read it"),
            "{}",
            e.0
        );
        assert!(parse(&["--admin-token", "x", "--admin-token-file", "/x"]).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn lookup_urls_are_checked_by_the_shared_parser() {
        let err = |url: &str| {
            parse(&["--lookup-url", url])
                .unwrap()
                .validate()
                .unwrap_err()
                .0
        };
        assert_eq!(
            err("ftp://x/"),
            "--lookup-url `ftp://x/` is not an http:// or https:// URL"
        );
        assert_eq!(
            err("http://ann:pw@h/x"),
            "--lookup-url must not carry credentials"
        );
        assert_eq!(
            err("http://h:0/x"),
            "--lookup-url `http://h:0/x` has a bad port"
        );
        let rt = parse(&["--lookup-url", "https://[::1]/l?v=1"])
            .unwrap()
            .validate()
            .unwrap();
        let url = rt.urls.last().unwrap();
        assert_eq!(
            (url.server_name(), url.port, url.path.as_str()),
            ("::1", 443, "/l?v=1")
        );
    }

    #[test]
    fn cache_credentials_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("proxy-cache-auth-{}", std::process::id()));
        std::fs::write(&path, "proxy:s3cret\n").unwrap();
        let arg = path.to_str().unwrap();
        let rt = parse(&[
            "--memcached",
            "127.0.0.1:11211",
            "--memcached-auth-file",
            arg,
        ])
        .unwrap()
        .validate()
        .unwrap();
        assert!(
            !format!("{rt:?}").contains("s3cret"),
            "never in a debug print"
        );
        assert!(rt.memcached_auth.unwrap().matches(b"proxy", b"s3cret"));
        std::fs::write(&path, "proxy s3cret\n").unwrap();
        let e = parse(&["--memcached-auth-file", arg])
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(
            e.0,
            format!("--memcached-auth-file {arg}: not user:password (no ':')")
        );
        let e = parse(&["--memcached-auth-file", "/nonexistent/a"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e
            .0
            .starts_with("--memcached-auth-file /nonexistent/a: cannot read it"));
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn upstream_names_and_an_https_directory() {
        use crate::login::TlsName;
        let rt = parse(&[]).unwrap().validate().unwrap();
        assert_eq!(rt.upstream_tls_name, TlsName::Host, "Dovecot's default");
        assert!(!rt.routes_need_names(), "no upstream TLS, no names");
        let path = std::env::temp_dir().join(format!("proxy-ca-{}", std::process::id()));
        let (cert, _) = common::tls::self_signed(&["mbx1.example.com"]).unwrap();
        std::fs::write(&path, cert).unwrap();
        let ca = path.to_str().unwrap();
        let rt = parse(&["--upstream-tls", "--upstream-ca", ca])
            .unwrap()
            .validate()
            .unwrap();
        assert!(rt.routes_need_names());
        let rt = parse(&[
            "--upstream-tls",
            "--upstream-ca",
            ca,
            "--upstream-tls-name",
            "ip",
        ])
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(rt.upstream_tls_name, TlsName::Ip);
        assert!(!rt.routes_need_names());
        assert!(parse(&["--upstream-tls-name", "dns"]).is_err());

        // --directory https:// takes --ca; a scheme that is neither is refused at start.
        let rt = parse(&["--directory", "https://lookup:7071", "--ca", ca])
            .unwrap()
            .validate()
            .unwrap();
        assert!(rt.directory.unwrap().0.ca.is_some());
        let e = parse(&["--directory", "ftp://lookup:7071"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            e.0.starts_with("--directory: bad URL ftp://lookup:7071"),
            "{}",
            e.0
        );
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn cipher_lists_are_checked_at_start() {
        let e = parse(&["--tls-ciphers", "TLS_AES_128_GCM_SHA256:RC4-SHA"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            e.0.starts_with("--tls-ciphers: unknown cipher suite \"RC4-SHA\"; known: "),
            "{}",
            e.0
        );
        let e = parse(&["--tls-ciphers", "ECDHE-RSA-AES128-GCM-SHA256"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.0.contains("at least one TLS 1.3 suite"), "{}", e.0);
        assert!(parse(&["--tls-cipher-order", "sideways"]).is_err());
        // Without a certificate there is nothing to offer them with.
        for flags in [
            &["--tls-ciphers", "TLS_AES_128_GCM_SHA256"][..],
            &["--tls-cipher-order", "server"],
        ] {
            let e = parse(flags).unwrap().validate().unwrap_err();
            assert_eq!(e.0, format!("{} needs --tls-cert and --tls-key", flags[0]));
        }
        let both = [
            "--tls-ciphers",
            "TLS_AES_128_GCM_SHA256",
            "--tls-cipher-order",
            "client",
        ];
        assert_eq!(
            parse(&both).unwrap().validate().unwrap_err().0,
            "--tls-ciphers and --tls-cipher-order need --tls-cert and --tls-key"
        );
        let c = parse(&[
            "--tls-ciphers",
            "TLS_AES_256_GCM_SHA384",
            "--tls-cipher-order",
            "client",
        ])
        .unwrap();
        assert_eq!(
            c.cipher_policy().unwrap().to_string(),
            "TLS_AES_256_GCM_SHA384 (client order)"
        );
        assert!(parse(&[]).unwrap().cipher_policy().unwrap().server_order());
    }

    #[test]
    fn workers_are_bounded() {
        assert!(parse(&[]).unwrap().validate().is_ok());
        assert_eq!(parse(&[]).unwrap().workers, 1);
        assert!(parse(&["--workers", "0"]).unwrap().validate().is_err());
        assert!(parse(&["--workers", "65"]).unwrap().validate().is_err());
        assert!(parse(&["--workers", "4"]).unwrap().validate().is_ok());
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value() {
        // Worker processes get the parent's arguments plus the concrete addresses.
        let c = parse(&[
            "--imap-listen",
            "127.0.0.1:0",
            "--imap-listen",
            "127.0.0.1:1143",
        ])
        .unwrap();
        assert_eq!(c.imap_listen.addr().unwrap().port(), 1143);
    }
}
