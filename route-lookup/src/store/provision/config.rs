//! The global config.

use deadpool_postgres::GenericClient;

use super::attrs::find_spec;
use super::{Entry, EntryKind};
use crate::store::{Store, StoreError};

impl Store {
    pub(super) async fn read_config(client: &impl GenericClient) -> Result<Entry, StoreError> {
        let rows = client
            .query("SELECT name, vals FROM config ORDER BY name", &[])
            .await?;
        let mut e = Entry::default();
        for row in rows {
            e.attrs.insert(row.get(0), row.get(1));
        }
        Ok(e)
    }

    /// Replaces the stored config with `e` (under the table lock the caller holds).
    pub(super) async fn write_config(
        client: &impl GenericClient,
        e: &Entry,
    ) -> Result<(), StoreError> {
        client.execute("DELETE FROM config", &[]).await?;
        for (name, vals) in &e.attrs {
            client
                .execute(
                    "INSERT INTO config (name, vals) VALUES ($1, $2)",
                    &[name, vals],
                )
                .await?;
        }
        Ok(())
    }

    /// getConfig (one attribute, or all).
    pub async fn get_config(&self, attr: &str) -> Result<Entry, StoreError> {
        let spec = if attr.is_empty() {
            None
        } else {
            Some(find_spec(EntryKind::Config, attr)?)
        };
        let mut e = self
            .bounded(async {
                let client = self.client().await?;
                Self::read_config(&client).await
            })
            .await?;
        if let Some(spec) = spec {
            e.attrs.retain(|k, _| k == spec.name);
        }
        Ok(e)
    }
}
