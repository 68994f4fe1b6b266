//! Bearer-token logins at nginx-lookup (`Auth-Method: xoauth2 | oauthbearer`, the token in
//! `Auth-Pass`): with `--oauth-introspection-url`, the token is introspected (RFC 7662,
//! `common::oauth_introspection`) and must be active and belong to the login's account,
//! its user (`username`, else `email`, else `sub`) being that account's name or one of its
//! aliases, resolved as a login is. A token is never a password: it is not hashed, and a
//! refused one never counts toward the lockout.

use common::oauth_introspection::Introspector;

use crate::metrics::LookupMetrics;
use crate::resolve::Reason;
use crate::store::{normalize, AccountRoute, Directory, Store};

/// How one token check ended, for `route_lookup_oauth_introspections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Active and the login's, asked of the endpoint.
    Active,
    /// Active and the login's, from the cache of active answers.
    Cached,
    /// Not active (expired, revoked, unknown).
    Inactive,
    /// Active, but another account's (or nobody's: no user in the answer).
    WrongUser,
    /// No answer (endpoint down, slow, erring), or the token's user could not be resolved.
    Error,
}

impl Outcome {
    /// Every outcome, for metrics.
    pub const ALL: [Outcome; 5] = [
        Self::Active,
        Self::Cached,
        Self::Inactive,
        Self::WrongUser,
        Self::Error,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Cached => "cached",
            Self::Inactive => "inactive",
            Self::WrongUser => "wrong_user",
            Self::Error => "error",
        }
    }
}

/// The parts of the lookup a token check needs.
pub struct TokenCheck<'a> {
    /// The database (to resolve the token's user).
    pub store: &'a Store,
    /// The directory snapshot.
    pub dir: &'a Directory,
    /// The introspection client.
    pub introspector: &'a Introspector,
    /// Counters.
    pub metrics: &'a LookupMetrics,
}

impl TokenCheck<'_> {
    /// Whether `token` lets `login` (already resolved to `account`) in: `Ok` when it does,
    /// [`Reason::BadToken`] when it is not active or not this account's, and
    /// [`Reason::Unavailable`] (a temporary failure) when that cannot be told now.
    pub async fn check(
        &self,
        account: &AccountRoute,
        login: &str,
        proxy_ip: &str,
        token: &[u8],
    ) -> Result<(), Reason> {
        let (result, outcome) = self.decide(account, login, proxy_ip, token).await;
        self.metrics.record_oauth(outcome);
        if result.is_err() {
            // The account, never the token.
            tracing::info!(account = %account.name, outcome = outcome.label(), "bearer token refused");
        }
        result
    }

    async fn decide(
        &self,
        account: &AccountRoute,
        login: &str,
        proxy_ip: &str,
        token: &[u8],
    ) -> (Result<(), Reason>, Outcome) {
        let answer = match self.introspector.introspect(token).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(url = %self.introspector.url(), error = %common::exit::chain(&e), "token introspection failed");
                return (Err(Reason::Unavailable), Outcome::Error);
            }
        };
        if !answer.info.active {
            return (Err(Reason::BadToken), Outcome::Inactive);
        }
        let Some(user) = answer.info.user() else {
            return (Err(Reason::BadToken), Outcome::WrongUser);
        };
        match self.is_account(account, login, proxy_ip, user).await {
            Ok(true) if answer.cached => (Ok(()), Outcome::Cached),
            Ok(true) => (Ok(()), Outcome::Active),
            Ok(false) => {
                tracing::info!(account = %account.name, token_user = %user, "bearer token of another user");
                (Err(Reason::BadToken), Outcome::WrongUser)
            }
            Err(()) => (Err(Reason::Unavailable), Outcome::Error),
        }
    }

    /// Whether `user` names `account`: the login itself or the canonical name (no query),
    /// else whatever `user` resolves to (an alias, an alias domain, an unqualified name) has
    /// the account's id.
    async fn is_account(
        &self,
        account: &AccountRoute,
        login: &str,
        proxy_ip: &str,
        user: &str,
    ) -> Result<bool, ()> {
        let user = normalize(user);
        if user.is_empty() || user.matches('@').count() > 1 {
            return Ok(false);
        }
        if user == login || user == normalize(&account.name) {
            return Ok(true);
        }
        match self.store.resolve(self.dir, &user, proxy_ip).await {
            Ok(Some(other)) => Ok(other.id == account.id),
            Ok(None) => Ok(false),
            Err(e) => {
                tracing::warn!(error = %common::exit::chain(&e), "cannot resolve the token's user");
                Err(())
            }
        }
    }
}
