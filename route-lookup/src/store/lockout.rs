//! The lockout state of an account: the failures still counted and when a lock began.
//! Every change is one statement and uses the database's clock, so that several
//! route-lookup instances (and their clocks) agree.

use std::collections::HashMap;
use std::time::Duration;

use super::{Store, StoreError};
use crate::lockout::{LockoutPolicy, ATTRS};

/// What a password check reads before hashing.
#[derive(Debug, Clone, Default)]
pub struct LockoutState {
    /// zimbraAccountStatus now.
    pub status: String,
    /// Seconds since the lock began, when locked out with a recorded time.
    pub locked_for: Option<Duration>,
    /// Failures recorded (not yet pruned by lifetime).
    pub failures: usize,
    /// The account's own policy attributes.
    pub policy_attrs: HashMap<String, String>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Store {
    /// The lockout state of account `id`; `None` if it is gone.
    pub async fn lockout_state(&self, id: &str) -> Result<Option<LockoutState>, StoreError> {
        let names: Vec<String> = ATTRS.iter().map(|s| s.to_string()).collect();
        self.bounded(async {
            let client = self.client().await?;
            let Some(row) = client
                .query_opt(
                    "SELECT status,
                            extract(epoch FROM now() - locked_at)::float8,
                            cardinality(login_failures),
                            (SELECT coalesce(array_agg(name || '=' || value), '{}')
                               FROM extra_attrs WHERE entry_id = $1 AND name = ANY($2))
                       FROM accounts WHERE id = $1",
                    &[&id, &names],
                )
                .await?
            else {
                return Ok(None);
            };
            let locked_for: Option<f64> = row.get(1);
            let failures: i32 = row.get(2);
            let policy_attrs = row
                .get::<_, Vec<String>>(3)
                .into_iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            Ok(Some(LockoutState {
                status: row.get(0),
                locked_for: locked_for.map(|s| Duration::from_secs_f64(s.max(0.0))),
                failures: usize::try_from(failures).unwrap_or(0),
                policy_attrs,
            }))
        })
        .await
    }

    /// Records a failed password check under `policy`: failures older than its lifetime
    /// are forgotten, at most `max_failures` are kept, and an active account that reaches
    /// `max_failures` is locked out now. Returns whether this failure locked it.
    pub async fn record_login_failure(
        &self,
        id: &str,
        policy: &LockoutPolicy,
    ) -> Result<bool, StoreError> {
        let lifetime = secs(policy.failure_lifetime);
        let max = i32::try_from(policy.max_failures).unwrap_or(i32::MAX);
        self.bounded(async {
            let client = self.client().await?;
            // FOR UPDATE makes concurrent failures of one account queue up, each seeing
            // the previous one's list.
            let row = client
                .query_opt(
                    "WITH cur AS (
                         SELECT id, status,
                                array(SELECT f FROM unnest(login_failures) f
                                       WHERE $2::float8 <= 0 OR f > now() - make_interval(secs => $2::float8)
                                       ORDER BY f) || now() AS fails
                           FROM accounts WHERE id = $1 FOR UPDATE)
                     UPDATE accounts a SET
                         login_failures = cur.fails[greatest(1, cardinality(cur.fails) - greatest($3::int4, 1) + 1):],
                         status = CASE WHEN cur.status = 'active' AND $3 > 0
                                        AND cardinality(cur.fails) >= $3
                                       THEN 'lockout' ELSE a.status END,
                         locked_at = CASE WHEN cur.status = 'active' AND $3 > 0
                                           AND cardinality(cur.fails) >= $3
                                          THEN now() ELSE a.locked_at END
                       FROM cur WHERE a.id = cur.id
                     RETURNING cur.status = 'active' AND a.status = 'lockout'",
                    &[&id, &lifetime, &max],
                )
                .await?;
            Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
        })
        .await
    }

    /// Forgets the failures of account `id` after a right password.
    pub async fn clear_login_failures(&self, id: &str) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE accounts SET login_failures = '{}'
                      WHERE id = $1 AND cardinality(login_failures) > 0",
                    &[&id],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Ends a lockout of account `id` that has lasted `duration` (by the database's
    /// clock); a zero duration never ends by itself, nor does a lockout an admin set
    /// (it has no lock time). Returns whether the account is active now.
    pub async fn end_expired_lockout(
        &self,
        id: &str,
        duration: Duration,
    ) -> Result<bool, StoreError> {
        if duration.is_zero() {
            return Ok(false);
        }
        let duration = secs(duration);
        self.bounded(async {
            let client = self.client().await?;
            let ended = client
                .execute(
                    "UPDATE accounts SET status = 'active', locked_at = NULL, login_failures = '{}'
                      WHERE id = $1 AND status = 'lockout'
                        AND locked_at <= now() - make_interval(secs => $2::float8)",
                    &[&id, &duration],
                )
                .await?;
            Ok(ended == 1)
        })
        .await
    }
}
