//! Account events for watchers (the Registry's `WatchAccounts`): one poller per process
//! reads new rows of the database's event log every [`POLL_INTERVAL`] (so events written
//! by any instance reach every instance's watchers) into a bounded in-memory ring, and
//! wakes the watchers. A watcher that asks for events older than the ring holds (it was
//! away too long, or this process started after them) is told to forget everything: a
//! reset, never a silent gap.
//!
//! Events are read in sequence order; an event whose number was taken before another's
//! but committed after that one was read would be missed. Each is one INSERT in its own
//! transaction, so the window is that of two changes to accounts committing within the
//! same instant on two instances.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::shutdown::ShutdownWatch;
use tokio::sync::watch;

use crate::store::{Store, StoredEvent};

/// How often the poller reads the log.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Events held for watchers.
pub const RING: usize = 10_000;
/// How often old rows are deleted from the log.
const PRUNE_EVERY: u32 = 120;

#[derive(Debug, Default)]
struct Ring {
    /// Every event numbered above this is held (until it falls off the front).
    from: Option<u64>,
    events: VecDeque<StoredEvent>,
}

/// What a watcher gets for its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// The events after the cursor, oldest first (maybe none).
    Events(Vec<StoredEvent>),
    /// Events after the cursor are no longer known: forget everything, go on from `latest`.
    Gap {
        /// The newest event number.
        latest: u64,
    },
}

/// The shared ring and the wake-up signal.
#[derive(Debug)]
pub struct AccountEvents {
    ring: Mutex<Ring>,
    latest: watch::Sender<Option<u64>>,
}

impl Default for AccountEvents {
    fn default() -> Self {
        Self {
            ring: Mutex::new(Ring::default()),
            latest: watch::channel(None).0,
        }
    }
}

impl AccountEvents {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes when new events arrive; `None` until the poller has read the log once.
    pub fn subscribe(&self) -> watch::Receiver<Option<u64>> {
        self.latest.subscribe()
    }

    /// The newest event number, once known.
    pub fn latest(&self) -> Option<u64> {
        *self.latest.borrow()
    }

    /// The events after `after`. Call only once [`Self::latest`] is known.
    pub fn since(&self, after: u64) -> Since {
        let ring = self.ring();
        let latest = self.latest().unwrap_or(0);
        let from = ring.from.unwrap_or(0);
        if after < from || after > latest {
            return Since::Gap { latest };
        }
        Since::Events(
            ring.events
                .iter()
                .filter(|e| e.seq > after)
                .cloned()
                .collect(),
        )
    }

    /// The poller's start: events up to `latest` happened before this process knew.
    fn start(&self, latest: u64) {
        self.ring().from = Some(latest);
        self.latest.send_replace(Some(latest));
    }

    fn push(&self, events: Vec<StoredEvent>) {
        let Some(last) = events.last().map(|e| e.seq) else {
            return;
        };
        {
            let mut ring = self.ring();
            ring.events.extend(events);
            while ring.events.len() > RING {
                if let Some(old) = ring.events.pop_front() {
                    ring.from = Some(old.seq);
                }
            }
        }
        self.latest.send_replace(Some(last));
    }
}

/// Reads the log into `events` until `shutdown`; deletes old rows now and then.
pub async fn poll(store: Store, events: Arc<AccountEvents>, shutdown: ShutdownWatch) {
    let mut cursor = loop {
        match store.latest_account_event().await {
            Ok(latest) => break latest,
            Err(e) => {
                tracing::warn!(error = %common::exit::chain(&e), "account events: cannot read the log; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    };
    events.start(cursor);
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        match store.account_events_after(cursor, 1000).await {
            Ok(new) => {
                if let Some(last) = new.last() {
                    cursor = last.seq;
                    events.push(new);
                }
            }
            Err(e) => {
                tracing::debug!(error = %common::exit::chain(&e), "account events: cannot read the log");
            }
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(PRUNE_EVERY) {
            if let Err(e) = store.prune_account_events().await {
                tracing::debug!(error = %common::exit::chain(&e), "account events: cannot prune");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventKind;

    fn ev(seq: u64) -> StoredEvent {
        StoredEvent {
            seq,
            kind: EventKind::Moved,
            addresses: vec![format!("u{seq}@example.com")],
            value: "mbx2".into(),
        }
    }

    fn seqs(s: Since) -> Vec<u64> {
        match s {
            Since::Events(e) => e.iter().map(|e| e.seq).collect(),
            Since::Gap { latest } => panic!("gap, latest {latest}"),
        }
    }

    #[test]
    fn watchers_get_what_follows_their_cursor_or_a_gap() {
        let hub = AccountEvents::default();
        assert_eq!(hub.latest(), None);
        hub.start(10);
        assert_eq!(seqs(hub.since(10)), Vec::<u64>::new());
        hub.push(vec![ev(11), ev(13)]);
        assert_eq!(hub.latest(), Some(13));
        assert_eq!(seqs(hub.since(10)), [11, 13]);
        assert_eq!(seqs(hub.since(11)), [13]);
        assert_eq!(seqs(hub.since(13)), Vec::<u64>::new());
        // Before this process started, or beyond the newest (a recreated database): gap.
        assert_eq!(hub.since(9), Since::Gap { latest: 13 });
        assert_eq!(hub.since(14), Since::Gap { latest: 13 });
    }

    #[test]
    fn the_ring_is_bounded_and_what_falls_off_is_a_gap() {
        let hub = AccountEvents::default();
        hub.start(0);
        hub.push((1..=(RING as u64 + 5)).map(ev).collect());
        assert_eq!(hub.ring().events.len(), RING);
        assert_eq!(
            hub.since(4),
            Since::Gap {
                latest: RING as u64 + 5
            }
        );
        assert_eq!(seqs(hub.since(5)).len(), RING);
    }
}
