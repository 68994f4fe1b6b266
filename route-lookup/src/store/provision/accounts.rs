//! Accounts, their aliases and passwords.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;

use super::attrs::{apply, single, split_address};
use super::{Change, Entry, EntryKind};
use crate::store::{normalize, Store, StoreError};

impl Store {
    pub(super) async fn read_account(
        client: &impl GenericClient,
        name: &str,
    ) -> Result<Entry, StoreError> {
        let key = normalize(name);
        let row = client
            .query_opt(
                "SELECT acc.id, acc.name, acc.mail_host, acc.status,
                        to_char(acc.locked_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS.MS\"Z\"'),
                        array(SELECT to_char(f AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS.MS\"Z\"')
                                FROM unnest(acc.login_failures) f ORDER BY f)
                   FROM accounts acc
                  WHERE acc.id = (SELECT account_id FROM addresses WHERE address = $1)
                     OR acc.id = $1",
                &[&key],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "account",
                name: name.to_string(),
            })?;
        let mut e = Entry {
            id: row.get(0),
            name: row.get(1),
            attrs: BTreeMap::new(),
        };
        let aliases: Vec<String> = client
            .query(
                "SELECT address FROM addresses WHERE account_id = $1 AND NOT is_primary
                  ORDER BY address",
                &[&e.id],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let a = &mut e.attrs;
        a.insert("zimbraId".into(), vec![e.id.clone()]);
        a.insert("zimbraMailDeliveryAddress".into(), vec![e.name.clone()]);
        let local = e.name.split('@').next().unwrap_or_default().to_string();
        a.insert("uid".into(), vec![local]);
        let mut mail = vec![e.name.clone()];
        mail.extend(aliases.iter().cloned());
        a.insert("mail".into(), mail);
        if !aliases.is_empty() {
            a.insert("zimbraMailAlias".into(), aliases);
        }
        let host: String = row.get(2);
        if !host.is_empty() {
            a.insert("zimbraMailHost".into(), vec![host]);
        }
        a.insert("zimbraAccountStatus".into(), vec![row.get(3)]);
        if let Some(locked) = row.get::<_, Option<String>>(4) {
            a.insert("zimbraPasswordLockoutLockedTime".into(), vec![locked]);
        }
        let failures: Vec<String> = row.get(5);
        if !failures.is_empty() {
            a.insert("zimbraPasswordLockoutFailureTime".into(), failures);
        }
        let id = e.id.clone();
        Self::extras(client, &id, &mut e.attrs).await?;
        Ok(e)
    }

    pub(super) async fn write_account(
        client: &impl GenericClient,
        e: &Entry,
    ) -> Result<(), StoreError> {
        let a = &e.attrs;
        let host = single(a, "zimbraMailHost");
        if let Some(given) = host.filter(|h| !h.is_empty()) {
            Self::check_mail_host(client, &e.id, given).await?;
        }
        client
            .execute(
                // Leaving lockout (an admin's `ma … zimbraAccountStatus active`) forgets
                // the failures and the lock time, as Zimbra does.
                "UPDATE accounts SET mail_host = $2, status = $3,
                        login_failures = CASE WHEN status = 'lockout' AND $3 <> 'lockout'
                                              THEN '{}' ELSE login_failures END,
                        locked_at = CASE WHEN $3 = 'lockout' THEN locked_at END
                  WHERE id = $1",
                &[
                    &e.id,
                    &host.map(normalize).unwrap_or_default(),
                    &single(a, "zimbraAccountStatus").unwrap_or("active"),
                ],
            )
            .await?;
        Self::write_extras(client, EntryKind::Account, &e.id, &e.attrs).await
    }

    /// Refuses a zimbraMailHost that names no mailbox server, with Zimbra's messages
    /// (its MailHost attribute callback), when the value is being set or changed: an
    /// account keeps a host that was valid when it was set. An empty host is allowed,
    /// unlike in Zimbra: such an account routes nowhere.
    async fn check_mail_host(
        client: &impl GenericClient,
        account_id: &str,
        given: &str,
    ) -> Result<(), StoreError> {
        let host = normalize(given);
        let unchanged = client
            .query_opt(
                "SELECT 1 FROM accounts WHERE id = $1 AND mail_host = $2",
                &[&account_id, &host],
            )
            .await?
            .is_some();
        if unchanged {
            return Ok(());
        }
        // FOR SHARE: a concurrent deleteServer, or a modifyServer dropping the mailbox
        // service, waits for this transaction to end, so what was checked here is still
        // true when the account is written.
        let mailbox = client
            .query_opt(
                "SELECT 'mailbox' = ANY(services) FROM servers WHERE name = $1 FOR SHARE",
                &[&host],
            )
            .await?
            .map(|row| row.get::<_, bool>(0));
        let why = match mailbox {
            Some(true) => return Ok(()),
            Some(false) => "a valid server with the mailbox service enabled",
            None => "a valid server service hostname",
        };
        Err(StoreError::Invalid(format!(
            "specified zimbraMailHost does not correspond to {why}: {given}"
        )))
    }

    async fn local_domain_id(
        client: &impl GenericClient,
        domain: &str,
    ) -> Result<String, StoreError> {
        let row = client
            .query_opt(
                "SELECT id, alias_target IS NOT NULL FROM domains WHERE name = $1",
                &[&domain],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "domain",
                name: domain.to_string(),
            })?;
        if row.get::<_, bool>(1) {
            return Err(StoreError::Invalid(format!(
                "{domain} is an alias domain; addresses live in its target domain"
            )));
        }
        Ok(row.get(0))
    }

    /// createAccount; `password_hash` is already hashed (or `None`: no password).
    pub async fn create_account(
        &self,
        name: &str,
        password_hash: Option<String>,
        changes: &[Change],
    ) -> Result<Entry, StoreError> {
        let name = normalize(name);
        let (_, domain) = split_address(&name)?;
        let domain = domain.to_string();
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let domain_id = Self::local_domain_id(&tx, &domain).await?;
            let taken = tx
                .query_opt("SELECT 1 FROM addresses WHERE address = $1", &[&name])
                .await?;
            if taken.is_some() {
                return Err(StoreError::Exists {
                    kind: "account",
                    name,
                });
            }
            let id: String = tx
                .query_one(
                    "INSERT INTO accounts (name, domain_id, password_hash) VALUES ($1, $2, $3)
                     RETURNING id",
                    &[&name, &domain_id, &password_hash],
                )
                .await?
                .get(0);
            tx.execute(
                "INSERT INTO addresses (address, account_id, is_primary) VALUES ($1, $2, true)",
                &[&name, &id],
            )
            .await?;
            let mut e = Self::read_account(&tx, &id).await?;
            apply(EntryKind::Account, &mut e.attrs, changes)?;
            Self::write_account(&tx, &e).await?;
            let e = Self::read_account(&tx, &id).await?;
            tx.commit().await?;
            Ok(e)
        })
        .await
    }

    /// deleteAccount. Returns the deleted entry (for cache purging).
    pub async fn delete_account(&self, name: &str) -> Result<Entry, StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let e = Self::read_account(&tx, name).await?;
            tx.execute("DELETE FROM extra_attrs WHERE entry_id = $1", &[&e.id])
                .await?;
            tx.execute("DELETE FROM accounts WHERE id = $1", &[&e.id])
                .await?;
            tx.commit().await?;
            Ok(e)
        })
        .await
    }

    /// getAllAccounts, optionally of one domain.
    pub async fn all_accounts(&self, domain: &str) -> Result<Vec<String>, StoreError> {
        let domain = normalize(domain);
        if !domain.is_empty() {
            // A missing domain is an error, not an empty list (as in zmprov).
            self.get(EntryKind::Domain, &domain).await?;
        }
        self.names(
            "SELECT acc.name FROM accounts acc JOIN domains d ON d.id = acc.domain_id
              WHERE $1 = '' OR d.name = $1 ORDER BY acc.name",
            &[&domain],
        )
        .await
    }

    /// addAccountAlias.
    pub async fn add_alias(&self, account: &str, alias: &str) -> Result<(), StoreError> {
        let alias = normalize(alias);
        let (_, domain) = split_address(&alias)?;
        let domain = domain.to_string();
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let e = Self::read_account(&tx, account).await?;
            Self::local_domain_id(&tx, &domain).await?;
            let inserted = tx
                .execute(
                    "INSERT INTO addresses (address, account_id, is_primary) VALUES ($1, $2, false)
                     ON CONFLICT (address) DO NOTHING",
                    &[&alias, &e.id],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::Exists {
                    kind: "email address",
                    name: alias,
                });
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// removeAccountAlias.
    pub async fn remove_alias(&self, account: &str, alias: &str) -> Result<(), StoreError> {
        let alias = normalize(alias);
        self.bounded(async {
            let client = self.client().await?;
            let e = Self::read_account(&client, account).await?;
            let removed = client
                .execute(
                    "DELETE FROM addresses WHERE address = $1 AND account_id = $2 AND NOT is_primary",
                    &[&alias, &e.id],
                )
                .await?;
            if removed == 0 {
                return Err(StoreError::NotFound {
                    kind: "alias",
                    name: alias.clone(),
                });
            }
            Ok(())
        })
        .await
    }
}
