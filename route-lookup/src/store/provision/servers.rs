//! Servers: mailbox, lookup, MTA-auth and memcached hosts with their ports.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;

use super::attrs::{bool_of, bool_text, port_of, single};
use super::{Entry, EntryKind};
use crate::store::{normalize, Store, StoreError};

impl Store {
    pub(super) async fn read_server(
        client: &impl GenericClient,
        name: &str,
    ) -> Result<Entry, StoreError> {
        let key = normalize(name);
        let row = client
            .query_opt(
                "SELECT id, name, service_address, services, imap_port, imaps_port, pop3_port,
                        pop3s_port, memcached_port, extension_port, mta_auth_port,
                        lookup_target, mta_auth_target
                   FROM servers WHERE name = $1 OR id = $1",
                &[&key],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "server",
                name: name.to_string(),
            })?;
        let mut e = Entry {
            id: row.get(0),
            name: row.get(1),
            attrs: BTreeMap::new(),
        };
        let a = &mut e.attrs;
        a.insert("zimbraId".into(), vec![e.id.clone()]);
        a.insert("cn".into(), vec![e.name.clone()]);
        a.insert("zimbraServiceHostname".into(), vec![e.name.clone()]);
        if let Some(addr) = row.get::<_, Option<String>>(2) {
            a.insert("serviceAddress".into(), vec![addr]);
        }
        let services: Vec<String> = row.get(3);
        if !services.is_empty() {
            a.insert("zimbraServiceEnabled".into(), services);
        }
        for (i, attr) in [
            "zimbraImapBindPort",
            "zimbraImapSSLBindPort",
            "zimbraPop3BindPort",
            "zimbraPop3SSLBindPort",
            "zimbraMemcachedBindPort",
            "zimbraExtensionBindPort",
            "zimbraMtaAuthPort",
        ]
        .into_iter()
        .enumerate()
        {
            a.insert(attr.into(), vec![row.get::<_, i32>(4 + i).to_string()]);
        }
        a.insert(
            "zimbraReverseProxyLookupTarget".into(),
            vec![bool_text(row.get(11))],
        );
        a.insert("zimbraMtaAuthTarget".into(), vec![bool_text(row.get(12))]);
        let id = e.id.clone();
        Self::extras(client, &id, &mut e.attrs).await?;
        Ok(e)
    }

    pub(super) async fn write_server(
        client: &impl GenericClient,
        e: &Entry,
    ) -> Result<(), StoreError> {
        let a = &e.attrs;
        let services = a.get("zimbraServiceEnabled").cloned().unwrap_or_default();
        client
            .execute(
                "UPDATE servers SET service_address = $2, services = $3, imap_port = $4,
                        imaps_port = $5, pop3_port = $6, pop3s_port = $7, memcached_port = $8,
                        extension_port = $9, mta_auth_port = $10, lookup_target = $11,
                        mta_auth_target = $12
                  WHERE id = $1",
                &[
                    &e.id,
                    &single(a, "serviceAddress"),
                    &services,
                    &port_of(a, "zimbraImapBindPort", 7143),
                    &port_of(a, "zimbraImapSSLBindPort", 7993),
                    &port_of(a, "zimbraPop3BindPort", 7110),
                    &port_of(a, "zimbraPop3SSLBindPort", 7995),
                    &port_of(a, "zimbraMemcachedBindPort", 11211),
                    &port_of(a, "zimbraExtensionBindPort", 7072),
                    &port_of(a, "zimbraMtaAuthPort", 7072),
                    &bool_of(a, "zimbraReverseProxyLookupTarget"),
                    &bool_of(a, "zimbraMtaAuthTarget"),
                ],
            )
            .await?;
        Self::write_extras(client, EntryKind::Server, &e.id, &e.attrs).await
    }

    /// deleteServer.
    pub async fn delete_server(&self, name: &str) -> Result<(), StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let e = Self::read_server(&tx, name).await?;
            tx.execute("DELETE FROM extra_attrs WHERE entry_id = $1", &[&e.id])
                .await?;
            tx.execute("DELETE FROM servers WHERE id = $1", &[&e.id])
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// getAllServers, optionally only those with `service` enabled.
    pub async fn all_servers(&self, service: &str) -> Result<Vec<String>, StoreError> {
        self.names(
            "SELECT name FROM servers WHERE $1 = '' OR $1 = ANY(services) ORDER BY name",
            &[&service],
        )
        .await
    }
}
