//! Provisioning: domains, servers, accounts, aliases and the global config, read and
//! written as Zimbra-named attributes.
//!
//! Every entry is read into an attribute map, changed there by the same rules for every
//! kind (replace, `+attr` add, `-attr` remove; single-valued attributes take one value,
//! an empty value clears), validated, and written back in one transaction.

use std::collections::BTreeMap;

use super::registry::join_host_port;
use super::{normalize, LeaseKind, Store, StoreError};

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

/// How an attribute's values are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// Shown, never written through modify.
    ReadOnly,
    /// Any text without control characters.
    Text,
    /// 1..=65535.
    Port,
    /// TRUE or FALSE.
    Bool,
    /// An IP literal.
    Ip,
    /// One of Zimbra's account statuses.
    Status,
    /// A host name.
    Host,
}

struct Spec {
    name: &'static str,
    multi: bool,
    value: Value,
}

const fn spec(name: &'static str, multi: bool, value: Value) -> Spec {
    Spec { name, multi, value }
}

const DESCRIPTIVE: &[Spec] = &[
    spec("description", false, Value::Text),
    spec("zimbraNotes", false, Value::Text),
];

const ACCOUNT: &[Spec] = &[
    spec("zimbraId", false, Value::ReadOnly),
    spec("zimbraMailDeliveryAddress", false, Value::ReadOnly),
    spec("mail", true, Value::ReadOnly),
    spec("uid", false, Value::ReadOnly),
    spec("zimbraMailAlias", true, Value::ReadOnly),
    spec("zimbraMailHost", false, Value::Host),
    spec("zimbraAccountStatus", false, Value::Status),
    spec("displayName", false, Value::Text),
    spec("cn", false, Value::Text),
    spec("sn", false, Value::Text),
    spec("givenName", false, Value::Text),
];

const DOMAIN: &[Spec] = &[
    spec("zimbraId", false, Value::ReadOnly),
    spec("zimbraDomainName", false, Value::ReadOnly),
    spec("zimbraDomainType", false, Value::ReadOnly),
    spec("zimbraDomainAliasTargetId", false, Value::Text),
    spec("zimbraVirtualIPAddress", true, Value::Ip),
];

const SERVER: &[Spec] = &[
    spec("zimbraId", false, Value::ReadOnly),
    spec("cn", false, Value::ReadOnly),
    spec("zimbraServiceHostname", false, Value::ReadOnly),
    spec("serviceAddress", false, Value::Ip),
    spec("zimbraServiceEnabled", true, Value::Text),
    spec("zimbraImapBindPort", false, Value::Port),
    spec("zimbraImapSSLBindPort", false, Value::Port),
    spec("zimbraPop3BindPort", false, Value::Port),
    spec("zimbraPop3SSLBindPort", false, Value::Port),
    spec("zimbraMemcachedBindPort", false, Value::Port),
    spec("zimbraExtensionBindPort", false, Value::Port),
    spec("zimbraMtaAuthPort", false, Value::Port),
    spec("zimbraReverseProxyLookupTarget", false, Value::Bool),
    spec("zimbraMtaAuthTarget", false, Value::Bool),
];

const CONFIG: &[Spec] = &[
    spec("zimbraDefaultDomainName", false, Value::Text),
    spec("zimbraReverseProxyAuthWaitInterval", false, Value::Text),
    spec("zimbraReverseProxyCacheEntryTTL", false, Value::Text),
    spec("zimbraReverseProxyCacheFetchTimeout", false, Value::Text),
    spec(
        "zimbraReverseProxyCacheReconnectInterval",
        false,
        Value::Text,
    ),
    spec("zimbraReverseProxyRouteLookupTimeout", false, Value::Text),
    spec(
        "zimbraReverseProxyRouteLookupTimeoutCache",
        false,
        Value::Text,
    ),
    spec("zimbraReverseProxyIPLoginLimit", false, Value::Text),
    spec("zimbraReverseProxyIPLoginLimitTime", false, Value::Text),
    spec("zimbraReverseProxyUserLoginLimit", false, Value::Text),
    spec("zimbraReverseProxyUserLoginLimitTime", false, Value::Text),
    spec("zimbraReverseProxyIpThrottleMsg", false, Value::Text),
    spec("zimbraReverseProxyUserThrottleMsg", false, Value::Text),
    spec("zimbraReverseProxyImapStartTlsMode", false, Value::Text),
    spec("zimbraReverseProxyPop3StartTlsMode", false, Value::Text),
    spec("zimbraReverseProxySendImapId", false, Value::Bool),
    spec("zimbraReverseProxySendPop3Xoip", false, Value::Bool),
];

fn specs(kind: EntryKind) -> impl Iterator<Item = &'static Spec> {
    let own: &'static [Spec] = match kind {
        EntryKind::Account => ACCOUNT,
        EntryKind::Domain => DOMAIN,
        EntryKind::Server => SERVER,
        EntryKind::Config => CONFIG,
    };
    let extra: &'static [Spec] = if kind == EntryKind::Config {
        &[]
    } else {
        DESCRIPTIVE
    };
    own.iter().chain(extra.iter())
}

fn find_spec(kind: EntryKind, name: &str) -> Result<&'static Spec, StoreError> {
    specs(kind)
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| StoreError::Invalid(format!("invalid attr name: {name}")))
}

/// Attributes kept in `extra_attrs` rather than in columns, per kind.
fn extra_names(kind: EntryKind) -> &'static [&'static str] {
    match kind {
        EntryKind::Account => &[
            "description",
            "zimbraNotes",
            "displayName",
            "cn",
            "sn",
            "givenName",
        ],
        EntryKind::Domain | EntryKind::Server => &["description", "zimbraNotes"],
        EntryKind::Config => &[],
    }
}

fn check_value(spec: &Spec, value: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        Err(StoreError::Invalid(format!(
            "invalid value for {}: {why}",
            spec.name
        )))
    };
    if value.chars().any(char::is_control) {
        return bad("control characters");
    }
    if value.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    match spec.value {
        Value::ReadOnly => Err(StoreError::Invalid(format!(
            "{} cannot be modified{}",
            spec.name,
            if spec.name == "zimbraMailAlias" {
                " (use addAccountAlias/removeAccountAlias)"
            } else {
                ""
            }
        ))),
        Value::Text => Ok(()),
        Value::Port => match value.parse::<u16>() {
            Ok(p) if p > 0 => Ok(()),
            _ => bad("not a port (1-65535)"),
        },
        Value::Bool => match value {
            "TRUE" | "FALSE" => Ok(()),
            _ => bad("must be TRUE or FALSE"),
        },
        Value::Ip => match value.parse::<std::net::IpAddr>() {
            Ok(_) => Ok(()),
            Err(_) => bad("not an IP address"),
        },
        Value::Status => match value {
            "active" | "locked" | "lockout" | "closed" | "maintenance" | "pending" => Ok(()),
            _ => bad("must be active, locked, lockout, closed, maintenance or pending"),
        },
        Value::Host => {
            if value.is_empty() || valid_domain(value) {
                Ok(())
            } else {
                bad("not a host name")
            }
        }
    }
}

/// Applies `changes` to `attrs` under the rules of `kind`.
fn apply(
    kind: EntryKind,
    attrs: &mut BTreeMap<String, Vec<String>>,
    changes: &[Change],
) -> Result<(), StoreError> {
    let mut replaced: Vec<&'static str> = Vec::new();
    for change in changes {
        let spec = find_spec(kind, &change.name)?;
        if !(change.op == ChangeOp::Remove || change.value.is_empty()) {
            check_value(spec, &change.value)?;
        } else if spec.value == Value::ReadOnly {
            check_value(spec, "")?;
        }
        let values = attrs.entry(spec.name.to_string()).or_default();
        match change.op {
            ChangeOp::Replace => {
                if !spec.multi || !replaced.contains(&spec.name) {
                    values.clear();
                    replaced.push(spec.name);
                }
                if !change.value.is_empty() && !values.contains(&change.value) {
                    values.push(change.value.clone());
                }
            }
            ChangeOp::Add => {
                if !spec.multi && !values.is_empty() && values[0] != change.value {
                    return Err(StoreError::Invalid(format!(
                        "{} is single-valued; set it without +",
                        spec.name
                    )));
                }
                if !values.contains(&change.value) {
                    values.push(change.value.clone());
                }
            }
            ChangeOp::Remove => values.retain(|v| *v != change.value),
        }
        if values.is_empty() {
            attrs.remove(spec.name);
        }
    }
    Ok(())
}

fn single<'a>(attrs: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(|v| v.first()).map(String::as_str)
}

fn port_of(attrs: &BTreeMap<String, Vec<String>>, name: &str, default: i32) -> i32 {
    single(attrs, name)
        .and_then(|v| v.parse::<u16>().ok())
        .map_or(default, i32::from)
}

fn bool_of(attrs: &BTreeMap<String, Vec<String>>, name: &str) -> bool {
    single(attrs, name) == Some("TRUE")
}

fn bool_text(b: bool) -> String {
    if b { "TRUE" } else { "FALSE" }.to_string()
}

/// A plausible DNS name: labels of letters, digits, `-`, `_` (and non-ASCII letters).
pub fn valid_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

/// Splits and checks `local@domain`.
pub fn split_address(name: &str) -> Result<(&str, &str), StoreError> {
    let bad = || StoreError::Invalid(format!("invalid email address: {name}"));
    let (local, domain) = name.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.chars().any(|c| c.is_control() || c.is_whitespace())
        || !valid_domain(domain)
    {
        return Err(bad());
    }
    Ok((local, domain))
}

impl Store {
    async fn extras(
        client: &impl deadpool_postgres::GenericClient,
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
        client: &impl deadpool_postgres::GenericClient,
        kind: EntryKind,
        id: &str,
        attrs: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), StoreError> {
        client
            .execute("DELETE FROM extra_attrs WHERE entry_id = $1", &[&id])
            .await?;
        for (name, values) in attrs
            .iter()
            .filter(|(n, _)| extra_names(kind).contains(&n.as_str()))
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

    // ----- domains -----

    async fn read_domain(
        client: &impl deadpool_postgres::GenericClient,
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

    async fn write_domain(
        client: &impl deadpool_postgres::GenericClient,
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

    /// createDomain.
    pub async fn create_domain(&self, name: &str, changes: &[Change]) -> Result<Entry, StoreError> {
        let name = normalize(name);
        if !valid_domain(&name) {
            return Err(StoreError::Invalid(format!("invalid domain name: {name}")));
        }
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let inserted = tx
                .execute(
                    "INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                    &[&name],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::Exists {
                    kind: "domain",
                    name,
                });
            }
            let mut e = Self::read_domain(&tx, &name).await?;
            apply(EntryKind::Domain, &mut e.attrs, changes)?;
            Self::write_domain(&tx, &e).await?;
            let e = Self::read_domain(&tx, &name).await?;
            tx.commit().await?;
            Ok(e)
        })
        .await
    }

    /// modifyDomain.
    pub async fn modify_domain(&self, name: &str, changes: &[Change]) -> Result<Entry, StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let mut e = Self::read_domain(&tx, name).await?;
            apply(EntryKind::Domain, &mut e.attrs, changes)?;
            Self::write_domain(&tx, &e).await?;
            let e = Self::read_domain(&tx, &e.id).await?;
            tx.commit().await?;
            Ok(e)
        })
        .await
    }

    /// getDomain.
    pub async fn get_domain(&self, name: &str) -> Result<Entry, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            Self::read_domain(&client, name).await
        })
        .await
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

    // ----- servers -----

    async fn read_server(
        client: &impl deadpool_postgres::GenericClient,
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

    async fn write_server(
        client: &impl deadpool_postgres::GenericClient,
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

    /// createServer.
    pub async fn create_server(&self, name: &str, changes: &[Change]) -> Result<Entry, StoreError> {
        let name = normalize(name);
        if !valid_domain(&name) {
            return Err(StoreError::Invalid(format!("invalid server name: {name}")));
        }
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let inserted = tx
                .execute(
                    "INSERT INTO servers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                    &[&name],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::Exists {
                    kind: "server",
                    name,
                });
            }
            let mut e = Self::read_server(&tx, &name).await?;
            apply(EntryKind::Server, &mut e.attrs, changes)?;
            Self::write_server(&tx, &e).await?;
            let e = Self::read_server(&tx, &name).await?;
            tx.commit().await?;
            Ok(e)
        })
        .await
    }

    /// modifyServer.
    pub async fn modify_server(&self, name: &str, changes: &[Change]) -> Result<Entry, StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let mut e = Self::read_server(&tx, name).await?;
            apply(EntryKind::Server, &mut e.attrs, changes)?;
            Self::write_server(&tx, &e).await?;
            let e = Self::read_server(&tx, &e.id).await?;
            tx.commit().await?;
            Ok(e)
        })
        .await
    }

    /// getServer.
    pub async fn get_server(&self, name: &str) -> Result<Entry, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            Self::read_server(&client, name).await
        })
        .await
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

    // ----- accounts -----

    async fn read_account(
        client: &impl deadpool_postgres::GenericClient,
        name: &str,
    ) -> Result<Entry, StoreError> {
        let key = normalize(name);
        let row = client
            .query_opt(
                "SELECT acc.id, acc.name, acc.mail_host, acc.status FROM accounts acc
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
        let id = e.id.clone();
        Self::extras(client, &id, &mut e.attrs).await?;
        Ok(e)
    }

    async fn write_account(
        client: &impl deadpool_postgres::GenericClient,
        e: &Entry,
    ) -> Result<(), StoreError> {
        let a = &e.attrs;
        client
            .execute(
                "UPDATE accounts SET mail_host = $2, status = $3 WHERE id = $1",
                &[
                    &e.id,
                    &single(a, "zimbraMailHost")
                        .map(normalize)
                        .unwrap_or_default(),
                    &single(a, "zimbraAccountStatus").unwrap_or("active"),
                ],
            )
            .await?;
        Self::write_extras(client, EntryKind::Account, &e.id, &e.attrs).await
    }

    async fn local_domain_id(
        client: &impl deadpool_postgres::GenericClient,
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

    /// modifyAccount. Returns the entry before and after the change.
    pub async fn modify_account(
        &self,
        name: &str,
        changes: &[Change],
        password_hash: Option<Option<String>>,
    ) -> Result<(Entry, Entry), StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let before = Self::read_account(&tx, name).await?;
            let mut e = before.clone();
            apply(EntryKind::Account, &mut e.attrs, changes)?;
            Self::write_account(&tx, &e).await?;
            if let Some(hash) = password_hash {
                tx.execute(
                    "UPDATE accounts SET password_hash = $2 WHERE id = $1",
                    &[&e.id, &hash],
                )
                .await?;
            }
            let after = Self::read_account(&tx, &e.id).await?;
            tx.commit().await?;
            Ok((before, after))
        })
        .await
    }

    /// getAccount (by primary name, alias or id).
    pub async fn get_account(&self, name: &str) -> Result<Entry, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            Self::read_account(&client, name).await
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
            self.get_domain(&domain).await?;
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

    // ----- global config -----

    async fn read_config(
        client: &impl deadpool_postgres::GenericClient,
    ) -> Result<Entry, StoreError> {
        let rows = client
            .query("SELECT name, vals FROM config ORDER BY name", &[])
            .await?;
        let mut e = Entry::default();
        for row in rows {
            e.attrs.insert(row.get(0), row.get(1));
        }
        Ok(e)
    }

    /// modifyConfig.
    pub async fn modify_config(&self, changes: &[Change]) -> Result<Entry, StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.execute("LOCK TABLE config IN EXCLUSIVE MODE", &[])
                .await?;
            let mut e = Self::read_config(&tx).await?;
            apply(EntryKind::Config, &mut e.attrs, changes)?;
            tx.execute("DELETE FROM config", &[]).await?;
            for (name, vals) in &e.attrs {
                tx.execute(
                    "INSERT INTO config (name, vals) VALUES ($1, $2)",
                    &[name, vals],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(e)
        })
        .await
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

    // ----- the seed's three proxy commands -----

    /// getAllReverseProxyURLs: lookup targets, then live registered route-lookups, in
    /// Zimbra's form (`host:port/service/extension/nginx-lookup`, no scheme).
    pub async fn reverse_proxy_urls(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .bounded(async {
                let client = self.client().await?;
                Ok(client
                    .query(
                        "SELECT name, extension_port FROM servers WHERE lookup_target ORDER BY name",
                        &[],
                    )
                    .await?)
            })
            .await?;
        let mut urls: Vec<String> = rows
            .iter()
            .map(|r| {
                let port = u16::try_from(r.get::<_, i32>(1)).unwrap_or(7072);
                format!(
                    "{}/service/extension/nginx-lookup",
                    join_host_port(r.get(0), port)
                )
            })
            .collect();
        for url in self.live(LeaseKind::RouteLookup).await? {
            let url = url.strip_prefix("http://").unwrap_or(&url).to_string();
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        Ok(urls)
    }

    /// getAllMtaAuthURLs: the admin SOAP URLs of MTA auth targets.
    pub async fn mta_auth_urls(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .bounded(async {
                let client = self.client().await?;
                Ok(client
                    .query(
                        "SELECT name, mta_auth_port FROM servers WHERE mta_auth_target ORDER BY name",
                        &[],
                    )
                    .await?)
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let port = u16::try_from(r.get::<_, i32>(1)).unwrap_or(7072);
                format!(
                    "http://{}/service/admin/soap/",
                    join_host_port(r.get(0), port)
                )
            })
            .collect())
    }

    /// getAllMemcachedServers: servers with the memcached service, then live registered
    /// cache nodes.
    pub async fn memcached_servers(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .bounded(async {
                let client = self.client().await?;
                Ok(client
                    .query(
                        "SELECT name, memcached_port FROM servers WHERE 'memcached' = ANY(services)
                          ORDER BY name",
                        &[],
                    )
                    .await?)
            })
            .await?;
        let mut nodes: Vec<String> = rows
            .iter()
            .map(|r| join_host_port(r.get(0), u16::try_from(r.get::<_, i32>(1)).unwrap_or(11211)))
            .collect();
        for node in self.live(LeaseKind::CacheNode).await? {
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
        Ok(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str, value: &str, op: ChangeOp) -> Change {
        Change {
            name: name.into(),
            value: value.into(),
            op,
        }
    }

    #[test]
    fn multi_valued_replace_collects_all_pairs_of_one_command() {
        let mut a = BTreeMap::new();
        a.insert("zimbraServiceEnabled".to_string(), vec!["old".to_string()]);
        apply(
            EntryKind::Server,
            &mut a,
            &[
                ch("zimbraserviceenabled", "mailbox", ChangeOp::Replace),
                ch("zimbraServiceEnabled", "memcached", ChangeOp::Replace),
                ch("zimbraImapBindPort", "8143", ChangeOp::Replace),
            ],
        )
        .unwrap();
        assert_eq!(a["zimbraServiceEnabled"], ["mailbox", "memcached"]);
        assert_eq!(a["zimbraImapBindPort"], ["8143"]);
        apply(
            EntryKind::Server,
            &mut a,
            &[
                ch("zimbraServiceEnabled", "mailbox", ChangeOp::Remove),
                ch("zimbraServiceEnabled", "proxy", ChangeOp::Add),
            ],
        )
        .unwrap();
        assert_eq!(a["zimbraServiceEnabled"], ["memcached", "proxy"]);
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        let mut a = BTreeMap::new();
        for (name, value) in [
            ("zimbraNoSuchThing", "x"),
            ("zimbraImapBindPort", "0"),
            ("zimbraImapBindPort", "70000"),
            ("zimbraReverseProxyLookupTarget", "yes"),
            ("serviceAddress", "mbx1.example.com"),
            ("zimbraId", "x"),
        ] {
            assert!(
                apply(
                    EntryKind::Server,
                    &mut a,
                    &[ch(name, value, ChangeOp::Replace)]
                )
                .is_err(),
                "{name}={value}"
            );
        }
        assert!(apply(
            EntryKind::Account,
            &mut a,
            &[ch("zimbraAccountStatus", "frozen", ChangeOp::Replace)]
        )
        .is_err());
        assert!(apply(
            EntryKind::Account,
            &mut a,
            &[ch("displayName", "a\nb", ChangeOp::Replace)]
        )
        .is_err());
    }

    #[test]
    fn empty_value_clears_a_single_valued_attribute() {
        let mut a = BTreeMap::new();
        a.insert("zimbraMailHost".to_string(), vec!["mbx1".to_string()]);
        apply(
            EntryKind::Account,
            &mut a,
            &[ch("zimbraMailHost", "", ChangeOp::Replace)],
        )
        .unwrap();
        assert!(!a.contains_key("zimbraMailHost"));
    }

    #[test]
    fn addresses_are_checked() {
        assert!(split_address("a@example.com").is_ok());
        for bad in [
            "a",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@exa mple.com",
            "a@.com",
        ] {
            assert!(split_address(bad).is_err(), "{bad}");
        }
    }
}
