//! The attribute schema of each entry kind (Zimbra's names, single- or multi-valued, how
//! values are checked), and applying zmprov's changes to an attribute map.

use std::collections::BTreeMap;

use super::{Change, ChangeOp, EntryKind};
use crate::lockout;
use crate::store::StoreError;

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
    /// Zimbra's duration syntax (`1h`, `30m`, `45s`, `45`, `1d`, `500ms`).
    Duration,
    /// A whole number, 0 or more.
    Count,
}

pub(super) struct Spec {
    pub(super) name: &'static str,
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
    spec("zimbraPasswordLockoutLockedTime", false, Value::ReadOnly),
    spec("zimbraPasswordLockoutFailureTime", true, Value::ReadOnly),
];

/// The password policy, on accounts and in the global config (the account's value wins).
const PASSWORD_POLICY: &[Spec] = &[
    spec(lockout::ENABLED, false, Value::Bool),
    spec(lockout::MAX_FAILURES, false, Value::Count),
    spec(lockout::DURATION, false, Value::Duration),
    spec(lockout::FAILURE_LIFETIME, false, Value::Duration),
    spec(lockout::PASSWORD_MAX_LENGTH, false, Value::Count),
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
    let policy: &'static [Spec] = match kind {
        EntryKind::Account | EntryKind::Config => PASSWORD_POLICY,
        EntryKind::Domain | EntryKind::Server => &[],
    };
    own.iter().chain(extra.iter()).chain(policy.iter())
}

pub(super) fn find_spec(kind: EntryKind, name: &str) -> Result<&'static Spec, StoreError> {
    specs(kind)
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| StoreError::Invalid(format!("invalid attr name: {name}")))
}

/// Attributes kept in `extra_attrs` rather than in columns, per kind.
pub(super) fn extra_names(kind: EntryKind) -> &'static [&'static str] {
    match kind {
        EntryKind::Account => &[
            "description",
            "zimbraNotes",
            "displayName",
            "cn",
            "sn",
            "givenName",
            lockout::ENABLED,
            lockout::MAX_FAILURES,
            lockout::DURATION,
            lockout::FAILURE_LIFETIME,
            lockout::PASSWORD_MAX_LENGTH,
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
        Value::Duration => match lockout::parse_duration(value) {
            Some(_) => Ok(()),
            None => bad("not a duration (a number with d, h, m, s or ms)"),
        },
        Value::Count => match value.parse::<u32>() {
            Ok(_) => Ok(()),
            Err(_) => bad("not a whole number"),
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
pub(super) fn apply(
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

pub(super) fn single<'a>(attrs: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(|v| v.first()).map(String::as_str)
}

pub(super) fn port_of(attrs: &BTreeMap<String, Vec<String>>, name: &str, default: i32) -> i32 {
    single(attrs, name)
        .and_then(|v| v.parse::<u16>().ok())
        .map_or(default, i32::from)
}

pub(super) fn bool_of(attrs: &BTreeMap<String, Vec<String>>, name: &str) -> bool {
    single(attrs, name) == Some("TRUE")
}

pub(super) fn bool_text(b: bool) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::provision::{Change, ChangeOp, EntryKind};

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
