//! The lookup decision, apart from HTTP: a parsed auth_http request in, an outcome out.
//! Everything the client may see is one of two generic texts; the reason is kept for logs
//! and metrics only.

use std::net::IpAddr;
use std::time::Duration;

use codec::auth_http::{STATUS_FAILED, STATUS_TEMPORARY};

use crate::authenticate::{Authenticator, Verdict};
use crate::config::LookupPolicy;
use crate::metrics::LookupMetrics;
use crate::oauth::TokenCheck;
use crate::store::{normalize, AccountRoute, Directory, Store, StoreError};

/// The longest login we look up, in bytes after decoding (RFC 5321 caps an address at 254).
pub const MAX_USER: usize = 320;
/// The longest password we accept, in bytes after decoding.
pub const MAX_PASS: usize = 1024;
/// The longest bearer token we accept (xoauth2 / oauthbearer), in bytes after decoding: the
/// SASL decoder's own bound.
pub const MAX_TOKEN: usize = codec::sasl::MAX_TOKEN;

/// A mail protocol as auth_http names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `imap`.
    Imap,
    /// `imapssl`.
    ImapSsl,
    /// `pop3`.
    Pop3,
    /// `pop3ssl`.
    Pop3Ssl,
}

impl Protocol {
    /// Parses an Auth-Protocol value (case-insensitive, as Zimbra's handler).
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "imap" => Some(Self::Imap),
            "imapssl" => Some(Self::ImapSsl),
            "pop3" => Some(Self::Pop3),
            "pop3ssl" => Some(Self::Pop3Ssl),
            _ => None,
        }
    }
}

/// What `Auth-Pass` carries, by `Auth-Method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A password (`plain`, `passwd`, ...): checked with --verify-passwords.
    Password,
    /// An OAuth 2.0 bearer token (`xoauth2`, `oauthbearer`): introspected with
    /// --oauth-introspection-url, never checked as a password.
    BearerToken,
}

/// A well-formed lookup request.
#[derive(Clone)]
pub struct LookupRequest {
    /// The login, decoded.
    pub user: String,
    /// The password or token, decoded (raw bytes: it need not be UTF-8).
    pub pass: Vec<u8>,
    /// Which of the two `pass` is.
    pub credential: Credential,
    /// Which backend port.
    pub protocol: Protocol,
    /// The proxy's interface address (qualifies unqualified logins by virtual IP).
    pub proxy_ip: Option<IpAddr>,
}

impl std::fmt::Debug for LookupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password or token is a secret: its length only.
        f.debug_struct("LookupRequest")
            .field("user", &self.user)
            .field("pass", &format_args!("<{} bytes>", self.pass.len()))
            .field("credential", &self.credential)
            .field("protocol", &self.protocol)
            .field("proxy_ip", &self.proxy_ip)
            .finish()
    }
}

/// Why a lookup failed; for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Headers missing, malformed, oversize.
    BadRequest,
    /// X-Lookup-Secret missing or wrong.
    Secret,
    /// apop, cram-md5, external, ...
    Method,
    /// No such account.
    NotFound,
    /// Wrong password (with --verify-passwords).
    BadPassword,
    /// A bearer token that is not active or not the login's (--oauth-introspection-url).
    BadToken,
    /// locked, lockout, closed, pending.
    Inactive,
    /// maintenance.
    Maintenance,
    /// The account has no mail host, or it does not resolve.
    NoRoute,
    /// The database is down or slow.
    Unavailable,
}

impl Reason {
    /// Every reason, for metrics.
    pub const ALL: [Reason; 10] = [
        Self::BadRequest,
        Self::Secret,
        Self::Method,
        Self::NotFound,
        Self::BadPassword,
        Self::BadToken,
        Self::Inactive,
        Self::Maintenance,
        Self::NoRoute,
        Self::Unavailable,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Secret => "bad_secret",
            Self::Method => "unsupported_method",
            Self::NotFound => "not_found",
            Self::BadPassword => "bad_password",
            Self::BadToken => "bad_token",
            Self::Inactive => "inactive",
            Self::Maintenance => "maintenance",
            Self::NoRoute => "no_route",
            Self::Unavailable => "unavailable",
        }
    }

    /// The Auth-Status text the client sees.
    pub fn status_text(self) -> &'static str {
        match self {
            Self::Maintenance | Self::NoRoute | Self::Unavailable => STATUS_TEMPORARY,
            _ => STATUS_FAILED,
        }
    }
}

/// A successful lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The mailbox server, an IP literal.
    pub server: IpAddr,
    /// Its host name (the account's zimbraMailHost): what its certificate names.
    pub server_name: String,
    /// Its port for the protocol.
    pub port: u16,
    /// The canonical account name to log in as.
    pub user: String,
    /// Zimbra's Auth-Cache-Alias: the account is in the default domain.
    pub cache_alias: bool,
}

/// Strips Zimbra's client suffixes (`/tb`, `/wm`, `/ni`), which name the client, not the user.
fn strip_suffix(login: &str) -> &str {
    for suffix in ["/tb", "/wm", "/ni"] {
        if let Some(base) = login.strip_suffix(suffix) {
            return base;
        }
    }
    login
}

/// Resolves `req` against the database under `policy`, checking passwords or bearer
/// tokens (when the policy says so) and lockouts with `auth`; token checks are counted in
/// `metrics`.
pub async fn lookup(
    store: &Store,
    dir: &Directory,
    policy: &LookupPolicy,
    auth: &Authenticator,
    metrics: &LookupMetrics,
    req: &LookupRequest,
) -> Result<Route, Reason> {
    let login = normalize(strip_suffix(&req.user));
    if login.is_empty() || login.matches('@').count() > 1 {
        return Err(Reason::NotFound);
    }
    let proxy_ip = req.proxy_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let account = match store.resolve(dir, &login, &proxy_ip).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(Reason::NotFound),
        Err(StoreError::Unavailable(e)) => {
            tracing::warn!(error = %common::exit::chain(&e), "lookup failed: database unavailable");
            return Err(Reason::Unavailable);
        }
        Err(e) => {
            tracing::warn!(error = %common::exit::chain(&e), "lookup failed");
            return Err(Reason::Unavailable);
        }
    };
    // A lockout may have run out: the lockout state decides, below.
    if account.status != "lockout" {
        check_status(&account)?;
    }
    let token = req.credential == Credential::BearerToken;
    if token {
        // Never a password check (and so never a lockout failure), whatever
        // --verify-passwords says; a lock in force still holds.
        if account.status == "lockout" {
            still_locked_out(auth, &account).await?;
        }
        if let Some(introspector) = &policy.oauth {
            let check = TokenCheck {
                store,
                dir,
                introspector,
                metrics,
            };
            check.check(&account, &login, &proxy_ip, &req.pass).await?;
        }
    } else if policy.verify_passwords {
        match auth.check(&account, &req.pass).await {
            Ok(Verdict::Accepted) => {}
            Ok(Verdict::Rejected) => return Err(Reason::BadPassword),
            Ok(Verdict::LockedOut) => return Err(Reason::Inactive),
            Err(e) => {
                tracing::warn!(error = %common::exit::chain(&e), "cannot check the password now");
                return Err(Reason::Unavailable);
            }
        }
    } else if account.status == "lockout" {
        // Routing alone does not check the password, but a lock whose time is up ends
        // here too, so the mailbox server is asked again.
        still_locked_out(auth, &account).await?;
    }

    let ports = account.server.ports;
    let port = match req.protocol {
        Protocol::Imap => ports.imap,
        Protocol::ImapSsl => ports.imaps,
        Protocol::Pop3 => ports.pop3,
        Protocol::Pop3Ssl => ports.pop3s,
    };
    let server = host_address(&account).await.ok_or(Reason::NoRoute)?;
    Ok(Route {
        server,
        server_name: account.mail_host.clone(),
        port,
        user: account.name,
        cache_alias: account.in_default_domain,
    })
}

/// A locked-out account's lock, when it still holds, as the failure; a lock whose duration
/// has passed ends here.
async fn still_locked_out(auth: &Authenticator, account: &AccountRoute) -> Result<(), Reason> {
    match auth.still_locked_out(account).await {
        Ok(true) => Err(Reason::Inactive),
        Ok(false) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %common::exit::chain(&e), "cannot read the lockout state");
            Err(Reason::Unavailable)
        }
    }
}

/// Maps zimbraAccountStatus to a failure, if it is one.
pub fn check_status(account: &AccountRoute) -> Result<(), Reason> {
    match account.status.as_str() {
        "active" => Ok(()),
        "maintenance" => Err(Reason::Maintenance),
        _ => Err(Reason::Inactive),
    }
}

/// The mail host as an IP literal: its serviceAddress, else its name resolved (IPv4
/// preferred, as Zimbra does); `None` when it has no mail host or it does not resolve.
async fn host_address(account: &AccountRoute) -> Option<IpAddr> {
    if let Some(ip) = account
        .server
        .service_address
        .as_deref()
        .and_then(|a| a.parse().ok())
    {
        return Some(ip);
    }
    if account.mail_host.is_empty() {
        tracing::warn!(account = %account.name, "account has no zimbraMailHost");
        return None;
    }
    resolve_host(&account.mail_host).await
}

/// Resolves a host name (or parses an IP literal), IPv4 first, within two seconds.
pub async fn resolve_host(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    let found =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host((host, 0))).await;
    match found {
        Ok(Ok(addrs)) => {
            let addrs: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            let ip = addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied();
            if ip.is_none() {
                tracing::warn!(host, "mail host has no address");
            }
            ip
        }
        Ok(Err(e)) => {
            tracing::warn!(host, error = %e, "mail host does not resolve");
            None
        }
        Err(_) => {
            tracing::warn!(host, "mail host resolution timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_suffixes() {
        assert_eq!(Protocol::parse("IMAP"), Some(Protocol::Imap));
        assert_eq!(Protocol::parse("pop3ssl"), Some(Protocol::Pop3Ssl));
        assert_eq!(Protocol::parse("smtp"), None);
        assert_eq!(strip_suffix("a@b.c/tb"), "a@b.c");
        assert_eq!(strip_suffix("a@b.c/xx"), "a@b.c/xx");
    }

    #[test]
    fn only_two_texts_reach_the_client() {
        for r in Reason::ALL {
            assert!([STATUS_FAILED, STATUS_TEMPORARY].contains(&r.status_text()));
        }
    }
}
