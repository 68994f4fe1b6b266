//! The account event log: one row per change that makes a route to an account wrong
//! (moved, status changed, deleted), numbered by a sequence shared by every route-lookup
//! instance on the database.

use super::{Store, StoreError};

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// zimbraMailHost changed.
    Moved,
    /// zimbraAccountStatus changed.
    Status,
    /// The account was deleted.
    Deleted,
    /// An admin asked to end its sessions.
    Kicked,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Moved => "moved",
            Self::Status => "status",
            Self::Deleted => "deleted",
            Self::Kicked => "kicked",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "moved" => Some(Self::Moved),
            "status" => Some(Self::Status),
            "deleted" => Some(Self::Deleted),
            "kicked" => Some(Self::Kicked),
            _ => None,
        }
    }
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its number; later events have larger ones.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// The primary name, then the aliases.
    pub addresses: Vec<String>,
    /// The new status (Status) or mail host (Moved).
    pub value: String,
}

/// How long events are kept.
const RETENTION_SECS: f64 = 3600.0;

impl Store {
    /// Logs an event about the account with `addresses` (primary name first).
    pub async fn record_account_event(
        &self,
        kind: EventKind,
        addresses: &[String],
        value: &str,
    ) -> Result<u64, StoreError> {
        let addresses = addresses.to_vec();
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "INSERT INTO account_events (kind, addresses, value) VALUES ($1, $2, $3)
                     RETURNING seq",
                    &[&kind.as_str(), &addresses, &value],
                )
                .await?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
        .await
    }

    /// The newest event's number (0: none).
    pub async fn latest_account_event(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_one("SELECT coalesce(max(seq), 0) FROM account_events", &[])
                .await?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
        .await
    }

    /// Up to `limit` events after `after`, oldest first.
    pub async fn account_events_after(
        &self,
        after: u64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT seq, kind, addresses, value FROM account_events
                      WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&after, &limit],
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    Some(StoredEvent {
                        seq: u64::try_from(r.get::<_, i64>(0)).ok()?,
                        kind: EventKind::parse(r.get(1))?,
                        addresses: r.get(2),
                        value: r.get(3),
                    })
                })
                .collect())
        })
        .await
    }

    /// Deletes events older than [`RETENTION_SECS`].
    pub async fn prune_account_events(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let n = client
                .execute(
                    "DELETE FROM account_events WHERE at < now() - make_interval(secs => $1::float8)",
                    &[&RETENTION_SECS],
                )
                .await?;
            Ok(n)
        })
        .await
    }
}
