//! The Provisioning service: zmprov's verbs over the store.

use proto::v1::attr_change::Op;
use proto::v1::provisioning_server::Provisioning;
use proto::v1::{
    AliasRequest, Attr, AttrChange, CreateAccountRequest, CreateAliasDomainRequest, CreateRequest,
    Empty, Entry, GetConfigRequest, ListAccountsRequest, ListServersRequest, ModifyRequest,
    NameRequest, Names, SetPasswordRequest,
};
use tonic::{Request, Response, Status};

use super::status;
use std::sync::Arc;

use crate::directory::DirectoryCache;
use crate::lockout::{PolicySources, PASSWORD_MAX_LENGTH};
use crate::password::HashError;
use crate::password_checks::PasswordChecks;
use crate::purge::purge_routes;
use crate::store::{self, Change, ChangeOp, EntryKind, EventKind, Store};

/// The service.
#[derive(Debug, Clone)]
pub struct ProvisioningService {
    store: Store,
    directory: Arc<DirectoryCache>,
    checks: PasswordChecks,
}

impl ProvisioningService {
    /// A service over `store`; changes to domains, servers and the config re-read the
    /// directory snapshot before they are acknowledged.
    pub fn new(store: Store, directory: Arc<DirectoryCache>, checks: PasswordChecks) -> Self {
        Self {
            store,
            directory,
            checks,
        }
    }

    /// Checks `password` against zimbraPasswordMaxLength (the account's own value, from
    /// `account_attrs`, else the global config's, else 64) and hashes it within the
    /// password-check bound.
    async fn hash(
        &self,
        password: Option<String>,
        account_attrs: &std::collections::HashMap<String, String>,
    ) -> Result<Option<String>, Status> {
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let dir = self.directory.get();
        let max = PolicySources {
            account: account_attrs,
            global: &dir.password_config,
        }
        .password_max_length();
        if password.chars().count() > max {
            return Err(Status::invalid_argument(format!(
                "invalid password: too long ({PASSWORD_MAX_LENGTH} is {max})"
            )));
        }
        match self.checks.hash(password.into_bytes()).await {
            Ok(h) => Ok(Some(h)),
            Err(HashError::Busy) => Err(Status::unavailable(
                "password checks are busy; try again shortly",
            )),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    /// Logs an account event for watchers (proxies drop remembered routes and end
    /// sessions on it). The change itself is done: failing to log it is a warning.
    async fn event(&self, kind: EventKind, account: &store::Entry, value: &str) {
        if let Err(e) = self
            .store
            .record_account_event(kind, &addresses(account), value)
            .await
        {
            tracing::warn!(account = %account.name, error = %common::exit::chain(&e), "cannot log the account event; proxies learn of it only through the cache purge");
        }
    }

    /// The password policy attributes an account has now (for its length bound).
    async fn policy_attrs(
        &self,
        account: &str,
    ) -> Result<std::collections::HashMap<String, String>, Status> {
        let e = self
            .store
            .get(EntryKind::Account, account)
            .await
            .map_err(status)?;
        Ok(policy_attrs(e.attrs.iter()))
    }

    async fn directory_changed(&self) {
        self.directory.refresh(&self.store).await;
    }
}

fn changes(attrs: Vec<AttrChange>) -> Vec<Change> {
    attrs
        .into_iter()
        .map(|a| Change {
            op: match a.op() {
                Op::Replace => ChangeOp::Replace,
                Op::Add => ChangeOp::Add,
                Op::Remove => ChangeOp::Remove,
            },
            name: a.name,
            value: a.value,
        })
        .collect()
}

fn entry(e: store::Entry) -> Response<Entry> {
    Response::new(Entry {
        name: e.name,
        id: e.id,
        attrs: e
            .attrs
            .into_iter()
            .map(|(name, values)| Attr { name, values })
            .collect(),
    })
}

/// The account's primary name and aliases (the `mail` attribute).
fn addresses(e: &store::Entry) -> Vec<String> {
    e.attrs
        .get("mail")
        .cloned()
        .unwrap_or_else(|| vec![e.name.clone()])
}

fn names(v: Vec<String>) -> Response<Names> {
    Response::new(Names { names: v })
}

/// Takes `userPassword` out of a change list: `Some(None)` clears the password,
/// `Some(Some(p))` sets it.
fn take_password(changes: &mut Vec<Change>) -> Result<Option<Option<String>>, Status> {
    let mut found = None;
    let mut err = None;
    changes.retain(|c| {
        if !c.name.eq_ignore_ascii_case("userPassword") {
            return true;
        }
        match c.op {
            ChangeOp::Replace => found = Some((!c.value.is_empty()).then(|| c.value.clone())),
            _ => {
                err = Some(Status::invalid_argument(
                    "userPassword is single-valued; set it without +/-",
                ))
            }
        }
        false
    });
    match err {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// The single-valued password policy attributes among `attrs`.
fn policy_attrs<'a>(
    attrs: impl Iterator<Item = (&'a String, &'a Vec<String>)>,
) -> std::collections::HashMap<String, String> {
    attrs
        .filter(|(name, _)| crate::lockout::ATTRS.contains(&name.as_str()))
        .filter_map(|(name, values)| Some((name.clone(), values.first()?.clone())))
        .collect()
}

#[tonic::async_trait]
impl Provisioning for ProvisioningService {
    async fn create_domain(&self, r: Request<CreateRequest>) -> Result<Response<Entry>, Status> {
        let r = r.into_inner();
        let e = self
            .store
            .create(EntryKind::Domain, &r.name, &changes(r.attrs))
            .await
            .map_err(status)?;
        tracing::info!(domain = %e.name, "created domain");
        self.directory_changed().await;
        Ok(entry(e))
    }

    async fn create_alias_domain(
        &self,
        r: Request<CreateAliasDomainRequest>,
    ) -> Result<Response<Entry>, Status> {
        let r = r.into_inner();
        let c = [Change {
            name: "zimbraDomainAliasTargetId".into(),
            value: r.target,
            op: ChangeOp::Replace,
        }];
        let e = self
            .store
            .create(EntryKind::Domain, &r.alias, &c)
            .await
            .map_err(status)?;
        tracing::info!(domain = %e.name, "created alias domain");
        self.directory_changed().await;
        Ok(entry(e))
    }

    async fn create_server(&self, r: Request<CreateRequest>) -> Result<Response<Entry>, Status> {
        let r = r.into_inner();
        let e = self
            .store
            .create(EntryKind::Server, &r.name, &changes(r.attrs))
            .await
            .map_err(status)?;
        tracing::info!(server = %e.name, "created server");
        self.directory_changed().await;
        Ok(entry(e))
    }

    async fn create_account(
        &self,
        r: Request<CreateAccountRequest>,
    ) -> Result<Response<Entry>, Status> {
        let r = r.into_inner();
        let mut c = changes(r.attrs);
        let from_attrs = take_password(&mut c)?;
        let password = if r.password.is_empty() {
            from_attrs.flatten()
        } else {
            Some(r.password)
        };
        let requested = c
            .iter()
            .filter(|ch| ch.op != ChangeOp::Remove)
            .map(|ch| (ch.name.clone(), vec![ch.value.clone()]))
            .collect::<Vec<_>>();
        let hash = self
            .hash(
                password,
                &policy_attrs(requested.iter().map(|(n, v)| (n, v))),
            )
            .await?;
        let e = self
            .store
            .create_account(&r.name, hash, &c)
            .await
            .map_err(status)?;
        tracing::info!(account = %e.name, "created account");
        Ok(entry(e))
    }

    async fn add_account_alias(&self, r: Request<AliasRequest>) -> Result<Response<Empty>, Status> {
        let r = r.into_inner();
        self.store
            .add_alias(&r.account, &r.alias)
            .await
            .map_err(status)?;
        tracing::info!(account = %r.account, alias = %r.alias, "added alias");
        Ok(Response::new(Empty {}))
    }

    async fn remove_account_alias(
        &self,
        r: Request<AliasRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = r.into_inner();
        self.store
            .remove_alias(&r.account, &r.alias)
            .await
            .map_err(status)?;
        tracing::info!(account = %r.account, alias = %r.alias, "removed alias");
        Ok(Response::new(Empty {}))
    }

    async fn modify_account(&self, r: Request<ModifyRequest>) -> Result<Response<Entry>, Status> {
        let r = r.into_inner();
        let mut c = changes(r.attrs);
        let password = match take_password(&mut c)? {
            Some(p) => {
                let attrs = self.policy_attrs(&r.name).await?;
                Some(self.hash(p, &attrs).await?)
            }
            None => None,
        };
        let (before, after) = self
            .store
            .modify(EntryKind::Account, &r.name, &c, password)
            .await
            .map_err(status)?;
        let moved = before.attrs.get("zimbraMailHost") != after.attrs.get("zimbraMailHost");
        let status =
            before.attrs.get("zimbraAccountStatus") != after.attrs.get("zimbraAccountStatus");
        if moved || status {
            tracing::info!(account = %after.name, from = ?before.attrs.get("zimbraMailHost"), to = ?after.attrs.get("zimbraMailHost"), "routing changed");
            let single = |name: &str| {
                after
                    .attrs
                    .get(name)
                    .and_then(|v| v.first())
                    .cloned()
                    .unwrap_or_default()
            };
            if moved {
                self.event(EventKind::Moved, &after, &single("zimbraMailHost"))
                    .await;
            }
            if status {
                self.event(EventKind::Status, &after, &single("zimbraAccountStatus"))
                    .await;
            }
            purge_routes(&self.store, &addresses(&after)).await;
        }
        tracing::info!(account = %after.name, "modified account");
        Ok(entry(after))
    }

    async fn modify_server(&self, r: Request<ModifyRequest>) -> Result<Response<Entry>, Status> {
        let r = r.into_inner();
        let (_, e) = self
            .store
            .modify(EntryKind::Server, &r.name, &changes(r.attrs), None)
            .await
            .map_err(status)?;
        tracing::info!(server = %e.name, "modified server");
        self.directory_changed().await;
        Ok(entry(e))
    }

    async fn modify_domain(&self, r: Request<ModifyRequest>) -> Result<Response<Entry>, Status> {
        let r = r.into_inner();
        let (_, e) = self
            .store
            .modify(EntryKind::Domain, &r.name, &changes(r.attrs), None)
            .await
            .map_err(status)?;
        tracing::info!(domain = %e.name, "modified domain");
        self.directory_changed().await;
        Ok(entry(e))
    }

    async fn set_password(
        &self,
        r: Request<SetPasswordRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = r.into_inner();
        let attrs = self.policy_attrs(&r.account).await?;
        let hash = self.hash(Some(r.password), &attrs).await?;
        self.store
            .modify(EntryKind::Account, &r.account, &[], Some(hash))
            .await
            .map_err(status)?;
        tracing::info!(account = %r.account, "password set");
        Ok(Response::new(Empty {}))
    }

    async fn get_account(&self, r: Request<NameRequest>) -> Result<Response<Entry>, Status> {
        Ok(entry(
            self.store
                .get(EntryKind::Account, &r.into_inner().name)
                .await
                .map_err(status)?,
        ))
    }

    async fn get_server(&self, r: Request<NameRequest>) -> Result<Response<Entry>, Status> {
        Ok(entry(
            self.store
                .get(EntryKind::Server, &r.into_inner().name)
                .await
                .map_err(status)?,
        ))
    }

    async fn get_domain(&self, r: Request<NameRequest>) -> Result<Response<Entry>, Status> {
        Ok(entry(
            self.store
                .get(EntryKind::Domain, &r.into_inner().name)
                .await
                .map_err(status)?,
        ))
    }

    async fn get_all_accounts(
        &self,
        r: Request<ListAccountsRequest>,
    ) -> Result<Response<Names>, Status> {
        Ok(names(
            self.store
                .all_accounts(&r.into_inner().domain)
                .await
                .map_err(status)?,
        ))
    }

    async fn get_all_servers(
        &self,
        r: Request<ListServersRequest>,
    ) -> Result<Response<Names>, Status> {
        Ok(names(
            self.store
                .all_servers(&r.into_inner().service)
                .await
                .map_err(status)?,
        ))
    }

    async fn get_all_domains(&self, _: Request<Empty>) -> Result<Response<Names>, Status> {
        Ok(names(self.store.all_domains().await.map_err(status)?))
    }

    async fn delete_account(&self, r: Request<NameRequest>) -> Result<Response<Empty>, Status> {
        let e = self
            .store
            .delete_account(&r.into_inner().name)
            .await
            .map_err(status)?;
        tracing::info!(account = %e.name, "deleted account");
        self.event(EventKind::Deleted, &e, "").await;
        purge_routes(&self.store, &addresses(&e)).await;
        Ok(Response::new(Empty {}))
    }

    async fn delete_server(&self, r: Request<NameRequest>) -> Result<Response<Empty>, Status> {
        let name = r.into_inner().name;
        self.store.delete_server(&name).await.map_err(status)?;
        tracing::info!(server = %name, "deleted server");
        self.directory_changed().await;
        Ok(Response::new(Empty {}))
    }

    async fn delete_domain(&self, r: Request<NameRequest>) -> Result<Response<Empty>, Status> {
        let name = r.into_inner().name;
        self.store.delete_domain(&name).await.map_err(status)?;
        tracing::info!(domain = %name, "deleted domain");
        self.directory_changed().await;
        Ok(Response::new(Empty {}))
    }

    async fn modify_config(&self, r: Request<ModifyRequest>) -> Result<Response<Entry>, Status> {
        let r = r.into_inner();
        let (_, e) = self
            .store
            .modify(EntryKind::Config, "", &changes(r.attrs), None)
            .await
            .map_err(status)?;
        tracing::info!("modified global config");
        self.directory_changed().await;
        Ok(entry(e))
    }

    async fn get_config(&self, r: Request<GetConfigRequest>) -> Result<Response<Entry>, Status> {
        Ok(entry(
            self.store
                .get_config(&r.into_inner().attr)
                .await
                .map_err(status)?,
        ))
    }

    async fn get_all_reverse_proxy_urls(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Names>, Status> {
        Ok(names(
            self.store.reverse_proxy_urls().await.map_err(status)?,
        ))
    }

    async fn get_all_mta_auth_urls(&self, _: Request<Empty>) -> Result<Response<Names>, Status> {
        Ok(names(self.store.mta_auth_urls().await.map_err(status)?))
    }

    async fn get_all_memcached_servers(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Names>, Status> {
        Ok(names(self.store.memcached_servers().await.map_err(status)?))
    }

    async fn kick_user(&self, r: Request<NameRequest>) -> Result<Response<Empty>, Status> {
        let e = self
            .store
            .get(EntryKind::Account, &r.into_inner().name)
            .await
            .map_err(status)?;
        self.store
            .record_account_event(EventKind::Kicked, &addresses(&e), "")
            .await
            .map_err(status)?;
        tracing::info!(account = %e.name, "sessions kicked on every proxy");
        Ok(Response::new(Empty {}))
    }
}
