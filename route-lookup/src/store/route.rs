//! The hot path: one prepared query from a login to the account and its mail host's ports.
//!
//! The login is qualified inside the query (domain of the proxy's virtual IP, else the
//! default domain, else left bare), so the common case costs one round trip; only a miss
//! on a qualified name tries the domain-alias mapping with a second query.

use super::{Store, StoreError};

/// Qualifies `$1` (the login, already lowercase) with the domain of virtual IP `$2`, else the
/// default domain; a name that cannot be qualified stays bare.
const QUALIFIED: &str = "
    WITH q AS (
        SELECT CASE WHEN strpos($1, '@') > 0 THEN $1
               ELSE coalesce($1 || '@' || coalesce(
                    (SELECT name FROM domains WHERE $2 <> '' AND $2 = ANY(virtual_ips)
                     ORDER BY name LIMIT 1),
                    (SELECT vals[1] FROM config WHERE name = 'zimbraDefaultDomainName')), $1)
               END AS address)";

/// The columns both lookups return.
const COLUMNS: &str = "
    SELECT acc.id, acc.name, acc.status, acc.password_hash, acc.mail_host,
           s.service_address, s.imap_port, s.imaps_port, s.pop3_port, s.pop3s_port,
           split_part(acc.name, '@', 2) =
               coalesce((SELECT vals[1] FROM config WHERE name = 'zimbraDefaultDomainName'), '')";

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
    /// The mail host's serviceAddress, if set.
    pub service_address: Option<String>,
    /// The mail host's ports (defaults when it has no server entry).
    pub ports: Ports,
    /// Whether the account is in the default domain (Zimbra's Auth-Cache-Alias).
    pub in_default_domain: bool,
}

fn port(row: &tokio_postgres::Row, idx: usize, default: u16) -> u16 {
    row.get::<_, Option<i32>>(idx)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(default)
}

fn to_route(row: &tokio_postgres::Row) -> AccountRoute {
    let d = Ports::default();
    AccountRoute {
        id: row.get(0),
        name: row.get(1),
        status: row.get(2),
        password_hash: row.get(3),
        mail_host: row.get(4),
        service_address: row.get(5),
        ports: Ports {
            imap: port(row, 6, d.imap),
            imaps: port(row, 7, d.imaps),
            pop3: port(row, 8, d.pop3),
            pop3s: port(row, 9, d.pop3s),
        },
        in_default_domain: row.get(10),
    }
}

impl Store {
    /// Resolves a login (primary name, alias, domain alias, or unqualified name) to its
    /// account. `login` must already be normalised; `proxy_ip` may be empty.
    pub async fn resolve(
        &self,
        login: &str,
        proxy_ip: &str,
    ) -> Result<Option<AccountRoute>, StoreError> {
        // No stored name holds a control character (creation refuses them), and PostgreSQL
        // rejects NUL outright: such a login is simply unknown.
        if login.chars().any(char::is_control) || proxy_ip.chars().any(char::is_control) {
            return Ok(None);
        }
        self.bounded(async {
            let client = self.client().await?;
            let direct = client
                .prepare_cached(&format!(
                    "{QUALIFIED} {COLUMNS}
                     FROM q JOIN addresses ad ON ad.address = q.address
                     JOIN accounts acc ON acc.id = ad.account_id
                     LEFT JOIN servers s ON s.name = acc.mail_host"
                ))
                .await?;
            if let Some(row) = client.query_opt(&direct, &[&login, &proxy_ip]).await? {
                return Ok(Some(to_route(&row)));
            }
            let via_alias_domain = client
                .prepare_cached(&format!(
                    "{QUALIFIED} {COLUMNS}
                     FROM q JOIN domains a ON a.name = split_part(q.address, '@', 2)
                     JOIN domains t ON t.id = a.alias_target
                     JOIN addresses ad ON ad.address = split_part(q.address, '@', 1) || '@' || t.name
                     JOIN accounts acc ON acc.id = ad.account_id
                     LEFT JOIN servers s ON s.name = acc.mail_host"
                ))
                .await?;
            let row = client
                .query_opt(&via_alias_domain, &[&login, &proxy_ip])
                .await?;
            Ok(row.as_ref().map(to_route))
        })
        .await
    }
}
