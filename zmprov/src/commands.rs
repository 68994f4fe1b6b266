//! The verbs: real zmprov's long and short names, their arguments, and what each prints.

use std::fmt::Write as _;

use proto::v1::attr_change::Op;
use proto::v1::{
    AliasRequest, AttrChange, CreateAccountRequest, CreateAliasDomainRequest, CreateRequest, Empty,
    Entry, GetConfigRequest, ListAccountsRequest, ListServersRequest, ModifyRequest, NameRequest,
    SetPasswordRequest,
};
use thiserror::Error;

use crate::client::Client;

/// One verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verb {
    /// Long name (`createAccount`).
    pub long: &'static str,
    /// Short name (`ca`).
    pub short: &'static str,
    /// Arguments, for usage lines.
    pub usage: &'static str,
    /// Fewest arguments.
    pub min: usize,
    /// Most arguments (`usize::MAX`: attr value pairs follow).
    pub max: usize,
}

const fn verb(
    long: &'static str,
    short: &'static str,
    usage: &'static str,
    min: usize,
    max: usize,
) -> Verb {
    Verb {
        long,
        short,
        usage,
        min,
        max,
    }
}

const ANY: usize = usize::MAX;

/// Every verb, in help order.
pub const VERBS: &[Verb] = &[
    verb(
        "createDomain",
        "cd",
        "{domain} [attr1 value1 [attr2 value2...]]",
        1,
        ANY,
    ),
    verb(
        "createAliasDomain",
        "cad",
        "{alias-domain} {target-domain}",
        2,
        2,
    ),
    verb(
        "createServer",
        "cs",
        "{name} [attr1 value1 [attr2 value2...]]",
        1,
        ANY,
    ),
    verb(
        "createAccount",
        "ca",
        "{name@domain} {password} [attr1 value1 [attr2 value2...]]",
        2,
        ANY,
    ),
    verb(
        "addAccountAlias",
        "aaa",
        "{name@domain|id} {alias@domain}",
        2,
        2,
    ),
    verb(
        "removeAccountAlias",
        "raa",
        "{name@domain|id} {alias@domain}",
        2,
        2,
    ),
    verb(
        "modifyAccount",
        "ma",
        "{name@domain|id} [attr1 value1 [attr2 value2...]]",
        3,
        ANY,
    ),
    verb(
        "modifyServer",
        "ms",
        "{name|id} [attr1 value1 [attr2 value2...]]",
        3,
        ANY,
    ),
    verb(
        "modifyDomain",
        "md",
        "{domain|id} [attr1 value1 [attr2 value2...]]",
        3,
        ANY,
    ),
    verb("setPassword", "sp", "{name@domain|id} {password}", 2, 2),
    verb(
        "getAccount",
        "ga",
        "{name@domain|id} [attr1 [attr2...]]",
        1,
        ANY,
    ),
    verb("getServer", "gs", "{name|id} [attr1 [attr2...]]", 1, ANY),
    verb("getDomain", "gd", "{domain|id} [attr1 [attr2...]]", 1, ANY),
    verb("getAllAccounts", "gaa", "[{domain}]", 0, 1),
    verb("getAllServers", "gas", "[{service}]", 0, 1),
    verb("getAllDomains", "gad", "", 0, 0),
    verb("deleteAccount", "da", "{name@domain|id}", 1, 1),
    verb("deleteServer", "ds", "{name|id}", 1, 1),
    verb("deleteDomain", "dd", "{domain|id}", 1, 1),
    verb(
        "modifyConfig",
        "mcf",
        "attr1 value1 [attr2 value2...]",
        2,
        ANY,
    ),
    verb("getConfig", "gcf", "[{name}]", 0, 1),
    verb("getAllConfig", "gacf", "", 0, 0),
    verb("getAllReverseProxyURLs", "garpu", "", 0, 0),
    verb("getAllMtaAuthURLs", "gamau", "", 0, 0),
    verb("getAllMemcachedServers", "gamcs", "", 0, 0),
    // Ours, not Zimbra's: ends the account's sessions on every proxy with --directory.
    verb("kickUser", "ku", "{name@domain|id}", 1, 1),
];

/// Finds a verb by long or short name, case-insensitively; the seed's three proxy
/// commands also with a leading `-` or `--`.
pub fn find(name: &str) -> Option<&'static Verb> {
    let bare = name.trim_start_matches('-');
    let dashed = bare.len() != name.len();
    VERBS.iter().find(|v| {
        (v.long.eq_ignore_ascii_case(bare) || v.short.eq_ignore_ascii_case(bare))
            && (!dashed || matches!(v.short, "garpu" | "gamau" | "gamcs"))
    })
}

/// Why a command failed.
#[derive(Debug, Error)]
pub enum CommandError {
    /// Not a verb.
    #[error("unknown command: {0} (zmprov --help lists them)")]
    Unknown(String),
    /// Wrong arguments.
    #[error("usage: {long}({short}) {usage}")]
    Usage {
        /// Long name.
        long: &'static str,
        /// Short name.
        short: &'static str,
        /// Argument synopsis.
        usage: &'static str,
    },
    /// The server refused or failed.
    #[error("{0}")]
    Server(String),
}

impl From<tonic::Status> for CommandError {
    fn from(s: tonic::Status) -> Self {
        let code = match s.code() {
            tonic::Code::NotFound => "service.NOT_FOUND",
            tonic::Code::AlreadyExists => "service.ALREADY_EXISTS",
            tonic::Code::InvalidArgument => "service.INVALID_REQUEST",
            tonic::Code::Unauthenticated => "service.AUTH_REQUIRED",
            tonic::Code::PermissionDenied => "service.PERM_DENIED",
            tonic::Code::Unavailable => "service.UNAVAILABLE",
            tonic::Code::DeadlineExceeded => "service.TIMEOUT",
            _ => "service.FAILURE",
        };
        let message = if s.message().is_empty() {
            s.code().description().to_string()
        } else {
            s.message().to_string()
        };
        Self::Server(format!("{code} ({message})"))
    }
}

/// `attr value` pairs, with zmprov's `+attr` / `-attr` forms.
fn pairs(args: &[String], verb: &'static Verb) -> Result<Vec<AttrChange>, CommandError> {
    if !args.len().is_multiple_of(2) {
        return Err(usage(verb));
    }
    Ok(args
        .chunks(2)
        .map(|p| {
            let (op, name) = match p[0].as_bytes().first() {
                Some(b'+') => (Op::Add, &p[0][1..]),
                Some(b'-') => (Op::Remove, &p[0][1..]),
                _ => (Op::Replace, p[0].as_str()),
            };
            AttrChange {
                name: name.to_string(),
                value: p[1].clone(),
                op: op.into(),
            }
        })
        .collect())
}

fn usage(verb: &'static Verb) -> CommandError {
    CommandError::Usage {
        long: verb.long,
        short: verb.short,
        usage: verb.usage,
    }
}

/// Renders an entry as zmprov does: `# name N`, then `attr: value` per value.
pub fn render_entry(e: &Entry, only: &[String], out: &mut String) {
    if !e.name.is_empty() {
        let _ = writeln!(out, "# name {}", e.name);
    }
    for attr in &e.attrs {
        if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(&attr.name)) {
            continue;
        }
        for v in &attr.values {
            let _ = writeln!(out, "{}: {}", attr.name, v);
        }
    }
}

/// Zimbra's format for garpu/gamau/gamcs: each item followed by a space, then a newline.
pub fn render_items(items: &[String], out: &mut String) {
    for i in items {
        out.push_str(i);
        out.push(' ');
    }
    out.push('\n');
}

fn render_names(names: &[String], out: &mut String) {
    for n in names {
        out.push_str(n);
        out.push('\n');
    }
}

/// Checks one command line without a server: the verb exists, the argument count fits,
/// and `attr value` lists come in pairs. [`run`] does the same first; zmprov calls this
/// before it connects, so a typo is a usage error even while route-lookup is down.
pub fn check(args: &[String]) -> Result<&'static Verb, CommandError> {
    let (name, rest) = args
        .split_first()
        .ok_or_else(|| CommandError::Unknown(String::new()))?;
    let verb = find(name).ok_or_else(|| CommandError::Unknown(name.clone()))?;
    if rest.len() < verb.min || rest.len() > verb.max {
        return Err(usage(verb));
    }
    // Verbs taking `attr value` pairs after their fixed arguments ({…} in the synopsis).
    if verb.usage.contains("value1") {
        let fixed = verb.usage.matches('{').count();
        if !(rest.len() - fixed.min(rest.len())).is_multiple_of(2) {
            return Err(usage(verb));
        }
    }
    Ok(verb)
}

/// Runs one command line (`args[0]` is the verb); returns what it prints.
pub async fn run(client: &mut Client, args: &[String]) -> Result<String, CommandError> {
    let verb = check(args)?;
    let rest = &args[1..];
    let arg = |i: usize| rest[i].clone();
    let mut out = String::new();
    let p = &mut client.provisioning;
    match verb.short {
        "cd" => {
            let attrs = pairs(&rest[1..], verb)?;
            let e = p
                .create_domain(CreateRequest {
                    name: arg(0),
                    attrs,
                })
                .await?
                .into_inner();
            let _ = writeln!(out, "{}", e.id);
        }
        "cad" => {
            let e = p
                .create_alias_domain(CreateAliasDomainRequest {
                    alias: arg(0),
                    target: arg(1),
                })
                .await?
                .into_inner();
            let _ = writeln!(out, "{}", e.id);
        }
        "cs" => {
            let attrs = pairs(&rest[1..], verb)?;
            let e = p
                .create_server(CreateRequest {
                    name: arg(0),
                    attrs,
                })
                .await?
                .into_inner();
            let _ = writeln!(out, "{}", e.id);
        }
        "ca" => {
            let attrs = pairs(&rest[2..], verb)?;
            let e = p
                .create_account(CreateAccountRequest {
                    name: arg(0),
                    password: arg(1),
                    attrs,
                })
                .await?
                .into_inner();
            let _ = writeln!(out, "{}", e.id);
        }
        "aaa" => {
            p.add_account_alias(AliasRequest {
                account: arg(0),
                alias: arg(1),
            })
            .await?;
        }
        "raa" => {
            p.remove_account_alias(AliasRequest {
                account: arg(0),
                alias: arg(1),
            })
            .await?;
        }
        "ma" | "ms" | "md" => {
            let attrs = pairs(&rest[1..], verb)?;
            let req = ModifyRequest {
                name: arg(0),
                attrs,
            };
            match verb.short {
                "ma" => p.modify_account(req).await?,
                "ms" => p.modify_server(req).await?,
                _ => p.modify_domain(req).await?,
            };
        }
        "sp" => {
            p.set_password(SetPasswordRequest {
                account: arg(0),
                password: arg(1),
            })
            .await?;
        }
        "ga" | "gs" | "gd" => {
            let req = NameRequest { name: arg(0) };
            let e = match verb.short {
                "ga" => p.get_account(req).await?,
                "gs" => p.get_server(req).await?,
                _ => p.get_domain(req).await?,
            }
            .into_inner();
            render_entry(&e, &rest[1..], &mut out);
        }
        "gaa" => {
            let domain = rest.first().cloned().unwrap_or_default();
            let n = p
                .get_all_accounts(ListAccountsRequest { domain })
                .await?
                .into_inner();
            render_names(&n.names, &mut out);
        }
        "gas" => {
            let service = rest.first().cloned().unwrap_or_default();
            let n = p
                .get_all_servers(ListServersRequest { service })
                .await?
                .into_inner();
            render_names(&n.names, &mut out);
        }
        "gad" => {
            let n = p.get_all_domains(Empty {}).await?.into_inner();
            render_names(&n.names, &mut out);
        }
        "da" => {
            p.delete_account(NameRequest { name: arg(0) }).await?;
        }
        "ds" => {
            p.delete_server(NameRequest { name: arg(0) }).await?;
        }
        "dd" => {
            p.delete_domain(NameRequest { name: arg(0) }).await?;
        }
        "mcf" => {
            let attrs = pairs(rest, verb)?;
            p.modify_config(ModifyRequest {
                name: String::new(),
                attrs,
            })
            .await?;
        }
        "gcf" | "gacf" => {
            let attr = rest.first().cloned().unwrap_or_default();
            let e = p.get_config(GetConfigRequest { attr }).await?.into_inner();
            render_entry(&e, &[], &mut out);
        }
        "garpu" => render_items(
            &p.get_all_reverse_proxy_urls(Empty {})
                .await?
                .into_inner()
                .names,
            &mut out,
        ),
        "gamau" => render_items(
            &p.get_all_mta_auth_urls(Empty {}).await?.into_inner().names,
            &mut out,
        ),
        "gamcs" => render_items(
            &p.get_all_memcached_servers(Empty {})
                .await?
                .into_inner()
                .names,
            &mut out,
        ),
        "ku" => {
            p.kick_user(NameRequest { name: arg(0) }).await?;
        }
        other => return Err(CommandError::Unknown(other.to_string())),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_long_short_and_dashed_proxy_commands() {
        assert_eq!(find("ca").unwrap().long, "createAccount");
        assert_eq!(find("CreateAccount").unwrap().short, "ca");
        for name in [
            "garpu",
            "getAllReverseProxyURLs",
            "-garpu",
            "--getAllReverseProxyURLs",
            "--garpu",
        ] {
            assert_eq!(find(name).unwrap().short, "garpu", "{name}");
        }
        assert_eq!(find("-gamcs").unwrap().short, "gamcs");
        assert_eq!(find("--getAllMtaAuthURLs").unwrap().short, "gamau");
        assert!(find("-ca").is_none(), "only the proxy commands take dashes");
        assert!(find("nosuch").is_none());
    }

    #[test]
    fn pairs_take_plus_and_minus() {
        let v = find("ma").unwrap();
        let args: Vec<String> = ["+zimbraServiceEnabled", "a", "-x", "b", "y", "c"]
            .map(String::from)
            .to_vec();
        let p = pairs(&args, v).unwrap();
        assert_eq!(p[0].op(), Op::Add);
        assert_eq!(p[0].name, "zimbraServiceEnabled");
        assert_eq!(p[1].op(), Op::Remove);
        assert_eq!(p[2].op(), Op::Replace);
        assert!(pairs(&args[..3], v).is_err());
    }

    #[test]
    fn items_format_is_zimbras() {
        let mut out = String::new();
        render_items(&["a:1".into(), "b:2".into()], &mut out);
        assert_eq!(out, "a:1 b:2 \n");
        let mut out = String::new();
        render_items(&[], &mut out);
        assert_eq!(out, "\n");
    }
}
