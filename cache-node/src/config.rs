//! The command line of `cache-node`. Every flag has a `CACHE_*` environment twin.

use std::time::Duration;

use clap::Parser;
use codec::memcache::Limits;
use common::listen::ListenAddr;

use common::exit::ConfigError;

use crate::storage::StoreConfig;

/// A memcached-protocol cache node for the mail proxy's route entries.
///
/// Speaks memcached 1.6's text protocol, meta commands included, so any memcached client
/// or tool works against it. Memory is bounded and least-recently-used items are evicted.
#[derive(Debug, Clone, Parser)]
#[command(name = "cache-node", version, about, long_about = None)]
pub struct Config {
    /// Address of the memcached listener (HOST:PORT; port 0 picks a free one).
    #[arg(long, env = "CACHE_LISTEN", default_value = "0.0.0.0:11211")]
    pub listen: ListenAddr,

    /// Memory for items (keys, values and per-item overhead), in MiB. When full, the least
    /// recently used items are evicted.
    #[arg(
        long,
        env = "CACHE_MEMORY_LIMIT_MB",
        default_value_t = 64,
        value_name = "MB"
    )]
    pub memory_limit_mb: usize,

    /// Largest item in bytes, counted as memcached counts it (value + key + 59 bytes of
    /// header), so the default admits values up to 1,048,517 - key length bytes.
    #[arg(long, env = "CACHE_MAX_ITEM_SIZE", default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_item_size: usize,

    /// Most client connections at once; further ones get
    /// `ERROR Too many open connections` and are closed.
    #[arg(long, env = "CACHE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Worker threads (default: one per CPU).
    #[arg(long, env = "CACHE_THREADS")]
    pub threads: Option<usize>,

    /// Address of the admin HTTP listener (/healthz, /metrics), or `off`.
    #[arg(long, env = "CACHE_ADMIN_LISTEN", default_value = "127.0.0.1:9211")]
    pub admin_listen: ListenAddr,

    /// Seconds a connection may stay silent (or leave a reply unread) before it is
    /// closed; 0 disables. Clients reconnect transparently.
    #[arg(
        long,
        env = "CACHE_IDLE_TIMEOUT",
        default_value_t = 600,
        value_name = "SECONDS"
    )]
    pub idle_timeout: u64,

    /// Longest `get`/`gets`/`gat`/`gats` line in bytes (multi-gets of thousands of keys).
    /// Other command lines are limited to 2048 bytes, as in memcached.
    #[arg(long, env = "CACHE_MAX_GET_LINE", default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_get_line: usize,

    /// Refuse `flush_all` (`CLIENT_ERROR flush_all not allowed`), as memcached's `-F`: one
    /// client must not be able to empty every proxy's route cache.
    #[arg(long, env = "CACHE_DISABLE_FLUSH_ALL")]
    pub disable_flush_all: bool,

    /// File of `user:password` lines (at most 8, memcached's `-Y` format): every connection
    /// must first authenticate with `set <key> 0 0 <n>` whose data is `user password`;
    /// before that each command gets `CLIENT_ERROR unauthenticated`. Read again on SIGHUP.
    #[arg(long, env = "CACHE_AUTH_FILE", value_name = "PATH")]
    pub auth_file: Option<std::path::PathBuf>,

    /// Seconds to let open connections finish after SIGTERM/SIGINT before exiting.
    #[arg(
        long,
        env = "CACHE_GRACE_PERIOD",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub grace_period: u64,
    /// Log lines as `text` (colour only on a terminal without NO_COLOR) or `json` (one
    /// object per line, with the spans' fields).
    #[arg(long, env = "CACHE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: common::telemetry::LogFormat,

    /// route-lookup's gRPC URL (e.g. http://route-lookup:7071, or https:// when it runs with
    /// --tls-cert): register this node there under a lease so proxies find it, heartbeat,
    /// deregister at shutdown.
    #[arg(long, env = "CACHE_REGISTER", value_name = "GRPC_URL")]
    pub register: Option<String>,

    /// PEM CA certificates an https:// --register is verified against (default: the
    /// system's CAs).
    #[arg(long, env = "CACHE_CA", value_name = "PEM")]
    pub ca: Option<std::path::PathBuf>,

    /// HOST:PORT to register (default: the local address this node reaches route-lookup
    /// from, with the --listen port: right for compose replicas).
    #[arg(long, env = "CACHE_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,

    /// Bearer token for route-lookup's admin gRPC (needed with --register unless
    /// route-lookup runs with --insecure-admin).
    #[arg(long, env = "CACHE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// File holding the bearer token (first line), instead of --admin-token.
    #[arg(
        long,
        env = "CACHE_ADMIN_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// Registration lease in seconds; heartbeats go every third of it, and a node that
    /// dies leaves the membership when it runs out.
    #[arg(
        long,
        env = "CACHE_LEASE_TTL",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub lease_ttl: u64,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// memcached listener.
    pub listen: std::net::SocketAddr,
    /// Admin listener, if on.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Store sizing.
    pub store: StoreConfig,
    /// Request bounds.
    pub limits: Limits,
    /// Connection cap.
    pub max_connections: usize,
    /// Worker threads.
    pub threads: usize,
    /// Idle timeout (zero = none).
    pub idle_timeout: Duration,
    /// Shutdown grace period.
    pub grace_period: Duration,
    /// Self-registration, if asked for.
    pub register: Option<crate::register::Registration>,
    /// `flush_all` is allowed.
    pub flush_enabled: bool,
    /// The auth file's entries, with `--auth-file`.
    pub auth: Option<std::sync::Arc<crate::auth::Auth>>,
}

impl Config {
    /// Checks the flags against each other and resolves defaults.
    pub fn validate(&self) -> Result<RuntimeConfig, ConfigError> {
        let listen = self
            .listen
            .addr()
            .ok_or("--listen cannot be off: the memcached listener is the service")?;
        if self.memory_limit_mb == 0 || self.memory_limit_mb > 1 << 20 {
            return Err(format!(
                "--memory-limit-mb {} is outside 1..=1048576",
                self.memory_limit_mb
            )
            .into());
        }
        let memory_limit = self.memory_limit_mb << 20;
        if self.max_item_size < 1024 {
            return Err(format!(
                "--max-item-size {} is below the minimum of 1024",
                self.max_item_size
            )
            .into());
        }
        if self.max_item_size > memory_limit / 2 {
            return Err(format!(
                "--max-item-size {} is more than half of --memory-limit-mb ({} bytes)",
                self.max_item_size, memory_limit
            )
            .into());
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        let threads = match self.threads {
            Some(0) => return Err("--threads must be at least 1".into()),
            Some(n) if n > 1024 => return Err(format!("--threads {n} is more than 1024").into()),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        if self.max_get_line < 2048 {
            return Err(format!("--max-get-line {} is below 2048", self.max_get_line).into());
        }
        let register = match &self.register {
            None => {
                if self.advertise.is_some() || self.ca.is_some() {
                    return Err("--advertise and --ca need --register".into());
                }
                None
            }
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(
                        format!("--register {url} is not an http:// or https:// URL").into(),
                    );
                }
                if let Some(a) = &self.advertise {
                    let ok = a.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                    });
                    if !ok {
                        return Err(format!("--advertise {a} is not HOST:PORT").into());
                    }
                }
                if !(3..=3600).contains(&self.lease_ttl) {
                    return Err(
                        format!("--lease-ttl {} is outside 3..=3600", self.lease_ttl).into(),
                    );
                }
                Some(crate::register::Registration {
                    url: url.clone(),
                    advertise: self.advertise.clone(),
                    token: common::secret::inline_or_file(
                        "--admin-token",
                        self.admin_token.as_deref(),
                        self.admin_token_file.as_deref(),
                    )?,
                    ttl: Duration::from_secs(self.lease_ttl),
                    ca: match &self.ca {
                        Some(path) => {
                            Some(common::tls::client_config(Some(path)).map_err(|e| {
                                format!("--ca {}: {}", path.display(), common::exit::chain(&e))
                            })?)
                        }
                        None => None,
                    },
                })
            }
        };
        // Read here, so a bad file stops the start with exit code 64 and the file's name.
        let auth = match &self.auth_file {
            Some(path) => Some(std::sync::Arc::new(crate::auth::Auth::load(path)?)),
            None => None,
        };
        Ok(RuntimeConfig {
            listen,
            admin_listen: self.admin_listen.addr(),
            store: StoreConfig {
                memory_limit,
                max_item_size: self.max_item_size,
            },
            limits: Limits {
                max_line: 2048,
                max_get_line: self.max_get_line,
                max_item_size: self.max_item_size,
            },
            max_connections: self.max_connections,
            threads,
            idle_timeout: Duration::from_secs(self.idle_timeout),
            grace_period: Duration::from_secs(self.grace_period),
            register,
            flush_enabled: !self.disable_flush_all,
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why a test command line was refused: by clap, or by `validate`.
    #[derive(Debug, thiserror::Error)]
    enum Refused {
        #[error(transparent)]
        Flags(#[from] clap::Error),
        #[error(transparent)]
        Invalid(#[from] ConfigError),
    }

    fn parse(args: &[&str]) -> Result<RuntimeConfig, Refused> {
        let mut argv = vec!["cache-node"];
        argv.extend_from_slice(args);
        Ok(Config::try_parse_from(argv)?.validate()?)
    }

    #[test]
    fn defaults_match_the_design() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:11211");
        assert_eq!(c.admin_listen.unwrap().to_string(), "127.0.0.1:9211");
        assert_eq!(c.store.memory_limit, 64 << 20);
        assert_eq!(c.store.max_item_size, 1 << 20);
        assert_eq!(c.max_connections, 1024);
    }

    #[test]
    fn refuses_inconsistent_values() {
        assert!(parse(&["--listen", "off"]).is_err());
        assert!(parse(&["--memory-limit-mb", "0"]).is_err());
        assert!(parse(&["--memory-limit-mb", "1", "--max-item-size", "1048576"]).is_err());
        assert!(parse(&["--max-item-size", "10"]).is_err());
        assert!(parse(&["--threads", "0"]).is_err());
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--memory-limit-mb", "lots"]).is_err());
        assert!(parse(&["--admin-listen", "off", "--listen", "127.0.0.1:0"]).is_ok());
        assert!(parse(&["--advertise", "10.0.0.1:11211"]).is_err());
        assert!(parse(&["--register", "route-lookup:7071"]).is_err());
        assert!(parse(&["--register", "http://r:7071", "--advertise", "10.0.0.1"]).is_err());
        assert!(parse(&["--register", "http://r:7071", "--advertise", "h:0"]).is_err());
        assert!(parse(&["--register", "http://r:7071", "--lease-ttl", "1"]).is_err());
        let r = parse(&["--register", "http://r:7071", "--advertise", "h:11211"]).unwrap();
        assert_eq!(r.register.unwrap().advertise.as_deref(), Some("h:11211"));
    }

    #[test]
    fn an_https_registry_is_verified_against_the_ca_file() {
        assert!(parse(&["--ca", "/x.pem"]).is_err(), "--ca needs --register");
        let r = parse(&["--register", "https://r:7071"]).unwrap();
        assert!(r.register.unwrap().ca.is_none(), "the system's CAs");
        let e = parse(&[
            "--register",
            "https://r:7071",
            "--ca",
            "/nonexistent/ca.pem",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--ca /nonexistent/ca.pem: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
        let path = std::env::temp_dir().join(format!("cache-node-ca-{}", std::process::id()));
        let (cert, _) = common::tls::self_signed(&["r"]).unwrap();
        std::fs::write(&path, cert).unwrap();
        let r = parse(&[
            "--register",
            "https://r:7071",
            "--ca",
            path.to_str().unwrap(),
        ])
        .unwrap();
        assert!(r.register.unwrap().ca.is_some());
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_closed_cache_needs_a_usable_auth_file() {
        let c = parse(&[]).unwrap();
        assert!(c.flush_enabled && c.auth.is_none());
        assert!(!parse(&["--disable-flush-all"]).unwrap().flush_enabled);
        let e = parse(&["--auth-file", "/nonexistent/cache-auth"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--auth-file /nonexistent/cache-auth: cannot read it: No such file or directory (os error 2)"
        );
        let path = std::env::temp_dir().join(format!("cache-config-auth-{}", std::process::id()));
        std::fs::write(&path, "proxy:s3cret\n").unwrap();
        let c = parse(&["--auth-file", path.to_str().unwrap()]).unwrap();
        assert!(c.auth.unwrap().check(b"proxy", b"s3cret"));
        std::fs::write(&path, "proxy s3cret\n").unwrap();
        let e = parse(&["--auth-file", path.to_str().unwrap()]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("line 1: not user:password (no ':')"),
            "{e}"
        );
        let _ = std::fs::remove_file(&path);
    }
}
