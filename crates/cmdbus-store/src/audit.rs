//! The operators' audit trail: one row per bulk action and per pause or resume, newest first.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, types::Json};

use crate::StoreError;

/// What an operator did, to be recorded.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Whose commands it acted on.
    pub tenant: &'a str,
    /// Who did it (`key:<id>`, `token:<subject>`, `open`).
    pub actor: &'a str,
    /// `cancel`, `retry`, `pause`, `resume`, or `schedule_create`, `schedule_pause`,
    /// `schedule_resume`, `schedule_delete` (the `audit_action` constraint).
    pub action: &'a str,
    /// The selection or filter it was given.
    pub filter: &'a Value,
    /// How many commands it changed.
    pub count: i64,
}

/// A recorded action.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// Its place in the trail (newest highest).
    pub id: i64,
    /// When it was done.
    pub at: DateTime<Utc>,
    /// Whose commands it acted on.
    pub tenant: String,
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The selection or filter it was given.
    pub filter: Json<Value>,
    /// How many commands it changed.
    pub count: i64,
}

/// Records an action.
pub async fn record_audit<'c>(
    executor: impl PgExecutor<'c>,
    entry: &AuditEntry<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into audit (tenant, actor, action, filter, count) values ($1, $2, $3, $4, $5)",
    )
    .bind(entry.tenant)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(Json(entry.filter))
    .bind(entry.count)
    .execute(executor)
    .await?;
    Ok(())
}

/// A page of a tenant's trail, newest first: at most `limit` rows older than `before` (an id).
pub async fn list_audit<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    Ok(sqlx::query_as(
        "select id, at, tenant, actor, action, filter, count from audit
          where tenant = $1 and ($2::int8 is null or id < $2)
          order by id desc
          limit $3",
    )
    .bind(tenant)
    .bind(before)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}
