//! The change feed read a page at a time (`GET /v1/changes`): the commands changed since a
//! cursor, in the order their transactions started, cut between transactions, each page with a
//! cursor that covers exactly what it holds.
//!
//! A cursor is a snapshot, so a page cannot end "after command 500". It can end before a
//! transaction: `Cursor::through` builds the snapshot that sees what `since` saw plus every
//! transaction below the cut that the read's snapshot saw, and nothing else. A transaction's
//! changes are never split (a batch of 1,000 submits is one transaction): when the first one
//! alone holds more than a page, the page holds all of it.

use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::{Cursor, Scope, StoreError, changes::read_changed};

/// One page of the commands changed since a cursor.
#[derive(Debug)]
pub struct ChangedPage {
    /// The page's commands, oldest version first.
    pub ids: Vec<Uuid>,
    /// The resume point once `ids` are delivered: the read's snapshot on the last page, else a
    /// snapshot that sees exactly `since` and this page's transactions.
    pub cursor: Cursor,
    /// Later pages follow: read again at once from `cursor`.
    pub more: bool,
    /// More than `most` commands changed since the cursor: nothing is paged, reload.
    pub truncated: bool,
    /// `since` is ahead of this database (see `ChangedIds::ahead`): nothing is paged, reload.
    pub ahead: bool,
    /// The snapshot the read was made in: where a client that must reload goes on from.
    pub now: Cursor,
}

/// The first page, at most `limit` commands (but never part of a transaction), of those in
/// `scope` changed since `since`; `truncated` when more than `most` changed.
pub async fn changed_page<'c>(
    executor: impl PgExecutor<'c>,
    since: &Cursor,
    scope: Scope<'_>,
    limit: usize,
    most: i64,
) -> Result<ChangedPage, StoreError> {
    let read = read_changed(
        executor,
        since,
        scope,
        most,
        "id, version, changed_xid::text as xid",
    )
    .await?;
    let mut now = None;
    let mut changed: Vec<(u64, i64, Uuid)> = Vec::with_capacity(read.len());
    for row in &read {
        if now.is_none() {
            now = Some(Cursor::read(row.try_get("cursor")?)?);
        }
        if let Some(id) = row.try_get::<Option<Uuid>, _>("id")? {
            let xid: String = row.try_get("xid")?;
            let xid = xid
                .parse()
                .map_err(|_| StoreError::Database(sqlx::Error::Protocol(format!("xid {xid:?}"))))?;
            changed.push((xid, row.try_get("version")?, id));
        }
    }
    let now = now.ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    let truncated = changed.len() as i64 > most;
    let ahead = since.is_ahead_of(&now);
    if truncated || ahead {
        return Ok(ChangedPage {
            ids: Vec::new(),
            cursor: now.clone(),
            more: false,
            truncated,
            ahead,
            now,
        });
    }
    changed.sort_unstable();
    let (page, cursor, more) = match cut(&changed, limit) {
        None => (&changed[..], now.clone(), false),
        Some((end, below)) => (&changed[..end], now.through(since, below), true),
    };
    let mut page: Vec<(i64, Uuid)> = page.iter().map(|&(_, version, id)| (version, id)).collect();
    page.sort_unstable();
    Ok(ChangedPage {
        ids: page.into_iter().map(|(_, id)| id).collect(),
        cursor,
        more,
        truncated,
        ahead,
        now,
    })
}

/// Where the first page of `changed` (sorted by transaction) ends: `None` when all of it fits
/// in `limit`, else how many it holds and the first transaction it leaves out.
fn cut(changed: &[(u64, i64, Uuid)], limit: usize) -> Option<(usize, u64)> {
    let &(next, ..) = changed.get(limit.max(1))?;
    let end = changed.partition_point(|&(xid, ..)| xid < next);
    if end > 0 {
        return Some((end, next));
    }
    // The first transaction alone fills the page: it goes whole.
    let first = changed[0].0;
    let end = changed.partition_point(|&(xid, ..)| xid <= first);
    (end < changed.len()).then_some((end, first + 1))
}

impl Cursor {
    /// The snapshot that sees what `since` sees plus every transaction below `below` that this
    /// (later) snapshot sees: the resume point of a client sent `since`'s changes and then every
    /// command whose last change is below `below`.
    pub(crate) fn through(&self, since: &Cursor, below: u64) -> Cursor {
        let (xmax, running): (u64, Vec<u64>) = if below >= since.xmax {
            // Below the cut, what this snapshot saw running is still unseen.
            let running = self.xip.iter().copied().filter(|&xid| xid < below);
            (below, running.collect())
        } else {
            // The cut falls among `since`'s running transactions: those at or past it stay
            // unseen, and those before it that this snapshot saw running still are.
            let running = since.xip.iter().copied();
            let running = running.filter(|xid| *xid >= below || self.xip.contains(xid));
            (since.xmax, running.collect())
        };
        let xmin = running.first().copied().unwrap_or(xmax);
        let list: Vec<String> = running.iter().map(u64::to_string).collect();
        Cursor {
            text: format!("{xmin}:{xmax}:{}", list.join(",")),
            xmax,
            xip: running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(text: &str) -> Cursor {
        Cursor::parse(text).expect("a cursor")
    }

    fn changes(xids: &[u64]) -> Vec<(u64, i64, Uuid)> {
        let mut version = 0;
        xids.iter()
            .map(|&xid| {
                version += 1;
                (xid, version, Uuid::now_v7())
            })
            .collect()
    }

    #[test]
    fn a_page_ends_between_transactions() {
        assert_eq!(cut(&changes(&[10, 11, 12]), 3), None);
        assert_eq!(cut(&changes(&[10, 11, 12]), 2), Some((2, 12)));
        assert_eq!(cut(&changes(&[10, 11, 11, 12]), 2), Some((1, 11)));
        assert_eq!(
            cut(&changes(&[10, 10, 10, 12]), 2),
            Some((3, 11)),
            "a transaction larger than a page goes whole"
        );
        assert_eq!(cut(&changes(&[10, 10, 10]), 2), None);
    }

    #[test]
    fn a_page_cursor_sees_since_and_the_page_and_nothing_else() {
        let since = cursor("100:105:101,103");
        let now = cursor("104:120:104,110,115");
        // Cut at 112: 104 and 110 were running then, so they are still unseen; 115 is past it.
        assert_eq!(now.through(&since, 112).as_str(), "104:112:104,110");
        // Cut among since's running transactions: 101 was delivered (this snapshot saw it end),
        // 103 not (at the cut), 104 neither (still running now).
        let since = cursor("100:105:101,103,104");
        assert_eq!(now.through(&since, 103).as_str(), "103:105:103,104");
        // Nothing running below the cut.
        assert_eq!(now.through(&since, 104).as_str(), "104:105:104");
        assert_eq!(
            cursor("130:140:")
                .through(&cursor("100:101:"), 125)
                .as_str(),
            "125:125:"
        );
        for text in ["104:112:104,110", "103:105:103,104", "125:125:"] {
            assert!(Cursor::parse(text).is_ok(), "{text} parses");
        }
    }
}
