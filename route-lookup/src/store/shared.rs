//! The lookup path's connections: a few long-lived clients shared by every request.
//! Concurrent queries on one tokio-postgres client are pipelined (written together,
//! answered in order), which costs PostgreSQL far fewer wakeups and round trips than one
//! exclusive pooled connection per request. A client found closed (PostgreSQL restarted)
//! is replaced on the next use; statements are prepared once per connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio_postgres::{Client, NoTls, Statement};

use super::StoreError;

/// One connection and its prepared lookup statements.
pub(super) struct Hot {
    pub(super) client: Client,
    pub(super) by_name: Statement,
    pub(super) by_two: Statement,
    pub(super) server_by_name: Statement,
}

/// One slot: its current connection, and a lock so that only one caller reconnects.
type Slot = (RwLock<Option<Arc<Hot>>>, tokio::sync::Mutex<()>);

/// The shared clients.
pub(super) struct SharedClients {
    slots: Vec<Slot>,
    next: AtomicUsize,
    pg: tokio_postgres::Config,
}

impl SharedClients {
    pub(super) fn new(pg: tokio_postgres::Config, n: usize) -> Self {
        Self {
            slots: (0..n.max(1))
                .map(|_| (RwLock::new(None), tokio::sync::Mutex::new(())))
                .collect(),
            next: AtomicUsize::new(0),
            pg,
        }
    }

    fn current(&self, i: usize) -> Option<Arc<Hot>> {
        self.slots[i]
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|h| !h.client.is_closed())
            .cloned()
    }

    /// A live client, round-robin; connects (once, however many callers wait) when the
    /// slot is empty or its connection died.
    pub(super) async fn get(&self) -> Result<(usize, Arc<Hot>), StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Some(h) = self.current(i) {
            return Ok((i, h));
        }
        let _connecting = self.slots[i].1.lock().await;
        if let Some(h) = self.current(i) {
            return Ok((i, h));
        }
        let (client, connection) = self.pg.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %common::exit::chain(&e), "lookup connection closed");
            }
        });
        let hot = Arc::new(Hot {
            by_name: client
                .prepare(super::route::ACCOUNT_BY_NAME_THEN_ALIAS)
                .await?,
            by_two: client
                .prepare(super::route::ACCOUNT_BY_TWO_ADDRESSES)
                .await?,
            server_by_name: client.prepare(super::route::SERVER_BY_NAME).await?,
            client,
        });
        *self.slots[i]
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hot.clone());
        Ok((i, hot))
    }

    /// Drops slot `i`'s connection after it stopped answering (a silent network failure
    /// never marks a client closed); the next use connects afresh.
    pub(super) fn reset(&self, i: usize) {
        self.slots[i]
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}
