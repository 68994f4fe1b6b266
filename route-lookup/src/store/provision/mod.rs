//! Provisioning: domains, servers, accounts, aliases and the global config, read and
//! written as Zimbra-named attributes.
//!
//! Every entry is read into an attribute map, changed there by the same rules for every
//! kind (replace, `+attr` add, `-attr` remove; single-valued attributes take one value,
//! an empty value clears), validated, and written back in one transaction.

mod accounts;
mod attrs;
mod config;
mod domains;
mod proxy_urls;
mod servers;

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;

pub use attrs::{split_address, valid_domain};

use attrs::apply;

use crate::store::{normalize, Store, StoreError};

/// Which kind of entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// An account.
    Account,
    /// A domain.
    Domain,
    /// A server.
    Server,
    /// The global config.
    Config,
}

/// How a change applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// `attr value`: the value replaces (for multi-valued attributes, all `attr value`
    /// pairs of one command together form the new list).
    Replace,
    /// `+attr value`: add one value.
    Add,
    /// `-attr value`: remove one value.
    Remove,
}

/// One `attr value` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Attribute name (matched case-insensitively, as LDAP does).
    pub name: String,
    /// The value.
    pub value: String,
    /// How it applies.
    pub op: ChangeOp,
}

/// An entry as zmprov shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Name (empty for the global config).
    pub name: String,
    /// zimbraId (empty for the global config).
    pub id: String,
    /// Attributes, sorted by name.
    pub attrs: BTreeMap<String, Vec<String>>,
}

impl Store {
    async fn extras(
        client: &impl GenericClient,
        id: &str,
        attrs: &mut BTreeMap<String, Vec<String>>,
    ) -> Result<(), StoreError> {
        let rows = client
            .query(
                "SELECT name, value FROM extra_attrs WHERE entry_id = $1 ORDER BY name, value",
                &[&id],
            )
            .await?;
        for row in rows {
            attrs.entry(row.get(0)).or_default().push(row.get(1));
        }
        Ok(())
    }

    async fn write_extras(
        client: &impl GenericClient,
        kind: EntryKind,
        id: &str,
        attrs: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), StoreError> {
        client
            .execute("DELETE FROM extra_attrs WHERE entry_id = $1", &[&id])
            .await?;
        for (name, values) in attrs
            .iter()
            .filter(|(n, _)| attrs::extra_names(kind).contains(&n.as_str()))
        {
            for value in values {
                client
                    .execute(
                        "INSERT INTO extra_attrs (entry_id, name, value) VALUES ($1, $2, $3)",
                        &[&id, name, value],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn names(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<String>, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let rows = client.query(sql, params).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    async fn read_entry(
        kind: EntryKind,
        client: &impl GenericClient,
        name: &str,
    ) -> Result<Entry, StoreError> {
        match kind {
            EntryKind::Account => Self::read_account(client, name).await,
            EntryKind::Domain => Self::read_domain(client, name).await,
            EntryKind::Server => Self::read_server(client, name).await,
            EntryKind::Config => Self::read_config(client).await,
        }
    }

    async fn write_entry(
        kind: EntryKind,
        client: &impl GenericClient,
        e: &Entry,
    ) -> Result<(), StoreError> {
        match kind {
            EntryKind::Account => Self::write_account(client, e).await,
            EntryKind::Domain => Self::write_domain(client, e).await,
            EntryKind::Server => Self::write_server(client, e).await,
            EntryKind::Config => Self::write_config(client, e).await,
        }
    }

    /// createDomain / createServer: the named row, then its attributes, in one transaction.
    /// (Accounts have [`Store::create_account`].)
    pub async fn create(
        &self,
        kind: EntryKind,
        name: &str,
        changes: &[Change],
    ) -> Result<Entry, StoreError> {
        let (insert, noun) = match kind {
            EntryKind::Domain => (
                "INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                "domain",
            ),
            EntryKind::Server => (
                "INSERT INTO servers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                "server",
            ),
            _ => return Err(StoreError::Invalid("not a named entry kind".into())),
        };
        let name = normalize(name);
        if !valid_domain(&name) {
            return Err(StoreError::Invalid(format!("invalid {noun} name: {name}")));
        }
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if tx.execute(insert, &[&name]).await? == 0 {
                return Err(StoreError::Exists { kind: noun, name });
            }
            let mut e = Self::read_entry(kind, &tx, &name).await?;
            apply(kind, &mut e.attrs, changes)?;
            Self::write_entry(kind, &tx, &e).await?;
            let e = Self::read_entry(kind, &tx, &name).await?;
            tx.commit().await?;
            Ok(e)
        })
        .await
    }

    /// modifyAccount / modifyDomain / modifyServer / modifyConfig (`name` ignored): read,
    /// change, write and re-read in one transaction. For an account, `password_hash`
    /// `Some(h)` also sets (or with `None` inside, clears) the password. Returns the entry
    /// before and after.
    pub async fn modify(
        &self,
        kind: EntryKind,
        name: &str,
        changes: &[Change],
        password_hash: Option<Option<String>>,
    ) -> Result<(Entry, Entry), StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if kind == EntryKind::Config {
                tx.execute("LOCK TABLE config IN EXCLUSIVE MODE", &[])
                    .await?;
            }
            let before = Self::read_entry(kind, &tx, name).await?;
            let mut e = before.clone();
            apply(kind, &mut e.attrs, changes)?;
            Self::write_entry(kind, &tx, &e).await?;
            if let (EntryKind::Account, Some(hash)) = (kind, password_hash) {
                tx.execute(
                    "UPDATE accounts SET password_hash = $2 WHERE id = $1",
                    &[&e.id, &hash],
                )
                .await?;
            }
            let after = Self::read_entry(kind, &tx, &e.id).await?;
            tx.commit().await?;
            Ok((before, after))
        })
        .await
    }

    /// getAccount (by primary name, alias or id) / getDomain / getServer (by name or id).
    pub async fn get(&self, kind: EntryKind, name: &str) -> Result<Entry, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            Self::read_entry(kind, &client, name).await
        })
        .await
    }
}
