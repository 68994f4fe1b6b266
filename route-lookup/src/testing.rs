//! Test harness shared by this crate's tests and those of zmprov, the proxy and the
//! mailbox-stub: a throwaway database on the real PostgreSQL, an in-process route-lookup on
//! ephemeral ports, and its gRPC clients with the test token.
//!
//! The server is `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! There is no fallback: a test that needs PostgreSQL fails when it is not there.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use common::shutdown::Shutdown;
use proto::v1::attr_change::Op;
use proto::v1::provisioning_client::ProvisioningClient;
use proto::v1::registry_client::RegistryClient;
use proto::v1::AttrChange;
use tokio_postgres::NoTls;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::config::Config;
use crate::server::RouteLookup;

/// The admin URL tests connect to.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Creates a uniquely named database.
    pub async fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "rl_test_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_url();
        let (client, conn) = tokio_postgres::connect(&admin, NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required at {admin}: {e}"));
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        drop(client);
        let _ = task.await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_url(), NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// The admin token test instances require.
pub const TOKEN: &str = "test-admin-token";

/// A gRPC channel whose calls carry the test token.
pub type Authorized = InterceptedService<Channel, fn(tonic::Request<()>) -> BearerResult>;

/// What [`bearer`] returns.
pub type BearerResult = Result<tonic::Request<()>, tonic::Status>;

/// Puts the test token on a gRPC call.
pub fn bearer(mut request: tonic::Request<()>) -> BearerResult {
    let value = format!("Bearer {TOKEN}")
        .parse()
        .expect("a token header value");
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// Attribute changes that set each `(name, value)`, for the provisioning calls.
pub fn set_attrs(pairs: &[(&str, &str)]) -> Vec<AttrChange> {
    pairs
        .iter()
        .map(|(name, value)| AttrChange {
            name: name.to_string(),
            value: value.to_string(),
            op: Op::Replace.into(),
        })
        .collect()
}

/// An in-process route-lookup over its own database.
#[derive(Debug)]
pub struct Harness {
    /// The HTTP listener.
    pub http: SocketAddr,
    /// The gRPC listener.
    pub grpc: SocketAddr,
    /// The HTTPS listener, when `extra` turned it on.
    pub https: Option<SocketAddr>,
    /// Whether gRPC is on TLS (`extra` gave --tls-cert).
    pub tls: bool,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The database (dropped last).
    pub db: TestDb,
}

impl Harness {
    /// Starts route-lookup with `extra` flags on top of ephemeral listeners, the test
    /// token and `--auth-wait 10`. It registers no lookup URL of its own unless `extra`
    /// has `--advertise`, so tests see only the registrations they make.
    pub async fn start(extra: &[&str]) -> Self {
        let db = TestDb::create().await;
        let mut args = vec![
            "route-lookup",
            "--database-url",
            &db.url,
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
            "--grace-period",
            "1",
        ];
        if !extra.contains(&"--advertise") {
            args.extend_from_slice(&["--advertise", "off"]);
        }
        args.extend_from_slice(extra);
        let config = Config::try_parse_from(args).expect("flags");
        // Process-wide, as in main: a harness without the flag leaves the credentials
        // another test's harness set.
        crate::purge::authenticate_with(config.memcached_auth_file.as_deref())
            .expect("usable --memcached-auth-file");
        let config = config.validate().expect("valid config");
        let tls = config.certs.is_some();
        let service = RouteLookup::bind(config, Duration::from_secs(10))
            .await
            .expect("route-lookup starts");
        let http = service.http_addr().expect("http on");
        let grpc = service.grpc_addr().expect("grpc on");
        let https = service.https_addr();
        let (shutdown, watch) = Shutdown::new();
        let task = tokio::spawn(service.run(watch));
        Self {
            http,
            grpc,
            https,
            tls,
            shutdown,
            task: Some(task),
            db,
        }
    }

    /// The gRPC URL (`https://localhost:PORT` on TLS: test certificates name `localhost`).
    pub fn grpc_url(&self) -> String {
        match self.tls {
            true => format!("https://localhost:{}", self.grpc.port()),
            false => format!("http://{}", self.grpc),
        }
    }

    /// A channel to the plain gRPC listener (a TLS harness's callers bring their own CA).
    pub async fn channel(&self) -> Channel {
        assert!(!self.tls, "Harness::channel is for a plain gRPC listener");
        Channel::from_shared(self.grpc_url())
            .expect("a gRPC URL")
            .connect()
            .await
            .expect("route-lookup's gRPC listener answers")
    }

    /// The provisioning API, with the test token.
    pub async fn provisioning(&self) -> ProvisioningClient<Authorized> {
        ProvisioningClient::with_interceptor(self.channel().await, bearer as fn(_) -> _)
    }

    /// The registry API, with the test token.
    pub async fn registry(&self) -> RegistryClient<Authorized> {
        RegistryClient::with_interceptor(self.channel().await, bearer as fn(_) -> _)
    }

    /// Stops the service and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
