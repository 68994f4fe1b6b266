//! OAuth 2.0 bearer logins (SASL XOAUTH2 and OAUTHBEARER, RFC 7628), offered when
//! `--oauth-introspection-url` is set: the token is introspected with the shared client
//! (`common::oauth_introspection`) and must be active and the SASL user's; the account is
//! then found as for a password login ([`crate::auth::Authenticator::account`]). The IMAP
//! and POP3 sessions ask [`check`] and answer a refusal with the RFC 7628 error challenge.

use codec::sasl::{OAuth, OAuthMechanism};

use crate::auth::AuthResult;
use crate::env::Env;

/// Longest SASL line read while OAuth is offered (the command with its initial response,
/// or a continuation answer): a [`codec::sasl::MAX_TOKEN`] token and its user, base64, with
/// room to spare. Without OAuth the usual, shorter bounds stay.
pub const MAX_LINE: usize = 32 * 1024;

/// The OAuth mechanism `name` names, if this server offers it.
pub(crate) fn mechanism(env: &Env, name: &str) -> Option<OAuthMechanism> {
    env.oauth.as_ref()?;
    OAuthMechanism::from_name(name.as_bytes())
}

/// Whether `oauth` logs its user in: [`AuthResult::Ok`] with the account when the token is
/// active and names the SASL user (or the same account), [`AuthResult::Denied`] for any
/// other token or an unknown account, [`AuthResult::Unavailable`] when the endpoint or the
/// directory cannot answer now.
pub(crate) async fn check(env: &Env, oauth: &OAuth) -> AuthResult {
    let Some(introspector) = &env.oauth else {
        return AuthResult::Denied;
    };
    let user = String::from_utf8_lossy(&oauth.user).into_owned();
    let answer = match introspector.introspect(&oauth.token).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %common::exit::chain(&e), "token introspection failed");
            return AuthResult::Unavailable;
        }
    };
    let token_user = match answer.info.user() {
        Some(u) if answer.info.active => u,
        _ => {
            tracing::info!(%user, active = answer.info.active, "bearer token refused");
            return AuthResult::Denied;
        }
    };
    let (account, mail_host) = match env.auth.account(&user).await {
        AuthResult::Ok { account, mail_host } => (account, mail_host),
        other => return other,
    };
    if token_user.eq_ignore_ascii_case(&user) || token_user.eq_ignore_ascii_case(&account) {
        return AuthResult::Ok { account, mail_host };
    }
    // Another name of the same account (an alias), when the directory knows aliases.
    match env.auth.account(token_user).await {
        AuthResult::Ok { account: a, .. } if a.eq_ignore_ascii_case(&account) => {
            AuthResult::Ok { account, mail_host }
        }
        AuthResult::Unavailable => AuthResult::Unavailable,
        _ => {
            tracing::info!(%user, %token_user, "bearer token of another user");
            AuthResult::Denied
        }
    }
}
