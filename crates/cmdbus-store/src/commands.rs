//! Submitting, reading and operating on commands (the api's side of the table; lists and
//! searches in `listing.rs`).

use chrono::{DateTime, Utc};
use cmdbus_domain::TraceParent;
use serde_json::Value;
// The dynamic SQL below only splices this module's own constants, never input.
use sqlx::{Acquire, AssertSqlSafe, PgConnection, PgExecutor, types::Json};
use std::time::Duration;
use uuid::Uuid;

use crate::{CHANGED, CommandRow, StoreError, rules::STATUS_BY_ID};

/// A command to record, already validated by the api.
#[derive(Debug, Clone)]
pub struct NewCommand {
    /// UUID v7 chosen by the api.
    pub id: Uuid,
    /// Owner.
    pub tenant: String,
    /// Registered type.
    pub kind: String,
    /// Handler input.
    pub payload: Value,
    /// 0..=9.
    pub priority: i16,
    /// Serialises commands sharing it.
    pub ordering_key: Option<String>,
    /// From the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// Whose key space `idempotency_key` is in: `None` for the tenant's API keys (the backend),
    /// the subject for a browser token's submit, so that an end user can never take a key the
    /// backend or another end user uses.
    pub idempotency_scope: Option<String>,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The end user it belongs to, if any.
    pub subject: Option<String>,
    /// When it is to run: a time after the database's `now()` records it `scheduled`; `None`
    /// (or a time already past) records it `new`, to run at once.
    pub run_at: Option<DateTime<Utc>>,
    /// The trace context of the span that submits it.
    pub traceparent: Option<TraceParent>,
}

/// The outcome of recording one command.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The stored row: the new one, or the earlier one with the same idempotency key.
    pub row: CommandRow,
    /// False when the idempotency key matched an earlier command.
    pub created: bool,
}

/// Records commands as `new` (or `scheduled`, those with a `run_at` still to come), in the order
/// given, in one transaction. A command whose idempotency key is already taken is not inserted;
/// the earlier command is returned instead, with `created = false`. A payload that PostgreSQL stores in a form that cannot be read back
/// (a number beyond what a handler can parse, for one) rolls the whole batch back with
/// `StoreError::Unreadable`: what is accepted can always be run.
pub async fn insert(
    conn: &mut PgConnection,
    commands: &[NewCommand],
) -> Result<Vec<Submitted>, StoreError> {
    let ids: Vec<Uuid> = commands.iter().map(|c| c.id).collect();
    let tenants: Vec<&str> = commands.iter().map(|c| c.tenant.as_str()).collect();
    let kinds: Vec<&str> = commands.iter().map(|c| c.kind.as_str()).collect();
    let payloads: Vec<Json<&Value>> = commands.iter().map(|c| Json(&c.payload)).collect();
    let priorities: Vec<i16> = commands.iter().map(|c| c.priority).collect();
    let ordering_keys: Vec<Option<&str>> =
        commands.iter().map(|c| c.ordering_key.as_deref()).collect();
    let idempotency_keys: Vec<Option<&str>> = commands
        .iter()
        .map(|c| c.idempotency_key.as_deref())
        .collect();
    let idempotency_scopes: Vec<&str> = commands
        .iter()
        .map(|c| c.idempotency_scope.as_deref().unwrap_or_default())
        .collect();
    let max_attempts: Vec<i32> = commands.iter().map(|c| c.max_attempts).collect();
    let subjects: Vec<Option<&str>> = commands.iter().map(|c| c.subject.as_deref()).collect();
    let run_ats: Vec<Option<DateTime<Utc>>> = commands.iter().map(|c| c.run_at).collect();
    let traceparents: Vec<Option<String>> = commands
        .iter()
        .map(|c| c.traceparent.map(|parent| parent.to_string()))
        .collect();

    let mut tx = conn.begin().await?;
    let inserted: Vec<CommandRow> = sqlx::query_as(
        "insert into commands
             (id, tenant, type, payload, priority, ordering_key, idempotency_key, max_attempts,
              subject, idempotency_scope, run_at, traceparent, status)
         select i.*, case when i.run_at > now() then 'scheduled' else 'new' end
           from unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int2[],
                       $6::text[], $7::text[], $8::int4[], $9::text[], $10::text[],
                       $11::timestamptz[], $12::text[])
                as i(id, tenant, type, payload, priority, ordering_key, idempotency_key,
                     max_attempts, subject, idempotency_scope, run_at, traceparent)
         on conflict (tenant, idempotency_scope, idempotency_key)
             where idempotency_key is not null do nothing
         returning *",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&kinds)
    .bind(&payloads)
    .bind(&priorities)
    .bind(&ordering_keys)
    .bind(&idempotency_keys)
    .bind(&max_attempts)
    .bind(&subjects)
    .bind(&idempotency_scopes)
    .bind(&run_ats)
    .bind(&traceparents)
    .fetch_all(&mut *tx)
    .await?;
    for row in &inserted {
        if let Err(error) = serde_json::from_str::<Value>(row.payload.get()) {
            return Err(StoreError::Unreadable {
                id: row.id,
                reason: format!("the payload as stored does not read back: {error}"),
            });
        }
    }

    let mut submitted = Vec::with_capacity(commands.len());
    for command in commands {
        if let Some(row) = inserted.iter().find(|row| row.id == command.id) {
            submitted.push(Submitted {
                row: row.clone(),
                created: true,
            });
            continue;
        }
        // Not inserted: its idempotency key is taken. The conflicting insert has committed
        // (ON CONFLICT waits for it), so this statement's fresh snapshot sees the row.
        let row: CommandRow = sqlx::query_as(
            "select * from commands
              where tenant = $1 and idempotency_scope = $2 and idempotency_key = $3",
        )
        .bind(&command.tenant)
        .bind(command.idempotency_scope.as_deref().unwrap_or_default())
        .bind(&command.idempotency_key)
        .fetch_one(&mut *tx)
        .await?;
        submitted.push(Submitted {
            row,
            created: false,
        });
    }
    tx.commit().await?;
    Ok(submitted)
}

/// `new` → `queue` for commands whose message the broker confirmed; a `queue` row is looked at
/// again by the redelivery sweep `redeliver_after` from now, should its message be lost. Rows
/// that moved on in the meantime (a fast worker already claimed one) are left alone and not
/// returned. Rows are locked in id order, as every batched statement locks them.
pub async fn mark_queued<'c>(
    executor: impl PgExecutor<'c>,
    ids: &[Uuid],
    redeliver_after: Duration,
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "with locked as (
             select c.id from commands c where c.id = any($1) and {STATUS_BY_ID} = 'new'
              order by id for update
         )
         update commands c
            set status = 'queue', queued_at = coalesce(c.queued_at, now()),
                -- A command a worker held for its key while it was still `new` owes nothing.
                redeliver_at = case when c.held_since is null
                                    then now() + make_interval(secs => $2) end, {CHANGED}
           from locked
          -- `any($1)` again: the rows are looked up by key whatever the join's order.
          where c.id = any($1) and c.id = locked.id and {STATUS_BY_ID} = 'new'
          returning c.*"
    )))
    .bind(ids)
    .bind(redeliver_after.as_secs_f64())
    .fetch_all(executor)
    .await?)
}

/// One command of a tenant.
pub async fn get<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<CommandRow>, StoreError> {
    Ok(
        sqlx::query_as("select * from commands where tenant = $1 and id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(executor)
            .await?,
    )
}

/// The commands of a tenant among `ids` (those that still exist), oldest version first.
pub async fn get_many<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    ids: &[Uuid],
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(
        sqlx::query_as(
            "select * from commands where tenant = $1 and id = any($2) order by version",
        )
        .bind(tenant)
        .bind(ids)
        .fetch_all(executor)
        .await?,
    )
}

/// The commands among `ids`, whatever their tenant (the notifier's tail), oldest version first.
pub async fn lookup_many<'c>(
    executor: impl PgExecutor<'c>,
    ids: &[Uuid],
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(
        sqlx::query_as("select * from commands where id = any($1) order by version")
            .bind(ids)
            .fetch_all(executor)
            .await?,
    )
}

/// One command by id, whatever its tenant (workers act on ids from messages).
pub async fn lookup<'c>(
    executor: impl PgExecutor<'c>,
    id: Uuid,
) -> Result<Option<CommandRow>, StoreError> {
    Ok(sqlx::query_as("select * from commands where id = $1")
        .bind(id)
        .fetch_optional(executor)
        .await?)
}

/// Cancels a command: one that has not started (`scheduled`, `new`, `queue`) becomes
/// `cancelled` at once; a running one gets `cancel_requested` so that its handler stops. `None`
/// when the state allows neither.
pub async fn cancel<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<CommandRow>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "update commands
            set status = case when status = 'running' then status else 'cancelled' end,
                finished_at = case when status = 'running' then null else now() end,
                cancel_requested = true, redeliver_at = null, {CHANGED}
          where tenant = $1 and id = $2
            and (status in ('scheduled', 'new', 'queue')
                 or (status = 'running' and not cancel_requested))
          returning *"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(executor)
    .await?)
}
