//! Submitting, reading and operating on commands (the api's side of the table).

use serde_json::Value;
// The dynamic SQL below only splices this module's own constants, never input.
use sqlx::{Acquire, AssertSqlSafe, PgConnection, PgExecutor, Row as _, types::Json};
use std::time::Duration;
use uuid::Uuid;

use crate::{CHANGED, CommandRow, Cursor, StoreError};

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
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The end user it belongs to, if any.
    pub subject: Option<String>,
}

/// The outcome of recording one command.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The stored row: the new one, or the earlier one with the same idempotency key.
    pub row: CommandRow,
    /// False when the idempotency key matched an earlier command.
    pub created: bool,
}

/// Records commands as `new`, in the order given, in one transaction. A command whose
/// idempotency key is already taken is not inserted; the earlier command is returned instead,
/// with `created = false`. A payload that PostgreSQL stores in a form that cannot be read back
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
    let max_attempts: Vec<i32> = commands.iter().map(|c| c.max_attempts).collect();
    let subjects: Vec<Option<&str>> = commands.iter().map(|c| c.subject.as_deref()).collect();

    let mut tx = conn.begin().await?;
    let inserted: Vec<CommandRow> = sqlx::query_as(
        "insert into commands
             (id, tenant, type, payload, priority, ordering_key, idempotency_key, max_attempts,
              subject)
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int2[],
                              $6::text[], $7::text[], $8::int4[], $9::text[])
         on conflict (tenant, idempotency_key) where idempotency_key is not null do nothing
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
        let row: CommandRow =
            sqlx::query_as("select * from commands where tenant = $1 and idempotency_key = $2")
                .bind(&command.tenant)
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
             select id from commands where id = any($1) and status = 'new'
              order by id for update
         )
         update commands c
            set status = 'queue', queued_at = coalesce(c.queued_at, now()),
                redeliver_at = now() + make_interval(secs => $2), {CHANGED}
           from locked
          where c.id = locked.id and c.status = 'new'
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

/// Filters for listing commands.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this type.
    pub kind: Option<String>,
    /// Only this subject's.
    pub subject: Option<String>,
    /// Only these commands.
    pub ids: Option<Vec<Uuid>>,
    /// Only commands older than this id (the cursor of the previous page).
    pub before: Option<Uuid>,
    /// Page size.
    pub limit: i64,
}

/// How many of a tenant's newest commands one filtered page looks through at most. Status and
/// type filters have no index of their own (each index costs every state change a write): a
/// page examines at most this many commands, and says where it stopped.
pub const LIST_WINDOW: i64 = 2_000;

/// A page of a tenant's commands.
#[derive(Debug)]
pub struct Listed {
    /// Matching commands, newest first (at most the filter's limit).
    pub rows: Vec<CommandRow>,
    /// The snapshot they were read in: subscribing with it misses no later change.
    pub cursor: Cursor,
    /// A status or type filter looked through a whole window of commands and stopped at this
    /// id: older ones were not examined (continue with `before` = this id).
    pub scanned_to: Option<Uuid>,
}

/// A tenant's commands, newest first, with the snapshot they were read in. The statement names
/// only the filters given. Subject and ids filters are index conditions (`commands_tenant_subject`,
/// the primary key); status and type filters look through at most `LIST_WINDOW` of the newest
/// commands, so that every filter has a bounded plan.
pub async fn list<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    filter: &ListFilter,
) -> Result<Listed, StoreError> {
    let mut indexed = String::from("tenant = $1");
    for (given, condition) in [
        (filter.before.is_some(), "id < $4"),
        (filter.subject.is_some(), "subject = $6"),
        (filter.ids.is_some(), "id = any($7)"),
    ] {
        if given {
            indexed.push_str(" and ");
            indexed.push_str(condition);
        }
    }
    let mut scanned: Vec<&str> = Vec::new();
    if filter.status.is_some() {
        scanned.push("status = $2");
    }
    if filter.kind.is_some() {
        scanned.push("type = $3");
    }
    let windowed = !scanned.is_empty() && filter.subject.is_none() && filter.ids.is_none();
    let (source, window) = if windowed {
        let window = format!(
            "(select * from commands where {indexed} order by id desc limit $8) window_rows"
        );
        (
            format!("{window} where {}", scanned.join(" and ")),
            // The window's last id, when it is full (null when the tenant has fewer).
            format!(
                "(select (select id from commands where {indexed}
                           order by id desc limit 1 offset $8 - 1) as scanned_to)"
            ),
        )
    } else {
        let mut conditions = indexed.clone();
        for condition in &scanned {
            conditions.push_str(" and ");
            conditions.push_str(condition);
        }
        (
            format!("commands where {conditions}"),
            "(select null::uuid as scanned_to)".to_owned(),
        )
    };
    let read = sqlx::query(AssertSqlSafe(format!(
        "select s.cursor::text as cursor, w.scanned_to, c.*
           from (select pg_current_snapshot() as cursor) s
           cross join {window} w
           left join lateral (
                select * from {source} order by id desc limit $5) c on true"
    )))
    .bind(tenant)
    .bind(&filter.status)
    .bind(&filter.kind)
    .bind(filter.before)
    .bind(filter.limit)
    .bind(&filter.subject)
    .bind(&filter.ids)
    .bind(LIST_WINDOW)
    .fetch_all(executor)
    .await?;
    let scanned_to = match read.first() {
        Some(row) => row.try_get::<Option<Uuid>, _>("scanned_to")?,
        None => None,
    };
    let (rows, cursor) = crate::changes::rows_with_cursor(&read)?;
    Ok(Listed {
        rows,
        cursor,
        scanned_to,
    })
}

/// Cancels a command: one that has not started becomes `cancelled` at once; a running one gets
/// `cancel_requested` so that its handler stops. `None` when the state allows neither.
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
            and (status in ('new', 'queue') or (status = 'running' and not cancel_requested))
          returning *"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(executor)
    .await?)
}
