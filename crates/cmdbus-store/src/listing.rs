//! Lists and searches a tenant's commands, newest first, and counts what a search matches per
//! status. Every filter has a bounded plan: the conditions an index serves (the primary key,
//! the subject's index, the failures' index, an id range for a time window) walk an index; the
//! others look through a bounded window of what those walk, and say where they stopped.

use chrono::{DateTime, Utc};
// The dynamic SQL below only splices this module's own constants, never input.
use sqlx::{AssertSqlSafe, PgExecutor, Row as _};
use uuid::Uuid;

use crate::{CommandRow, Cursor, StoreError};

/// Filters for listing (and counting) commands.
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
    /// Only commands whose id, written without hyphens, holds this (lowercase hex).
    pub id_fragment: Option<String>,
    /// Only commands of this ordering key.
    pub ordering_key: Option<String>,
    /// Only commands submitted with this idempotency key (by anyone of the tenant).
    pub idempotency_key: Option<String>,
    /// Only commands whose last error has this code.
    pub error_code: Option<String>,
    /// Only failures parked in this lane (`exceptions1`, `exceptions2`).
    pub lane: Option<String>,
    /// Only commands created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only commands created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only commands older than this id (the cursor of the previous page).
    pub before: Option<Uuid>,
    /// Page size.
    pub limit: i64,
}

/// How many of a tenant's newest commands one filtered page looks through at most. Status and
/// type filters have no index of their own (each index costs every state change a write): a
/// page examines at most this many commands, and says where it stopped.
pub const LIST_WINDOW: i64 = 2_000;

/// The most commands a filtered count looks through: past it the count is a lower bound.
pub const COUNT_WINDOW: i64 = 10_000;

/// How far a command's id time (the api's clock) may be from its `created_at` (the database's):
/// a time window walks the ids this much wider, and checks `created_at` exactly.
const CLOCK_MARGIN_SECS: i64 = 300;

/// The conditions of a filter, on the parameters `bind` binds (`$1` the tenant): those an
/// index serves, and those checked on the rows a window of them holds.
struct Conditions {
    indexed: String,
    scanned: Vec<&'static str>,
}

impl ListFilter {
    /// Whether the maintained counters count what this filter matches: it names a type at
    /// most (its status, page and limit aside).
    pub fn counted_by_type(&self) -> bool {
        self.subject.is_none()
            && self.ids.is_none()
            && self.id_fragment.is_none()
            && self.ordering_key.is_none()
            && self.idempotency_key.is_none()
            && self.error_code.is_none()
            && self.lane.is_none()
            && self.created_after.is_none()
            && self.created_before.is_none()
    }

    fn conditions(&self) -> Conditions {
        let mut indexed = String::from("tenant = $1");
        let mut scanned: Vec<&'static str> = Vec::new();
        // Failures have an index of their own (`commands_failed`); a lane is a failure's.
        let failed = self.status.as_deref() == Some("fail") || self.lane.is_some();
        for (given, condition) in [
            (self.before.is_some(), "id < $4"),
            (self.subject.is_some(), "subject = $6"),
            (self.ids.is_some(), "id = any($7)"),
            (self.created_after.is_some(), "id >= $16"),
            (self.created_before.is_some(), "id < $17"),
            (failed, "status = 'fail'"),
            (self.lane.is_some(), "lane = $13"),
        ] {
            if given {
                indexed.push_str(" and ");
                indexed.push_str(condition);
            }
        }
        for (given, condition) in [
            // `fail` is the index's; any other status with a lane matches nothing, as it should.
            (
                self.status.is_some() && self.status.as_deref() != Some("fail"),
                "status = $2",
            ),
            (self.kind.is_some(), "type = $3"),
            (
                self.id_fragment.is_some(),
                "replace(id::text, '-', '') like '%' || $9 || '%'",
            ),
            (self.ordering_key.is_some(), "ordering_key = $10"),
            (self.idempotency_key.is_some(), "idempotency_key = $11"),
            (self.error_code.is_some(), "error->>'code' = $12"),
            (self.created_after.is_some(), "created_at >= $14"),
            (self.created_before.is_some(), "created_at < $15"),
        ] {
            if given {
                scanned.push(condition);
            }
        }
        Conditions { indexed, scanned }
    }

    /// Whether the scanned conditions look through a window: not when the index part is a
    /// subject's or a selection of ids, which are few.
    fn windowed(&self, conditions: &Conditions) -> bool {
        !conditions.scanned.is_empty() && self.subject.is_none() && self.ids.is_none()
    }

    fn bind<'q>(
        &'q self,
        tenant: &'q str,
        statement: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        window: i64,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let margin = chrono::Duration::seconds(CLOCK_MARGIN_SECS);
        statement
            .bind(tenant)
            .bind(&self.status)
            .bind(&self.kind)
            .bind(self.before)
            .bind(self.limit)
            .bind(&self.subject)
            .bind(&self.ids)
            .bind(window)
            .bind(&self.id_fragment)
            .bind(&self.ordering_key)
            .bind(&self.idempotency_key)
            .bind(&self.error_code)
            .bind(&self.lane)
            .bind(self.created_after)
            .bind(self.created_before)
            .bind(self.created_after.map(|at| first_id_at(at - margin)))
            .bind(self.created_before.map(|at| first_id_at(at + margin)))
    }
}

/// The smallest UUID v7 of a millisecond: ids below it were made before it.
fn first_id_at(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

/// A page of a tenant's commands.
#[derive(Debug)]
pub struct Listed {
    /// Matching commands, newest first (at most the filter's limit).
    pub rows: Vec<CommandRow>,
    /// The snapshot they were read in: subscribing with it misses no later change.
    pub cursor: Cursor,
    /// A filter without an index looked through a whole window of commands and stopped at this
    /// id: older ones were not examined (continue with `before` = this id).
    pub scanned_to: Option<Uuid>,
}

/// A tenant's commands, newest first, with the snapshot they were read in. The statement names
/// only the filters given. Subject, ids, failures (and lanes) and time windows are index
/// conditions (`commands_tenant_subject`, the primary key, `commands_failed`, an id range); the
/// other filters look through at most `LIST_WINDOW` of the newest commands those select, so
/// that every filter has a bounded plan.
pub async fn list<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    filter: &ListFilter,
) -> Result<Listed, StoreError> {
    let conditions = filter.conditions();
    let indexed = &conditions.indexed;
    let (source, window) = if filter.windowed(&conditions) {
        let window = format!(
            "(select * from commands where {indexed} order by id desc limit $8) window_rows"
        );
        (
            format!("{window} where {}", conditions.scanned.join(" and ")),
            // The window's last id, when it is full (null when fewer match the index part).
            format!(
                "(select (select id from commands where {indexed}
                           order by id desc limit 1 offset $8 - 1) as scanned_to)"
            ),
        )
    } else {
        let mut all = indexed.clone();
        for condition in &conditions.scanned {
            all.push_str(" and ");
            all.push_str(condition);
        }
        (
            format!("commands where {all}"),
            "(select null::uuid as scanned_to)".to_owned(),
        )
    };
    let statement = format!(
        "select s.cursor::text as cursor, w.scanned_to, c.*
           from (select pg_current_snapshot() as cursor) s
           cross join {window} w
           left join lateral (
                select * from {source} order by id desc limit $5) c on true"
    );
    let read = filter
        .bind(tenant, sqlx::query(AssertSqlSafe(statement)), LIST_WINDOW)
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

/// What a filter matches, per status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Matching commands per status (statuses without any are absent).
    pub counts: Vec<(String, i64)>,
    /// False when the filter looked through `COUNT_WINDOW` commands and more were left: each
    /// count is then a lower bound.
    pub exact: bool,
}

/// Counts the commands `filter` matches (its `status`, `before` and `limit` aside), per status,
/// looking through at most `COUNT_WINDOW` of the newest commands its indexed part selects.
pub async fn count_matching<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    filter: &ListFilter,
) -> Result<Counted, StoreError> {
    let filter = ListFilter {
        status: None,
        before: None,
        ..filter.clone()
    };
    let conditions = filter.conditions();
    let indexed = &conditions.indexed;
    let scanned = if conditions.scanned.is_empty() {
        "true".to_owned()
    } else {
        conditions.scanned.join(" and ")
    };
    let statement = format!(
        "with window_rows as (
             select id, status, type, ordering_key, idempotency_key, error, created_at
               from commands where {indexed} order by id desc limit $8 + 1)
         select status, count(*) filter (where {scanned}) as matched,
                (select count(*) from window_rows) as looked
           from window_rows
          group by status"
    );
    let read = filter
        .bind(tenant, sqlx::query(AssertSqlSafe(statement)), COUNT_WINDOW)
        .fetch_all(executor)
        .await?;
    let mut exact = true;
    let mut counts = Vec::with_capacity(read.len());
    for row in &read {
        exact &= row.try_get::<i64, _>("looked")? <= COUNT_WINDOW;
        let matched: i64 = row.try_get("matched")?;
        if matched > 0 {
            counts.push((row.try_get("status")?, matched));
        }
    }
    Ok(Counted { counts, exact })
}
