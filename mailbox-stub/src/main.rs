//! `mailbox-stub`: parse flags, set up logging, serve until SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use common::shutdown::{Shutdown, Signals};
use mailbox_stub::auth::DirectoryAuth;
use mailbox_stub::config::Config;
use mailbox_stub::env::Timeouts;
use mailbox_stub::server::{Kind, MailboxStub};

#[tokio::main]
async fn main() {
    let config: Config = common::exit::parse_or_exit("mailbox-stub");
    let runtime = config
        .validate()
        .unwrap_or_else(|reason| common::exit::config_error("mailbox-stub", reason));
    common::telemetry::init_with("info", config.log_format);
    let signals = Signals::install();
    let auth = DirectoryAuth::new(
        &config.directory,
        runtime.admin_token.as_deref(),
        runtime.ca.as_ref(),
        Duration::from_secs(config.auth_cache_ttl),
    )
    .unwrap_or_else(|reason| common::exit::config_error("mailbox-stub", reason));
    let mut listen = Vec::new();
    for (kind, addr) in [
        (Kind::Imap, config.imap_listen),
        (Kind::Pop3, config.pop3_listen),
        (Kind::Imaps, config.imaps_listen),
        (Kind::Pop3s, config.pop3s_listen),
    ] {
        if let Some(a) = addr.addr() {
            listen.push((kind, a));
        }
    }
    let mut builder = MailboxStub::builder(&config.hostname)
        .messages(config.messages)
        .authenticator(Arc::new(auth))
        .listen(listen)
        .trusted(runtime.trusted)
        .proxy_protocol(config.proxy_protocol)
        .timeouts(Timeouts {
            preauth: runtime.preauth,
            idle: runtime.idle,
            handshake: Duration::from_secs(10),
        })
        .max_bad_commands(config.max_bad_commands)
        .max_connections(config.max_connections)
        .grace(Duration::from_secs(config.grace_period));
    if let Some(tls) = runtime.tls {
        builder = builder.tls(tls);
    }
    if let Some(introspector) = runtime.oauth {
        tracing::info!(url = %introspector.url(), "XOAUTH2 and OAUTHBEARER offered");
        builder = builder.oauth(introspector);
    }
    if let Some(certs) = &runtime.certs {
        certs.follow_reloads();
    }
    let (shutdown, watch) = Shutdown::new();
    let stub = match builder.bind(watch.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %common::exit::chain(&e), "cannot start");
            std::process::exit(1);
        }
    };
    tracing::info!(hostname = %config.hostname, "mailbox-stub ready");
    let server = tokio::spawn(stub.run(watch));
    let name = signals.recv().await;
    tracing::info!(signal = name, "shutting down");
    shutdown.trigger();
    let code = match server.await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "server task failed");
            1
        }
    };
    std::process::exit(code);
}
