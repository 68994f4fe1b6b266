//! Following route-lookup's account events (with `--directory`): an account that moved,
//! changed status or was deleted loses its remembered stale routes, and its relayed
//! sessions end unless it is merely active again. A reset (events were missed) forgets
//! every stale route. The watch resumes after the last event seen, so a reconnect loses
//! nothing the server still holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::shutdown::ShutdownWatch;
use proto::v1::account_event::Kind;
use proto::v1::registry_client::RegistryClient;
use proto::v1::{AccountEvent, WatchAccountsRequest};

use crate::sessions::Sessions;
use crate::stale::StaleRoutes;

/// What the events act on.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Routes kept for when the route source is down.
    pub stale: Option<Arc<StaleRoutes>>,
    /// Relayed sessions.
    pub sessions: Arc<Sessions>,
    /// Events applied.
    pub applied: Arc<AtomicU64>,
}

impl Targets {
    /// Applies one event.
    pub fn apply(&self, e: &AccountEvent) {
        self.applied.fetch_add(1, Ordering::Relaxed);
        if e.kind() == Kind::Reset {
            if let Some(stale) = &self.stale {
                stale.clear();
            }
            tracing::info!(
                seq = e.seq,
                "account events were missed; forgot every stale route"
            );
            return;
        }
        let Some(account) = e.addresses.first() else {
            return;
        };
        // A kick changes nothing about where the account lives.
        if let (Some(stale), false) = (&self.stale, e.kind() == Kind::Kicked) {
            for address in &e.addresses {
                stale.forget_account(address);
            }
        }
        let ended = match e.kind() {
            Kind::Moved | Kind::Deleted => self.sessions.end_account(account),
            Kind::Status if e.value != "active" => self.sessions.end_account(account),
            Kind::Kicked => self
                .sessions
                .kick(&crate::sessions::Filter::User(account.clone())),
            Kind::Status | Kind::Reset => 0,
        };
        tracing::info!(
            account = %account,
            event = e.kind().as_str_name(),
            value = %e.value,
            sessions_ended = ended,
            "account changed"
        );
    }
}

/// Follows the events until `shutdown`, reconnecting with backoff.
pub async fn follow(
    url: crate::membership::DirectoryUrl,
    token: Option<String>,
    targets: Targets,
    shutdown: ShutdownWatch,
) {
    let mut after = 0u64;
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return,
            r = watch_once(&url, token.as_deref(), &targets, &mut after) => match r {
                Ok(()) => tracing::warn!("account watch ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, ?backoff, "account watch failed; retrying"),
            }
        }
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Why one watch stream ended.
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("--directory: {0}")]
    Client(#[from] proto::ClientError),
    #[error("route-lookup answered {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
}

async fn watch_once(
    url: &crate::membership::DirectoryUrl,
    token: Option<&str>,
    targets: &Targets,
    after: &mut u64,
) -> Result<(), WatchError> {
    let (endpoint, token) = url.endpoint(token)?;
    let channel = endpoint.connect().await?;
    let mut client = RegistryClient::with_interceptor(channel, token);
    let mut stream = client
        .watch_accounts(WatchAccountsRequest { after: *after })
        .await?
        .into_inner();
    while let Some(e) = stream.message().await? {
        targets.apply(&e);
        *after = e.seq;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn event(kind: Kind, addresses: &[&str], value: &str) -> AccountEvent {
        AccountEvent {
            seq: 1,
            kind: kind.into(),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            value: value.into(),
        }
    }

    #[tokio::test]
    async fn events_forget_routes_and_end_sessions_as_they_should() {
        let stale = Arc::new(StaleRoutes::new(10, Duration::from_secs(60)));
        let backend: SocketAddr = "10.0.0.1:7143".parse().unwrap();
        let t = Targets {
            stale: Some(stale.clone()),
            sessions: Arc::new(Sessions::default()),
            applied: Arc::default(),
        };
        stale.remember("imap", "ann", backend, "ann@example.com");
        stale.remember("imap", "bob@example.com", backend, "bob@example.com");
        let session = |user: &str| crate::sessions::SessionInfo {
            user: user.into(),
            client: "192.0.2.9:5000".parse().unwrap(),
            listener: "imap",
            backend,
            tls: None,
        };
        let mut ann = t.sessions.register(session("ann@example.com"));
        let mut bob = t.sessions.register(session("bob@example.com"));

        // Active again: routes are re-learnt, sessions go on.
        t.apply(&event(Kind::Status, &["ann@example.com"], "active"));
        assert!(ann.end.try_recv().is_err());
        assert!(stale.recall("imap", "ann").is_none());

        t.apply(&event(
            Kind::Moved,
            &["bob@example.com", "support@example.com"],
            "mbx2.example.com",
        ));
        assert!(
            (&mut bob.end).await.is_ok(),
            "a moved account's session ends"
        );
        assert!(stale.recall("imap", "bob@example.com").is_none());

        t.apply(&event(Kind::Status, &["ann@example.com"], "lockout"));
        assert!(
            (&mut ann.end).await.is_ok(),
            "a locked-out account's session ends"
        );

        // An admin's kick ends the sessions (told so) and keeps the route.
        stale.remember("imap", "carl", backend, "carl@example.com");
        let mut carl = t.sessions.register(session("carl@example.com"));
        t.apply(&event(Kind::Kicked, &["carl@example.com"], ""));
        assert_eq!((&mut carl.end).await, Ok(crate::sessions::End::Kicked));
        assert!(stale.recall("imap", "carl").is_some());

        t.apply(&event(Kind::Reset, &[], ""));
        assert!(stale.is_empty(), "a reset forgets every stale route");
        assert_eq!(t.applied.load(Ordering::Relaxed), 5);
    }
}
