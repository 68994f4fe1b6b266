//! One password check, however the password came (nginx-lookup with
//! `--verify-passwords`, a mailbox server's gRPC `Authenticate`, the admin SOAP
//! `AuthRequest`): the lockout state first (a locked-out account costs no hash), then the
//! hash within [`PasswordChecks`]' bound, then the failure or success recorded under
//! Zimbra's lockout policy.

use std::sync::Arc;

use crate::directory::DirectoryCache;
use crate::lockout::{LockoutPolicy, PolicySources};
use crate::password_checks::PasswordChecks;
use crate::store::{AccountRoute, EventKind, LockoutState, Store, StoreError};

/// The answer to a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right and the account not locked out.
    Accepted,
    /// Wrong password, or the account has none.
    Rejected,
    /// The account is locked out (the password was not checked).
    LockedOut,
}

/// The check could not be made now; the caller answers with a temporary failure.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// Every password worker is taken and the wait or queue bound was reached.
    #[error(transparent)]
    Busy(#[from] crate::password_checks::Busy),
    /// The database could not be read or written.
    #[error("lockout state unavailable")]
    Store(#[source] StoreError),
}

/// The shared checker.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    directory: Arc<DirectoryCache>,
    checks: PasswordChecks,
}

impl Authenticator {
    /// Checks over `store`, with the policy's global part from `directory`.
    pub fn new(store: Store, directory: Arc<DirectoryCache>, checks: PasswordChecks) -> Self {
        Self {
            store,
            directory,
            checks,
        }
    }

    /// The hashing bound (for metrics and provisioning).
    pub fn checks(&self) -> &PasswordChecks {
        &self.checks
    }

    /// Checks `password` for `account` (just resolved), applying the lockout policy.
    pub async fn check(
        &self,
        account: &AccountRoute,
        password: &[u8],
    ) -> Result<Verdict, Unavailable> {
        let Some((state, policy)) = self.state(account).await? else {
            return Ok(Verdict::Rejected);
        };
        if self.lock_holds(account, &state, &policy).await? {
            return Ok(Verdict::LockedOut);
        }
        let matched = match &account.password_hash {
            Some(hash) => self.checks.verify(hash.clone(), password.to_vec()).await?,
            None => false,
        };
        // The answer stands even if its bookkeeping cannot be written: a wrong password
        // turned into a temporary failure would invite retries, a right one refused would
        // lock a user out over a database hiccup.
        if matched {
            if state.failures > 0 {
                if let Err(e) = self.store.clear_login_failures(&account.id).await {
                    tracing::warn!(account = %account.name, error = %common::exit::chain(&e), "cannot clear password failures");
                }
            }
            return Ok(Verdict::Accepted);
        }
        if policy.enabled && matches!(state.status.as_str(), "active" | "lockout") {
            match self.store.record_login_failure(&account.id, &policy).await {
                Ok(true) => {
                    tracing::warn!(
                        account = %account.name,
                        failures = policy.max_failures,
                        duration = ?policy.duration,
                        "account locked out after consecutive password failures"
                    );
                    // Proxies end its sessions and drop what they remember of it.
                    if let Err(e) = self
                        .store
                        .record_account_event(
                            EventKind::Status,
                            std::slice::from_ref(&account.name),
                            "lockout",
                        )
                        .await
                    {
                        tracing::warn!(account = %account.name, error = %common::exit::chain(&e), "cannot log the lockout event");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(account = %account.name, error = %common::exit::chain(&e), "cannot record a password failure");
                }
            }
        }
        Ok(Verdict::Rejected)
    }

    /// Whether a locked-out `account` is still locked (ending the lock if its duration
    /// has passed); for routing, which does not check a password.
    pub async fn still_locked_out(&self, account: &AccountRoute) -> Result<bool, Unavailable> {
        match self.state(account).await? {
            Some((state, policy)) => self.lock_holds(account, &state, &policy).await,
            None => Ok(true),
        }
    }

    async fn state(
        &self,
        account: &AccountRoute,
    ) -> Result<Option<(LockoutState, LockoutPolicy)>, Unavailable> {
        let Some(state) = self
            .store
            .lockout_state(&account.id)
            .await
            .map_err(Unavailable::Store)?
        else {
            return Ok(None);
        };
        let dir = self.directory.get();
        let policy = PolicySources {
            account: &state.policy_attrs,
            global: &dir.password_config,
        }
        .lockout();
        Ok(Some((state, policy)))
    }

    /// Whether the account is locked out now. A lock ends by itself once its duration
    /// has passed (noticed here, at the next login, as Zimbra does), whether or not
    /// lockout is still enabled.
    async fn lock_holds(
        &self,
        account: &AccountRoute,
        state: &LockoutState,
        policy: &LockoutPolicy,
    ) -> Result<bool, Unavailable> {
        if state.status != "lockout" {
            return Ok(false);
        }
        let ended = state.locked_for.is_some_and(|d| d >= policy.duration)
            && self
                .store
                .end_expired_lockout(&account.id, policy.duration)
                .await
                .map_err(Unavailable::Store)?;
        if ended {
            tracing::info!(account = %account.name, "lockout ended: its duration has passed");
        }
        Ok(!ended)
    }
}
