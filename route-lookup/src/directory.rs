//! The in-memory [`Directory`] snapshot (default domain, virtual IPs, alias domains,
//! servers) that every lookup uses, as Zimbra's handler caches domains and servers.
//!
//! It is re-read every [`REFRESH`] and at once after any provisioning change made through
//! this instance, so a change is visible here immediately and at other instances sharing
//! the database within [`REFRESH`]. When the database is down the last snapshot stays.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::shutdown::ShutdownWatch;
use tokio::sync::Notify;

use crate::store::{Directory, Store, StoreError};

/// How often the snapshot is re-read.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The shared snapshot.
#[derive(Debug, Default)]
pub struct DirectoryCache {
    current: RwLock<Arc<Directory>>,
    changed: Notify,
}

impl DirectoryCache {
    /// Reads the first snapshot.
    pub async fn load(store: &Store) -> Result<Arc<Self>, StoreError> {
        let dir = store.directory().await?;
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(dir)),
            changed: Notify::new(),
        }))
    }

    /// The current snapshot.
    pub fn get(&self) -> Arc<Directory> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Asks the refresher to re-read soon, without waiting for it.
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    /// Re-reads the snapshot now (after a provisioning change).
    pub async fn refresh(&self, store: &Store) {
        match store.directory().await {
            Ok(dir) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(dir);
            }
            Err(e) => {
                tracing::warn!(error = %common::exit::chain(&e), "cannot re-read the directory; keeping the last snapshot");
            }
        }
    }

    /// Re-reads the snapshot every [`REFRESH`] until `shutdown`.
    pub async fn run_refresher(self: Arc<Self>, store: Store, shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.triggered() => return,
                _ = tokio::time::sleep(REFRESH) => {}
                _ = self.changed.notified() => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            self.refresh(&store).await;
        }
    }
}
