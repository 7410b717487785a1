//! Reading changes by transaction snapshot, so that a resume point can never skip a change.
//!
//! Versions come from one sequence when a statement runs, but transactions commit in another
//! order: "everything above the highest version I hold" can miss a change that drew a lower
//! version and committed later. Instead every change records the transaction that made it
//! (`changed_xid`), and a resume point is the PostgreSQL snapshot a read was made in. A change is
//! new to a reader that holds snapshot `S` exactly when its transaction is not visible in `S`:
//! it either started after `S` (`xid >= xmax(S)`) or was still running then (`xid` in
//! `xip(S)`). Both are index lookups, and long transactions elsewhere cost nothing.

use sqlx::{AssertSqlSafe, FromRow, PgExecutor, Row, postgres::PgRow};
use uuid::Uuid;

use crate::{CommandRow, StoreError};

/// A resume point: the text form of a `pg_snapshot` (`xmin:xmax:xip,...`), opaque to clients.
/// Every change committed in it has been read by whoever holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) text: String,
    /// Transactions from here on started after the snapshot.
    pub(crate) xmax: u64,
    /// Transactions running when the snapshot was taken.
    pub(crate) xip: Vec<u64>,
}

/// A string that is not a cursor this server handed out.
#[derive(Debug, thiserror::Error)]
#[error("not a cursor: {0}")]
pub struct InvalidCursor(&'static str);

/// Longest cursor accepted: a snapshot lists the transactions running when it was taken, which
/// are bounded by `max_connections`.
const MAX_CURSOR: usize = 64 * 1024;

impl Cursor {
    /// Checks the shape of a cursor received from a client, so that the database never sees a
    /// malformed one.
    pub fn parse(text: &str) -> Result<Self, InvalidCursor> {
        if text.len() > MAX_CURSOR {
            return Err(InvalidCursor("too long"));
        }
        let mut parts = text.split(':');
        let (Some(xmin), Some(xmax), Some(xip), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidCursor("expected three parts"));
        };
        let number = |part: &str| {
            (!part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
                .ok_or(InvalidCursor("expected transaction ids"))
        };
        let (xmin, xmax) = (number(xmin)?, number(xmax)?);
        if xmin == 0 || xmin > xmax {
            return Err(InvalidCursor("xmin must be positive and at most xmax"));
        }
        let mut running = Vec::new();
        if !xip.is_empty() {
            for xid in xip.split(',') {
                let xid = number(xid)?;
                if xid < xmin || xid >= xmax || running.last().is_some_and(|&p| p >= xid) {
                    return Err(InvalidCursor("running transactions out of range"));
                }
                running.push(xid);
            }
        }
        Ok(Self {
            text: text.to_owned(),
            xmax,
            xip: running,
        })
    }

    /// A snapshot PostgreSQL itself printed.
    pub(crate) fn read(text: String) -> Result<Self, StoreError> {
        Self::parse(&text).map_err(|error| {
            StoreError::Database(sqlx::Error::Protocol(format!("snapshot {text:?}: {error}")))
        })
    }

    /// The text handed to clients.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Changes read in one snapshot.
#[derive(Debug)]
pub struct Changes {
    /// The changed rows (their latest state), oldest version first.
    pub rows: Vec<CommandRow>,
    /// The snapshot they were read in: the resume point once `rows` are delivered.
    pub cursor: Cursor,
    /// More rows matched than the limit: `rows` is incomplete and `cursor` is no resume point.
    pub truncated: bool,
}

/// Which commands a read of changes is about.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every tenant (the notifier's tail).
    Everything,
    /// Every command of a tenant.
    Tenant(&'a str),
    /// The commands of one subject (end user) of a tenant.
    Subject(&'a str, &'a str),
    /// These commands of a tenant.
    Ids(&'a str, &'a [Uuid]),
}

/// The rows changed since `since` (with `None`, only the current snapshot is read), at most
/// `limit`, with the snapshot they were read in. Rows and snapshot come from one statement, so
/// they agree exactly.
pub async fn changes_after<'c>(
    executor: impl PgExecutor<'c>,
    since: Option<&Cursor>,
    scope: Scope<'_>,
    limit: i64,
) -> Result<Changes, StoreError> {
    let Some(since) = since else {
        let cursor: String = sqlx::query_scalar("select pg_current_snapshot()::text")
            .fetch_one(executor)
            .await?;
        return Ok(Changes {
            rows: Vec::new(),
            cursor: Cursor::read(cursor)?,
            truncated: false,
        });
    };
    let read = read_changed(executor, since, scope, limit, "*").await?;
    let (mut rows, cursor) = rows_with_cursor(&read)?;
    let truncated = rows.len() as i64 > limit;
    rows.sort_unstable_by_key(|row| row.version);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(Changes {
        rows,
        cursor,
        truncated,
    })
}

/// The commands changed since a snapshot, by id only.
#[derive(Debug)]
pub struct ChangedIds {
    /// Their ids, oldest version first.
    pub ids: Vec<Uuid>,
    /// The version of each, as read in the snapshot (a later read may find a later one).
    pub versions: Vec<i64>,
    /// The snapshot they were read in.
    pub cursor: Cursor,
    /// More commands matched than the limit: `ids` is incomplete.
    pub truncated: bool,
    /// `since` is ahead of this database: transactions it says have started have not, so it
    /// was never handed out here (another database, or one restored from a backup). Nothing can
    /// be owed from it: the client must reload.
    pub ahead: bool,
}

impl Cursor {
    /// Whether this cursor claims transactions `now` (a snapshot taken later) has not seen
    /// started: true only of a cursor this database never handed out.
    pub fn is_ahead_of(&self, now: &Cursor) -> bool {
        self.xmax > now.xmax
    }
}

/// Like `changes_after` with a cursor, but reads only ids: a resume learns what it owes (or that
/// it owes too much) without holding thousands of whole rows, and reads them a page at a time.
pub async fn changed_ids_after<'c>(
    executor: impl PgExecutor<'c>,
    since: &Cursor,
    scope: Scope<'_>,
    limit: i64,
) -> Result<ChangedIds, StoreError> {
    let read = read_changed(executor, since, scope, limit, "id, version").await?;
    let mut cursor = None;
    let mut changed = Vec::with_capacity(read.len());
    for row in &read {
        if cursor.is_none() {
            cursor = Some(Cursor::read(row.try_get("cursor")?)?);
        }
        if let Some(id) = row.try_get::<Option<Uuid>, _>("id")? {
            changed.push((row.try_get::<i64, _>("version")?, id));
        }
    }
    let cursor = cursor.ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    let truncated = changed.len() as i64 > limit;
    changed.sort_unstable();
    changed.truncate(usize::try_from(limit).unwrap_or(0));
    let (versions, ids) = changed.into_iter().unzip();
    Ok(ChangedIds {
        ids,
        versions,
        ahead: since.is_ahead_of(&cursor),
        cursor,
        truncated,
    })
}

/// `columns` of the commands changed since `since` (at most `limit + 1` of them), each row with
/// the snapshot of the statement as `cursor`.
pub(crate) async fn read_changed<'c>(
    executor: impl PgExecutor<'c>,
    since: &Cursor,
    scope: Scope<'_>,
    limit: i64,
    columns: &str,
) -> Result<Vec<PgRow>, StoreError> {
    // The planner has no statistics to see that a range of recent transaction ids is narrow,
    // so each shape says how to read it: a range scan of `commands_changed` in its order (the
    // transactions that started after the snapshot), plus a lookup of the few that were running
    // when it was taken; named commands through the primary key.
    const AFTER: &str = "changed_xid >= $1::text::xid8";
    const RUNNING: &str = "changed_xid = any($5::text[]::xid8[])";
    let running = !since.xip.is_empty();
    let changed = match (scope, running) {
        (Scope::Ids(..), false) => {
            format!("select {columns} from commands where tenant = $3 and id = any($4) and {AFTER}")
        }
        (Scope::Ids(..), true) => format!(
            "select {columns} from commands
              where tenant = $3 and id = any($4) and ({AFTER} or {RUNNING})"
        ),
        (Scope::Everything | Scope::Tenant(_) | Scope::Subject(..), _) => {
            let tenant = match scope {
                Scope::Tenant(_) => "tenant = $3 and",
                Scope::Subject(..) => "tenant = $3 and subject = $6 and",
                _ => "",
            };
            let after = format!(
                "(select {columns} from commands where {tenant} {AFTER} order by changed_xid limit $2)"
            );
            if running {
                format!(
                    "{after} union all (select {columns} from commands where {tenant} {RUNNING})"
                )
            } else {
                after
            }
        }
    };
    let (tenant, ids, subject) = match scope {
        Scope::Everything => (None, None, None),
        Scope::Tenant(tenant) => (Some(tenant), None, None),
        Scope::Subject(tenant, subject) => (Some(tenant), None, Some(subject)),
        Scope::Ids(tenant, ids) => (Some(tenant), Some(ids), None),
    };
    let xip: Vec<String> = since.xip.iter().map(u64::to_string).collect();
    Ok(sqlx::query(AssertSqlSafe(format!(
        "select s.cursor::text as cursor, c.*
           from (select pg_current_snapshot() as cursor) s
           left join lateral ({changed}) c on true"
    )))
    .bind(since.xmax.to_string())
    .bind(limit + 1)
    .bind(tenant)
    .bind(ids)
    .bind(&xip)
    .bind(subject)
    .fetch_all(executor)
    .await?)
}

/// Decodes `select s.cursor::text as cursor, c.* from (snapshot) s left join lateral (...) c`:
/// the snapshot from the first row, and every row that matched (none when only the snapshot
/// came back, with the row's columns null).
pub(crate) fn rows_with_cursor(read: &[PgRow]) -> Result<(Vec<CommandRow>, Cursor), StoreError> {
    let mut cursor = None;
    let mut rows = Vec::with_capacity(read.len());
    for row in read {
        if cursor.is_none() {
            cursor = Some(Cursor::read(row.try_get("cursor")?)?);
        }
        if row.try_get::<Option<Uuid>, _>("id")?.is_some() {
            rows.push(CommandRow::from_row(row)?);
        }
    }
    let cursor = cursor.ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    Ok((rows, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_checked_before_the_database_sees_them() {
        assert!(Cursor::parse("812:815:").is_ok());
        assert!(Cursor::parse("812:815:812,814").is_ok());
        assert!(Cursor::parse("812:812:").is_ok());
        for bad in [
            "",
            "1",
            "1:2",
            "1:2:3:4",
            "a:2:",
            "5:2:",
            "0:2:",
            "1:5:5",
            "1:5:0",
            "2:5:4,3",
            "2:5:3,3",
            "1:5: 3",
            "-1:5:",
            "99999999999999999999999:1:",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
