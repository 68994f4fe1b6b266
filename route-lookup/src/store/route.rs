//! The hot path: from a login to the account and its mail host's address and ports.
//!
//! The slowly changing part of the directory (default domain, virtual IPs, alias domains,
//! servers) is read as a [`Directory`] snapshot and kept in memory (see
//! [`crate::directory`]); qualification and the domain-alias mapping happen there, so a
//! lookup costs one prepared query on two primary keys.

use std::collections::HashMap;

use super::{Outage, Store, StoreError};

/// Backend ports of a mailbox server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ports {
    /// zimbraImapBindPort.
    pub imap: u16,
    /// zimbraImapSSLBindPort.
    pub imaps: u16,
    /// zimbraPop3BindPort.
    pub pop3: u16,
    /// zimbraPop3SSLBindPort.
    pub pop3s: u16,
}

impl Default for Ports {
    /// Zimbra's defaults, used when the mail host has no server entry (as Zimbra falls back
    /// to the global config's values).
    fn default() -> Self {
        Self {
            imap: 7143,
            imaps: 7993,
            pop3: 7110,
            pop3s: 7995,
        }
    }
}

/// What routing needs to know about a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerRoute {
    /// serviceAddress, if set.
    pub service_address: Option<String>,
    /// Backend ports.
    pub ports: Ports,
}

/// The slowly changing part of the directory, read in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// zimbraDefaultDomainName.
    pub default_domain: Option<String>,
    /// zimbraVirtualIPAddress → domain.
    pub virtual_ips: HashMap<String, String>,
    /// Alias domain → its target domain.
    pub alias_domains: HashMap<String, String>,
    /// Server name → routing data.
    pub servers: HashMap<String, ServerRoute>,
    /// The global config's password policy attributes ([`crate::lockout::ATTRS`]).
    pub password_config: HashMap<String, String>,
}

impl Directory {
    /// The addresses a normalised login may be stored under, most specific first: the
    /// login qualified (by the proxy's virtual IP, else the default domain), then the same
    /// local part in the alias domain's target domain.
    pub fn candidates(&self, login: &str, proxy_ip: &str) -> Vec<String> {
        let qualified = if login.contains('@') {
            login.to_string()
        } else {
            let domain = self
                .virtual_ips
                .get(proxy_ip)
                .or(self.default_domain.as_ref());
            match domain {
                Some(d) => format!("{login}@{d}"),
                None => login.to_string(),
            }
        };
        let mut out = vec![qualified];
        if let Some((local, domain)) = out[0].rsplit_once('@') {
            if let Some(target) = self.alias_domains.get(domain) {
                out.push(format!("{local}@{target}"));
            }
        }
        out
    }
}

/// What a login resolves to.
#[derive(Debug, Clone)]
pub struct AccountRoute {
    /// zimbraId.
    pub id: String,
    /// The canonical (primary) account name.
    pub name: String,
    /// zimbraAccountStatus.
    pub status: String,
    /// argon2id PHC string, if the account has a password.
    pub password_hash: Option<String>,
    /// zimbraMailHost.
    pub mail_host: String,
    /// The mail host's routing data (defaults when it has no server entry).
    pub server: ServerRoute,
    /// Whether the account is in the default domain (Zimbra's Auth-Cache-Alias).
    pub in_default_domain: bool,
}

fn port(row: &tokio_postgres::Row, idx: usize, default: u16) -> u16 {
    row.get::<_, Option<i32>>(idx)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(default)
}

fn server_route(row: &tokio_postgres::Row, first: usize) -> ServerRoute {
    let d = Ports::default();
    ServerRoute {
        service_address: row.get(first),
        ports: Ports {
            imap: port(row, first + 1, d.imap),
            imaps: port(row, first + 2, d.imaps),
            pop3: port(row, first + 3, d.pop3),
            pop3s: port(row, first + 4, d.pop3s),
        },
    }
}

/// Two candidates (a login through an alias domain): one probe each.
pub(super) const ACCOUNT_BY_TWO_ADDRESSES: &str =
    "SELECT acc.id, acc.name, acc.status, acc.password_hash, acc.mail_host, ad.address
       FROM addresses ad JOIN accounts acc ON acc.id = ad.account_id
      WHERE ad.address IN ($1, $2)";

/// Most logins are primary names: try the accounts table alone first (one index probe),
/// and only then the alias path (PostgreSQL stops the `UNION ALL` at the first row).
pub(super) const ACCOUNT_BY_NAME_THEN_ALIAS: &str =
    "(SELECT id, name, status, password_hash, mail_host, name FROM accounts WHERE name = $1)
     UNION ALL
     (SELECT acc.id, acc.name, acc.status, acc.password_hash, acc.mail_host, ad.address
        FROM addresses ad JOIN accounts acc ON acc.id = ad.account_id
       WHERE ad.address = $1 AND NOT ad.is_primary)
     LIMIT 1";

const SERVER_COLUMNS: &str = "service_address, imap_port, imaps_port, pop3_port, pop3s_port";

/// One server's routing data.
pub(super) const SERVER_BY_NAME: &str =
    "SELECT service_address, imap_port, imaps_port, pop3_port, pop3s_port FROM servers WHERE name = $1";

impl Store {
    /// Reads the [`Directory`] snapshot.
    pub async fn directory(&self) -> Result<Directory, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let mut dir = Directory::default();
            let row = client
                .query_opt(
                    "SELECT vals[1] FROM config WHERE name = 'zimbraDefaultDomainName'",
                    &[],
                )
                .await?;
            dir.default_domain = row.and_then(|r| r.get::<_, Option<String>>(0));
            let names: Vec<String> = crate::lockout::ATTRS
                .iter()
                .map(|s| s.to_string())
                .collect();
            for row in client
                .query(
                    "SELECT name, vals[1] FROM config WHERE name = ANY($1)",
                    &[&names],
                )
                .await?
            {
                if let Some(value) = row.get::<_, Option<String>>(1) {
                    dir.password_config.insert(row.get(0), value);
                }
            }
            for row in client
                .query(
                    "SELECT d.name, d.virtual_ips, t.name FROM domains d
                     LEFT JOIN domains t ON t.id = d.alias_target ORDER BY d.name DESC",
                    &[],
                )
                .await?
            {
                let name: String = row.get(0);
                for ip in row.get::<_, Vec<String>>(1) {
                    // Sorted descending, so the alphabetically first domain wins a shared IP.
                    dir.virtual_ips.insert(ip, name.clone());
                }
                if let Some(target) = row.get::<_, Option<String>>(2) {
                    dir.alias_domains.insert(name, target);
                }
            }
            for row in client
                .query(&format!("SELECT name, {SERVER_COLUMNS} FROM servers"), &[])
                .await?
            {
                dir.servers.insert(row.get(0), server_route(&row, 1));
            }
            Ok(dir)
        })
        .await
    }

    /// Resolves a normalised login (primary name, alias, domain alias, or unqualified) to
    /// its account, with `dir` for qualification and server data; `proxy_ip` may be empty.
    ///
    /// A database that is restarting kills every connection: an attempt that fails for
    /// want of the database is tried again on a fresh connection, with a short growing
    /// pause, until `--db-timeout-ms` has passed in all; only then is the answer
    /// "unavailable". A login may take a second longer during a restart; it does not fail.
    pub async fn resolve(
        &self,
        dir: &Directory,
        login: &str,
        proxy_ip: &str,
    ) -> Result<Option<AccountRoute>, StoreError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = tokio::time::timeout(left, self.resolve_once(dir, login, proxy_ip)).await;
            match attempt {
                Ok(Err(StoreError::Unavailable(why)))
                    if tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::debug!(error = %common::exit::chain(&why), retry_in = ?pause, "database unavailable; trying again on a fresh connection");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(500));
                }
                Ok(result) => return result,
                Err(_) => return Err(StoreError::Unavailable(Outage::Timeout(self.timeout))),
            }
        }
    }

    async fn resolve_once(
        &self,
        dir: &Directory,
        login: &str,
        proxy_ip: &str,
    ) -> Result<Option<AccountRoute>, StoreError> {
        // No stored name holds a control character (creation refuses them), and PostgreSQL
        // rejects NUL outright: such a login is simply unknown.
        if login.is_empty() || login.chars().any(char::is_control) {
            return Ok(None);
        }
        let candidates = dir.candidates(login, proxy_ip);
        let (slot, hot) = self.bounded(self.shared.get()).await?;
        let query = async {
            let rows = match candidates.get(1) {
                Some(second) => {
                    hot.client
                        .query(&hot.by_two, &[&candidates[0], second])
                        .await?
                }
                None => hot.client.query(&hot.by_name, &[&candidates[0]]).await?,
            };
            // Prefer the more specific candidate if both exist.
            let row = rows
                .iter()
                .find(|r| r.get::<_, &str>(5) == candidates[0])
                .or(rows.first());
            let Some(row) = row else {
                return Ok(None);
            };
            let mail_host: String = row.get(4);
            let server = match dir.servers.get(&mail_host) {
                Some(s) => s.clone(),
                None if mail_host.is_empty() => ServerRoute::default(),
                // A server created since the snapshot was read (maybe by another
                // instance): ask the database rather than fall back to defaults.
                None => hot
                    .client
                    .query_opt(&hot.server_by_name, &[&mail_host])
                    .await?
                    .map(|r| server_route(&r, 0))
                    .unwrap_or_default(),
            };
            let name: String = row.get(1);
            let in_default_domain = dir
                .default_domain
                .as_deref()
                .is_some_and(|d| name.rsplit_once('@').is_some_and(|(_, nd)| nd == d));
            Ok(Some(AccountRoute {
                id: row.get(0),
                name,
                status: row.get(2),
                password_hash: row.get(3),
                mail_host,
                server,
                in_default_domain,
            }))
        };
        match tokio::time::timeout(self.timeout, query).await {
            Ok(Err(StoreError::Unavailable(why))) => {
                // The connection is suspect (a restart closes it, an error may leave it
                // half-read): the next attempt connects afresh.
                self.shared.reset(slot);
                Err(StoreError::Unavailable(why))
            }
            Ok(found) => found,
            Err(_) => {
                self.shared.reset(slot);
                Err(StoreError::Unavailable(Outage::Timeout(self.timeout)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_qualify_and_map_alias_domains() {
        let mut dir = Directory {
            default_domain: Some("example.com".into()),
            ..Directory::default()
        };
        dir.virtual_ips
            .insert("10.0.0.1".into(), "vip.example".into());
        dir.alias_domains
            .insert("alias.example".into(), "example.com".into());
        assert_eq!(dir.candidates("ann", ""), ["ann@example.com"]);
        assert_eq!(dir.candidates("ann", "10.0.0.1"), ["ann@vip.example"]);
        assert_eq!(dir.candidates("ann@x.org", "10.0.0.1"), ["ann@x.org"]);
        assert_eq!(
            dir.candidates("ann@alias.example", ""),
            ["ann@alias.example", "ann@example.com"]
        );
        dir.default_domain = None;
        assert_eq!(dir.candidates("ann", ""), ["ann"]);
    }
}
