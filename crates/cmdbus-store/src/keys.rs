//! API keys and the token signing secret. Keys are stored by the SHA-256 of their secret, never
//! in plaintext: the caller hashes what it was shown and looks the hash up.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// An API key as stored (without its secret, which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRecord {
    /// The key's id (what `revoke` takes).
    pub id: Uuid,
    /// The tenant whose commands the key reaches.
    pub tenant: String,
    /// What the key is for, as its creator named it.
    pub name: String,
    /// `submit`, `read`, `operate`, `admin`.
    pub scopes: Vec<String>,
    /// The first characters of the key, to tell keys apart in a listing.
    pub prefix: String,
    /// Made by a development start on loopback.
    pub development: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to record.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// Its id.
    pub id: Uuid,
    /// Owner.
    pub tenant: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its scopes.
    pub scopes: &'a [String],
    /// SHA-256 of the key string.
    pub secret_hash: &'a [u8],
    /// The key string's first characters.
    pub prefix: &'a str,
    /// A development key.
    pub development: bool,
}

const COLUMNS: &str = "id, tenant, name, scopes, prefix, development, created_at, revoked_at";

/// Records a key.
pub async fn create_key<'c>(
    executor: impl PgExecutor<'c>,
    key: &NewKey<'_>,
) -> Result<KeyRecord, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into api_keys (id, tenant, name, scopes, secret_hash, prefix, development)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning {COLUMNS}"
    )))
    .bind(key.id)
    .bind(key.tenant)
    .bind(key.name)
    .bind(key.scopes)
    .bind(key.secret_hash)
    .bind(key.prefix)
    .bind(key.development)
    .fetch_one(executor)
    .await?)
}

/// The key whose secret hashes to `secret_hash`, revoked or not.
pub async fn find_key<'c>(
    executor: impl PgExecutor<'c>,
    secret_hash: &[u8],
) -> Result<Option<KeyRecord>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from api_keys where secret_hash = $1"
    )))
    .bind(secret_hash)
    .fetch_optional(executor)
    .await?)
}

/// The key with this id, revoked or not.
pub async fn key_by_id<'c>(
    executor: impl PgExecutor<'c>,
    id: Uuid,
) -> Result<Option<KeyRecord>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from api_keys where id = $1"
    )))
    .bind(id)
    .fetch_optional(executor)
    .await?)
}

/// A tenant's keys (every tenant's with `None`), oldest first.
pub async fn list_keys<'c>(
    executor: impl PgExecutor<'c>,
    tenant: Option<&str>,
) -> Result<Vec<KeyRecord>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from api_keys
          where $1::text is null or tenant = $1
          order by created_at, id"
    )))
    .bind(tenant)
    .fetch_all(executor)
    .await?)
}

/// Revokes a key (of `tenant`, when given). `None` when there is no such live key.
pub async fn revoke_key<'c>(
    executor: impl PgExecutor<'c>,
    tenant: Option<&str>,
    id: Uuid,
) -> Result<Option<KeyRecord>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update api_keys set revoked_at = now()
          where id = $1 and ($2::text is null or tenant = $2) and revoked_at is null
          returning {COLUMNS}"
    )))
    .bind(id)
    .bind(tenant)
    .fetch_optional(executor)
    .await?)
}

/// Live keys other than development ones: whether someone configured access.
pub async fn count_configured_keys<'c>(executor: impl PgExecutor<'c>) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "select count(*) from api_keys where revoked_at is null and not development",
    )
    .fetch_one(executor)
    .await?)
}

/// Revokes every live development key (a development start replaces them with a fresh one).
pub async fn revoke_development_keys<'c>(executor: impl PgExecutor<'c>) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "update api_keys set revoked_at = now() where development and revoked_at is null",
    )
    .execute(executor)
    .await?
    .rows_affected())
}

/// The database's token signing secret, created from `fresh` by the first process that asks.
pub async fn token_secret(pool: &crate::Db, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
    sqlx::query(
        "insert into token_secrets (id, secret) values (1, $1) on conflict (id) do nothing",
    )
    .bind(fresh)
    .execute(pool)
    .await?;
    // A fresh statement: sees the row whichever process inserted it.
    Ok(
        sqlx::query_scalar("select secret from token_secrets where id = 1")
            .fetch_one(pool)
            .await?,
    )
}

/// The statement of [`count_unfinished_of`], public so that the store's tests can check its
/// plan: its `status` list must stay the predicate of `commands_unfinished_per_subject`
/// (migrations 0011 and 0015), or the count reads every finished row of the tenant again.
#[doc(hidden)]
pub const COUNT_UNFINISHED_OF: &str = "select count(*) from commands
  where tenant = $1 and status in ('scheduled', 'new', 'queue', 'running')";

/// Unfinished (`scheduled`, `new`, `queue`, `running`) commands of a tenant: what its quota counts.
pub async fn count_unfinished_of<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(COUNT_UNFINISHED_OF)
        .bind(tenant)
        .fetch_one(executor)
        .await?)
}

/// The statement of [`count_unfinished_of_subject`]; the same index serves it, by its second
/// column.
#[doc(hidden)]
pub const COUNT_UNFINISHED_OF_SUBJECT: &str = "select count(*) from commands
  where tenant = $1 and subject = $2 and status in ('scheduled', 'new', 'queue', 'running')";

/// Unfinished commands of one subject of a tenant: what a browser token's share of the quota
/// counts.
pub async fn count_unfinished_of_subject<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    subject: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(COUNT_UNFINISHED_OF_SUBJECT)
        .bind(tenant)
        .bind(subject)
        .fetch_one(executor)
        .await?)
}
