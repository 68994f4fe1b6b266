//! Domains and alias domains.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;

use super::attrs::single;
use super::{Entry, EntryKind};
use crate::store::{normalize, Store, StoreError};

impl Store {
    pub(super) async fn read_domain(
        client: &impl GenericClient,
        name: &str,
    ) -> Result<Entry, StoreError> {
        let key = normalize(name);
        let row = client
            .query_opt(
                "SELECT d.id, d.name, t.id, d.virtual_ips FROM domains d
                 LEFT JOIN domains t ON t.id = d.alias_target
                 WHERE d.name = $1 OR d.id = $1",
                &[&key],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "domain",
                name: name.to_string(),
            })?;
        let mut e = Entry {
            id: row.get(0),
            name: row.get(1),
            attrs: BTreeMap::new(),
        };
        let target: Option<String> = row.get(2);
        e.attrs.insert("zimbraId".into(), vec![e.id.clone()]);
        e.attrs
            .insert("zimbraDomainName".into(), vec![e.name.clone()]);
        e.attrs.insert(
            "zimbraDomainType".into(),
            vec![if target.is_some() { "alias" } else { "local" }.into()],
        );
        if let Some(t) = target {
            e.attrs.insert("zimbraDomainAliasTargetId".into(), vec![t]);
        }
        let ips: Vec<String> = row.get(3);
        if !ips.is_empty() {
            e.attrs.insert("zimbraVirtualIPAddress".into(), ips);
        }
        Self::extras(client, &e.id, &mut e.attrs).await?;
        Ok(e)
    }

    pub(super) async fn write_domain(
        client: &impl GenericClient,
        e: &Entry,
    ) -> Result<(), StoreError> {
        let target = match single(&e.attrs, "zimbraDomainAliasTargetId") {
            Some(t) => {
                let key = normalize(t);
                let row = client
                    .query_opt(
                        "SELECT id, alias_target IS NOT NULL FROM domains WHERE id = $1 OR name = $1",
                        &[&key],
                    )
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        kind: "domain",
                        name: t.to_string(),
                    })?;
                let id: String = row.get(0);
                if id == e.id || row.get::<_, bool>(1) {
                    return Err(StoreError::Invalid(format!(
                        "alias target must be a local domain other than {}",
                        e.name
                    )));
                }
                Some(id)
            }
            None => None,
        };
        let ips = e
            .attrs
            .get("zimbraVirtualIPAddress")
            .cloned()
            .unwrap_or_default();
        client
            .execute(
                "UPDATE domains SET alias_target = $2, virtual_ips = $3 WHERE id = $1",
                &[&e.id, &target, &ips],
            )
            .await?;
        Self::write_extras(client, EntryKind::Domain, &e.id, &e.attrs).await
    }

    /// deleteDomain: refused while accounts live in it.
    pub async fn delete_domain(&self, name: &str) -> Result<(), StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let e = Self::read_domain(&tx, name).await?;
            let n: i64 = tx
                .query_one(
                    "SELECT count(*) FROM accounts WHERE domain_id = $1",
                    &[&e.id],
                )
                .await?
                .get(0);
            if n > 0 {
                return Err(StoreError::Invalid(format!(
                    "domain not empty: {} ({n} accounts)",
                    e.name
                )));
            }
            tx.execute("DELETE FROM extra_attrs WHERE entry_id = $1", &[&e.id])
                .await?;
            tx.execute("DELETE FROM domains WHERE id = $1", &[&e.id])
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// getAllDomains.
    pub async fn all_domains(&self) -> Result<Vec<String>, StoreError> {
        self.names("SELECT name FROM domains ORDER BY name", &[])
            .await
    }
}
