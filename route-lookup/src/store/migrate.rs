//! Versioned schema migrations, run by every route-lookup at start. They are idempotent:
//! each version is applied once, inside one transaction that holds an advisory lock, so
//! several instances starting together apply each exactly once.

use super::{Store, StoreError};

/// The schema, in order. Never edit an applied migration; add the next version.
///
/// Key columns use the "C" collation: names are normalised (lowercase) before they are
/// stored or looked up, and bytewise comparison keeps index probes cheap on the hot path.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "accounts, domains, servers, config, registrations",
        r#"
CREATE TABLE config (
    name  text COLLATE "C" PRIMARY KEY,
    vals  text[] NOT NULL
);
CREATE TABLE domains (
    id            text COLLATE "C" PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name          text COLLATE "C" NOT NULL UNIQUE,
    alias_target  text COLLATE "C" REFERENCES domains(id) ON DELETE CASCADE,
    virtual_ips   text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX domains_virtual_ips ON domains USING gin (virtual_ips);
CREATE TABLE servers (
    id               text COLLATE "C" PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name             text COLLATE "C" NOT NULL UNIQUE,
    service_address  text,
    services         text[] NOT NULL DEFAULT '{}',
    imap_port        integer NOT NULL DEFAULT 7143,
    imaps_port       integer NOT NULL DEFAULT 7993,
    pop3_port        integer NOT NULL DEFAULT 7110,
    pop3s_port       integer NOT NULL DEFAULT 7995,
    memcached_port   integer NOT NULL DEFAULT 11211,
    extension_port   integer NOT NULL DEFAULT 7072,
    mta_auth_port    integer NOT NULL DEFAULT 7072,
    lookup_target    boolean NOT NULL DEFAULT false,
    mta_auth_target  boolean NOT NULL DEFAULT false
);
CREATE TABLE accounts (
    id             text COLLATE "C" PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name           text COLLATE "C" NOT NULL UNIQUE,
    domain_id      text COLLATE "C" NOT NULL REFERENCES domains(id),
    mail_host      text COLLATE "C" NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'locked', 'lockout', 'closed', 'maintenance', 'pending')),
    password_hash  text
);
CREATE INDEX accounts_domain ON accounts (domain_id);
-- Primary names and aliases share one key space: an alias can never shadow an account.
CREATE TABLE addresses (
    address     text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    is_primary  boolean NOT NULL
);
CREATE INDEX addresses_account ON addresses (account_id);
-- Free-form descriptive attributes (displayName, description, ...), multi-valued.
CREATE TABLE extra_attrs (
    entry_id  text COLLATE "C" NOT NULL,
    name      text COLLATE "C" NOT NULL,
    value     text NOT NULL,
    PRIMARY KEY (entry_id, name, value)
);
CREATE TABLE registrations (
    lease_id     text COLLATE "C" PRIMARY KEY,
    kind         text COLLATE "C" NOT NULL,
    address      text COLLATE "C" NOT NULL,
    ttl_seconds  integer NOT NULL,
    expires_at   timestamptz NOT NULL,
    UNIQUE (kind, address)
);
"#,
    ),
    (
        2,
        "password lockout state",
        r#"
-- zimbraPasswordLockoutFailureTime and zimbraPasswordLockoutLockedTime: the failed
-- password checks still counted, and when the account was locked out.
ALTER TABLE accounts
    ADD COLUMN login_failures  timestamptz[] NOT NULL DEFAULT '{}',
    ADD COLUMN locked_at       timestamptz;
"#,
    ),
    (
        3,
        "account events",
        r#"
-- Changes that make a route to an account, or a session of it, wrong: proxies follow
-- them through the Registry's WatchAccounts. Kept an hour.
CREATE TABLE account_events (
    seq        bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text NOT NULL CHECK (kind IN ('moved', 'status', 'deleted')),
    addresses  text[] NOT NULL,
    value      text NOT NULL DEFAULT ''
);
CREATE INDEX account_events_at ON account_events (at);
"#,
    ),
    (
        4,
        "account events: kicks",
        r#"
ALTER TABLE account_events DROP CONSTRAINT account_events_kind_check;
ALTER TABLE account_events ADD CONSTRAINT account_events_kind_check
    CHECK (kind IN ('moved', 'status', 'deleted', 'kicked'));
"#,
    ),
];

/// An arbitrary constant that names our advisory lock.
const MIGRATION_LOCK: i64 = 0x7a70_726f_7879;

impl Store {
    /// Applies every migration not yet applied; returns the schema version now in place.
    pub async fn migrate(&self) -> Result<i32, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version     integer PRIMARY KEY,
                 name        text NOT NULL,
                 applied_at  timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let row = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await?;
        let current: i32 = row.get(0);
        let mut version = current;
        for &(v, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&v, &name],
            )
            .await?;
            tracing::info!(version = v, name, "applied migration");
            version = v;
        }
        tx.commit().await?;
        Ok(version)
    }
}

/// The newest schema version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}
